"""Bad input, model failures, kill -9 and resume, refusing to mix experiments, safe names."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg, run_cli
from sweep.cli import app
from sweep.errors import SweepError
from sweep.running.runner import run_sweep

SMALL = ("height=64", "width=64", "num_inference_steps=2")


def quiet_run(cfg, run_dir):
    return run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)


def nothing_generated(run_dir) -> bool:
    return not (run_dir / "results.csv").exists() and not list(run_dir.glob("images/*.png"))


# Bad inputs caught by the runner's checks, before the model is loaded. (key in the message, needle)
BAD_INPUTS = [
    (("height=100",), "height: got 100; allowed: a positive multiple of 8"),
    (("width=0",), "width: got 0; allowed: a positive multiple of 8"),
    (("num_inference_steps=0",), "num_inference_steps: got 0; allowed: an integer from 1 to 1000"),
    (("num_inference_steps=1001",), "allowed: an integer from 1 to 1000 (the scheduler's num_train_timesteps)"),
    (("guidance_scale=-1",), "guidance_scale: got -1.0; allowed: a number from 0 to 100"),
    (("guidance_scale=1e308",), "guidance_scale: got 1e+308; allowed: a number from 0 to 100"),
    (("seed=-3",), "seed: got -3; allowed: an integer in [0,"),
    (("height=64",), "width: got None; allowed: height and width both set"),
    (("sweep.grid.num_inference_steps=[]",), "sweep.grid.num_inference_steps: got []; allowed: at least one"),
    (("sweep.grid.num_inference_steps=null",), "sweep.grid: got 'no axis'; allowed: at least one axis"),
    (("sweep.grid.num_inference_steps='10..90 stp 10'",), "allowed: a list, a single value, or a range"),
    (("sweep.grid.resolution=[500x512]",), "sweep.grid.resolution: got '500'; allowed: a positive multiple"),
    (("sweep.grid.guidance_scale='random 2'",), "allowed: 'random N' only on the seed axis"),
    (("sweep.grid.seed=[1,1]",), "sweep.grid.seed: got 1; allowed: each value once"),
    (("sweep.layout.rows=colour",), "sweep.layout.rows: got 'colour'; allowed: an axis this sweep varies"),
    (("sweep.layout.rows=prompt",), "sweep.layout.rows: got 'prompt'; allowed: an axis this sweep varies: "
                                    "num_inference_steps"),
    (("sweep.grid.seed='0..2000'",), "allowed: at most max_images=1000 values (raise it with max_images=N"),
    (("sweep.grid.seed='0..11'", "sweep.grid.guidance_scale=[1,2,3,4,5,6,7,8,9,10,11,12]"),
     "sweep.grid: got '1296 images'; allowed: at most max_images=1000"),
    (("prompt='caf\ud800'",), "prompt: got 'caf\\ud800'; allowed: text that is valid Unicode"),
    (("scheduler=dpm++ 2m karras x",), "scheduler: got 'dpm++ 2m karras x'; allowed: an A1111 sampler name"),
    (("generator_device=cuda:abc",), "generator_device: got 'cuda:abc'; allowed: cpu"),
    (("generator_device=cuda",), "generator_device: got 'cuda'; allowed: a device this machine has"),
    (("batch_size=0",), "batch_size: got 0; allowed: an integer >= 1, or null"),
    (("prompt=' '",), "prompt: got ' '; allowed: a non-empty prompt"),
    (("model.path=/no/such/model",), "model.path: got '/no/such/model'; allowed: an existing diffusers folder"),
    (("model.dtype=fp8",), "model.dtype: got 'fp8'; allowed: auto, float32"),
    (("model.device=cuda:3",), "model.device: got 'cuda:3'; allowed: a device this machine has"),
    (("report.cell_max=10",), "report.cell_max: got 10; allowed: an integer >= 64"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=[o[0] for o, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_generates_nothing(tmp_path, capsys, overrides, message):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        app.run_job(make_cfg("sweep=steps_10_to_90", *overrides), run_dir)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err
    assert nothing_generated(run_dir)


def test_pickle_checkpoint_needs_explicit_opt_in(tmp_path, capsys):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a checkpoint")
    with pytest.raises(SystemExit):
        app.run_job(make_cfg("sweep=seed_fixed", f"model.path={ckpt}"), tmp_path / "run")
    assert "pass model.allow_pickle=true only if you trust the file" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sweep.grid.sed=[1]",), "error: sweep.grid.sed: unknown key"),
        (("num_inference_steps=ten",), "error: num_inference_steps: got 'ten'; allowed: an integer"),
        # Every shipped sweep is offered, whatever sweeps/ holds now.
        (("sweep=no_such_sweep",), "error: sweep: got 'no_such_sweep'; allowed: "
         + ", ".join(sorted(p.stem for p in (Path(__file__).parents[1] / "sweeps").glob("*.yaml")))
         + ", or the path of a .yaml file"),
        (("model=no_such_model",), "error: model: got 'no_such_model'; allowed: local, sdxl_arch, sdxl_base, tiny"),
        (("height=100",), "error: height: got 100; allowed: a positive multiple of 8"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_no_run_dir(tmp_path, args, message):
    result = run_cli("sweep=steps_10_to_90", "model=tiny", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no run dir, log or config left behind


# --- model loading failures ------------------------------------------------------------------------------


def test_hub_model_not_cached_offline_fails_fast_with_a_fix(tmp_path, monkeypatch):
    import socket

    opened = []

    def no_network(*args, **kwargs):
        opened.append(args)  # recorded: the loader may turn any exception into its own error
        raise OSError("offline")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    # Fast because it never waits on the network (no timed assertion: that fails whenever the machine is busy).
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(SweepError) as info:
        quiet_run(make_cfg("sweep=seed_fixed", "model=sdxl_base"), tmp_path / "run")
    assert opened == []
    message = str(info.value)
    assert "could not load 'stabilityai/stable-diffusion-xl-base-1.0'" in message
    assert "HF_HUB_OFFLINE" in message and "model=tiny" in message and "model.path=" in message
    assert nothing_generated(tmp_path / "run")


def test_broken_local_folder_fails_with_a_fix(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    # Refused before loading: model_index.json names no components (broken weights: test_model_files.py).
    with pytest.raises(SweepError, match=r"model.path: got '.*broken' \(missing text_encoder, text_encoder_2, "
                       r"unet, vae\); allowed: a diffusers SDXL pipeline folder"):
        quiet_run(make_cfg("sweep=seed_fixed", f"model.path={folder}"), tmp_path / "run")


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    with pytest.raises(SweepError, match="a diffusers SDXL pipeline folder"):
        quiet_run(make_cfg("sweep=seed_fixed", f"model.path={tmp_path}"), tmp_path / "run")


def test_local_diffusers_folder_loads_and_matches_the_built_in_model(tmp_path):
    from sweep.models.builtin import build_tiny_pipeline

    build_tiny_pipeline().save_pretrained(tmp_path / "tiny-folder")
    _, table_a = _run_table(tmp_path, "a", f"model.path={tmp_path / 'tiny-folder'}")
    _, table_b = _run_table(tmp_path, "b")
    assert table_a["model"].iloc[0] == "tiny-folder"  # the folder's name, as A1111 names a checkpoint
    assert np.array_equal(_pixels(tmp_path / "a", table_a.iloc[0]), _pixels(tmp_path / "b", table_b.iloc[0]))


def _run_table(tmp_path, name, *overrides):
    summary = quiet_run(make_cfg("sweep=seed_fixed", *SMALL, "sweep.grid.repeat=1", *overrides), tmp_path / name)
    return summary, pd.read_csv(tmp_path / name / "results.csv", keep_default_na=False)


def _pixels(run_dir, row):
    return np.asarray(Image.open(run_dir / row["image"]).convert("RGB"))


# --- resume ----------------------------------------------------------------------------------------------

GRID = ("sweep=seeds_steps_guidance", "height=64", "width=64", "sweep.grid.seed=[1,2,3]",
        "sweep.grid.num_inference_steps=[1,2]", "sweep.grid.guidance_scale=[1.0,5.0]", "batch_size=2")


def test_resume_repairs_torn_line_orphan_image_missing_image_and_duplicates(tmp_path, finished):
    run_dir = copy_of(finished, tmp_path)
    table = run_dir / "results.csv"
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 12
    reference = {r["cell_id"]: _pixels(run_dir, r) for r in rows}
    # Damage: drop two rows (their images stay: images without a row), delete one image (a row without its
    # image), duplicate a row, and leave a torn half line at the end, as a kill mid-write would.
    (run_dir / rows[5]["image"]).unlink()
    kept = [rows[0], *rows[3:], rows[4]]
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        handle.write('p9-torn_seed1_steps1,seeds_steps_guidance,"a photo of')
    summary = quiet_run(make_cfg(*GRID), run_dir)
    # The two images whose rows were dropped are complete and carry their own row: adopted, not remade.
    assert summary.made == 1 and summary.skipped == 11 and summary.failed == 0
    after = pd.read_csv(table, keep_default_na=False)
    assert len(after) == 12 and after["cell_id"].is_unique
    assert set(after["cell_id"]) == set(reference)
    for _, row in after.iterrows():
        assert np.array_equal(_pixels(run_dir, row), reference[row["cell_id"]])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run of GRID; tests work on copies of it instead of generating it again."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    quiet_run(make_cfg(*GRID), run_dir)
    return run_dir


def copy_of(finished, tmp_path):
    import shutil

    return shutil.copytree(finished, tmp_path / "run")


def test_rerun_of_a_finished_sweep_generates_nothing(tmp_path, finished):
    run_dir = copy_of(finished, tmp_path)
    summary = quiet_run(make_cfg(*GRID), run_dir)
    assert summary.made == 0 and summary.skipped == 12
    assert len(pd.read_csv(run_dir / "results.csv")) == 12


def test_failed_cells_are_retried_on_resume(tmp_path, monkeypatch):
    from sweep.running import scheduling

    original = scheduling.generate
    monkeypatch.setattr(scheduling, "generate", lambda loaded, prompts, unit, *args: (_ for _ in ()).throw(
        RuntimeError("boom")) if unit[0].guidance_scale == 1.0 else original(loaded, prompts, unit, *args))
    run_dir = tmp_path / "run"
    first = quiet_run(make_cfg(*GRID), run_dir)
    assert first.failed == 6 and first.made == 6
    monkeypatch.setattr(scheduling, "generate", original)
    second = quiet_run(make_cfg(*GRID), run_dir)
    assert second.made == 6 and second.failed == 0
    table = pd.read_csv(run_dir / "results.csv")
    assert len(table) == 12 and (table["status"] == "ok").all()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("prompt=a different prompt", "prompt was"),
        ("sweep.grid.seed=[7,8]", "seed was [1, 2, 3], now [7, 8]"),
        ("negative_prompt=blurry", "negative_prompt was"),
        ("sweep.grid.num_inference_steps=[3,4]", "num_inference_steps was [1, 2], now [3, 4]"),
        ("model.dtype=bfloat16", "model.dtype was float32, now bfloat16"),
    ],
)
def test_resume_into_another_experiment_is_refused_and_changes_nothing(tmp_path, finished, change, needle):
    run_dir = copy_of(finished, tmp_path)
    before = (run_dir / "results.csv").read_bytes()
    with pytest.raises(SweepError) as info:
        quiet_run(make_cfg(*GRID, change), run_dir)
    message = str(info.value)
    assert needle in message and "restart=true" in message and "holds another experiment" in message
    assert (run_dir / "results.csv").read_bytes() == before


def test_restart_discards_the_old_experiment(tmp_path, finished):
    run_dir = copy_of(finished, tmp_path)
    summary = quiet_run(make_cfg(*GRID, "prompt=a lighthouse", "restart=true"), run_dir)
    assert summary.made == 12
    table = pd.read_csv(run_dir / "results.csv")
    assert set(table["prompt"]) == {"a lighthouse"} and len(list((run_dir / "images").glob("*.png"))) == 12


def test_random_seeds_are_reused_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    quiet_run(make_cfg("sweep=seed_random", *SMALL), run_dir)
    first = set(pd.read_csv(run_dir / "results.csv")["seed"])
    summary = quiet_run(make_cfg("sweep=seed_random", *SMALL), run_dir)
    assert summary.made == 0
    assert set(pd.read_csv(run_dir / "results.csv")["seed"]) == first


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume_gives_exactly_the_uninterrupted_result(tmp_path):
    grid = ("sweep=seeds_steps_guidance", "model=tiny", "height=128", "width=128",
            "sweep.grid.seed=[1,2,3]", "sweep.grid.num_inference_steps=[40,48]", "batch_size=2")
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "sweep", *grid, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table = run_dir / "results.csv"
    try:
        while proc.poll() is None:  # no deadline: a busy machine only makes the sweep slower
            if table.is_file() and table.read_text().count("\n") >= 4:  # header + 3 rows: mid-sweep
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    rows_at_kill = table.read_text().count("\n") - 1
    assert 3 <= rows_at_kill < 12

    resumed = run_cli(*grid, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reference_dir = tmp_path / "uninterrupted"
    quiet_run(make_cfg(*grid[:1], *grid[2:]), reference_dir)

    after = pd.read_csv(table, keep_default_na=False)
    reference = pd.read_csv(reference_dir / "results.csv", keep_default_na=False)
    assert len(after) == 12 and after["cell_id"].is_unique
    assert set(after["cell_id"]) == set(reference["cell_id"])
    assert sorted(p.name for p in (run_dir / "images").iterdir()) == sorted(
        p.name for p in (reference_dir / "images").iterdir())  # no temp files, no strays
    for _, row in after.iterrows():
        with Image.open(run_dir / row["image"]) as image:
            image.verify()
        assert np.array_equal(_pixels(run_dir, row), _pixels(reference_dir, row))


# --- names and the environment record -------------------------------------------------------------------


def test_hostile_prompts_never_leave_the_images_folder(tmp_path, recwarn):
    prompts = ["../../../etc/passwd", 'quote "it" \\ back', "caf\u00e9 \u732b \U0001f680", "x" * 500, "/abs/path"]
    run_dir = tmp_path / "run"
    summary = quiet_run(make_cfg("sweep=seed_fixed", *SMALL, "sweep.grid.repeat=1",
                                 f"sweep.grid.prompt={_hydra_list(prompts)}"), run_dir)
    assert summary.made == 5
    table = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert sorted(table["prompt"]) == sorted(prompts)
    images = (run_dir / "images").resolve()
    for image in table["image"]:
        path = (run_dir / image).resolve()
        assert path.parent == images and path.is_file()
        assert len(path.name) < 150 and path.name.isascii()
    # The rocket no installed font has is a box in the plots, not a warning in the run's output.
    assert not [w for w in recwarn if "missing from" in str(w.message)]


def _hydra_list(values):
    # Hydra's quoted strings: only a quote (or a backslash right before one) needs escaping.
    quoted = ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    return f"[{quoted}]"


def test_every_row_records_the_environment(tmp_path):
    import diffusers
    import torch
    import transformers

    _, table = _run_table(tmp_path, "env")
    row = table.iloc[0]
    assert row["torch"] == torch.__version__ and row["diffusers"] == diffusers.__version__
    assert row["transformers"] == transformers.__version__
    assert row["device"] == "cpu" and row["dtype"] == "float32" and row["scheduler"] == "Euler"
    assert row["gpu"]  # the GPU name, or "none (cpu model)" on a CPU machine
