"""The viewer on a 390x844 phone, images deleted after the run, and the skip link (headless Chromium)."""

from __future__ import annotations

import pytest

from report_fixtures import cell, make_run
from sweep.report import build_report
from test_viewer import HUNDRED, browser, open_page, wide  # noqa: F401  (fixtures)

PHONE = {"width": 390, "height": 844}


def box(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); "
                                           "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, "
                                           "width: r.width, height: r.height}; }")


@pytest.fixture
def phone(browser):  # noqa: F811
    context = browser.new_context(viewport=PHONE)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []


def test_on_a_phone_values_can_be_picked_and_unticked_and_nothing_leaves_the_screen(phone, wide):  # noqa: F811
    open_page(phone, wide, HUNDRED)  # 20 columns: the grid may scroll sideways, the controls may not
    assert phone.evaluate("document.getElementById('top').scrollWidth <= innerWidth")
    open_page(phone, wide, "#x=num_inference_steps&y=seed&guidance_scale=3")
    assert phone.evaluate("document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll
    chips = phone.eval_on_selector_all(
        "#axes td.vals button, #axes td.vals label",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.width]; })")
    assert chips and all(width >= 20 and left >= 0 and right <= 390 for left, right, width in chips)
    # A picked axis's value: tapped, it is the view.
    phone.click("#axes button[data-axis=prompt][data-value^='a second']")
    assert "prompt=" in phone.evaluate("location.hash") and "a%20second" in phone.evaluate("location.hash")
    # A shown axis's value: unticked, its images go.
    before = phone.locator("#cells [data-cell]").count()
    phone.click("#axes input[data-axis=seed][data-value='2']")
    assert phone.locator("#cells [data-cell]").count() < before


def test_on_a_phone_the_large_view_is_readable_and_nothing_overlaps(phone, wide):  # noqa: F811
    open_page(phone, wide, HUNDRED)
    phone.click("#cells img[data-cell] >> nth=0")
    view, side = box(phone, "#large-view"), box(phone, "#large-side")
    assert side["top"] >= view["bottom"] - 0.5  # the panel under the image, not over it
    assert side["width"] >= 350 and view["height"] >= 300
    # The cell id reads as words, not one character a line.
    cell_id = phone.locator("#large-row tr", has_text="cell_id").locator("td")
    assert cell_id.bounding_box()["width"] >= 150
    line = phone.evaluate("parseFloat(getComputedStyle(document.getElementById('large-status')).lineHeight)")
    assert box(phone, "#large-status")["height"] <= 4 * line


def test_the_skip_link_reaches_the_grid_in_one_tab(phone, wide):  # noqa: F811
    open_page(phone, wide, HUNDRED)
    hash_before = phone.evaluate("location.hash")
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.id") == "skip" and phone.is_visible("#skip")
    phone.keyboard.press("Enter")
    assert phone.evaluate("document.getElementById('cells').contains(document.activeElement)")
    assert phone.evaluate("location.hash") == hash_before


@pytest.mark.parametrize("when", ["before the report", "after the report"])
def test_a_deleted_image_is_counted_and_shown_as_missing(phone, tmp_path, when):
    cells = [cell(seed=seed, num_inference_steps=steps, height=64, width=64, cell_id=f"seed{seed}_steps{steps}")
             for seed in (1, 2) for steps in (1, 2)]
    run_dir = make_run(tmp_path / "run", cells)
    gone = "seed1_steps2"
    image = next(p for p in (run_dir / "images").iterdir() if gone in p.name)
    if when == "before the report":
        image.unlink()
        build_report(run_dir)
    else:
        build_report(run_dir)
        image.unlink()
        for thumb in (run_dir / "thumbs").rglob(f"*{gone}*"):
            thumb.unlink()  # the page finds both files gone
    open_page(phone, run_dir, "#x=num_inference_steps&y=seed")
    phone.wait_for_function("document.getElementById('counts').textContent.includes('missing')")
    assert phone.text_content("#counts") == "4 images: 3 ok · 1 missing"
    mark = phone.locator(f"#cells [data-cell='{gone}']")
    assert mark.get_attribute("data-status") == "missing" and "image file not found" in mark.text_content()
    assert phone.locator("#cells img[data-cell]").count() == 3
    mark.click()
    assert "image file not found: images/" in phone.text_content("#large-mark")
    assert phone.is_hidden("#large-img")
