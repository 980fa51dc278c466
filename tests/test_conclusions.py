"""Conclusions a user can trust (issue 23): convergence per group, timings with their noise, a few sheets.

Fabricated run dirs (tests/report_fixtures.py): PNGs whose similarity to the reference is set per cell, and
seconds set per cell; no model.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from report_fixtures import grid, make_run
from sweep.report import build_report
from sweep.report import timing as tm
from sweep.report.data import load_run
from sweep.report.result import sheet_lines

STEPS = [4, 8, 16, 32]


def _cells(**axes_: list) -> list[dict]:
    """grid() with every varying value in the cell id (the fixture's id names only seed, steps, CFG, size)."""
    cells = grid(**axes_)
    for c in cells:
        extra = "_".join(f"{k}{c[k]}" for k in axes_ if k not in ("seed", "num_inference_steps", "guidance_scale"))
        c["cell_id"] = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{c['cell_id']}_{extra}")
        c["image"] = f"images/{c['cell_id']}.png"
    return cells


def _images(run, cells, noise) -> None:
    """Each image: its seed's noise plus noise(cell) x extra noise (0: the reference's pixels exactly)."""
    for c in cells:
        base = np.random.default_rng(int(c["seed"])).random((c["height"], c["width"], 3)) * 255
        extra = np.random.default_rng(999).normal(0, 60, base.shape) * noise(c)
        Image.fromarray(np.clip(base + extra, 0, 255).astype(np.uint8)).save(run / c["image"])


# How far each sampler's image is from the 32-step one: Euler is there at 8 steps, DDIM only at 16.
FAR = {"Euler": {4: 0.6, 8: 0.02, 16: 0.01, 32: 0.0}, "DDIM": {4: 0.8, 8: 0.6, 16: 0.02, 32: 0.0}}


def test_two_samplers_converging_at_different_steps_get_two_knees(tmp_path):
    cells = _cells(scheduler=["Euler", "DDIM"], seed=[1, 2, 3], num_inference_steps=STEPS)
    run = make_run(tmp_path / "run", cells)
    _images(run, cells, lambda c: FAR[c["scheduler"]][c["num_inference_steps"]])
    result = build_report(run, rows="seed", cols="num_inference_steps")

    table = pd.read_csv(run / "convergence.csv", keep_default_na=False)
    assert {"scheduler", "num_inference_steps", "mean_ssim", "min_ssim", "seconds", "reaches", "knee"} <= set(table)
    knees = table[table["knee"]].set_index("scheduler")["num_inference_steps"].to_dict()
    assert knees == {"Euler": 8, "DDIM": 16}  # never one averaged knee
    said = "\n".join(result.insights)
    assert re.search(r"^  Euler: 8 steps\b", said, re.M) and re.search(r"^  DDIM: 16 steps\b", said, re.M)
    assert "groups disagree: from 8 steps (Euler) to 16 steps (DDIM)" in said
    # The table behind the plot: per sampler and step count, the mean over the three seeds.
    row = table[(table["scheduler"] == "DDIM") & (table["num_inference_steps"] == 8)].iloc[0]
    metrics = pd.read_csv(run / "metrics.csv").set_index("cell_id")
    ids = [c["cell_id"] for c in cells if c["scheduler"] == "DDIM" and c["num_inference_steps"] == 8]
    assert row["mean_ssim"] == pytest.approx(metrics.loc[ids, "ssim"].mean(), abs=1e-6)
    assert row["seeds"] == 3 and not row["reaches"]


def test_groups_that_make_no_difference_are_merged(tmp_path):
    # Two prompts with the same pixels per seed: prompt changes nothing, so it is one line, said once.
    cells = _cells(prompt=["a cat", "a dog"], scheduler=["Euler", "DDIM"], seed=[1, 2],
                   num_inference_steps=STEPS)
    run = make_run(tmp_path / "run", cells)
    _images(run, cells, lambda c: FAR[c["scheduler"]][c["num_inference_steps"]])
    result = build_report(run, rows="seed", cols="num_inference_steps")
    said = "\n".join(result.insights)
    assert "Prompt made no difference (every mean SSIM within 0.01): merged" in said
    assert re.search(r"^  Euler: 8 steps\b", said, re.M)
    # The prompt is said only as the key of an id another line uses (the seed spread's 'P1'), never per line.
    assert [line for line in said.splitlines() if "a cat" in line] in ([], ["P1: a cat"])
    table = pd.read_csv(run / "convergence.csv", keep_default_na=False)
    assert set(table["prompt"]) == {"a cat", "a dog"}  # the table keeps every group
    assert set(table["line"]) == {"Euler", "DDIM"}


def _seconds(steps: int, k: int, per_step: float = 0.05, fixed: float = 0.4) -> float:
    """A quiet machine: the line plus a small deterministic wobble (never the same twice)."""
    return round(fixed + per_step * steps + 0.004 * np.sin(7 * k + steps), 5)


def test_one_outlier_cell_leaves_the_per_step_fit_as_it_was(tmp_path):
    cells = _cells(seed=[1, 2, 3, 4], num_inference_steps=STEPS)
    for k, c in enumerate(cells):
        c["seconds"] = _seconds(c["num_inference_steps"], k)
    quiet = make_run(tmp_path / "quiet", cells)
    noisy_cells = [dict(c) for c in cells]
    noisy_cells[5]["seconds"] = 25.0  # one call while the machine was swapping
    noisy = make_run(tmp_path / "noisy", noisy_cells)

    fits = []
    for run in (quiet, noisy):
        data = load_run(run)
        model = tm.build(data.cells, data.candidates)
        assert len(model.fits) == 1
        fits.append(next(iter(model.fits.values())))
    assert fits[0].per_step == pytest.approx(0.05, abs=0.001)
    assert fits[1].per_step == pytest.approx(fits[0].per_step, rel=0.02)
    assert fits[1].fixed == pytest.approx(fits[0].fixed, abs=0.02)
    # The first call of the run is the warm-up: left out of the fit and counted.
    assert fits[0].warm_up == 1 and fits[0].cells == len(cells) - 1
    build_report(noisy, rows="seed", cols="num_inference_steps")
    table = pd.read_csv(noisy / "timing.csv")
    assert table.loc[0, "per_step"] == pytest.approx(fits[1].per_step, abs=1e-6)


def test_a_multirun_reports_one_time_figure_per_group(tmp_path):
    # Three jobs (CFG 3, 5, 7) of one grid; their calls' seconds differ by job (the machine's load moved),
    # and CFG changes the pixels, so each CFG is its own line.
    cells, jobs = [], []
    for job, cfg in enumerate((3.0, 5.0, 7.0)):
        part = _cells(guidance_scale=[cfg], seed=[1, 2, 3], num_inference_steps=STEPS)
        for k, c in enumerate(part):
            c["seconds"] = _seconds(c["num_inference_steps"], k + 10 * job) * (1.0, 1.06, 0.95)[job]
        cells += part
        jobs += [job] * len(part)
    run = make_run(tmp_path / "run", cells, extra_columns={"job": jobs})
    far = {3.0: {4: 0.6, 8: 0.02}, 5.0: {4: 0.7, 8: 0.01}, 7.0: {4: 0.5, 8: 0.015}}
    _images(run, cells, lambda c: far[c["guidance_scale"]].get(c["num_inference_steps"], 0.0))
    result = build_report(run, rows="seed", cols="num_inference_steps")

    table = pd.read_csv(run / "convergence.csv", keep_default_na=False)
    assert table["guidance_scale"].nunique() == 3
    share = {}
    for cfg, part in table.groupby("guidance_scale"):
        by = part.set_index("num_inference_steps")
        share[cfg] = by.at[8, "seconds"] / by.at[32, "seconds"]
        assert by.at[8, "knee"]
    # One timing model for the three jobs (CFG 3, 5 and 7 cost the same): one figure, not three.
    assert max(share.values()) - min(share.values()) < 1e-9
    figures = set(re.findall(r"in (\d+) % of the time", "\n".join(result.insights)))
    assert figures == {f"{round(share[3.0] * 100)}"}


def test_no_time_claim_when_the_timings_are_noise(tmp_path):
    cells = _cells(scheduler=["Euler", "DDIM"], seed=[1, 2, 3], num_inference_steps=STEPS)
    rng = np.random.default_rng(5)
    for c in cells:
        c["seconds"] = round(float(rng.uniform(0.2, 6.0)), 3)  # steps are lost in the noise
    run = make_run(tmp_path / "noisy", cells)
    _images(run, cells, lambda c: FAR[c["scheduler"]][c["num_inference_steps"]])
    said = "\n".join(build_report(run, rows="seed", cols="num_inference_steps").insights)
    assert "% of the time" not in said and "x the time" not in said
    assert re.search(r"^  Euler: 8 steps$", said, re.M)
    assert re.search(r"^timings too noisy to compare: one image's seconds vary by ±\d", said, re.M)


def test_no_time_claim_from_a_busy_machine(tmp_path):
    # Clean-looking seconds, but more work than cores while they were taken: other work slowed the calls
    # unevenly over the run, so cells made at different times do not compare.
    cells = _cells(scheduler=["Euler", "DDIM"], seed=[1, 2, 3], num_inference_steps=STEPS)
    for k, c in enumerate(cells):
        c["seconds"] = _seconds(c["num_inference_steps"], k)
    quiet_load = {"load_avg": [0.5] * len(cells), "cpus": [2] * len(cells)}
    busy_load = {"load_avg": np.linspace(5.0, 7.0, len(cells)).round(2).tolist(), "cpus": [2] * len(cells)}
    said = {}
    for name, load in (("quiet", quiet_load), ("busy", busy_load)):
        run = make_run(tmp_path / name, cells, extra_columns=load)
        _images(run, cells, lambda c: FAR[c["scheduler"]][c["num_inference_steps"]])
        said[name] = "\n".join(build_report(run, rows="seed", cols="num_inference_steps").insights)
    assert re.search(r"^  Euler: 8 steps in \d+ % of the time$", said["quiet"], re.M)
    assert "% of the time" not in said["busy"]
    assert ("timings too noisy to compare: the machine was busy (load average 5.0 at the start, 7.0 at the end "
            "on 2 cores)") in said["busy"]


def test_a_large_sweep_gets_a_few_sheets_and_one_line(tmp_path):
    cells = _cells(prompt=["a cat", "a dog"], guidance_scale=[1.0, 2.0, 3.0, 4.0, 5.0], seed=[1, 2],
                   num_inference_steps=[4, 8])
    run = make_run(tmp_path / "run", cells)
    result = build_report(run, rows="seed", cols="num_inference_steps")
    # Ten sheet combinations: one sheet per prompt (the sweep's outermost axis) at CFG 1; the viewer has all.
    assert [p.sheet for p in result.pages] == ["CFG scale = 1 · Prompt = a cat",
                                               "CFG scale = 1 · Prompt = a dog"]
    assert result.sheet_note == "2 of 10 sheet combinations: one per Prompt at CFG 1"
    many = [tmp_path / f"s{i}.png" for i in range(40)]
    assert sheet_lines(many, tmp_path / "index.html", "x") == [
        f"sheets:  40 in {tmp_path} (x); every image in the viewer {tmp_path / 'index.html'}"]
    # sheets=none: everything on one sheet, as the docs say, even with rows and cols given.
    one = build_report(run, rows="seed", cols="num_inference_steps", sheets="none")
    assert len(one.sheets) == 1 and one.layouts[0].rows == ("seed", "guidance_scale", "prompt")
