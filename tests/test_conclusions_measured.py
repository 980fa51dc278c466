"""Conclusions say what was measured: "enough" only where more is more refined, the fewest tried said so."""

from __future__ import annotations

from report_fixtures import grid, make_run
from sweep.report import build_report
from test_metrics import noise_images


def _run(tmp_path, axis: str, values: list, drift: dict):
    cells = grid(seed=[1, 2], **{axis: values})
    for c in cells:
        c["cell_id"] = f"seed{c['seed']}_{axis}{c[axis]}"
        c["image"] = f"images/{c['cell_id']}.png"
    run = make_run(tmp_path / "run", cells)
    noise_images(run, cells, {c["cell_id"]: drift[c[axis]] for c in cells})
    return run


def test_when_the_fewest_steps_tried_pass_the_summary_says_fewer_may_do(tmp_path):
    run = _run(tmp_path, "num_inference_steps", [10, 20, 30], {10: 0.01, 20: 0.005, 30: 0.0})
    said = "\n".join(build_report(run).insights)
    assert "10 steps reach SSIM" in said and "(the fewest tried: fewer may do too)" in said


def test_cfg_is_not_given_as_enough_only_as_the_closest_value(tmp_path):
    run = _run(tmp_path, "guidance_scale", [3.0, 5.0, 7.0], {3.0: 0.3, 5.0: 0.01, 7.0: 0.0})
    result = build_report(run, reference="guidance_scale:7")
    said = "\n".join(result.insights)
    assert "closest to the CFG 7 image: CFG 5 (SSIM" in said
    assert "reaches SSIM" not in said and ">= 0.95" not in said


def test_the_sheet_and_the_viewer_show_one_seconds_figure_per_cell(tmp_path):
    import json
    import re

    from report_fixtures import cell
    from sweep.report import sheets
    from sweep.report.data import load_run

    cells = [cell(seed=s, num_inference_steps=n, height=64, width=64, cell_id=f"s{s}_n{n}",
                  seconds=0.01 * n + 0.003 * s) for s in (1, 2, 3) for n in (2, 4, 6, 8)]
    run_dir = make_run(tmp_path / "run", cells)
    build_report(run_dir)
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="sweep-data" type="application/json">(.*?)</script>', page, re.S)[1])
    shown = {c["id"]: f"{'≈' if c.get('sf') else ''}{c['s']:.2f} s" for c in data["cells"]}
    run = load_run(run_dir)
    from sweep.report import timing as tm

    table = run.cells
    table["_fitted"] = tm.build(table, run.candidates).predict(table)
    for _, row in table.iterrows():
        caption = sheets._caption(sheets._slot(run, row, 1.0), True, False)
        assert shown[row["cell_id"]] in caption, (row["cell_id"], caption, shown[row["cell_id"]])


def test_sheets_use_the_viewers_titles_and_a_new_layout_moves_the_old_sheets_aside(tmp_path):
    from report_fixtures import cell

    cells = [cell(seed=s, num_inference_steps=n, height=64, width=64, cell_id=f"s{s}_n{n}")
             for s in (1, 2) for n in (2, 4)]
    run_dir = make_run(tmp_path / "run", cells)
    first = build_report(run_dir, rows="seed", cols="num_inference_steps")
    assert first.pages[0].cols == ("Steps = 2", "Steps = 4") and first.pages[0].rows == ("Seed = 1", "Seed = 2")
    again = build_report(run_dir, rows="num_inference_steps", cols="seed")
    assert sorted(p.name for p in (run_dir / "sheets").glob("*.png")) == sorted(p.name for p in again.sheets)
    assert sorted(p.name for p in (run_dir / "sheets" / "previous").iterdir()) == sorted(
        p.name for p in first.sheets)


def test_every_prompt_id_in_the_summary_has_its_key(tmp_path):
    import re

    from report_fixtures import cell

    cells = [cell(prompt=p, seed=s, num_inference_steps=n, height=64, width=64, cell_id=f"p{i}_s{s}_n{n}")
             for i, p in enumerate(["a cat sitting on a red chair in the sun", "a dog"]) for s in (1, 2)
             for n in (2, 4)]
    run_dir = make_run(tmp_path / "run", cells)
    said = "\n".join(build_report(run_dir).insights)
    used = set(re.findall(r"\b(P\d+)\b", said))
    keyed = set(re.findall(r"^(P\d+): ", said, re.M))
    assert used <= keyed
