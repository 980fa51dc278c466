"""Sheet text with any Unicode: fallback fonts for what DejaVu Sans lacks, measured and drawn run by run."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from report_fixtures import require_cjk_font
from sweep.report import text as tx

LABEL = "猫の写真, 油絵: 夕方 — café 😀 한국어 프롬프트\tend «ok» 一只在月球上骑马的宇航员的照片"
CHINESE = "一只在月球上骑马的宇航员的照片，高清，细节丰富，电影感光线，" * 4


def clear_caches() -> None:
    """Forget measured text and chosen fonts (the real fallback_files when it is patched out)."""
    for cached in (tx.fallback_files, tx._chain, tx.runs, tx._length):
        getattr(cached, "cache_clear", lambda: None)()


@pytest.fixture
def no_fallback(monkeypatch):
    """A system without fallback fonts."""
    clear_caches()
    monkeypatch.setattr(tx, "fallback_files", lambda bold=False: ())
    yield
    monkeypatch.undo()
    clear_caches()


def ink(lines: list[str], f: tx.Font, size: tuple[int, int], box=None) -> np.ndarray:
    """Dark pixels of lines drawn with draw_block, top-left, on white."""
    image = Image.new("L", size, 255)
    tx.draw_block(ImageDraw.Draw(image), lines, f, box or (0, 0, *size), "black", "left", "top")
    return np.asarray(image) < 128


def test_every_character_has_a_width():
    f = tx.font(16)
    for char in tx.visible(LABEL).replace(" ", ""):
        assert tx.width(char, f) > 0, char
    assert tx.width(LABEL, f) >= sum(tx.width(w, f) for w, _ in tx.words(LABEL))


@pytest.mark.parametrize("bold", [False, True])
@pytest.mark.parametrize("limit", [40, 90, 200, 10**4])
def test_wrap_keeps_every_character_within_the_width(limit, bold):
    f = tx.font(16, bold)
    lines = tx.wrap(LABEL + "\n" + CHINESE, f, limit)
    assert all(tx.width(line, f) <= limit for line in lines)
    assert "".join("".join(lines).split()) == "".join((LABEL + CHINESE).split())
    assert len(lines) >= 2  # the newline is kept


def test_chinese_and_japanese_break_between_characters():
    f = tx.font(16)
    # No spaces, yet no unbreakable word: a column or header band stays about one cell wide.
    assert tx.longest_word(CHINESE, f) <= 3 * tx.width("猫", f)
    lines = tx.wrap(CHINESE, f, 200)
    assert len(lines) > 5 and all(150 < tx.width(line, f) <= 200 for line in lines[:-1])
    assert not any(line.startswith(("，", "、", "。")) for line in lines)  # no line starts with a comma
    # Korean breaks at its spaces, never inside a word: at the widest word's width (in whatever font draws Korean
    # here, a fallback or DejaVu's boxes), one word a line.
    korean = "한국어 프롬프트 고양이 사진".split()
    assert tx.wrap(" ".join(korean), f, max(tx.width(w, f) for w in korean)) == korean


def test_drawn_text_stays_inside_its_measured_width():
    require_cjk_font()
    f = tx.font(20)
    for line in ("猫の写真, 油絵: 夕方 — café 한국어", "«x» 一只在月球上骑马", "end 猫"):
        drawn = ink([line], f, (600, 40), (10, 0, 600, 40))
        xs = np.nonzero(drawn.any(axis=0))[0]
        assert xs.min() >= 10 and xs.max() <= 10 + tx.width(line, f)
        assert xs.max() >= 10 + tx.width(line, f) - tx.width(line[-1], f)  # the last character is there


def test_fallback_draws_cjk_glyphs_not_the_primary_fonts_box():
    require_cjk_font()
    f = tx.font(32)
    for char in "猫한":
        assert tx.runs(char, f)[0][1] is not f
        chained = ink([char], f, (48, 48))
        alone = Image.new("L", (48, 48), 255)
        ImageDraw.Draw(alone).text((0, 0), char, font=f, fill="black")  # DejaVu Sans alone: its box
        assert chained.sum() > 40 and (chained != (np.asarray(alone) < 128)).sum() > 40


def test_without_fallback_fonts_text_is_drawn_as_before(no_fallback):
    f = tx.font(20)
    line = "猫の写真 café"
    assert tx.runs(line, f) == ((line, f),)
    before = Image.new("L", (300, 40), 255)
    ImageDraw.Draw(before).text((0, 0), line, font=f, fill="black")
    assert (ink([line], f, (300, 40)) == (np.asarray(before) < 128)).all()
    assert tx.width(line, f) == int(-(-f.getlength(line) // 1))


def test_unreadable_fallback_font_is_ignored(tmp_path, monkeypatch):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    clear_caches()
    monkeypatch.setattr(tx, "fallback_files", lambda bold=False: (str(broken),))
    try:
        f = tx.font(20)
        assert tx.coverage(str(broken)) == frozenset() and not tx.usable(str(broken))
        assert tx.runs("猫 ok", f) == (("猫 ok", f),)
        assert ink(tx.wrap("猫 ok", f, 100), f, (100, 40)).any()
    finally:
        monkeypatch.undo()
        clear_caches()


def test_sweep_fonts_are_tried_first(monkeypatch, tmp_path):
    extra = str(tx.font(12, True).path)  # any real font file will do
    monkeypatch.setenv(tx.ENV_FONTS, f"{tmp_path / 'absent.ttf'}{os.pathsep}{extra}")
    clear_caches()
    try:
        assert tx.fallback_files()[0] == extra and str(tmp_path) not in "".join(tx.fallback_files())
    finally:
        monkeypatch.undo()
        clear_caches()


def test_ascii_text_reads_no_font_file(monkeypatch):
    def fail(path):
        raise AssertionError("ASCII text looked at a fallback font")

    clear_caches()
    monkeypatch.setattr(tx, "coverage", fail)
    f = tx.font(18, True)
    lines = tx.wrap("a photo of an astronaut riding a horse on mars\tseed = 1", f, 120)
    assert tx.block_size(lines, f)[0] <= 120 and ink(lines, f, (200, 200)).any()


def test_wrap_columns_for_plot_labels():
    assert tx.columns("猫 ab") == 5
    lines = tx.wrap_columns(CHINESE, 18, 3)
    assert len(lines) == 3 and all(tx.columns(line) <= 18 for line in lines) and lines[-1].endswith(" …")
    assert tx.wrap_columns("한국어 프롬프트: 고양이", 18, 3) == ["한국어 프롬프트:", "고양이"]
