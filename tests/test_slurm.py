"""Multiruns through a real SLURM scheduler (one node on this machine, tests/slurm_cluster.sh) with Hydra's
submitit launcher: sbatch job arrays, separate job environments, requeue (what preemption does), scancel and a
bad job. Without SLURM (or root) these skip with the reason; with `CI` set they fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, require, run_cli

pytestmark = pytest.mark.slow
CLUSTER = REPO / "tests" / "slurm_cluster.sh"
SLURM_DIR = Path(os.environ.get("SWEEP_SLURM_DIR", "/tmp/sdxl-sweep-slurm"))
# 8 images at 128x128: long enough to interrupt a job between two images.
# Steps enough that a job runs for seconds after its first image: the requeue and the cancel must land while it
# runs (with [10,20,30,40] a quiet machine finished the job before scancel arrived).
GRID = ("sweep=steps_10_to_90", "model=tiny", "height=128", "width=128",
        "sweep.grid.num_inference_steps=[30,60,90,120]", "sweep.grid.seed=[1,2]")
# The recipe of docs/scale-out.md as a CPU node can take it: a partition, a time limit, setup lines (no GPUs).
LAUNCHER = ("-m", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=20",
            "hydra.launcher.setup=[echo setup line ran]")


def _node_up(env: dict[str, str]) -> bool:
    try:
        state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return state.returncode == 0 and state.stdout.split()[:1] in (["idle"], ["mixed"], ["allocated"])


@pytest.fixture(scope="module")
def slurm():
    """The environment of a running one-node cluster: the one .ci/run started, or one started here."""
    env = {**os.environ, "SLURM_CONF": os.environ.get("SLURM_CONF", str(SLURM_DIR / "slurm.conf")),
           "HF_HUB_OFFLINE": "1"}
    started = False
    if not _node_up(env):
        missing = [t for t in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd") if not shutil.which(t)]
        require(not missing, f"SLURM ({', '.join(missing)} missing)",
                "apt-get install slurm-wlm slurmdbd munge mariadb-server")
        require(os.geteuid() == 0, "root to start a one-node SLURM cluster", "run the tests as root")
        start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=180)
        require(start.returncode == 0 and _node_up(env), "a one-node SLURM cluster that starts",
                f"tests/slurm_cluster.sh start said: {start.stderr.strip()[-300:]}")
        started = True
    yield env
    if started:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=120)


def sacct(env: dict[str, str], array: str) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", array, "-o", "JobID,JobName,State,ExitCode"],
                         capture_output=True, text=True, env=env, check=True).stdout
    with open(SLURM_DIR / "sacct.log", "a", encoding="utf-8") as log:  # .ci/run prints it after the tests
        log.write(f"$ sacct -n -P -X -j {array} -o JobID,JobName,State,ExitCode\n{out}")
    return [dict(zip(("id", "name", "state", "exit"), line.split("|"), strict=True)) for line in out.splitlines()]


def settled(env: dict[str, str], array: str, polls: int = 120) -> dict[str, str]:
    """Each job's state once the accounting has caught up: slurmdbd may still list a requeued job as REQUEUED
    (or RUNNING) for a moment after its second run ended."""
    states: dict[str, str] = {}
    for _ in range(polls):
        states = {r["id"]: r["state"] for r in sacct(env, array)}
        if states and not any(s in ("REQUEUED", "RUNNING", "PENDING", "COMPLETING") for s in states.values()):
            break
        time.sleep(0.5)
    return states


def rows_done(job_dir: Path) -> int:
    try:
        return len(pd.read_csv(job_dir / "results.csv"))
    except (OSError, ValueError):
        return 0


def running_id(env: dict[str, str], task: int, wait_rows: Path, polls: int = 1500) -> str:
    """The SLURM id of array task `task` once its job dir holds a first image (polled for up to ~5 min)."""
    for _ in range(polls):
        if rows_done(wait_rows) >= 1:
            ids = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
            mine = [i for i in ids if i.endswith(f"_{task}")]
            if mine:
                return mine[0]
        time.sleep(0.2)
    raise AssertionError(f"no running SLURM job with a first image in {wait_rows}")


def release_requeued(env: dict[str, str], job: str) -> None:
    """A requeued job waits ~2 min (its begin time) before it may start again: once it is pending, start it."""
    for _ in range(300):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, env=env)
        if state.stdout.strip() == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
            return
        time.sleep(0.2)
    raise AssertionError(f"requeued job {job} never became pending")


def launch(env: dict[str, str], cwd: Path, sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweep", *LAUNCHER, *GRID, *overrides,
                             f"hydra.sweep.dir={sweep_dir}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The CFG-3 grid run locally in one piece, uninterrupted: what every resumed SLURM job must equal."""
    work = tmp_path_factory.mktemp("reference")
    result = run_cli(*GRID, "guidance_scale=3", f"hydra.run.dir={work / 'run'}", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return work / "run"


def same_pixels(reference: Path, job_dir: Path) -> None:
    compare = subprocess.run([sys.executable, "-m", "sweep.compare", str(reference), str(job_dir),
                              f"out={job_dir.parent / ('compare_' + job_dir.name)}"], capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert "shared: 8 cells, 0 beyond tolerance 0" in compare.stdout


def test_requeued_job_resumes_and_a_bad_job_is_one_line_in_jobs_csv(slurm, reference, tmp_path):
    """Three jobs: CFG 3 is requeued mid-sweep (SIGTERM, then it starts again: what preemption does), CFG 7
    runs through, CFG -1 is bad input. The command ends with the merged report of the two good jobs."""
    sweep_dir = tmp_path / "sweep"
    proc = launch(slurm, tmp_path, sweep_dir, "guidance_scale=3,7,-1")
    first = running_id(slurm, 0, sweep_dir / "0")
    subprocess.run(["scontrol", "requeue", first], env=slurm, check=True)
    release_requeued(slurm, first)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, out[-2000:] + err[-3000:]  # 2: one job had bad input
    assert "Traceback" not in err

    jobs = pd.read_csv(sweep_dir / "jobs.csv", keep_default_na=False, dtype=str)
    assert list(jobs["status"]) == ["ok", "ok", "error"]
    array = first.split("_")[0]
    assert list(jobs["slurm_job"]) == [f"{array}_0", f"{array}_1", f"{array}_2"]
    assert jobs["error"][2].startswith("guidance_scale: got -1.0; allowed: a number from 0 to 100")
    assert f"FAILED job 2 (SLURM job {array}_2)" in err + out
    merged = pd.read_csv(sweep_dir / "results.csv")
    assert len(merged) == 16 and set(merged["guidance_scale"]) == {3.0, 7.0}

    states = settled(slurm, array)
    assert states == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED", f"{array}_2": "COMPLETED"}
    # Each job's own output is in the sweep dir's .submitit/<SLURM id>/ (stdout and stderr), its log in its dir.
    job_err = (sweep_dir / ".submitit" / first / f"{first}_0_log.err").read_text()
    assert "interrupted: " in job_err  # SIGTERM: the usual one line, then SLURM started the job again
    assert "setup line ran" in (sweep_dir / ".submitit" / first / f"{first}_0_log.out").read_text()
    assert " skipped (already done)" in (sweep_dir / "0" / "sweep.log").read_text()
    same_pixels(reference, sweep_dir / "0")


def test_cancelled_job_is_one_line_and_the_same_command_resumes_it(slurm, reference, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = launch(slurm, tmp_path, sweep_dir, "guidance_scale=3,7")
    first = running_id(slurm, 0, sweep_dir / "0")
    subprocess.run(["scancel", first], env=slurm, check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-2000:] + err[-3000:]
    assert "Traceback" not in err
    assert f"error: SLURM job {first} did not finish (CANCELLED" in err
    cancelled_rows = rows_done(sweep_dir / "0")
    assert 1 <= cancelled_rows < 8, "the job was cancelled between its first and its last image"
    jobs = pd.read_csv(sweep_dir / "jobs.csv", keep_default_na=False, dtype=str)
    assert list(jobs["status"]) == ["incomplete", "ok"]  # merged once the other job ended
    finished = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (sweep_dir / "1" / "images").glob("*.png")}
    rows_before = (sweep_dir / "1" / "results.csv").read_bytes()

    again = run_cli(*LAUNCHER, *GRID, "guidance_scale=3,7", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
                    env=slurm, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    log = (sweep_dir / "0" / "sweep.log").read_text()
    assert f"{8 - cancelled_rows} made, {cancelled_rows} skipped (already done)" in log
    same_pixels(reference, sweep_dir / "0")
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (sweep_dir / "1" / "images").glob("*.png")} == finished
    assert (sweep_dir / "1" / "results.csv").read_bytes() == rows_before  # the finished job is left as it was
    jobs = pd.read_csv(sweep_dir / "jobs.csv", keep_default_na=False, dtype=str)
    assert list(jobs["status"]) == ["ok", "ok"]
    arrays = {first.split("_")[0], *(j.split("_")[0] for j in jobs["slurm_job"])}
    states = settled(slurm, ",".join(sorted(arrays)))
    assert states[first].startswith("CANCELLED") and states[jobs["slurm_job"][0]] == "COMPLETED"
