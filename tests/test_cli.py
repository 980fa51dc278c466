"""The real command line, as a user runs it: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import SWEEPS, run_cli

pytestmark = pytest.mark.slow
TINY = ("model=tiny", "height=64", "width=64", "num_inference_steps=2")


def test_cli_runs_a_sweep_and_prints_a_summary(tmp_path):
    out = tmp_path / "run"
    result = run_cli("sweep=seed_fixed", *TINY, f"hydra.run.dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "seed_fixed: 3 images" in result.stdout  # the work estimate, before anything runs
    assert "3 made, 0 skipped (already done), 0 failed of 3 images" in result.stdout
    assert len(pd.read_csv(out / "results.csv")) == 3
    assert list((out / "sheets").glob("*.png"))


def test_default_run_dir_is_outputs_sweep_name_date_time(tmp_path):
    result = run_cli("sweep=seed_fixed", *TINY, "sweep.grid.repeat=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "outputs" / "seed_fixed").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.csv").is_file()


def test_hostile_sweep_name_stays_inside_outputs(tmp_path):
    result = run_cli("sweep=seed_fixed", *TINY, "sweep.grid.repeat=1", "sweep.name='../../escape me'",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path.parent / "escape me").exists()
    (made,) = (tmp_path / "outputs").iterdir()
    assert ".." not in made.name and "/" not in made.name


def test_help_and_cfg_job_work(tmp_path):
    help_text = run_cli("--help", cwd=tmp_path).stdout
    assert f"sweep: {', '.join(SWEEPS)}" in help_text  # every shipped sweep, from the sweeps/ folder
    assert "model: local, sdxl_arch, sdxl_base, tiny" in help_text and "Powered by Hydra" in help_text
    printed = run_cli("sweep=steps_10_to_90", "--cfg", "job", "width=96", cwd=tmp_path)  # a flag between overrides
    assert printed.returncode == 0 and "num_inference_steps: 10..90 step 10" in printed.stdout
    assert "width: 96" in printed.stdout
