"""Similarity metrics, seed spread and the convergence plot: a tiny-model run and fabricated run dirs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from report_fixtures import grid, make_run
from sweep.errors import SweepError
from sweep.report import build_report
from sweep.report.__main__ import main as report_main
from sweep.report.convergence import THRESHOLD, find_knee
from sweep.report.metrics import Reference


@pytest.fixture(scope="module")
def steps_run(tmp_path_factory):
    from sweep.running.runner import run_sweep

    run_dir = tmp_path_factory.mktemp("steps")
    cfg = make_cfg("sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[1,2,4]")
    summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    assert summary.ok
    return run_dir, summary


def noise_images(run, cells, scale: dict[str, float], seed_of=lambda c: c["seed"]) -> None:
    """Overwrite the fabricated solid PNGs: each a seed's noise plus `scale[cell_id]` x extra noise."""
    for c in cells:
        if c["status"] != "ok":
            continue
        rng = np.random.default_rng(int(seed_of(c)))
        base = rng.random((c["height"], c["width"], 3)) * 255
        extra = np.random.default_rng(999).normal(0, 60, base.shape) * scale.get(c["cell_id"], 0.0)
        Image.fromarray(np.clip(base + extra, 0, 255).astype(np.uint8)).save(run / c["image"])


def test_steps_run_scores_against_the_most_steps(steps_run):
    run_dir, summary = steps_run
    results = pd.read_csv(run_dir / "results.csv")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert sorted(metrics["cell_id"]) == sorted(results["cell_id"])  # one row per results row
    steps = dict(zip(results["cell_id"], results["num_inference_steps"], strict=True))
    reference = next(c for c, s in steps.items() if s == 4)
    assert set(metrics["reference"]) == {reference}
    assert set(metrics["axis"]) == {"num_inference_steps"}
    by_steps = metrics.assign(steps=metrics["cell_id"].map(steps)).set_index("steps")
    assert by_steps.at[4, "ssim"] == 1.0 and math.isinf(by_steps.at[4, "psnr"])
    assert by_steps.at[4, "note"] == "reference" and by_steps.at[4, "max_abs_diff"] == 0
    assert by_steps.at[1, "ssim"] < 1.0 and by_steps.at[2, "ssim"] < 1.0
    assert by_steps.at[1, "mean_abs_diff"] > 0 and by_steps.at[1, "psnr"] < 100
    plot = run_dir / "plots" / "convergence_num_inference_steps.png"
    assert plot.is_file() and Image.open(plot).size[0] > 800
    assert any("4-step image" in line for line in summary.lines())  # the knee sentence in the printed summary
    assert not (run_dir / "seed_spread.csv").exists()  # one seed: nothing to spread


def test_reference_option_and_seed_spread(tmp_path):
    cells = grid(seed=[1, 2], guidance_scale=[3.0, 5.0, 7.0])
    run = make_run(tmp_path / "run", cells)
    # cfg 7 is the seed's plain noise; 5 and 3 drift further from it.
    scale = {c["cell_id"]: {3.0: 0.6, 5.0: 0.2, 7.0: 0.0}[c["guidance_scale"]] for c in cells}
    noise_images(run, cells, scale)
    result = build_report(run, reference="cfg:7")  # an alias, as rows=/cols= accept
    table = pd.read_csv(run / "metrics.csv").set_index("cell_id")
    for c in cells:
        ref = next(r for r in cells if r["seed"] == c["seed"] and r["guidance_scale"] == 7.0)
        assert table.at[c["cell_id"], "reference"] == ref["cell_id"]  # same seed, cfg 7
    ssim = {(c["seed"], c["guidance_scale"]): table.at[c["cell_id"], "ssim"] for c in cells}
    assert ssim[(1, 7.0)] == 1.0 > ssim[(1, 5.0)] > ssim[(1, 3.0)]
    spread = pd.read_csv(run / "seed_spread.csv")
    assert list(spread["guidance_scale"]) == [3, 5, 7] and set(spread["seeds"]) == {2}
    assert set(spread["pairs"]) == {1} and (spread["spread"] > 0.5).all()  # independent noise per seed
    assert (run / "plots" / "convergence_guidance_scale.png").is_file()
    assert any(line.startswith("seed spread") for line in result.insights)

    # The automatic reference when steps do not vary: the first numeric axis but seed, its last value.
    build_report(run)
    assert set(pd.read_csv(run / "metrics.csv")["value"]) == {3, 5, 7}
    assert (pd.read_csv(run / "metrics.csv").set_index("cell_id").loc[[c["cell_id"] for c in cells
                                                                          if c["guidance_scale"] == 7.0], "note"]
            == "reference").all()

    build_report(run, reference="none")
    assert not (run / "metrics.csv").exists() and not list((run / "plots").glob("convergence_*"))


def test_sizes_never_compared_and_failed_cells_noted(tmp_path):
    cells = grid(num_inference_steps=[10, 20], height=[64, 128], width=[128])
    cells[0] = {**cells[0], "status": "failed", "error": "boom", "image": ""}
    run = make_run(tmp_path / "run", cells)
    build_report(run, reference="resolution:128x128")
    table = pd.read_csv(run / "metrics.csv", keep_default_na=False).set_index("cell_id")
    notes = {(c["num_inference_steps"], c["height"]): table.at[c["cell_id"], "note"] for c in cells}
    assert notes == {(10, 64): "failed", (10, 128): "reference", (20, 64): "size differs", (20, 128): "reference"}
    assert table.at[cells[2]["cell_id"], "ssim"] == ""


def test_knee_is_the_first_value_from_which_every_value_reaches_the_threshold():
    curve = pd.DataFrame({"value": ["10", "20", "30", "40", "50"], "mean": [0.50, 0.96, 0.94, 0.97, 1.0]})
    knee = find_knee(curve, Reference("num_inference_steps", "50"), True)
    assert THRESHOLD == 0.95 and knee.value == "40"  # 20 reaches 0.96 but 30 falls back below
    assert knee.ssim == pytest.approx(0.97)
    none = find_knee(curve.assign(mean=[0.5, 0.6, 0.7, 0.8, 1.0]), Reference("num_inference_steps", "50"), True)
    assert none.value is None and none.nearest == "40" and none.ssim == pytest.approx(0.8)


def test_bad_reference_exits_2_with_one_line(tmp_path, capsys):
    run = make_run(tmp_path / "run", grid(num_inference_steps=[10, 20]))
    for arg, key in (("reference=num_inference_steps:15", "reference"), ("reference=nope:1", "reference"),
                     ("reference=steps:", "reference")):
        assert report_main([str(run), arg]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {key}: got ")
    assert report_main([str(run), "reference=steps:10.0"]) == 0  # "10.0" is the value 10


def test_reference_value_checked_before_generating(tmp_path):
    from sweep.planning.plan import plan_sweep
    from sweep.running.experiment import to_dict

    cfg = make_cfg("sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[1,2,4]",
                   "report.reference=num_inference_steps:3")
    with pytest.raises(SweepError, match=r"report.reference: got 'num_inference_steps:3'; allowed: .*1, 2, 4"):
        plan_sweep(to_dict(cfg))


def test_categorical_reference_names_the_closest_value(tmp_path):
    """A sampler axis has no order: the sentence names the value closest to the reference, in sweep order."""
    cells = []
    for name, drift in (("Euler", 0.0), ("DPM++ 2M Karras", 0.5), ("UniPC", 0.1)):
        row = {**grid(seed=[1])[0], "scheduler": name, "seconds": 1.0 + drift}
        row["cell_id"] += "_" + name.replace(" ", "-").replace("+", "p")
        row["image"] = f"images/{row['cell_id']}.png"
        cells.append(row)
    run = make_run(tmp_path / "run", cells)
    noise_images(run, cells, {c["cell_id"]: d for c, d in zip(cells, (0.0, 0.5, 0.1), strict=True)})
    result = build_report(run, reference="scheduler:euler")  # values match case-insensitively last
    # One image per sampler: their timings' noise is unknown, so no time is claimed (issue 23).
    assert result.insights[0] == ("closest to the Euler image: UniPC (SSIM "
                                  f"{pd.read_csv(run / 'metrics.csv')['ssim'].iloc[2]:.3f})")
    assert result.insights[1].startswith("timings not compared: fewer than 3 images per shape and sampler")
    assert (run / "plots" / "convergence_scheduler.png").is_file()


@pytest.mark.parametrize("shape", [(11, 11), (12, 37), (64, 100), (256, 256)])
def test_prepared_ssim_is_scikit_images_value(shape):
    # The seed spread filters each image once and each pair once; the number must stay scikit-image's.
    from sweep.report import similarity as sim

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, shape), 0, 255).astype(np.uint8)
    for x, y in ((a, b), (b, a), (a, a)):
        assert sim.ssim_prepared(sim.prepare(x), sim.prepare(y)) == sim.ssim(x, y)
    assert math.isnan(sim.ssim_prepared(sim.prepare(a[:10]), sim.prepare(b[:10])))
