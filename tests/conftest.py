"""Shared test setup: offline hub, Hydra composition without the CLI, the tiny model at small sizes."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: these tests never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
if not os.environ.get("OMP_NUM_THREADS"):
    import torch

    # Pixels depend on torch's thread count, and a run on a busy CPU uses fewer threads (sweep.running.cpu_threads)
    # unless OMP_NUM_THREADS names the count. Tests compare images made at different moments and in other
    # processes: pinned to torch's own count (this process's and every subprocess's), a busy machine makes the
    # same pixels. tests/test_cpu_threads.py unsets it to test the choice itself.
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import sweep.planning.schema  # noqa: E402,F401  registers the schema
from sweep.paths import CONF_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def require(present: bool, what: str, install: str) -> None:
    """A test that needs an optional system package (a font, a browser, a launcher): skip with the reason on a
    newcomer's machine; fail where the CI env var is set (.ci/run installs every one of them)."""
    if present:
        return
    reason = f"needs {what} ({install})"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def make_cfg(*overrides: str) -> DictConfig:
    """The config the CLI would compose for these overrides (tiny model unless a test says otherwise)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["model=tiny", *overrides])


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m sweep ...` as a user runs it."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sweep", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


# A small 4-cell grid (2 seeds x 2 step counts, one batched call per step count) at 64x64.
SMALL = ("height=64", "width=64", "num_inference_steps=2")
GRID = ("sweep=seeds_steps_guidance", *SMALL, "sweep.grid.seed=[1,2]", "sweep.grid.num_inference_steps=[1,2]",
        "sweep.grid.guidance_scale=[5.0]", "batch_size=2")


def quiet(cfg, run_dir, **kwargs):
    """run_sweep without the progress bar and the printed lines."""
    from sweep.running.runner import run_sweep

    return run_sweep(cfg, run_dir, progress=False, echo=lambda _: None, **kwargs)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under folder: content hash and modification time (a rewrite with equal bytes still shows)."""
    import hashlib

    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()
