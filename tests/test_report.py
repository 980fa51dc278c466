"""The report: contact sheets, summary.csv and plots from fabricated run directories (no torch needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageColor

from report_fixtures import PROMPT, cell, colour, grid, make_run, require_cjk_font
from sweep.report import ReportError, build_report
from sweep.report import text as tx
from sweep.report.sheets import BAND

SRC = Path(__file__).resolve().parents[1] / "src"


def region(sheet: Path | Image.Image, rgb: tuple[int, int, int],
           tol: int = 3) -> tuple[int, int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) and pixel count of one fabricated colour on a sheet."""
    image = sheet if isinstance(sheet, Image.Image) else Image.open(sheet).convert("RGB")
    pixels = np.asarray(image).astype(int)
    match = np.abs(pixels - np.array(rgb)).max(axis=-1) <= tol
    ys, xs = np.nonzero(match)
    assert len(xs), f"colour {rgb} not on the sheet"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, int(match.sum())


def run_report(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "sweep.report", *args], capture_output=True, text=True,
                          env=env, timeout=120)


# --- geometry --------------------------------------------------------------------------------------------


def test_grid_geometry_rows_cols_and_header_bands(tmp_path):
    cells = grid(seed=[1, 2, 3], num_inference_steps=[10, 20, 30, 40])
    run = make_run(tmp_path / "run", cells)
    result = build_report(run, rows="seed", cols="num_inference_steps")

    assert len(result.sheets) == 1
    page = result.pages[0]
    assert page.rows == ("Seed = 1", "Seed = 2", "Seed = 3")
    assert page.cols == tuple(f"Steps = {s}" for s in (10, 20, 30, 40))
    sheet = Image.open(page.path).convert("RGB")
    corners = []
    for i in range(len(cells)):
        x0, y0, x1, y1, count = region(sheet, colour(i))
        assert (x1 - x0, y1 - y0, count) == (128, 128, 128 * 128)  # full size, undistorted, uncut
        corners.append((x0, y0))
    lefts, tops = {x for x, _ in corners}, {y for _, y in corners}
    assert len(lefts) == 4 and len(tops) == 3
    xs, ys = sorted(lefts), sorted(tops)
    # Cell i (seed i // 4, steps i % 4) sits in row i // 4, column i % 4.
    assert [(ys.index(y), xs.index(x)) for x, y in corners] == [(i // 4, i % 4) for i in range(12)]
    assert all(b - a >= 128 for a, b in zip(xs, xs[1:], strict=False))  # no overlap
    assert all(b - a >= 128 for a, b in zip(ys, ys[1:], strict=False))
    # The sheet is the 3 x 4 grid of 128 px cells plus a title, a column band and a row band: not much more.
    width, height = sheet.size
    assert 4 * 128 < width < 4 * 128 + 600
    assert 3 * 128 < height < 3 * 128 + 600
    # A tinted row-header band left of the first column and a column-header band above the first row.
    pixels = np.asarray(sheet)
    band = ImageColor.getrgb(BAND)
    left_of_row = pixels[ys[0] + 64, : xs[0]]
    above_col = pixels[: ys[0], xs[0] + 64]
    assert (left_of_row == band).all(axis=1).sum() > 3 * 14
    assert (above_col == band).all(axis=1).sum() > 14


def test_cells_downscaled_to_cell_max(tmp_path):
    cells = grid(num_inference_steps=[10, 20], height=[1024], width=[1024])
    run = make_run(tmp_path / "run", cells)
    result = build_report(run, cell_max=200)
    sheet = Image.open(result.sheets[0])
    for i in range(2):
        x0, y0, x1, y1, _ = region(sheet, colour(i))
        assert (x1 - x0, y1 - y0) == (200, 200)
    assert sheet.width * sheet.height < 1_000_000


def test_mixed_resolutions_keep_aspect_ratio_and_relative_size(tmp_path):
    cells = [cell(height=512, width=512), cell(height=256, width=512), cell(height=1024, width=512)]
    run = make_run(tmp_path / "run", cells)
    result = build_report(run, cell_max=512)
    assert result.layouts[0].cols == ("resolution",)
    sheet = Image.open(result.sheets[0]).convert("RGB")
    # One factor (512 / 1024) for every cell: true aspect ratios and true relative sizes.
    sizes = []
    for i in range(3):
        x0, y0, x1, y1, count = region(sheet, colour(i))
        sizes.append((x1 - x0, y1 - y0))
        assert count == (x1 - x0) * (y1 - y0)
    assert sizes == [(256, 256), (256, 128), (256, 512)]
    # Ordered by pixel count: 256x512, 512x512, 1024x512 left to right; smaller ones centred vertically.
    boxes = [region(sheet, colour(i)) for i in (1, 0, 2)]
    assert boxes[0][0] < boxes[1][0] < boxes[2][0]
    centre = [(b[1] + b[3]) / 2 for b in boxes]
    assert max(centre) - min(centre) <= 1


def test_failed_cell_is_marked(tmp_path):
    cells = grid(num_inference_steps=[10, 20, 30])
    cells[1] = {**cells[1], "status": "failed", "error": "CUDA out of memory. Tried to allocate 20.00 GiB",
                "image": ""}
    run = make_run(tmp_path / "run", cells)
    result = build_report(run)
    page = result.pages[0]
    assert page.marks == {cells[1]["cell_id"]: "failed"}
    x0, y0, x1, y1 = page.boxes[cells[1]["cell_id"]]
    pixels = np.asarray(Image.open(page.path).convert("RGB")).astype(int)
    box = pixels[y0:y1, x0:x1]
    red = (box[..., 0] > 150) & (box[..., 1] < 80) & (box[..., 2] < 80)
    assert red[:, 0].mean() > 0.9 and red[0, :].mean() > 0.9  # red border
    assert red.sum() > 4 * (x1 - x0)  # and red text inside
    # Its neighbours are untouched images.
    for i in (0, 2):
        assert region(page.path, colour(i))[4] == 128 * 128


def test_partial_run_marks_missing_cells_and_cli_rebuilds(tmp_path):
    expected = grid(seed=[1, 2, 3], num_inference_steps=[10, 20, 30])
    done = expected[:5]
    run = make_run(tmp_path / "run", done, expected=expected, name="partial",
                   layout={"rows": "num_inference_steps", "cols": "seed", "sheets": None})

    proc = run_report(str(run), "rows=seed", "cols=num_inference_steps")
    assert proc.returncode == 0, proc.stderr
    sheet = run / "sheets" / "partial__rows-seed__cols-steps.png"
    assert sheet.is_file() and str(sheet) in proc.stdout
    assert (run / "summary.csv").is_file() and (run / "plots" / "seconds_vs_steps.png").is_file()
    for i in range(5):
        assert region(sheet, colour(i))[4] == 128 * 128

    result = build_report(run, rows="seed", cols="num_inference_steps")
    page = result.pages[0]
    missing = {c["cell_id"] for c in expected[5:]}
    assert page.marks == dict.fromkeys(missing, "missing")
    assert set(page.boxes) == {c["cell_id"] for c in expected}
    pixels = np.asarray(Image.open(page.path).convert("RGB")).astype(int)
    for cell_id in missing:
        x0, y0, x1, y1 = page.boxes[cell_id]
        assert (x1 - x0, y1 - y0) == (128, 128)  # drawn at the size it would have had
        border = pixels[y0, x0:x1]
        neutral = np.abs(border - border.mean(axis=1, keepdims=True)).max(axis=1) < 8
        grey = neutral & (border.max(axis=1) < 160)
        assert 0.3 < grey.mean() < 0.8  # a dashed grey border
    summary = pd.read_csv(run / "summary.csv")
    everything = summary[summary["axis"] == "all"].iloc[0]
    assert (everything["count"], everything["ok"], everything["missing"]) == (9, 5, 4)


def test_sweep_json_layout_is_used_unless_overridden(tmp_path):
    cells = grid(seed=[1, 2], num_inference_steps=[10, 20, 30])
    run = make_run(tmp_path / "run", cells, expected=cells, layout={"rows": "num_inference_steps",
                                                                    "cols": "seed", "sheets": None})
    assert build_report(run).layouts[0].rows == ("num_inference_steps",)
    assert build_report(run, rows="seed", cols="steps").layouts[0].rows == ("seed",)


# --- layout inference ------------------------------------------------------------------------------------


def test_inferred_layouts(tmp_path):
    one = build_report(make_run(tmp_path / "a", grid(num_inference_steps=[10, 20, 30])))
    assert (one.layouts[0].rows, one.layouts[0].cols) == ((), ("num_inference_steps",))

    two = build_report(make_run(tmp_path / "b", grid(seed=[1, 2], num_inference_steps=[10, 20, 30])))
    assert (two.layouts[0].rows, two.layouts[0].cols) == (("seed",), ("num_inference_steps",))

    three_cells = grid(guidance_scale=[3.0, 7.0], seed=[1, 2, 3], num_inference_steps=[10, 20, 30])
    three = build_report(make_run(tmp_path / "c", three_cells))
    assert three.layouts[0].sheets == ("guidance_scale",)
    assert len(three.sheets) == 2
    assert "cfg-3" in three.sheets[0].name and "cfg-7" in three.sheets[1].name


def test_extra_varying_axis_is_folded_into_sheets_not_dropped(tmp_path):
    cells = grid(guidance_scale=[3.0, 7.0], height=[128, 256], seed=[1, 2], num_inference_steps=[10, 20])
    for c in cells:
        c["width"] = 128
        c["cell_id"] = f"{c['cell_id']}_h{c['height']}"
        c["image"] = f"images/{c['cell_id']}.png"
    result = build_report(make_run(tmp_path / "run", cells), rows="seed", cols="num_inference_steps")
    assert set(result.layouts[0].sheets) == {"guidance_scale", "resolution"}
    assert len(result.sheets) == 4
    shown = [cid for page in result.pages for cid in page.boxes]
    assert sorted(shown) == sorted(c["cell_id"] for c in cells)  # every cell exactly once


def test_identical_cells_get_their_own_slots(tmp_path):
    cells = grid(repeat=[0, 1, 2])
    result = build_report(make_run(tmp_path / "run", cells))
    assert result.layouts[0].cols == ("repeat",)
    assert len(result.pages[0].boxes) == 3


def test_merged_multirun_table(tmp_path):
    cells = grid(model=["tiny", "big"], guidance_scale=[3.0, 7.0], num_inference_steps=[10, 20])
    for c in cells:
        c["dtype"] = "float16" if c["model"] == "big" else "float32"
        c["cell_id"] = f"{c['cell_id']}_{c['model']}"
        c["image"] = f"images/{c['cell_id']}.png"
    jobs = [i // 2 for i in range(len(cells))]
    overrides = [f"model={c['model']},guidance_scale={c['guidance_scale']:g}" for c in cells]
    run = make_run(tmp_path / "run", cells, extra_columns={"job": jobs, "overrides": overrides})
    result = build_report(run)
    layout = result.layouts[0]
    # model varies (dtype follows it, so it is no separate axis); job and overrides are bookkeeping.
    laid_out = set(layout.rows + layout.cols + layout.sheets)
    assert laid_out == {"model", "guidance_scale", "num_inference_steps"}
    assert len(result.sheets) == 2
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary["axis"]) == {"all", "model", "guidance_scale", "num_inference_steps", "dtype"}


def test_merged_table_of_two_sweeps_gets_sheets_per_sweep(tmp_path):
    steps = grid(num_inference_steps=[10, 20, 30], sweep=["steps"])
    guidance = grid(guidance_scale=[3.0, 7.0], sweep=["guidance"])
    result = build_report(make_run(tmp_path / "run", steps + guidance))
    assert [p.name for p in result.sheets] == ["steps__cols-steps.png", "guidance__cols-cfg.png"]
    assert [len(p.boxes) for p in result.pages] == [3, 2]  # no empty slots from the other sweep's axis


def test_single_image_long_prompt_and_nan_fields(tmp_path):
    long_prompt = ("a highly detailed photograph of an astronaut riding a horse on mars, " * 8).strip()
    assert len(long_prompt) > 500
    run = make_run(tmp_path / "run", [cell(prompt=long_prompt, negative_prompt="", error="")])
    result = build_report(run)
    assert result.layouts[0].rows == result.layouts[0].cols == ()
    assert region(result.sheets[0], colour(0))[4] == 128 * 128
    sheet = Image.open(result.sheets[0])
    assert sheet.width < 2000  # the prompt wraps instead of widening the sheet


def test_long_prompts_as_rows_go_by_id_with_the_full_text_in_the_title(tmp_path):
    prompts = [PROMPT + ", " + "very detailed, " * 30, "a cat"]
    cells = grid(prompt=prompts, seed=[1, 2])
    for i, c in enumerate(cells):
        c["cell_id"] = f"p{i // 2}_seed{c['seed']}"
        c["image"] = f"images/{c['cell_id']}.png"
    result = build_report(make_run(tmp_path / "run", cells))
    assert result.layouts[0].rows == ("prompt",)
    page = result.pages[0]
    # A header is the prompt's id and first words, not a paragraph; the title lists each prompt in full.
    assert page.rows == ("Prompt = P1 “a photo of an astronaut riding a horse…”", "Prompt = P2 “a cat”")
    assert page.legend == (f"P1: {prompts[0]}", "P2: a cat")
    first, second = (page.boxes[c["cell_id"]][1] for c in (cells[0], cells[2]))
    assert second - first < 128 + 100  # the row is as tall as its cell, not its prompt


def test_cjk_prompts_build_sheets_and_plots_without_warnings(tmp_path):
    require_cjk_font()
    prompts = ["猫の写真, 油絵: 夕方", "一只在月球上骑马的宇航员的照片，高清，细节丰富，电影感光线" * 3,
               "한국어 프롬프트: 고양이 사진 🐱", PROMPT]
    cells = grid(prompt=prompts, seed=[1, 2])
    for i, c in enumerate(cells):
        c["cell_id"] = f"p{i // 2}_seed{c['seed']}"
        c["image"] = f"images/{c['cell_id']}.png"
        c["seconds"] = 1.0 + i
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build_report(make_run(tmp_path / "run", cells), rows="prompt", cols="seed")
    assert [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))] == []
    assert [p.name for p in result.plots] == ["seconds_vs_prompt.png"]
    sheet = Image.open(result.sheets[0]).convert("RGB")
    # The 90-character prompt without spaces wraps between characters instead of widening its band.
    assert sheet.width < 1000
    assert all(region(sheet, colour(i))[4] == 128 * 128 for i in range(len(cells)))


def test_wrap_never_exceeds_width_and_keeps_every_word():
    f = tx.font(16)
    words = ("supercalifragilisticexpialidocious " + PROMPT + " ") * 5
    lines = tx.wrap(words, f, 120)
    assert all(tx.width(line, f) <= 120 for line in lines)
    assert "".join("".join(lines).split()) == "".join(words.split())


# --- pagination ------------------------------------------------------------------------------------------


def test_large_grid_is_split_into_numbered_parts(tmp_path):
    cells = grid(seed=list(range(10)), num_inference_steps=list(range(1, 11)), height=[64], width=[64])
    run = make_run(tmp_path / "run", cells)
    result = build_report(run, rows="seed", cols="num_inference_steps", max_cells=40)
    names = [p.name for p in result.sheets]
    assert names == [f"demo__rows-seed__cols-steps_part{i}of3.png" for i in (1, 2, 3)]
    assert all(len(p.cols) == 10 and len(p.rows) * len(p.cols) <= 40 for p in result.pages)
    assert sorted(cid for p in result.pages for cid in p.boxes) == sorted(c["cell_id"] for c in cells)

    # A rebuild with fewer parts leaves no stale part behind.
    again = build_report(run, rows="seed", cols="num_inference_steps", max_cells=64)
    assert len(again.sheets) == 2
    assert sorted(p.name for p in (run / "sheets").glob("*.png")) == sorted(p.name for p in again.sheets)


# --- summary and plots -----------------------------------------------------------------------------------


def test_summary_counts_and_seconds(tmp_path):
    cells = grid(seed=[1, 2], num_inference_steps=[10, 20])
    for c, seconds in zip(cells, (1.0, 2.0, 3.0, 5.0), strict=True):
        c["seconds"] = seconds
    cells[3] = {**cells[3], "status": "failed", "error": "boom", "image": ""}
    run = make_run(tmp_path / "run", cells)
    build_report(run)
    table = pd.read_csv(run / "summary.csv").set_index(["axis", "value"])
    assert table.loc[("all", "all"), ["count", "ok", "failed"]].tolist() == [4, 3, 1]
    assert table.loc[("all", "all"), "mean_seconds"] == pytest.approx(2.0)
    steps20 = table.loc[("num_inference_steps", "20")]
    assert (steps20["count"], steps20["ok"], steps20["failed"]) == (2, 1, 1)
    assert steps20["mean_seconds"] == pytest.approx(2.0)  # the failed cell's time is not an image's time
    seed1 = table.loc[("seed", "1")]
    assert (seed1["mean_seconds"], seed1["min_seconds"], seed1["max_seconds"]) == (1.5, 1.0, 2.0)
    assert ("guidance_scale", "5") not in table.index  # fixed axes are not summarised


def test_plots_only_where_axes_vary(tmp_path):
    steps_only = make_run(tmp_path / "a", grid(num_inference_steps=[10, 20, 30]))
    result = build_report(steps_only)
    assert [p.name for p in result.plots] == ["seconds_vs_steps.png", "convergence_num_inference_steps.png"]
    assert Image.open(result.plots[0]).size[0] > 400
    assert not (steps_only / "plots" / "seconds_vs_resolution.png").exists()

    both = make_run(tmp_path / "b", grid(num_inference_steps=[10, 20], height=[64, 128], width=[128]))
    names = sorted(p.name for p in build_report(both).plots)
    assert names == ["convergence_num_inference_steps.png", "seconds_vs_resolution.png", "seconds_vs_steps.png"]

    single = make_run(tmp_path / "c", [cell()])
    assert build_report(single).plots == []
    assert not (single / "plots").exists() or not list((single / "plots").iterdir())


def test_writes_leave_no_temp_files(tmp_path):
    run = make_run(tmp_path / "run", grid(num_inference_steps=[10, 20]))
    build_report(run)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


# --- bad input -------------------------------------------------------------------------------------------


def test_cli_bad_arguments_print_one_line_and_exit_2(tmp_path):
    run = make_run(tmp_path / "run", grid(num_inference_steps=[10, 20]))
    for args, words in (
        ([str(run), "rows=nonsense"], ["rows", "nonsense", "seed", "num_inference_steps"]),
        ([str(tmp_path / "nowhere")], ["DIR", "nowhere"]),
        ([str(tmp_path)], ["DIR", "results.csv"]),
        ([str(run), "cell_max=tiny"], ["cell_max", "tiny", "integer"]),
        ([str(run), "colz=seed"], ["colz", "rows="]),
    ):
        proc = run_report(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert all(w in lines[0] for w in words), lines[0]


def test_api_rejects_the_same_axis_twice(tmp_path):
    run = make_run(tmp_path / "run", grid(seed=[1, 2], num_inference_steps=[10, 20]))
    with pytest.raises(ReportError, match="cols"):
        build_report(run, rows="seed", cols="seed")


def test_import_is_lean():
    code = ("import sys, sweep.report; "
            "print(sorted(m for m in ('matplotlib', 'torch', 'diffusers', 'pandas') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
