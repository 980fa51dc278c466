"""Issue 21, cases 12-25: hostile input is refused early with one line, signals and broken disks or pipes are one
line with an exit code, and a run outlives its terminal. `S` in the comments is `python -m sweep model=tiny`."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_cfg, quiet

SRC = Path(__file__).resolve().parents[1] / "src"
SMALL = ("sweep=seed_fixed", "height=64", "width=64", "num_inference_steps=2")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert quiet(make_cfg(*SMALL), run_dir).made == 3
    return run_dir


@pytest.fixture
def copy(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --- 12: signals during one long C call --------------------------------------------------------------------

LONG_CALL = """
import sys, torch
torch.set_num_threads(1)
import sweep.running.signals
from sweep.cli.commands import run_command
sweep.running.signals.GRACE_SECONDS = float(sys.argv[1])
a = torch.ones(12000, 12000, dtype=torch.float64)
def run(args):
    print("ready", flush=True)
    return int(torch.mm(a, a)[0, 0])  # minutes on one thread, and Python's handlers cannot run meanwhile
sys.exit(run_command([], "", run))
"""


@pytest.mark.parametrize(("signum", "count", "grace", "says"), [
    (signal.SIGINT, 2, "600", "a second signal, stopped at once"),
    (signal.SIGTERM, 1, "0.5", "not stopped within 0.5 s, stopped at once"),
])
def test_a_signal_stops_a_command_stuck_in_one_long_call(signum, count, grace, says):
    """Case 12: two SIGINTs and a SIGTERM were ignored for minutes while one denoising step ran."""
    proc = subprocess.Popen([sys.executable, "-c", LONG_CALL, grace], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1)  # into the call
        for _ in range(count):
            proc.send_signal(signum)
            time.sleep(0.5)  # two signals sent at once would merge into one pending signal
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    assert says in one_line(err) and signal.Signals(signum).name in err


# --- 15, 16: full and read-only disks -------------------------------------------------------------------------


def refuse_writes(monkeypatch, code: int) -> None:
    """Every durable write (atomic files, results rows) fails as on a full or read-only file system."""
    def fsync(fd):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_report_and_compare_on_a_full_or_read_only_disk_say_one_line(copy, finished, monkeypatch, capsys, code):
    """Cases 15, 16: `sweep.report DIR`, `sweep.compare A DIR` gave ENOSPC / EROFS tracebacks."""
    from sweep.compare import main as compare
    from sweep.report.__main__ import main as report

    images = sorted(p.name for p in (copy / "images").iterdir())
    refuse_writes(monkeypatch, code)
    assert report([str(copy)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: {copy}") and os.strerror(code) in line and ".tmp" not in line
    assert compare([str(finished), str(copy)]) == 1
    assert os.strerror(code) in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in (copy / "images").iterdir()) == images  # images kept


def test_resume_and_the_report_phase_on_a_full_disk_say_one_line(copy, monkeypatch, caplog, capsys):
    """Case 15: resume and the run's report phase on a full disk (three chained tracebacks)."""
    import sweep.running.runner
    from sweep.cli.app import run_job

    (copy / "images" / sorted(os.listdir(copy / "images"))[0]).unlink()
    original = sweep.running.runner.write_report

    def report_on_a_full_disk(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            refuse_writes(patch, errno.ENOSPC)
            return original(*args, **kwargs)

    monkeypatch.setattr(sweep.running.runner, "write_report", report_on_a_full_disk)
    summary = quiet(make_cfg(*SMALL), copy)
    assert summary.made == 1 and summary.errors == [f"report: {copy / 'summary.csv'}: No space left on device; "
                                                    "free some space, then run the same command again"]
    assert "Traceback" not in caplog.text
    (copy / "images" / sorted(os.listdir(copy / "images"))[0]).unlink()
    capsys.readouterr()
    refuse_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(SystemExit) as stop:
        run_job(make_cfg(*SMALL), copy)
    assert stop.value.code == 1
    assert "No space left on device" in one_line(capsys.readouterr().err)


# --- 18: Ctrl-C in the small commands ----------------------------------------------------------------------


def test_ctrl_c_in_report_compare_and_multirun_is_one_line_exit_130(copy, finished, monkeypatch, capsys):
    """Case 18: Ctrl-C during `sweep.report`, `sweep.compare`, `sweep.cli.multirun`: a 40-line traceback."""
    import sweep.cli.multirun
    import sweep.compare
    import sweep.report

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep.report, "build_report", ctrl_c)
    monkeypatch.setattr(sweep.compare, "compare", ctrl_c)
    monkeypatch.setattr(sweep.cli.multirun, "merge", ctrl_c)
    monkeypatch.setattr(sweep.cli.multirun, "check_sweep_dir", lambda _: None)
    from sweep.report.__main__ import main as report

    for command, args in ((report, [str(copy)]), (sweep.compare.main, [str(finished), str(copy)]),
                          (sweep.cli.multirun.main, [str(copy)])):
        assert command(args) == 130
        assert one_line(capsys.readouterr().err).startswith("interrupted (SIGINT): ")


# --- 23: a terminal that goes away -------------------------------------------------------------------------


def test_a_run_whose_reader_goes_away_finishes_and_logs_everything(tmp_path):
    """Case 23: `S ... 2>&1 | head -1` died silently when the pipe closed: rc 1, 0 images, nothing logged."""
    run_dir = tmp_path / "run"
    command = (f"{sys.executable} -m sweep model=tiny {' '.join(SMALL)} hydra.run.dir={run_dir} 2>&1 | head -1; "
               "exit ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stdout
    assert len(done.stdout.splitlines()) == 1
    assert len(list((run_dir / "images").glob("*.png"))) == 3
    log = (run_dir / "sweep.log").read_text()
    assert "3 made, 0 skipped" in log and "sheet:" in log


# --- 21, 22: refused before the first image ---------------------------------------------------------------


def test_a_reference_along_an_axis_the_sweep_does_not_vary_is_refused_first(tmp_path):
    """Case 21: `report.reference=guidance_scale:99` with guidance not varied ran the whole sweep."""
    from sweep.errors import SweepError

    with pytest.raises(SweepError, match=r"^report.reference: got 'guidance_scale:99'; allowed: an axis this "
                       r"sweep varies \(repeat\)"):
        quiet(make_cfg(*SMALL, "report.reference=guidance_scale:99"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sampler", ["DDIM", "PLMS", "DPM++ 2M", "UniPC"])
def test_steps_a_sampler_cannot_take_are_refused_before_the_load(tmp_path, sampler, monkeypatch):
    """Case 22: `num_inference_steps=1000` with DDIM or PLMS failed in every cell with IndexError."""
    import sweep.models.pipeline
    from sweep.errors import SweepError

    monkeypatch.setattr(sweep.models.pipeline, "load", lambda *a: pytest.fail("loaded"))
    with pytest.raises(SweepError, match=rf"^num_inference_steps: got 1000; allowed: an integer from 1 to 999 with "
                       rf"{sampler.replace('+', '.')} "):
        quiet(make_cfg(*SMALL, "num_inference_steps=1000", f"scheduler={sampler}"), tmp_path / "run")


def test_the_step_bound_is_each_schedulers_real_limit():
    """999 steps run through DDIM's and PLMS's whole schedule on SDXL's scheduler config; Euler takes 1000."""
    import diffusers
    import torch

    from sweep import axes
    from sweep.models import builtin as models
    from sweep.models import facts as model_facts

    facts = model_facts.peek({"source": "tiny"})
    for name in ("DDIM", "PLMS", "Euler"):
        spec = axes.check_scheduler(name, "scheduler")
        steps = axes.max_steps(spec, facts)
        assert steps == (1000 if name == "Euler" else 999)
        scheduler = getattr(diffusers, spec.cls).from_config({**models.SDXL_SCHEDULER_CONFIG, **dict(spec.options)})
        scheduler.set_timesteps(steps)
        sample = torch.zeros(1, 4, 2, 2)
        for t in scheduler.timesteps:
            sample = scheduler.step(torch.zeros_like(sample), t, sample).prev_sample
        if steps < 1000:
            scheduler.set_timesteps(steps + 1)
            with pytest.raises(IndexError):
                for t in scheduler.timesteps:
                    sample = scheduler.step(torch.zeros_like(sample), t, sample).prev_sample


def test_a_garbage_expected_cells_is_one_line_naming_the_file(copy):
    """Case 17: `sweep.json` with `expected_cells: "garbage"`: AttributeError, rc 1."""
    import json

    from sweep.errors import RunDirError

    manifest = json.loads((copy / "sweep.json").read_text())
    (copy / "sweep.json").write_text(json.dumps({**manifest, "expected_cells": "garbage"}))
    with pytest.raises(RunDirError, match=r"sweep.json: expected_cells: got \"garbage\"; allowed: a list of cells"):
        quiet(make_cfg(*SMALL), copy)


# --- 12, 13: sizes bounded before the load -----------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "says"), [
    (("height=16384", "width=16384"), "height/width: got 16384x16384; allowed: a size whose image fits"),
    (("sweep.grid.resolution=[9999999992x8]",), "sweep.grid.resolution: got 9999999992x8; allowed: a size"),
])
def test_a_size_no_memory_holds_is_refused_before_the_load(tmp_path, monkeypatch, overrides, says):
    """Cases 12, 13: `S sweep=seed_fixed height=16384 width=16384` ran for 15 min; 9999999992x8 was OOM-killed."""
    import sweep.models.pipeline
    from sweep.errors import SweepError
    from sweep.planning import memory

    monkeypatch.setattr(memory, "device_bytes", lambda device: 16 * 2**30)  # a 16 GB machine or card
    monkeypatch.setattr(sweep.models.pipeline, "load", lambda *a: pytest.fail("loaded"))
    with pytest.raises(SweepError, match=says):
        quiet(make_cfg("sweep=seed_fixed", "num_inference_steps=2", *overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_memory_bound_counts_the_decoders_full_resolution_maps_unless_tiled():
    """Three full-resolution maps of the decoder's last block (input, normalised, activated); tiled: the images."""
    from sweep.models import facts as model_facts
    from sweep.planning import memory

    facts = model_facts.peek({"source": "tiny"})
    assert memory.cell_bytes(512, 512, 1, facts, 4, tiling=False) == 512 * 512 * 3 * 8 * 4
    assert memory.cell_bytes(512, 512, 1, facts, 4, tiling=True) == 512 * 512 * 3 * 4  # the float32 images


# --- 25: messages -------------------------------------------------------------------------------------------


def test_experiment_differences_are_shown_whole_and_unset_reads_unset():
    """Case 25: "model was {...d..., now {...d..." cut the difference off; "eta was , now [0, 1]"."""
    from sweep.rundir.results import experiment_diff

    long = "/a/very/long/folder/name/that/goes/on/and/on/for/quite/a/while/before/the/model/" + "x" * 40
    old = {"model": {"source": "path", "path": long + "1", "dtype": "float32"},
           "expected_cells": [{"eta": None, "seed": 1}]}
    new = {"model": {"source": "path", "path": long + "2", "dtype": "float32"},
           "expected_cells": [{"eta": 0.5, "seed": 1}]}
    phrases = experiment_diff(old, new)
    assert f"model.path was {long}1, now {long}2" in phrases
    assert "eta was unset, now 0.5" in phrases


def test_an_axis_without_its_model_file_names_its_value(tmp_path):
    """Case 25: "refiner_switch: got 'set'"."""
    from sweep.errors import SweepError

    with pytest.raises(SweepError, match=r"^sweep.grid.refiner_switch: got \[0.5, 0.7\]; allowed: null unless "
                       r"model.refiner is set"):
        quiet(make_cfg(*SMALL, "+sweep.grid.refiner_switch=[0.5,0.7]"), tmp_path / "run")


def test_a_nan_image_in_a_float32_run_does_not_suggest_float32(tmp_path, monkeypatch):
    """Case 25: the NaN hint suggested float32 in a float32 run."""
    import pandas as pd

    from sweep.running import pixels

    monkeypatch.setattr(pixels.Pixels, "to_pil", lambda self: None)  # every decode came out NaN
    quiet(make_cfg(*SMALL), tmp_path / "run")
    errors = set(pd.read_csv(tmp_path / "run" / "results.csv", keep_default_na=False)["error"])
    assert errors == {pixels.NAN_ERROR_FP32} and "model.dtype=float32" not in pixels.NAN_ERROR_FP32


def test_a_home_path_in_an_override_is_expanded_as_the_readme_writes_it():
    """Case 24: `model.path=~/x`, `'model.lora=[~/x]'` were refused as "cannot read unquoted";
    `hydra.run.dir='"~/x"'` made a literal ./~/x folder."""
    from sweep.paths import expand_home

    home = os.path.expanduser("~")
    assert expand_home(["model.path=~/x", "model.lora=[~/x, ~/y]", 'hydra.run.dir="~/x"', "~model.lora",
                        "prompt=a ~ b"]) == [f"model.path={home}/x", f"model.lora=[{home}/x, {home}/y]",
                                             f'hydra.run.dir="{home}/x"', "~model.lora", "prompt=a ~ b"]
