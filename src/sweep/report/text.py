"""Fonts and text layout for the contact sheets: wrap to a width, measure, draw; never cut text off."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=1)
def _font_dir() -> Path | None:
    """matplotlib's bundled DejaVu fonts, found without importing matplotlib (slow to import)."""
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "mpl-data" / "fonts" / "ttf"
        if (folder / "DejaVuSans.ttf").is_file():
            return folder
    return None


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> Font:
    """A scalable TrueType font: DejaVu Sans (wide Unicode coverage) or Pillow's built-in one."""
    folder = _font_dir()
    if folder is not None:
        path = folder / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def line_height(f: Font) -> int:
    ascent, descent = f.getmetrics()
    return ascent + descent + max(2, round(f.size * 0.2))


def visible(text: str) -> str:
    """Tabs and other control characters as spaces (a font's layout engine rejects some of them)."""
    return "".join(" " if (ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 else c for c in str(text))


def width(text: str, f: Font) -> int:
    """Pixel width of text; of its widest line when it holds newlines (raqm cannot lay out a newline)."""
    return max(int(-(-f.getlength(visible(line)) // 1)) for line in str(text).split("\n"))


def longest_word(text: str, f: Font) -> int:
    return max((width(w, f) for w in text.split()), default=0)


def _break_word(word: str, f: Font, limit: int) -> list[str]:
    """A token wider than the line (a URL, a long name) is split by characters, never clipped."""
    pieces, current = [], ""
    for char in word:
        if current and width(current + char, f) > limit:
            pieces.append(current)
            current = char
        else:
            current += char
    return pieces + [current] if current else pieces


def wrap(text: str, f: Font, limit: int) -> list[str]:
    """Greedy word wrap to `limit` pixels; explicit newlines are kept."""
    limit = max(1, limit)
    lines: list[str] = []
    for paragraph in visible(text).replace("\r", "\n").split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if width(candidate, f) <= limit:
                current = candidate
                continue
            if current:
                lines.append(current)
            if width(word, f) <= limit:
                current = word
            else:
                *done, current = _break_word(word, f, limit)
                lines.extend(done)
        lines.append(current)
    return lines


def block_size(lines: list[str], f: Font) -> tuple[int, int]:
    if not lines:
        return 0, 0
    return max(width(line, f) for line in lines), line_height(f) * len(lines)


def fit_lines(lines: list[str], f: Font, max_lines: int) -> list[str]:
    """At most `max_lines` lines, the last one ending in an ellipsis when text was left out (used only
    for error text inside a cell; the full error is in results.csv)."""
    if len(lines) <= max_lines:
        return lines
    if max_lines <= 0:
        return []
    kept = lines[:max_lines]
    kept[-1] = kept[-1].rstrip()[:-1] + "…" if len(kept[-1]) > 1 else "…"
    return kept


def draw_block(draw: ImageDraw.ImageDraw, lines: list[str], f: Font, box: tuple[int, int, int, int],
               fill: str, align: str = "center", valign: str = "center") -> None:
    """Draw lines inside box (x0, y0, x1, y1), aligned horizontally and vertically."""
    x0, y0, x1, y1 = box
    step = line_height(f)
    total = step * len(lines)
    top = y0 if valign == "top" else y0 + max(0, (y1 - y0 - total) // 2)
    for i, line in enumerate(lines):
        line = visible(line).replace("\n", " ")
        w = width(line, f)
        left = x0 if align == "left" else x0 + max(0, (x1 - x0 - w) // 2)
        draw.text((left, top + i * step), line, font=f, fill=fill)
