"""Never lose or corrupt a user's results: guarded directories, verified images, one writer, clean signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import GRID, SMALL, make_cfg, quiet, run_cli, snapshot
from sweep.cli import multirun
from sweep.errors import SweepError
from sweep.rundir import guard as rundir
from sweep.running.runner import run_sweep


def pixels(run_dir: Path, relative: str) -> np.ndarray:
    return np.asarray(Image.open(run_dir / relative).convert("RGB"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    summary = quiet(make_cfg(*GRID), run_dir)
    assert summary.made == 4
    return run_dir


@pytest.fixture
def copy(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


def table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv", keep_default_na=False)


# 1. `python -m sweep.cli.multirun DIR` recognises what DIR is ---------------------------------------------------


def test_merge_refuses_a_run_dir_a_job_dir_and_an_empty_folder(copy, tmp_path, capsys):
    job = tmp_path / "job"
    shutil.copytree(copy, job)
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("- guidance_scale=3\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, needle in ((copy, "a single run"), (job, "a single run"), (empty, "holds no multirun jobs")):
        before = snapshot(target)
        assert multirun.main([str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err and "Traceback" not in err
        assert snapshot(target) == before  # results.csv and status.json untouched


# 2. only what the tool can prove it wrote is rewritten, moved or deleted ---------------------------------


def test_a_folder_of_someone_elses_files_is_refused_even_with_restart(tmp_path):
    foreign = tmp_path / "mine"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "holiday.png").write_bytes(b"\x89PNG not ours")
    (foreign / "results.csv").write_text("name,score\nalice,3\n")
    (foreign / "notes.txt").write_text("keep me")
    before = snapshot(foreign)
    for extra in ((), ("restart=true",)):
        with pytest.raises(SweepError, match="holds files sdxl-sweep did not write"):
            quiet(make_cfg(*GRID, *extra), foreign)
        assert snapshot(foreign) == before


def test_restart_moves_the_old_experiment_aside_and_says_so(copy):
    old = {p.name: p.read_bytes() for p in (copy / "images").iterdir()}
    said: list[str] = []
    summary = run_sweep(make_cfg(*GRID, "prompt=a lighthouse", "restart=true"), copy, progress=False,
                        echo=said.append)
    assert summary.made == 4 and set(table(copy)["prompt"]) == {"a lighthouse"}
    (moved,) = (copy / "previous").iterdir()
    assert any(f"moved the earlier results to {moved}" in line for line in said)
    assert {p.name: p.read_bytes() for p in (moved / "images").iterdir()} == old  # nothing deleted
    assert set(table(moved)["prompt"]) == {"a photo of an astronaut riding a horse on mars"}


@pytest.mark.slow
def test_an_empty_run_dir_means_the_current_directory_and_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("my project")
    before = snapshot(tmp_path)
    result = run_cli("sweep=seed_fixed", "model=tiny", *SMALL, "hydra.run.dir=", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "holds files sdxl-sweep did not write (README.md)" in result.stderr
    assert snapshot(tmp_path) == before


# 3. one writer per run directory ------------------------------------------------------------------------


def test_a_second_process_is_refused_naming_the_holder(copy):
    holder = rundir.RunLock(copy).acquire()  # another open file: flock conflicts even within one process
    holder.record_holder()
    before = snapshot(copy)
    try:
        with pytest.raises(SweepError, match=rf"is in use by another sdxl-sweep process \(pid {os.getpid()} on "):
            quiet(make_cfg(*GRID), copy)
    finally:
        holder.release()
    assert snapshot(copy) == before
    assert quiet(make_cfg(*GRID), copy).skipped == 4  # released (as the OS does on kill -9): usable again


def test_a_run_just_started_elsewhere_is_in_use_not_foreign_files(tmp_path):
    """The second of two processes started together can look while the first holds the lock and has made only
    its empty images/ (no results.csv yet): it hears that the dir is in use, not that it holds someone else's
    files, and changes nothing."""
    run_dir = tmp_path / "run"
    holder = rundir.RunLock(run_dir).acquire()
    holder.record_holder()
    (run_dir / "images").mkdir()
    before = snapshot(run_dir)
    try:
        for check in (rundir.classify_unheld, lambda d: quiet(make_cfg(*GRID), d)):
            with pytest.raises(SweepError, match=r"is in use by another sdxl-sweep process \(pid "):
                check(run_dir)
    finally:
        holder.release()
    assert snapshot(run_dir) == before
    with pytest.raises(SweepError, match=r"holds files sdxl-sweep did not write \(images\)"):
        rundir.classify_unheld(run_dir)  # released and still no run of the tool in it: what it really is


@pytest.mark.slow
def test_two_processes_started_together_make_one_table(tmp_path):
    args = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", "model=tiny", "height=128", "width=128",
            f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in outcomes] == [0, 2]
    assert "is in use by another sdxl-sweep process" in outcomes[1][1]
    rows = table(tmp_path / "run")
    assert len(rows) == 9 and rows["cell_id"].is_unique


# 4. every image a resume keeps is verified ---------------------------------------------------------------


def test_resume_regenerates_empty_truncated_random_and_wrong_size_pngs(copy):
    reference = {r["cell_id"]: pixels(copy, r["image"]) for _, r in table(copy).iterrows()}
    images = sorted((copy / "images").iterdir())
    images[0].write_bytes(b"")
    data = images[1].read_bytes()
    images[1].write_bytes(data[: len(data) // 2])
    images[2].write_bytes(os.urandom(len(data)))
    Image.new("RGB", (32, 32)).save(images[3])  # a valid PNG, not of the recorded size
    summary = quiet(make_cfg(*GRID), copy)
    assert summary.made == 4 and summary.skipped == 0
    after = table(copy)
    assert len(after) == 4
    for _, row in after.iterrows():
        assert np.array_equal(pixels(copy, row["image"]), reference[row["cell_id"]])


# 5. a lost manifest is rebuilt from results.csv and the images -------------------------------------------


def test_without_sweep_json_the_same_grid_resumes_and_another_is_refused(copy):
    (copy / "sweep.json").unlink()
    before = snapshot(copy)
    with pytest.raises(SweepError, match=r"rebuilt from its results.csv .*seed was \[1, 2\], now \[7, 8\]"):
        quiet(make_cfg(*GRID, "sweep.grid.seed=[7,8]"), copy)
    assert snapshot(copy) == before
    assert quiet(make_cfg(*GRID), copy).made == 0


def test_without_sweep_json_and_results_csv_the_images_are_adopted(copy):
    (copy / "sweep.json").unlink()
    (copy / "results.csv").unlink()
    summary = quiet(make_cfg(*GRID), copy)
    assert summary.made == 0 and summary.skipped == 4 and len(table(copy)) == 4


def test_random_seeds_come_back_from_the_rows_when_the_manifest_is_gone(tmp_path):
    run_dir = tmp_path / "run"
    quiet(make_cfg("sweep=seed_random", *SMALL), run_dir)
    seeds = set(table(run_dir)["seed"])
    (run_dir / "sweep.json").unlink()
    assert quiet(make_cfg("sweep=seed_random", *SMALL), run_dir).made == 0
    assert set(table(run_dir)["seed"]) == seeds


# 6. a cell whose image cannot be written fails alone --------------------------------------------------------


def test_a_writer_failure_is_a_failed_cell_and_the_others_land(tmp_path, monkeypatch):
    from sweep.rundir import metadata

    original = metadata.png_bytes

    def broken(image, row, *texts):
        if row["seed"] == 2:
            raise ValueError("cannot encode")
        return original(image, row, *texts)

    monkeypatch.setattr(metadata, "png_bytes", broken)
    summary = quiet(make_cfg(*GRID), tmp_path / "run")
    assert (summary.made, summary.failed) == (2, 2) and not summary.ok
    rows = table(tmp_path / "run")
    failed = rows[rows["status"] == "failed"]
    assert set(failed["seed"]) == {2} and all("cannot encode" in e for e in failed["error"])


# 7. garbage is never recorded ok ------------------------------------------------------------------------------


def test_a_nan_image_is_a_failed_cell(tmp_path, monkeypatch):
    import torch

    from sweep.models import pipeline

    vae = pipeline.load(make_cfg("sweep=seed_fixed").model).pipe.vae
    original = vae.decode

    def nan_decode(latents, *args, **kwargs):
        out = original(latents, *args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample).fill_(torch.nan)  # as an overflowing fp16 VAE does
        return out

    monkeypatch.setattr(vae, "decode", nan_decode)
    summary = quiet(make_cfg(*GRID), tmp_path / "run")
    assert summary.failed == 4 and summary.made == 0
    assert all("came out NaN" in e for e in table(tmp_path / "run")["error"])
    assert not list((tmp_path / "run" / "images").glob("*.png"))


# 8. a refused run changes nothing -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_refused_cli_run_leaves_every_file_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    grid = ("sweep=seed_fixed", "model=tiny", *SMALL, "sweep.grid.repeat=1", f"hydra.run.dir={run_dir}")
    assert run_cli(*grid, cwd=tmp_path).returncode == 0
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    before = snapshot(run_dir)
    refused = run_cli(*grid, "prompt=a different experiment", cwd=tmp_path)
    assert refused.returncode == 2 and "holds another experiment" in refused.stderr
    assert snapshot(run_dir) == before  # .hydra/*.yaml, sweep.log, the lock file included


@pytest.mark.slow
def test_refused_multirun_jobs_keep_the_old_jobs_and_their_labels(tmp_path):
    sweep_dir = tmp_path / "multi"
    args = ("-m", "sweep=seed_fixed", "model=tiny", *SMALL, "sweep.grid.repeat=1", f"hydra.sweep.dir={sweep_dir}")
    assert run_cli(*args, "guidance_scale=3,7", cwd=tmp_path).returncode == 0
    jobs = {d.name: snapshot(d) for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit()}
    before = snapshot(sweep_dir)
    again = run_cli(*args, "guidance_scale=7,3", cwd=tmp_path)  # job 0 is now cfg 7: its dir holds cfg 3
    assert again.returncode == 2 and again.stderr.count("holds another experiment") == 2
    assert {d: snapshot(sweep_dir / d) for d in jobs} == jobs
    assert snapshot(sweep_dir) == before  # every job refused: no file of the sweep dir changes (issue 31)
    merged = table(sweep_dir)
    for _, row in merged.iterrows():  # every row keeps the label of the job that made it
        assert f"guidance_scale={row['guidance_scale']:g}" in row["overrides"]


# 9. the smaller ones ----------------------------------------------------------------------------------------------


def test_a_carriage_return_in_a_prompt_survives_a_rewrite(tmp_path):
    run_dir = tmp_path / "run"
    cfg = make_cfg(*GRID)
    cfg.prompt = "first line\rsecond line"
    quiet(cfg, run_dir)
    quiet(cfg, run_dir)  # the resume rewrites results.csv
    assert set(pd.read_csv(run_dir / "results.csv", keep_default_na=False)["prompt"]) == {"first line\rsecond line"}


def test_hand_edited_paths_outside_the_run_dir_are_not_followed(copy, tmp_path):
    from sweep.report import build_report

    outside = tmp_path / "secret.png"
    shutil.copy(next((copy / "images").iterdir()), outside)
    rows = table(copy)
    edited = rows.loc[0, "cell_id"]
    rows.loc[0, "image"] = "images/../../secret.png"
    rows.to_csv(copy / "results.csv", index=False)
    page = build_report(copy).pages[0]
    assert page.marks == {edited: "no image"}  # the report shows the cell as having no image, not the file
    summary = quiet(make_cfg(*GRID), copy)
    assert summary.made == 0  # the row is dropped; the cell's own image inside images/ is verified and kept
    assert all(Path(copy / p).resolve().parent == (copy / "images").resolve() for p in table(copy)["image"])


def test_temp_files_a_kill_left_anywhere_are_removed(copy):
    for folder in ("images", "sheets", "plots", "."):
        (copy / folder / ".x.png.abc123.tmp").write_bytes(b"half")
    quiet(make_cfg(*GRID), copy)
    assert not list(copy.rglob("*.tmp"))


def test_a_changed_batch_size_is_another_experiment(copy):
    with pytest.raises(SweepError, match="batch_size was 2, now 1"):
        quiet(make_cfg(*GRID, "batch_size=1"), copy)


# 10. files get the user's umask ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_files_are_written_with_the_users_umask(tmp_path, umask, mode):
    run_dir = tmp_path / "run"
    code = (f"import os; os.umask({umask}); from conftest import make_cfg; from sweep.running.runner import run_sweep; "
            f"run_sweep(make_cfg('sweep=seed_fixed', 'height=64', 'width=64', 'num_inference_steps=1', "
            f"'sweep.grid.repeat=1'), {str(run_dir)!r}, progress=False, echo=lambda _: None)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.stat().st_mode & 0o777 for p in files} == {mode}, files


# Signals: one line, exit 130 / 143, every finished image kept, the resume exact ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_cleanly_and_resume_exactly(tmp_path, signum, code):
    grid = ("sweep=seeds_steps_guidance", "model=tiny", "height=128", "width=128", "sweep.grid.seed=[1,2,3]",
            "sweep.grid.num_inference_steps=[40,48]", "sweep.grid.guidance_scale=[5.0]", "batch_size=1")
    run_dir = tmp_path / "stopped"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sweep", *grid, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:  # no deadline: a busy machine only makes the sweep slower
        if (run_dir / "results.csv").is_file() and (run_dir / "results.csv").read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=900)  # a hang guard, not a time limit: it stops within a step
    assert proc.returncode == code
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and "to resume, run: " in lines[0] and "hydra.run.dir=stopped" in lines[0]
    kept = table(run_dir)
    assert 1 <= len(kept) < 6 and f"interrupted: {len(kept)} of 6 images in {run_dir}" in lines[0]
    assert all(Image.open(run_dir / p).size == (128, 128) for p in kept["image"])

    resumed = run_cli(*grid, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference"
    quiet(make_cfg(*grid[:1], *grid[2:]), reference)
    after, expected = table(run_dir), table(reference)
    assert len(after) == 6 and set(after["cell_id"]) == set(expected["cell_id"])
    by_id = dict(zip(expected["cell_id"], expected["image"], strict=True))
    for _, row in after.iterrows():
        assert np.array_equal(pixels(run_dir, row["image"]), pixels(reference, by_id[row["cell_id"]]))
    assert json.loads((run_dir / "status.json").read_text())["total"] == 6


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    import errno

    from sweep.cli import app
    from sweep.running import writer

    original, calls = writer.atomic_write, []

    def filling(path, data):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, data)

    monkeypatch.setattr(writer, "atomic_write", filling)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        app.run_job(make_cfg(*GRID, "batch_size=1"), run_dir)
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert "to resume, run the same command with hydra.run.dir=" in err
    assert len(table(run_dir)) == 1  # the image written before the disk filled, with its row
    monkeypatch.setattr(writer, "atomic_write", original)
    assert quiet(make_cfg(*GRID, "batch_size=1"), run_dir).made == 3


@pytest.mark.slow
def test_run_dirs_that_cannot_be_made_are_one_line_and_bad_input_leaves_no_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [("afile", "a file is in the way"), ("afile/sub", "a part of it is a file"),
             ("x" * 300, "a name is longer than the file system allows")]
    for run_dir, why in cases:
        result = run_cli("sweep=seed_fixed", "model=tiny", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert f"which cannot be created ({why})" in result.stderr
    result = run_cli("sweep=seed_fixed", "model=tiny", "height=100", cwd=tmp_path)
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no empty outputs/ left behind
