"""python -m sweep.compare: tiny-model runs (identical, float32 vs bfloat16) and fabricated run dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from report_fixtures import cell, grid, make_run
from sweep.compare import main

SRC = Path(__file__).resolve().parents[1] / "src"
OVERRIDES = ["sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[1,2]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same sweep twice in float32 and once in bfloat16 (which runs on the CPU with the tiny model)."""
    from sweep.running.runner import run_sweep

    made = {}
    for name, extra in (("fp32", []), ("fp32_again", []), ("bf16", ["model.dtype=bfloat16"])):
        run_dir = tmp_path_factory.mktemp(name)
        assert run_sweep(make_cfg(*OVERRIDES, *extra), run_dir, progress=False, echo=lambda _: None).ok
        made[name] = run_dir
    return made


def test_identical_runs_exit_0_with_no_difference(runs, tmp_path, capsys):
    assert main([str(runs["fp32"]), str(runs["fp32_again"]), f"out={tmp_path / 'cmp'}"]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert len(table) == 2 and table["in_a"].all() and table["in_b"].all()
    assert (table["max_abs_diff"] == 0).all() and (table["mean_abs_diff"] == 0).all() and (table["ssim"] == 1).all()
    out = capsys.readouterr().out
    assert "SAME" in out and "differs: nothing" in out
    assert not (tmp_path / "cmp" / "compare.png").exists()  # nothing differs: no sheet


def test_bfloat16_against_float32_exits_1_and_names_the_dtype(runs, capsys):
    a, b = runs["fp32"], runs["bf16"]
    assert main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "differs: dtype: float32 -> bfloat16" in out and "DIFFERENT: 2 of 2" in out
    folder = b / f"compare_{a.name}"  # default: inside DIR_B, named after DIR_A
    table = pd.read_csv(folder / "compare.csv")
    assert (table["max_abs_diff"] > 0).all() and (table["ssim"] < 1).all() and not table["within"].any()
    sheet = Image.open(folder / "compare.png")
    assert sheet.size[0] > 3 * 64 and sheet.size[1] > 2 * 64
    # A tolerance as large as the difference accepts it.
    worst = int(table["max_abs_diff"].max())
    assert main([str(a), str(b), f"tolerance={worst}"]) == 0
    assert main([str(a), str(b), f"tolerance={worst - 1}"]) == 1


def test_cells_in_one_run_only_are_listed(tmp_path, capsys):
    a = make_run(tmp_path / "a", [{**c, "colour": (10, 20, 30)} for c in grid(num_inference_steps=[10, 20, 30])])
    b = make_run(tmp_path / "b", [{**c, "colour": (10, 20, 30)} for c in grid(num_inference_steps=[20, 30, 40])])
    assert main([str(a), str(b)]) == 0  # the shared cells are identical
    out = capsys.readouterr().out
    assert "only in A: 1: p0_seed1234_steps10_cfg5_128x128" in out
    assert "only in B: 1: p0_seed1234_steps40_cfg5_128x128" in out
    table = pd.read_csv(b / "compare_a" / "compare.csv").set_index("cell_id")
    assert table.loc["p0_seed1234_steps10_cfg5_128x128", ["in_a", "in_b"]].tolist() == [True, False]
    assert table.loc["p0_seed1234_steps40_cfg5_128x128", ["in_a", "in_b"]].tolist() == [False, True]


def test_multirun_dirs_pair_by_job_overrides_and_cell(tmp_path, capsys):
    """cell_id repeats per job; jobs pair by the overrides that tell them apart, not by their common ones."""
    rows = [cell(model=m) for m in ("m1", "m2")]
    for i, row in enumerate(rows):
        row["image"] = f"{i}/images/{row['cell_id']}.png"
        row["colour"] = (40 * i, 90, 90)
    jobs = {"job": ["0", "1"]}
    a = make_run(tmp_path / "a", rows, extra_columns={**jobs, "overrides": ["sweep=x model=m1", "sweep=x model=m2"]})
    changed = [{**rows[0]}, {**rows[1], "colour": (40, 90, 93)}]  # job 1 moved by 3 levels in blue
    b = make_run(tmp_path / "b", changed, extra_columns={
        **jobs, "overrides": ["sweep=x model=m1 model.dtype=bfloat16", "sweep=x model=m2 model.dtype=bfloat16"]})
    assert main([str(a), str(b)]) == 1
    table = pd.read_csv(b / "compare_a" / "compare.csv").set_index("job")
    assert sorted(table.index) == ["model=m1", "model=m2"] and table["in_a"].all() and table["in_b"].all()
    assert table.at["model=m1", "max_abs_diff"] == 0 and table.at["model=m2", "max_abs_diff"] == 3
    assert "model=m2 / " in capsys.readouterr().out
    assert main([str(a), str(b), "tolerance=3"]) == 0


def test_different_sizes_are_not_compared(tmp_path, capsys):
    a = make_run(tmp_path / "a", [cell()])
    b = make_run(tmp_path / "b", [cell()])
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(b / cell()["image"])
    assert main([str(a), str(b)]) == 1
    assert "not compared (size differs (128x128 vs 64x64)): 1" in capsys.readouterr().out


@pytest.mark.parametrize("args, key", [
    (["{a}"], "DIR"),
    (["{a}", "{a}", "{a}"], "DIR"),
    (["{a}", "{missing}"], "DIR_B"),
    (["{a}", "{a}", "tolerance=-1"], "tolerance"),
    (["{a}", "{a}", "tolerance=x"], "tolerance"),
    (["{a}", "{a}", "colour=red"], "colour"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, key):
    a = make_run(tmp_path / "a", [cell()])
    argv = [x.format(a=a, missing=tmp_path / "missing") for x in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {key}: got ")


@pytest.mark.slow
def test_module_runs_as_a_command(tmp_path):
    a = make_run(tmp_path / "a", [cell()])
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    same = subprocess.run([sys.executable, "-m", "sweep.compare", str(a), str(a)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert same.returncode == 0 and "SAME" in same.stdout
    bad = subprocess.run([sys.executable, "-m", "sweep.compare", str(a)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
