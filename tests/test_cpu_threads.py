"""A CPU run on cores other processes keep busy uses fewer torch threads (no OpenMP collapse), and says so."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import make_cfg
from sweep.running import cpu_threads
from sweep.running.runner import run_sweep


@pytest.mark.parametrize(("default", "cores", "busy", "expected"), [
    (2, 2, 0.0, 2),    # quiet: torch's own count
    (2, 2, 0.2, 2),    # a little background work does not cost a thread
    (2, 2, 1.0, 1),    # one CPU-bound process: one core left
    (2, 2, 2.0, 1),    # two of them (the 37x collapse): one thread
    (2, 2, 7.5, 1),    # never fewer than one
    (8, 8, 3.0, 5),
    (8, 8, 3.5, 4),    # a half-used core does not count as free
    (4, 16, 0.0, 4),   # never more than torch's (or the user's) own count
])
def test_threads_are_capped_at_the_cores_left_free(default, cores, busy, expected):
    assert cpu_threads.choose_threads(default, cores, busy) == expected


@pytest.fixture
def busy_machine(monkeypatch):
    """No OMP_NUM_THREADS, 2 usable cores, other processes using `load[0]` of them; torch's count restored."""
    load = [2.0]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu_threads, "busy_elsewhere", lambda: load[0])
    monkeypatch.setattr(cpu_threads, "_decided", None)
    monkeypatch.setattr(cpu_threads, "_default", 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load
    torch.set_num_threads(before)


def test_a_busy_cpu_gets_one_thread_decided_once_per_process(busy_machine):
    assert cpu_threads.settle() == 1 and torch.get_num_threads() == 1
    busy_machine[0] = 0.0
    assert cpu_threads.settle() == 1  # every job of a multirun in this process makes images the same way


def test_omp_num_threads_is_the_users_choice(busy_machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads.settle() == 2 and torch.get_num_threads() == 2


def test_the_count_is_recorded_and_a_resume_keeps_it_whatever_the_load(tmp_path, busy_machine, monkeypatch):
    # The timed UNet calls that decide the count run on a fake clock where, as on a busy machine, one thread is
    # the faster: the real clock would make the outcome depend on this machine's load while the test runs.
    work, clock = fake_cost({1: 0.04, 2: 0.20})
    monkeypatch.setattr(cpu_threads, "CLOCK", clock)
    monkeypatch.setattr(cpu_threads, "unet_probe", lambda *_: work)
    cfg = make_cfg("sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[1,2]")
    run_dir = tmp_path / "run"
    run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    table = pd.read_csv(run_dir / "results.csv")
    assert list(table["threads"]) == [1, 1]
    # Quiet now, and a new process would take 2 threads; the resumed run makes its missing image as the
    # first one made the others.
    busy_machine[0] = 0.0
    cpu_threads._decided = None
    torch.set_num_threads(2)
    (run_dir / table.iloc[0]["image"]).unlink()
    summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    assert summary.made == 1
    assert list(pd.read_csv(run_dir / "results.csv")["threads"]) == [1, 1]


def fake_cost(costs: dict[int, float]):
    """A probe whose call costs `costs[threads]` seconds of a fake clock (the count torch is set to)."""
    now = [0.0]

    def work():
        now[0] += costs[torch.get_num_threads()]

    return work, (lambda: now[0])


@pytest.mark.parametrize(("costs", "expected"), [
    ({1: 0.04, 2: 0.20}, 1),   # the case: 2 threads 5x slower under load
    ({1: 0.20, 2: 0.11}, 2),   # a quiet machine: the threads help
])
def test_the_faster_candidate_is_kept(costs, expected):
    work, clock = fake_cost(costs)
    chosen, best = cpu_threads.measure([1, 2], work, clock=clock)
    assert chosen == expected and best == pytest.approx(costs)


def test_a_sample_that_says_quiet_is_overruled_by_the_measurement(busy_machine, monkeypatch):
    busy_machine[0] = 0.0  # the start-up sample sees free cores and proposes 2 threads
    work, clock = fake_cost({1: 0.04, 2: 0.30})
    monkeypatch.setattr(cpu_threads, "CLOCK", clock)
    assert cpu_threads.settle(probe=work) == 1 and torch.get_num_threads() == 1


def test_the_probe_is_one_unet_call_of_the_loaded_model():
    from sweep.models.builtin import build_tiny_pipeline

    probe = cpu_threads.unet_probe(build_tiny_pipeline(), 64, 64)
    assert probe is not None and probe().sample.shape[0] == 2
