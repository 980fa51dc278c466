"""Several processes on one machine: torchrun splits the cells across ranks (gloo on CPU), every cell once,
one run dir, one results.csv, one report; a rerun resumes and generates nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sweep.running.distributed import Ranks, remove_hydra_only_dir, shared_run_dir

SWEEP = ("sweep=steps_10_to_90", "model=tiny", "height=64", "width=64", "batch_size=1",
         "sweep.grid.num_inference_steps=[1,2,3,4,5]")


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 -m sweep ...` (accelerate launch --cpu starts one process)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "sweep", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_torchrun_makes_every_cell_once_into_one_run_dir_and_resumes(tmp_path):
    # Each rank's Hydra gets its own dir here (as ${now:} does when ranks start a second apart).
    run_dir = "hydra.run.dir=out/rank${oc.env:RANK}"
    first = torchrun(*SWEEP, run_dir, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rank0"]  # rank 1's empty dir is gone
    out = tmp_path / "out" / "rank0"
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["num_inference_steps"]) == [1, 2, 3, 4, 5]  # every cell, exactly once
    assert table["cell_id"].is_unique and set(table["status"]) == {"ok"}
    assert len(list((out / "images").glob("*.png"))) == 5
    log = (out / "sweep.log").read_text()
    assert "rank 0 of 2: 3 of 5 batches" in log and "rank 1 of 2: 2 of 5 batches" in log  # really split
    assert len(list((out / "sheets").glob("*.png"))) == 1  # one report, by the main rank
    status = json.loads((out / "status.json").read_text())
    assert (status["made"], status["failed"]) == (5, 0)

    again = torchrun(*SWEEP, run_dir, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "0 made, 5 skipped" in again.stdout
    assert pd.read_csv(out / "results.csv")["cell_id"].tolist() == table["cell_id"].tolist()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rank0"]


@pytest.mark.slow
def test_accelerate_launch_splits_the_cells_too(tmp_path):
    # Without GPUs `accelerate launch --num_processes 2` starts one process; --multi_gpu makes it start two
    # (on GPUs accelerate sets it by itself when it sees several).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", port, "-m", "sweep", *SWEEP[:-1], "sweep.grid.num_inference_steps=[1,2,3]",
               "hydra.run.dir=out/rank${oc.env:RANK}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rank0"]
    out = tmp_path / "out" / "rank0"
    assert sorted(pd.read_csv(out / "results.csv")["num_inference_steps"]) == [1, 2, 3]
    assert "rank 1 of 2: 1 of 3 batches" in (out / "sweep.log").read_text()


def test_round_robin_gives_every_item_to_exactly_one_rank():
    items = list(range(9))
    shares = [Ranks(index=i, count=2).mine(items) for i in range(2)]
    assert sorted(shares[0] + shares[1]) == items and len(shares[0]) == 5


def test_one_process_keeps_its_run_dir(tmp_path):
    assert shared_run_dir(Ranks(), tmp_path) == tmp_path


def test_only_a_dir_with_nothing_but_hydra_files_is_removed(tmp_path):
    hydra_only = tmp_path / "a" / "run"
    (hydra_only / ".hydra").mkdir(parents=True)
    (hydra_only / ".hydra" / "config.yaml").write_text("x: 1\n")
    (hydra_only / "sweep.log").write_text("log\n")
    assert remove_hydra_only_dir(hydra_only)
    assert not (tmp_path / "a").exists()  # its parent, left empty, goes too

    used = tmp_path / "b" / "run"
    (used / ".hydra").mkdir(parents=True)
    (used / "results.csv").write_text("cell_id\n")
    assert not remove_hydra_only_dir(used)
    assert (used / ".hydra").is_dir() and (used / "results.csv").is_file()
