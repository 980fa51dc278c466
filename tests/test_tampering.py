"""Nothing lost, nothing false: hand-edited tables, foreign images, swapped weights, reused dirs (issue 21, 1-11).

Each test replays one case of the hostile trial in the shape the user typed it, on a copy of a finished run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import GRID, SMALL, make_cfg, quiet, run_cli, snapshot
from sweep import compare
from sweep.cli import app
from sweep.errors import SweepError
from sweep.report.__main__ import main as report_main
from sweep.rundir import guard as rundir
from sweep.running.runner import run_sweep


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype=str)


def one_line_refusal(cfg, run_dir, capsys) -> str:
    """The CLI's path (run_job): exit 2 and exactly one line on stderr."""
    with pytest.raises(SystemExit) as info:
        app.run_job(cfg, run_dir)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert quiet(make_cfg(*GRID), run_dir).made == 4
    return run_dir


@pytest.fixture
def copy(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


def moved_aside(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (run_dir / "previous").glob("*/images/*.png")}


# Data lost ------------------------------------------------------------------------------------------------------


def test_1_a_renamed_column_is_refused_and_the_table_kept(copy, capsys):
    path = copy / "results.csv"
    header, rest = path.read_bytes().split(b"\r\n", 1)  # sed -i '1s/num_inference_steps/steps/'
    path.write_bytes(header.replace(b"num_inference_steps", b"steps", 1) + b"\r\n" + rest)
    before = snapshot(copy)
    err = one_line_refusal(make_cfg(*GRID), copy, capsys)
    assert f"{path}: line 1: column 'steps' is not one sdxl-sweep writes and 'num_inference_steps' is missing" in err
    assert snapshot(copy) == before  # the steps values are still there


def test_2_a_deleted_lock_file_does_not_let_a_second_run_in(copy):
    holder = rundir.RunLock(copy).acquire()  # the first run, mid-sweep
    holder.record_holder()
    try:
        (copy / ".sweep.lock").unlink()  # rm DIR/.sweep.lock during the run
        before = snapshot(copy)
        with pytest.raises(SweepError, match="is in use by another sdxl-sweep process"):
            quiet(make_cfg(*GRID), copy)  # the same command, started again
        assert snapshot(copy) == before  # refused before anything is created (the lock file is not made again)
    finally:
        holder.release()
    assert quiet(make_cfg(*GRID), copy).skipped == 4  # the first run gone: the directory is usable again


def test_3_compare_moves_the_users_compare_files_aside(finished, copy, tmp_path, capsys):
    out = tmp_path / "folder"
    out.mkdir()
    (out / "compare.csv").write_text("my,own\n1,2\n")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out / "compare.png")
    mine = {name: (out / name).read_bytes() for name in ("compare.csv", "compare.png")}
    assert compare.main([str(finished), str(copy), f"out={out}"]) == 0  # python -m sweep.compare A B out=FOLDER
    assert "moved aside (not written by sweep.compare): compare.csv, compare.png" in capsys.readouterr().out
    (kept,) = (out / "previous").iterdir()
    assert {name: (kept / name).read_bytes() for name in mine} == mine
    assert pd.read_csv(out / "compare.csv").columns[0] == "cell_id"  # the comparison itself was written
    assert compare.main([str(finished), str(copy), f"out={out}"]) == 0  # its own files: replaced, nothing moved
    assert len(list((out / "previous").iterdir())) == 1


def test_4_restart_moves_the_earlier_hydra_record_aside(copy):
    (copy / ".hydra").mkdir()
    (copy / ".hydra" / "overrides.yaml").write_text("- prompt=the first experiment\n")

    def save_hydra():  # what the CLI does once the directory is accepted
        (copy / ".hydra").mkdir(exist_ok=True)
        (copy / ".hydra" / "overrides.yaml").write_text("- restart=true\n")

    quiet(make_cfg(*GRID, "prompt=a lighthouse", "restart=true"), copy, on_accept=save_hydra)
    (moved,) = (copy / "previous").iterdir()
    assert (moved / ".hydra" / "overrides.yaml").read_text() == "- prompt=the first experiment\n"
    assert (copy / ".hydra" / "overrides.yaml").read_text() == "- restart=true\n"


# Garbage accepted as ok --------------------------------------------------------------------------------------------


def drop_first_idat(path: Path) -> None:
    """Remove one IDAT chunk: every remaining chunk's CRC is valid, but the pixels are gone."""
    data = path.read_bytes()
    out, pos, dropped = bytearray(data[:8]), 8, False
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunk = data[pos:pos + 12 + length]
        if chunk[4:8] == b"IDAT" and not dropped:
            dropped = True
        else:
            out += chunk
        pos += 12 + length
    assert dropped
    path.write_bytes(bytes(out))


@pytest.mark.parametrize("digests", [True, False], ids=["digest-recorded", "row-from-before-digests"])
def test_5_6_foreign_blank_and_undecodable_images_are_remade_and_kept_aside(finished, copy, digests):
    if not digests:  # a table written before results.csv had the digest column
        rows = table(copy).drop(columns=["image_sha256"])
        rows.to_csv(copy / "results.csv", index=False)
    rows = table(finished)
    images = [copy / p for p in rows["image"]]
    shutil.copy(images[1], images[0])  # another cell's PNG copied over a cell
    Image.new("RGB", (64, 64)).save(images[1])  # a black PNG without metadata
    drop_first_idat(images[2])  # PIL cannot decode it, every CRC is valid
    planted = {p.name: p.read_bytes() for p in images[:3]}
    said: list[str] = []
    summary = run_sweep(make_cfg(*GRID), copy, progress=False, echo=said.append)
    assert (summary.made, summary.skipped) == (3, 1)
    for relative in rows["image"]:  # every image is the one the sweep makes, pixel for pixel
        assert np.array_equal(pixels(copy / relative), pixels(finished / relative))
    assert moved_aside(copy) == planted  # nothing deleted
    assert any("3 image(s)" in line and "moved to" in line for line in said)


def test_8_an_infinite_or_black_vae_output_is_a_failed_cell(tmp_path, monkeypatch):
    import torch

    from sweep.models import pipeline

    vae = pipeline.load(make_cfg("sweep=seed_fixed").model).pipe.vae
    original = vae.decode

    for fill, word in ((torch.inf, "white"), (-10.0, "black")):
        def decode(latents, *args, fill=fill, **kwargs):
            out = original(latents, *args, **kwargs)
            (out[0] if isinstance(out, tuple) else out.sample).fill_(fill)  # +inf, or far below black
            return out

        monkeypatch.setattr(vae, "decode", decode)
        run_dir = tmp_path / word
        summary = quiet(make_cfg(*GRID), run_dir)
        assert (summary.failed, summary.made) == (4, 0)
        assert all(f"came out all {word}" in e for e in table(run_dir)["error"])
        assert not list((run_dir / "images").glob("*.png"))


def test_7_other_weights_under_the_same_name_are_another_experiment(tmp_path, monkeypatch):
    from model_files import write_single_file
    from sweep.models.builtin import build_tiny_layout_pipeline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base, other = build_tiny_layout_pipeline(), build_tiny_layout_pipeline(seed=1)
    base.save_pretrained(tmp_path / "model-folder")
    write_single_file(base, tmp_path / "model.safetensors")
    write_single_file(other, tmp_path / "other.safetensors")
    single = ("sweep=seed_fixed", *SMALL, "sweep.grid.repeat=1", f"model.path={tmp_path / 'model.safetensors'}",
              f"model.config={tmp_path / 'model-folder'}")
    folder = ("sweep=seed_fixed", *SMALL, "sweep.grid.repeat=1", f"model.path={tmp_path / 'model-folder'}")
    for name, grid in (("file", single), ("folder", folder)):
        assert quiet(make_cfg(*grid), tmp_path / f"run-{name}").made == 1
    stat = (tmp_path / "model.safetensors").stat()
    shutil.copy(tmp_path / "other.safetensors", tmp_path / "model.safetensors")  # cp other.safetensors model...
    os.utime(tmp_path / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...even with cp -p
    other.unet.save_pretrained(tmp_path / "model-folder" / "unet")  # other weights into the folder
    for name, grid in (("file", single), ("folder", folder)):
        run_dir = tmp_path / f"run-{name}"
        before = snapshot(run_dir)
        with pytest.raises(SweepError, match=r"holds another experiment \(the weights of model.path changed"):
            quiet(make_cfg(*grid, "sweep.grid.repeat=2"), run_dir)  # a grid extension into the same dir
        assert snapshot(run_dir) == before
    (tmp_path / "run-file" / "sweep.json").unlink()  # the rows' model_hash still tells
    with pytest.raises(SweepError, match="the weights of model.path changed"):
        quiet(make_cfg(*single, "sweep.grid.repeat=2"), tmp_path / "run-file")


def test_9_another_sweep_name_is_refused_unless_grow(copy, capsys):
    before = snapshot(copy)
    err = one_line_refusal(make_cfg(*GRID, "sweep.name=another", "sweep.grid.seed=[2,3]"), copy, capsys)
    assert "holds another experiment (sweep was seeds_steps_guidance, now another)" in err
    assert "add grow=true" in err
    assert snapshot(copy) == before
    summary = quiet(make_cfg(*GRID, "sweep.name=another", "sweep.grid.seed=[2,3]", "grow=true"), copy)
    assert (summary.made, summary.skipped) == (2, 2)
    assert len(table(copy)) == 6  # the first sweep's rows stay in the table


@pytest.mark.slow
def test_10_a_multirun_rerun_with_reordered_lists_does_not_mix_jobs(tmp_path):
    sweep_dir = tmp_path / "multi"
    args = ("-m", "sweep=seeds_steps_guidance", "model=tiny", *SMALL, "sweep.grid.num_inference_steps=[1]",
            "sweep.grid.guidance_scale=[5.0]", f"hydra.sweep.dir={sweep_dir}")
    assert run_cli(*args, "sweep.grid.seed=[1,2],[2,3]", cwd=tmp_path).returncode == 0
    jobs = {d.name: snapshot(d) for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit()}
    again = run_cli(*args, "sweep.grid.seed=[2,3],[1,2]", cwd=tmp_path)
    assert again.returncode == 2
    refusals = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(refusals) == 2 and "was made by sweep.grid.seed=[1,2], this job is sweep.grid.seed=[2,3]" in refusals[0]
    assert {d: snapshot(sweep_dir / d) for d in jobs} == jobs
    merged = table(sweep_dir)
    assert len(merged) == 4
    for _, row in merged.iterrows():  # every row is labelled with the list of the job that made it
        (seeds,) = [o for o in row["overrides"].split() if o.startswith("sweep.grid.seed=")]
        assert row["seed"] in seeds.split("=", 1)[1].strip("[]").split(",")
    grown = run_cli(*args, "sweep.grid.seed=[1,2],[2,3]", "sweep.grid.guidance_scale=[5.0,7.0]", cwd=tmp_path)
    assert grown.returncode == 0, grown.stderr  # a key every job shares may still grow each job


def test_11_an_edited_seed_is_refused(copy, capsys):
    rows = table(copy)
    seed = rows.loc[0, "seed"]
    rows.loc[0, "seed"] = "999"
    rows.to_csv(copy / "results.csv", index=False)
    before = snapshot(copy)
    err = one_line_refusal(make_cfg(*GRID), copy, capsys)
    cell = rows.loc[0, "cell_id"]
    assert f"{copy / 'results.csv'}: line 2: cell {cell} has seed '999', but that cell's seed is '{seed}'" in err
    assert snapshot(copy) == before


@pytest.mark.parametrize("where", ["end", "middle"])
def test_11_random_bytes_in_the_table_refuse_report_and_resume(copy, capsys, where):
    path = copy / "results.csv"
    data = path.read_bytes()
    noise = bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8))
    at = len(data) if where == "end" else data.index(b"\r\n", len(data) // 2) + 2
    path.write_bytes(data[:at] + noise + b"\r\n" + data[at:])
    before = snapshot(copy)
    assert report_main([str(copy)]) == 2  # python -m sweep.report DIR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: line " in err and "Traceback" not in err
    assert snapshot(copy) == before  # metrics.csv, seed_spread.csv and the sheets are still there
    one_line_refusal(make_cfg(*GRID), copy, capsys)  # the same command: refused too
    assert snapshot(copy) == before


def test_a_torn_last_row_is_still_repaired_silently(copy):
    path = copy / "results.csv"
    rows = path.read_bytes()
    path.write_bytes(rows + rows.split(b"\r\n")[1][:40])  # a kill in the middle of an append
    assert quiet(make_cfg(*GRID), copy).skipped == 4
    assert len(table(copy)) == 4
