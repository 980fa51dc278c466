"""The viewer (index.html): thumbnails made once, data escaped, and the page driven in a real headless Chromium.

Browser tests use Debian's `chromium` through Playwright. Without a browser they skip locally and fail in CI
(`CI` set): `.ci/run` installs it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import make_cfg, require
from report_fixtures import cell, make_run
from sweep.report import build_report
from sweep.report.viewer import script_json
from sweep.running.runner import run_sweep

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HOSTILE = ("x</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> "
           "'single' \"double\" & <!-- é 中文 😀 \u2028 end")
TINY = ("height=64", "width=64")


def run(cfg, run_dir: Path):
    return run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)


def table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv", dtype=str, keep_default_na=False)


def ids(run_dir: Path, order: tuple[str, str], **where: float) -> list[str]:
    """cell_ids matching `where` (by number), in the grid's reading order: by order[0] (rows), then order[1]."""
    rows = table(run_dir)
    for key, value in where.items():
        rows = rows[rows[key].astype(float) == value]
    rows = rows.assign(_r=rows[order[0]].astype(float), _c=rows[order[1]].astype(float))
    return list(rows.sort_values(["_r", "_c"])["cell_id"])


# --- runs shared by the tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssg(tmp_path_factory):
    """seeds_steps_guidance at 64x64 with steps 1 and 2: 3 seeds x 2 steps x 2 guidance = 12 images."""
    run_dir = tmp_path_factory.mktemp("viewer") / "ssg"
    summary = run(make_cfg("sweep=seeds_steps_guidance", *TINY, "sweep.grid.num_inference_steps=[1,2]"), run_dir)
    assert summary.made == 12
    return run_dir, summary


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Two prompts, one full of markup, quotes and non-ASCII text."""
    run_dir = tmp_path_factory.mktemp("viewer") / "hostile"
    cfg = make_cfg("sweep=steps_10_to_90", *TINY, "sweep.grid.num_inference_steps=[1]")
    cfg.sweep.grid.prompt = [HOSTILE, "plain"]
    run(cfg, run_dir)
    return run_dir


TITLED = """name: titled
grid:
  guidance_scale: [3, 7]
  num_inference_steps: [1, 2]
titles:
  guidance_scale: {title: Guidance, values: {3: low, 7.0: high}}
  steps: Denoising steps
descriptions:
  guidance_scale: How closely the image follows the prompt
  num_inference_steps: {values: {1: one step only}}
"""


@pytest.fixture(scope="module")
def titled(tmp_path_factory):
    """A sweep file with titles: and descriptions: (issue 26: the viewer's words for axes and values)."""
    root = tmp_path_factory.mktemp("viewer")
    (root / "titled.yaml").write_text(TITLED)
    run_dir = root / "titled"
    assert run(make_cfg(f"sweep={root / 'titled.yaml'}", *TINY), run_dir).made == 4
    return run_dir


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    """`-m sweep=steps_10_to_90 guidance_scale=3,7` laid out as Hydra does (one dir per job), then merged."""
    from sweep.cli.multirun import merge

    sweep_dir = tmp_path_factory.mktemp("viewer") / "multirun"
    for num, guidance in enumerate((3, 7)):
        job = sweep_dir / str(num)
        overrides = ["sweep=steps_10_to_90", *TINY, "sweep.grid.num_inference_steps=[1,2]",
                     f"guidance_scale={guidance}"]
        run(make_cfg(*overrides), job)
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
    job_thumbs = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/thumbs/*.jpg")}
    merged = merge(sweep_dir)
    return sweep_dir, merged, job_thumbs


# --- without a browser -----------------------------------------------------------------------------------


def test_thumbnails_are_small_jpegs_made_once_and_remade_when_the_png_changes(ssg, tmp_path):
    run_dir, summary = ssg
    assert f"viewer:  {run_dir / 'index.html'}" in summary.lines()
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)  # keeps mtimes: a copied folder reuses its thumbnails too
    thumbs = sorted((copy / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 12
    for path in thumbs:
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 256
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    build_report(copy)
    assert {p: p.stat().st_mtime_ns for p in thumbs} == before

    png = copy / table(copy)["image"][0]
    with Image.open(png) as image:
        info = PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(png, pnginfo=info)
    result = build_report(copy)
    changed = {p for p in thumbs if p.stat().st_mtime_ns != before[p]}
    assert changed == {copy / "thumbs" / (png.stem + ".jpg")}
    assert result.viewer == copy / "index.html"


def test_a_corrupt_thumbnail_is_made_again(ssg, tmp_path):
    """Issue 21 case 25: a thumbnail cut short, emptied or overwritten was reused for ever (only the PNG was
    checked); the index records the thumbnail's own size and mtime too."""
    run_dir, _ = ssg
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    cut, empty, foreign, kept = sorted((copy / "thumbs").glob("*.jpg"))[:4]
    cut.write_bytes(cut.read_bytes()[:100])
    empty.write_bytes(b"")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(foreign, format="JPEG")
    kept_mtime = kept.stat().st_mtime_ns
    build_report(copy)
    for path in (cut, empty, foreign):
        with Image.open(path) as image:
            image.load()  # decodes whole again
            assert image.size != (8, 8), path.name
    assert kept.stat().st_mtime_ns == kept_mtime  # the others are still reused


def test_titles_and_descriptions_from_the_sweep_file_reach_the_page_data(titled):
    data = json.loads(re.search(r'<script id="sweep-data" type="application/json">(.*?)</script>',
                                (titled / "index.html").read_text(), re.S).group(1))
    axes = {a["name"]: a for a in data["axes"]}
    assert axes["guidance_scale"]["title"] == "Guidance" and axes["guidance_scale"]["vt"] == ["low", "high"]
    assert axes["guidance_scale"]["description"] == "How closely the image follows the prompt"
    assert axes["num_inference_steps"]["title"] == "Denoising steps"  # named by its alias, `steps`
    assert axes["num_inference_steps"]["vd"] == ["one step only", None] and "vt" not in axes["num_inference_steps"]
    page = build_report(titled).pages[0]  # the contact sheet speaks the same words
    assert {*page.rows, *page.cols} == {"Guidance = low (3)", "Guidance = high (7)", "Denoising steps = 1",
                                        "Denoising steps = 2"}


@pytest.mark.parametrize(("titles", "message"), [
    ("titles: {seed: Seed}", "sweep.titles.seed: got 'seed'; allowed: an axis this sweep varies: "
                             "num_inference_steps, guidance_scale"),
    ("titles: {guidance_scale: {values: {4: four}}}", "sweep.titles.guidance_scale.values: got 4; allowed: a value of "
                                                      "sweep.grid.guidance_scale: 3.0, 7.0"),
    ("descriptions: {guidance_scale: {text: x}}", "sweep.descriptions.guidance_scale: got {'text': 'x'}; allowed: a "
                                                  "text, or a mapping with description"),
    ("titles: {guidance_scale: ''}", "sweep.titles.guidance_scale: got ''; allowed: a text of 1 to 2,000 characters"),
])
def test_bad_titles_are_one_line_before_anything_is_made(tmp_path, titles, message):
    from sweep.errors import SweepError
    from sweep.planning.plan import plan_sweep
    from sweep.running.experiment import to_dict

    path = tmp_path / "t.yaml"
    path.write_text("grid:\n  guidance_scale: [3, 7]\n  num_inference_steps: [1, 2]\n" + titles + "\n")
    with pytest.raises(SweepError) as info:
        plan_sweep(to_dict(make_cfg(f"sweep={path}", *TINY)))
    assert str(info.value).startswith(message), str(info.value)


def test_cli_rebuild_prints_the_page(ssg, capsys):
    from sweep.report.__main__ import main

    run_dir, _ = ssg
    assert main([str(run_dir)]) == 0
    assert f"viewer:  {run_dir / 'index.html'}" in capsys.readouterr().out


def test_page_data_cannot_end_its_script_element(hostile):
    text = script_json({"p": HOSTILE})
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"p": HOSTILE}
    page = (hostile / "index.html").read_text(encoding="utf-8")
    assert page.count("</script>") == 2  # the data's and the code's own, none from the prompt
    data = re.search(r'<script id="sweep-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert HOSTILE in json.loads(data)["strings"]


# --- in the browser --------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in (os.environ.get("SWEEP_CHROMIUM"), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    path = _chromium()
    require(sync_playwright is not None and path is not None, "playwright and a chromium browser",
            "pip install -e '.[test]'; apt-get install chromium, or SWEEP_CHROMIUM=PATH")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []


def open_page(page, run_dir: Path, hash_: str = "") -> None:
    page.goto((run_dir / "index.html").as_uri() + hash_)
    page.wait_for_selector("html[data-ready]")


def shown(page) -> list[str]:
    return page.eval_on_selector_all("#cells [data-cell]", "els => els.map(e => e.dataset.cell)")


def view(page) -> str:
    return page.evaluate("location.hash")


def wait_loaded(page) -> None:
    page.wait_for_function("[...document.querySelectorAll('#cells img')].every(i => i.complete)")


def test_first_view_is_the_sheets_layout_with_lazy_thumbnails(page, ssg):
    run_dir, _ = ssg
    open_page(page, run_dir)
    assert view(page) == "#x=num_inference_steps&y=seed&guidance_scale=3"
    assert shown(page) == ids(run_dir, ("seed", "num_inference_steps"), guidance_scale=3)
    wait_loaded(page)
    images = page.eval_on_selector_all("#cells img", "els => els.map(e => [e.getAttribute('src'), e.loading, "
                                                     "e.naturalWidth, e.dataset.cell])")
    for src, loading, natural, cell_id in images:
        assert src == f"thumbs/{Path(table(run_dir).set_index('cell_id').loc[cell_id, 'image']).stem}.jpg"
        assert loading == "lazy" and natural == 64


@pytest.mark.parametrize("guidance", ["7", "7.0"])
def test_the_url_hash_drives_the_view(page, ssg, guidance):
    run_dir, _ = ssg
    open_page(page, run_dir, f"#x=seed&y=num_inference_steps&guidance_scale={guidance}")
    assert shown(page) == ids(run_dir, ("num_inference_steps", "seed"), guidance_scale=7)
    assert view(page) == "#x=seed&y=num_inference_steps&guidance_scale=7"
    # A link that leaves an axis out shows its first value; the page follows a hash change in place.
    page.evaluate("location.hash = '#x=num_inference_steps&y=seed'")
    page.wait_for_function("location.hash.endsWith('guidance_scale=3')")
    assert shown(page) == ids(run_dir, ("seed", "num_inference_steps"), guidance_scale=3)


def test_controls_switch_axes_pick_values_and_hide_values(page, ssg):
    run_dir, _ = ssg
    open_page(page, run_dir)
    # Any two axes against each other in two clicks.
    page.click("button[data-axis=guidance_scale][data-role=x]")
    page.click("button[data-axis=seed][data-role=y]")
    assert view(page) == "#x=guidance_scale&y=seed&num_inference_steps=1"
    assert shown(page) == ids(run_dir, ("seed", "guidance_scale"), num_inference_steps=1)
    page.click("button[data-axis=num_inference_steps][data-value='2']")
    assert shown(page) == ids(run_dir, ("seed", "guidance_scale"), num_inference_steps=2)
    page.click("button[data-axis=guidance_scale][data-role=y]")  # Y onto the X axis: they swap
    assert view(page).startswith("#x=seed&y=guidance_scale&")
    page.uncheck("input[data-axis=seed][data-value='2']")
    assert view(page).endswith("&hide=seed:2")
    expected = [c for c in ids(run_dir, ("guidance_scale", "seed"), num_inference_steps=2) if "_seed2_" not in c]
    assert shown(page) == expected
    page.click("button[data-axis=guidance_scale][data-role=sx]")  # a grid of grids, one per guidance scale
    assert page.eval_on_selector_all("#cells .superhead", "els => els.map(e => e.textContent)") == [
        "CFG scale = 3", "CFG scale = 7"]  # the axis registry's title
    assert sorted(shown(page)) == sorted(expected)


def test_large_view_shows_the_png_its_row_and_parameters_and_moves_with_the_keys(page, ssg):
    run_dir, _ = ssg
    open_page(page, run_dir)
    order = ids(run_dir, ("seed", "num_inference_steps"), guidance_scale=3)  # seeds 1..3 x steps 1, 2
    page.click(f"img[data-cell='{order[0]}']")
    large = page.locator("#large")
    assert large.is_visible() and large.get_attribute("data-cell") == order[0]
    image = table(run_dir).set_index("cell_id").loc[order[0], "image"]
    assert page.get_attribute("#large-img", "src") == image
    with Image.open(run_dir / image) as png:
        assert page.input_value("#large-params") == png.text["parameters"]
    row = dict(page.eval_on_selector_all("#large-row tr", "trs => trs.map(t => [t.cells[0].textContent, "
                                                          "t.cells[1].textContent])"))
    assert row["cell_id"] == order[0] and row["image"] == image and row["seed"] == "1"
    for key, expected in [("ArrowRight", order[1]), ("ArrowRight", order[1]), ("ArrowDown", order[3]),
                          ("ArrowLeft", order[2]), ("ArrowUp", order[0])]:
        page.keyboard.press(key)
        assert large.get_attribute("data-cell") == expected, key
    page.keyboard.press("Escape")
    assert large.is_hidden()


def test_fit_native_size_seconds_and_auto_cycle(page, ssg):
    run_dir, _ = ssg
    page.clock.install()
    open_page(page, run_dir)
    first = "#cells img >> nth=0"
    assert page.eval_on_selector(first, "e => e.width") > 64  # fit: 3 rows x 2 columns fill the window
    page.click("#size-native")
    assert page.eval_on_selector(first, "e => [e.width, e.getAttribute('src').startsWith('images/')]") == [64, True]
    assert page.locator("#cells figcaption").count() == 6
    page.uncheck("#show-seconds")
    assert page.locator("#cells figcaption").count() == 0
    # guidance_scale, the only axis left to cycle
    assert page.eval_on_selector("#cycle-axis", "s => s.options[s.selectedIndex].textContent") == "guidance_scale"
    page.fill("#cycle-seconds", "3")
    page.dispatch_event("#cycle-seconds", "change")
    page.click("#cycle-go")
    page.clock.run_for(3100)
    assert view(page).endswith("guidance_scale=7")
    assert shown(page) == ids(run_dir, ("seed", "num_inference_steps"), guidance_scale=7)
    page.clock.run_for(3000)
    assert view(page).endswith("guidance_scale=3")


def test_failed_and_missing_cells_are_marked(page, ssg, tmp_path):
    run_dir, _ = ssg
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    rows = table(partial)
    failed, missing = ids(partial, ("seed", "num_inference_steps"), guidance_scale=3)[:2]
    error = "CUDA out of memory. <b>Tried</b> to allocate 20.00 GiB"
    rows.loc[rows["cell_id"] == failed, ["status", "error", "image"]] = ["failed", error, ""]
    rows = rows[rows["cell_id"] != missing]  # killed before this one: sweep.json still lists it
    rows.to_csv(partial / "results.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    build_report(partial)
    open_page(page, partial)
    assert page.get_attribute(f"[data-cell='{failed}']", "data-status") == "failed"
    assert error in page.text_content(f"[data-cell='{failed}']")
    assert page.get_attribute(f"[data-cell='{missing}']", "data-status") == "missing"
    assert "1 failed" in page.text_content("#counts") and "1 missing" in page.text_content("#counts")
    page.click(f"[data-cell='{failed}']")
    assert error in page.text_content("#large-mark") and page.is_hidden("#large-img")


def test_mixed_resolutions_keep_their_aspect_and_relative_size(page, tmp_path):
    cells = [cell(seed=s, height=h, width=w) for s in (1, 2) for h, w in ((64, 128), (128, 64), (32, 32))]
    run_dir = make_run(tmp_path / "mixed", cells)
    build_report(run_dir)
    open_page(page, run_dir)
    sizes = dict(page.eval_on_selector_all("#cells img", "els => els.map(e => [e.dataset.cell, [e.width, e.height]])"))
    assert len(sizes) == 6
    for c in cells:
        width, height = sizes[c["cell_id"]]
        assert abs(width / height - c["width"] / c["height"]) < 0.05
    assert sizes[cells[0]["cell_id"]][0] == sizes[cells[1]["cell_id"]][1]  # one scale for every image
    assert abs(sizes[cells[0]["cell_id"]][0] - 4 * sizes[cells[2]["cell_id"]][0]) <= 2


def test_multirun_sweep_dir_gets_a_page_over_the_jobs(page, multirun):
    sweep_dir, merged, job_thumbs = multirun
    assert merged.viewer == sweep_dir / "index.html" and f"viewer:  {merged.viewer}" in merged.lines()
    assert job_thumbs and {p: p.stat().st_mtime_ns for p in job_thumbs} == job_thumbs  # the jobs' own, reused
    open_page(page, sweep_dir)
    assert view(page) == "#x=num_inference_steps&y=guidance_scale"
    rows = table(sweep_dir)
    expected = rows.assign(_g=rows["guidance_scale"].astype(float), _s=rows["num_inference_steps"].astype(int))
    expected = expected.sort_values(["_g", "_s"])
    assert shown(page) == list(expected["cell_id"])
    wait_loaded(page)
    images = page.eval_on_selector_all("#cells img", "els => els.map(e => [e.dataset.job, e.getAttribute('src'), "
                                                     "e.naturalWidth])")
    assert [job for job, _, _ in images] == list(expected["job"])
    assert all(src.startswith(f"{job}/thumbs/") and natural == 64 for job, src, natural in images)


def test_hostile_prompt_renders_as_text(page, hostile):
    open_page(page, hostile)
    labels = page.eval_on_selector_all("#cells .rowhead, #cells .colhead", "els => els.map(e => e.title)")
    assert HOSTILE in labels  # shortened in the head, whole in its title
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    page.click("#cells img >> nth=0")
    assert HOSTILE in page.input_value("#large-params") or "plain" in page.input_value("#large-params")


# --- layout, links and keys at window sizes a user has ---------------------------------------------------

LONG = ["a very long prompt about a lighthouse on a cliff at dusk, oil painting, dramatic clouds, detailed",
        "a second long prompt: a red fox in deep snow under pine trees, morning light, 35mm photograph"]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """200 fabricated 64x64 images over 4 axes (two long prompts x 5 seeds x 4 steps x 5 guidance): one prompt
    with guidance as super X is a 100-image view of 20 columns."""
    cells = [cell(prompt=text, seed=seed, num_inference_steps=steps, guidance_scale=guidance, height=64, width=64,
                  cell_id=f"p{p}_seed{seed}_steps{steps}_cfg{guidance}")
             for p, text in enumerate(LONG) for seed in range(1, 6) for steps in (1, 2, 3, 4)
             for guidance in (3.0, 4.0, 5.0, 6.0, 7.0)]
    run_dir = make_run(tmp_path_factory.mktemp("viewer") / "wide", cells)
    build_report(run_dir)
    return run_dir


HUNDRED = "#x=num_inference_steps&y=seed&sx=guidance_scale"


def header_boxes(page) -> list[dict]:
    """Bounding boxes of the first cell of each sticky header row (axis names, super X, X) and the first row head."""
    return page.evaluate("""() => ['.axisrow', '.superhead', '.colhead', '.rowhead'].map(s => {
        const r = document.querySelector('#cells ' + s).getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; })""")


@pytest.mark.parametrize("size", [(1024, 700), (1440, 900)])
def test_fit_shows_the_whole_view_and_sticky_heads_stack(browser, wide, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    open_page(page, wide, HUNDRED)
    assert page.locator("#cells [data-cell]").count() == 100
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert page.is_hidden("#fit-note")
    # Scrolled down past the first rows: the header rows stay on screen, one under the other, none overlapping,
    # and the row labels stay beside the images without covering a column.
    page.evaluate("window.scrollTo(0, document.querySelector('#cells').getBoundingClientRect().top + scrollY + 60)")
    names, superx, xhead, rowhead = header_boxes(page)
    assert names["top"] >= -0.5 and names["bottom"] <= superx["top"] + 0.5 and superx["bottom"] <= xhead["top"] + 0.5
    first = page.eval_on_selector("#cells [data-cell]", "e => e.getBoundingClientRect().left")
    assert rowhead["right"] <= first + 0.5
    assert rowhead["right"] - rowhead["left"] < 60  # seeds 1..5: the label column is as wide as they need
    # Collapsing the controls gives the grid their room; the slider sets a size by hand.
    before = page.eval_on_selector("#cells img", "e => e.width")
    page.click("#controls-box > summary")
    assert page.is_hidden("#axes") and page.eval_on_selector("#cells img", "e => e.width") >= before
    page.click("#controls-box > summary")
    page.fill("#size-slider", "40")
    assert page.eval_on_selector("#cells img", "e => e.width") == 40
    assert page.get_attribute("#size-fit", "aria-pressed") == "false"
    context.close()


def test_long_values_are_shortened_with_the_full_text_on_hover_and_in_the_current_view(page, wide):
    open_page(page, wide, HUNDRED)
    button = page.locator(f"button[data-axis=prompt][data-value='{LONG[0]}']")
    assert button.get_attribute("title") == LONG[0] and button.text_content().endswith("…")
    assert len(button.text_content()) < len(LONG[0])
    current = page.text_content("#current")
    assert f"Prompt = {LONG[0]}" in current and "X Steps" in current and "super X CFG scale" in current
    assert page.text_content("#axes tr[data-axis=guidance_scale] th") == "CFG scale"


def test_the_sweep_files_titles_and_descriptions_on_the_page(page, titled):
    open_page(page, titled, "#x=guidance_scale&y=num_inference_steps")
    assert page.text_content("#axes tr[data-axis=guidance_scale] th") == (
        "GuidanceHow closely the image follows the prompt")  # the title, its description under it
    heads = page.locator("#cells .colhead")
    assert heads.all_text_contents() == ["low", "high"]
    assert heads.nth(0).get_attribute("title") == "low: 3"  # the title with the value it stands for
    rows = page.locator("#cells .rowhead")
    assert rows.nth(0).get_attribute("title") == "1\none step only"
    assert "X Guidance" in page.text_content("#current") and "Y Denoising steps" in page.text_content("#current")
    page.click("#axes button[data-axis=guidance_scale][data-role=pick]")
    assert "Guidance = low (3)" in page.text_content("#current")  # a fixed axis: its title and full value


@pytest.mark.parametrize(("hash_", "said", "shown_x", "pick"), [
    ("#x=seed&y=seed", ["y=seed: seed is already X"], "seed", None),
    ("#x=num_inference_steps&y=seed&guidance_scale=6.5&sampler=Heun",
     ['guidance_scale=6.5: guidance_scale has no value "6.5"', 'sampler=Heun: no axis "sampler"'],
     "num_inference_steps", "3"),
])
def test_a_link_asking_for_what_the_run_lacks_says_so(page, wide, hash_, said, shown_x, pick):
    open_page(page, wide, hash_)
    alert = page.locator("[role=alert]")
    assert alert.is_visible()
    for text in said:
        assert text in alert.text_content()
    assert view(page).startswith(f"#x={shown_x}&y=")
    assert "y=seed" not in view(page) or shown_x != "seed"  # one axis is never on X and Y at once
    if pick is not None:
        assert f"guidance_scale={pick}" in view(page) and "showing 3 instead" in alert.text_content()
    page.click("#notice-close")
    assert alert.is_hidden()
    open_page(page, wide, "#x=seed&y=num_inference_steps")
    assert page.locator("[role=alert]").is_hidden()


def test_keyboard_alone_opens_moves_and_closes_the_large_view(page, wide):
    open_page(page, wide, "#x=num_inference_steps&y=seed&guidance_scale=3")
    assert page.eval_on_selector_all("#cells [data-cell]", "els => els.every(e => e.tabIndex === 0)")
    first = page.get_attribute("#cells [data-cell] >> nth=0", "data-cell")
    page.focus(f"[data-cell='{first}']")
    page.keyboard.press("ArrowRight")  # focus moves along X in the grid
    second = page.evaluate("document.activeElement.dataset.cell")
    assert second == "p0_seed1_steps2_cfg3.0"
    page.keyboard.press("Enter")
    large = page.locator("#large")
    assert large.is_visible() and large.get_attribute("data-cell") == second
    page.keyboard.press("Alt+ArrowLeft")  # steps the first picked axis (the prompt) -- stays: it is the first
    page.keyboard.press("Alt+ArrowRight")
    assert large.get_attribute("data-cell") == "p1_seed1_steps2_cfg3.0"
    assert "&prompt=" + quote(LONG[1], safe="") + "&" in view(page)
    page.keyboard.press("ArrowDown")
    assert large.get_attribute("data-cell") == "p1_seed2_steps2_cfg3.0"
    for _ in range(8):  # Tab never leaves the dialog
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('large').contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.getElementById('large').contains(document.activeElement)")
    page.keyboard.press("Escape")
    assert large.is_hidden()
    assert page.evaluate("document.activeElement.dataset.cell") == "p1_seed2_steps2_cfg3.0"  # focus back in the grid
