"""The printed resume line is a command that, pasted as it is, resumes that run; resume=last finds the newest."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from sweep import resume

TINY = ("model=tiny", "height=64", "width=64", "num_inference_steps=1")


def test_the_printed_command_gives_back_the_users_words_and_names_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resume, "_STATE", dict(resume._STATE))
    words = ["sweep=samplers", "model=tiny", "prompt=a red fox, (cat:1.2)", "hydra.run.dir=old", "resume=last",
             "+sweep.grid.seed=[1,2]"]
    resume.remember_invocation(words)
    cmd = resume.command(tmp_path / "outputs" / "samplers" / "2026-12-07_00-16-48")
    argv = shlex.split(cmd)
    # The program as started, the user's words unchanged (quoted for the shell), the run's own directory.
    assert argv[-4:] == ["model=tiny", "prompt=a red fox, (cat:1.2)", "+sweep.grid.seed=[1,2]",
                         "hydra.run.dir=outputs/samplers/2026-12-07_00-16-48"]
    # A directory with a space is one Hydra string inside one shell word.
    spaced = shlex.split(resume.command(tmp_path / "my runs" / "a", multirun=True))
    assert spaced[-1] == "hydra.sweep.dir='my runs/a'"


@pytest.mark.slow
def test_ctrl_c_on_a_default_timestamped_run_prints_a_command_that_resumes_it(tmp_path):
    args = ("sweep=seeds_steps_guidance", *TINY, "sweep.grid.seed=[1,2,3]", "sweep.grid.num_inference_steps=[40,45]",
            "sweep.grid.guidance_scale=[5.0]", "batch_size=1", "prompt=a red fox")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sweep", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = tmp_path / "outputs" / "seeds_steps_guidance"
    while proc.poll() is None:  # no deadline: a busy machine only makes the sweep slower
        tables = list(base.glob("*/results.csv"))
        if tables and tables[0].read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)  # a hang guard, not a time limit
    assert proc.returncode == 130
    [line] = [line for line in err.splitlines() if line.startswith("interrupted")]
    [run_dir] = list(base.iterdir())
    assert "to resume, run: " in line
    cmd = line.split("to resume, run: ", 1)[1]
    assert f"hydra.run.dir=outputs/seeds_steps_guidance/{run_dir.name}" in cmd
    pasted = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert pasted.returncode == 0, pasted.stderr
    assert list(base.iterdir()) == [run_dir]  # no new timestamped folder
    assert sorted(pd.read_csv(run_dir / "results.csv")["status"]) == ["ok"] * 6


def test_resume_last_goes_on_with_the_newest_run_of_the_sweep_and_refuses_other_words(tmp_path):
    first = run_cli("sweep=seed_fixed", *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    [run_dir] = list((tmp_path / "outputs" / "seed_fixed").iterdir())
    again = run_cli("sweep=seed_fixed", *TINY, "resume=last", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "outputs" / "seed_fixed").iterdir()) == [run_dir]
    assert "0 made, 3 skipped" in again.stderr + again.stdout

    bad = run_cli("sweep=seed_fixed", *TINY, "resume=first", cwd=tmp_path)
    none = run_cli("sweep=samplers", *TINY, "resume=last", cwd=tmp_path)
    for result, words in ((bad, "resume: got 'first'; allowed: last"), (none, "resume=last: no earlier run")):
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and words in result.stderr
    assert not (tmp_path / "outputs" / "samplers").exists()


def test_docs_say_how_to_resume_the_last_run():
    text = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert "resume=last" in text and "to resume, run:" in text


def test_failed_images_say_the_command_that_makes_them_again(tmp_path, monkeypatch):
    from sweep.running.runner import RunSummary

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resume, "_STATE", dict(resume._STATE))
    resume.remember_invocation(["sweep=seed_fixed", "model=tiny"])
    summary = RunSummary(name="seed_fixed", run_dir=tmp_path / "outputs" / "seed_fixed" / "2026-12-07_00-16-48",
                         total=3, failed=1)
    [line] = [x for x in summary.lines() if x.startswith("FAILED")]
    assert "made again on resume: to resume, run: " in line
    assert line.endswith(" sweep=seed_fixed model=tiny hydra.run.dir=outputs/seed_fixed/2026-12-07_00-16-48")
