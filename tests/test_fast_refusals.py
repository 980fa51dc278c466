"""Refusals that need the run dir come before torch and diffusers are imported (issue 21, case 20: they took
5-6 s, the time those imports take, and 15-20 s beside a busy run; the target is under 3 s). Asserted by what
the process imported, not by the clock: `python -X importtime` names every module it loaded."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GRID, run_cli
from sweep import axes
from sweep.rundir import guard as rundir

HEAVY = ("torch", "diffusers", "transformers")


def refuse(cwd: Path, *args: str) -> tuple[int, list[str], set[str]]:
    """Run `python -m sweep ARGS` with Python's import log: (exit code, what it said, top-level modules loaded)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "sweep", *args], cwd=cwd, text=True,
                            capture_output=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = result.stderr.splitlines()
    loaded = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    said = [line for line in lines if not line.startswith("import time:")]
    return result.returncode, said, loaded


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run of the small grid on the tiny model."""
    root = tmp_path_factory.mktemp("fast")
    result = run_cli("model=tiny", *GRID, f"hydra.run.dir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.mark.parametrize(("args", "message"), [
    ((), "which holds files sdxl-sweep did not write (notes.txt)"),
    (("sweep.grid.guidance_scale=[9.0]",), "holds another experiment (guidance_scale was 5, now 9)"),
    (("sweep=guidance_2_to_10",), "holds another experiment (sweep was seeds_steps_guidance, now guidance_2_to_10"),
    (("+sweep.grid.frobnicate=[1,2]",), "sweep.grid.frobnicate: got 'frobnicate'; allowed: an axis"),
    (("lock",), "is in use by another sdxl-sweep process"),
], ids=["user files", "other values", "other sweep", "frobnicate", "lock held"])
def test_run_dir_refusals_come_before_the_libraries_load(finished, tmp_path, args, message):
    target = finished
    lock = None
    if not args:  # a folder of the user's
        target = tmp_path / "mine"
        target.mkdir()
        (target / "notes.txt").write_text("mine\n")
    elif args == ("lock",):
        lock = rundir.RunLock(finished).acquire()  # another process's run, as far as the CLI can tell
        args = ()
    try:
        extra = () if "sweep=" in " ".join(args) else GRID
        code, said, loaded = refuse(tmp_path, "model=tiny", *extra, *args, f"hydra.run.dir={target}")
    finally:
        if lock is not None:
            lock.release()
    assert code == 2 and len(said) == 1 and said[0].startswith("error: ") and message in said[0], said
    assert not loaded & set(HEAVY), f"imported before the refusal: {sorted(loaded & set(HEAVY))}"


def test_a_good_run_still_resumes_after_the_early_checks(finished, tmp_path):
    result = run_cli("model=tiny", *GRID, f"hydra.run.dir={finished}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 made, 4 skipped" in result.stdout + result.stderr


def test_pipeline_arguments_read_from_the_source_match_the_class():
    """The annotations read from diffusers' source (no import) type the same axes the class's signature does."""
    from diffusers import StableDiffusionXLPipeline

    parameters = inspect.signature(StableDiffusionXLPipeline.__call__).parameters
    read = axes._call_annotations()
    assert set(read) == set(parameters)
    kinds = {name: axes.argument_kind(read[name]) for name in parameters}
    assert kinds == {name: axes.argument_kind(str(p.annotation)) for name, p in parameters.items()}
    assert kinds["eta"] == "float" and kinds["num_inference_steps"] == "int" and kinds["generator"] is None


def test_scheduler_defaults_read_from_the_source_match_the_classes():
    import diffusers

    for cls in sorted({c for c, _ in axes.SAMPLERS.values()}):
        signature = inspect.signature(getattr(diffusers, cls).__init__)
        defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        assert axes._source_defaults(cls) == defaults, cls
