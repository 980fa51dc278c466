"""Fonts and text layout for the contact sheets: wrap to a width, measure, draw; never cut text off.

Text is drawn in DejaVu Sans (matplotlib's copy). Pillow has no font fallback, so characters DejaVu lacks
(Chinese, Japanese, Korean, ...) are drawn from the first fallback font on the system that has them (Noto
Sans CJK, Droid Sans Fallback, WenQuanYi, ...; see FALLBACKS): a line is split into runs by which font covers
each character, and measured and drawn run by run. Coverage is read once per font file with fontTools.
ASCII text never looks at a fallback. Without a fallback font the missing characters are boxes, as before.
"""

from __future__ import annotations

import importlib.util
import os
import unicodedata
from functools import cache, lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Fallback fonts in order of preference, by file name: (regular, bold or None). Found under FONT_DIRS.
FALLBACKS: tuple[tuple[str, str | None], ...] = (
    ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc"),  # Debian/Ubuntu fonts-noto-cjk, Fedora, Arch
    ("NotoSansCJKjp-Regular.otf", "NotoSansCJKjp-Bold.otf"),
    ("NotoSansCJKsc-Regular.otf", "NotoSansCJKsc-Bold.otf"),
    ("NotoSansCJKtc-Regular.otf", "NotoSansCJKtc-Bold.otf"),
    ("NotoSansCJKkr-Regular.otf", "NotoSansCJKkr-Bold.otf"),
    ("SourceHanSans-Regular.ttc", "SourceHanSans-Bold.ttc"),
    ("DroidSansFallbackFull.ttf", None),  # Debian fonts-droid-fallback (what CI installs)
    ("DroidSansFallback.ttf", None),
    ("wqy-zenhei.ttc", None),
    ("wqy-microhei.ttc", None),
    ("PingFang.ttc", None),  # macOS
    ("Hiragino Sans GB.ttc", None),
    ("AppleSDGothicNeo.ttc", None),
    ("msyh.ttc", "msyhbd.ttc"),  # Windows
    ("YuGothR.ttc", "YuGothB.ttc"),
    ("malgun.ttf", "malgunbd.ttf"),
    ("NotoSansSymbols2-Regular.ttf", None),
    ("NotoEmoji-Regular.ttf", "NotoEmoji-Bold.ttf"),  # monochrome outlines; colour bitmap fonts are skipped
    ("Symbola.ttf", None),
    ("seguiemj.ttf", None),
)
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
             "/System/Library/Fonts", "/Library/Fonts", "~/Library/Fonts",
             os.path.join(os.environ.get("WINDIR", "C:\\Windows"), "Fonts"))
# More fallback font files, tried before FALLBACKS (os.pathsep-separated paths).
ENV_FONTS = "SWEEP_FONTS"


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


# --- fallback fonts --------------------------------------------------------------------------------------


@cache
def fallback_files(bold: bool = False) -> tuple[str, ...]:
    """Paths of the fallback fonts on this system, best first (SWEEP_FONTS, then FALLBACKS); no file read."""
    found: dict[str, str] = {}
    wanted = {name.lower() for pair in FALLBACKS for name in pair if name}
    for root in FONT_DIRS:
        folder = os.path.expanduser(root)
        if not os.path.isdir(folder):
            continue
        for parent, _, files in os.walk(folder):
            for name in files:
                if name.lower() in wanted:
                    found.setdefault(name.lower(), os.path.join(parent, name))
    paths = [p for p in os.environ.get(ENV_FONTS, "").split(os.pathsep) if p and os.path.isfile(p)]
    for regular, heavy in FALLBACKS:
        path = (found.get(heavy.lower()) if bold and heavy else None) or found.get(regular.lower())
        if path and path not in paths:
            paths.append(path)
    return tuple(paths)


def _read(path: str, cmap: bool) -> frozenset[int] | bool:
    try:
        from fontTools.ttLib import TTFont

        with TTFont(path, fontNumber=0, lazy=True) as opened:
            # Colour bitmap fonts (Noto Color Emoji) have no outlines and load at one pixel size only.
            outlines = any(tag in opened for tag in ("glyf", "CFF ", "CFF2"))
            if not cmap:
                return outlines
            return frozenset(opened.getBestCmap() or ()) if outlines else frozenset()
    except Exception:  # a broken or unsupported file is no fallback, never a crash
        return frozenset() if cmap else False


@cache
def usable(path: str) -> bool:
    """Whether a font file opens and has scalable outlines (reads only its table directory)."""
    return bool(_read(path, cmap=False))


@cache
def coverage(path: str) -> frozenset[int]:
    """Code points a font file draws (its cmap; the first face of a collection); empty when it cannot be read
    or has no outlines."""
    return _read(path, cmap=True)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def _fallback_font(path: str, size: int) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return None


class _Chain:
    """A primary font and the fallback fonts for the characters it lacks, at the primary's size."""

    def __init__(self, primary: ImageFont.FreeTypeFont, bold: bool) -> None:
        self.primary = primary
        self.has = coverage(str(primary.path))
        self.paths = [p for p in fallback_files(bold) if os.path.abspath(p) != os.path.abspath(primary.path)]
        self.pick: dict[str, Font] = {}

    def font_for(self, char: str) -> Font:
        found = self.pick.get(char)
        if found is None:
            found = self.primary
            if ord(char) not in self.has:
                for path in self.paths:
                    if ord(char) in coverage(path) and (fallback := _fallback_font(path, self.primary.size)):
                        found = fallback
                        break
            self.pick[char] = found
        return found


@lru_cache(maxsize=64)
def _chain(f: Font) -> _Chain | None:
    path = getattr(f, "path", None)
    if not isinstance(path, str | os.PathLike) or not os.path.isfile(path):
        return None  # Pillow's built-in font: no cmap to read, no fallback
    bold = "bold" in os.path.basename(str(path)).lower()
    chain = _Chain(f, bold)
    return chain if chain.has and chain.paths else None


def _attached(char: str) -> bool:
    """Characters drawn with the character before them (combining marks, joiners, variation selectors)."""
    return unicodedata.combining(char) > 0 or char in "\u200c\u200d" or 0xFE00 <= ord(char) <= 0xFE0F \
        or 0xE0100 <= ord(char) <= 0xE01EF or 0x1F3FB <= ord(char) <= 0x1F3FF


@lru_cache(maxsize=8192)
def runs(line: str, f: Font) -> tuple[tuple[str, Font], ...]:
    """One line split into (text, font) runs: the primary font wherever it has the glyph, else the first
    fallback that has it, else the primary (its missing-glyph box)."""
    chain = None if line.isascii() else _chain(f)
    if chain is None:
        return ((line, f),)
    out: list[tuple[str, Font]] = []
    pick, start, current = chain.pick.get, 0, None
    for k, char in enumerate(line):
        chosen = pick(char) or chain.font_for(char)
        if chosen is not current and not (current is not None and _attached(char)):
            if current is not None:
                out.append((line[start:k], current))
            start, current = k, chosen
    out.append((line[start:], current))
    return tuple(out)


@lru_cache(maxsize=16384)
def _length(line: str, f: Font) -> float:
    """Advance width of one line (no newline), run by run; cached, since a sheet measures the same captions
    and headers over and over."""
    if line.isascii():
        return f.getlength(line)
    return sum(run_font.getlength(text) for text, run_font in runs(line, f))


# --- layout ----------------------------------------------------------------------------------------------


def line_height(f: Font) -> int:
    ascent, descent = f.getmetrics()
    return ascent + descent + max(2, round(f.size * 0.2))


_CONTROLS = {code: " " for code in (*range(32), *range(127, 160)) if code != ord("\n")}
# Unicode's line and paragraph separators (and NEL) break lines as a newline does: raqm fails on U+2029 inside a
# line ("raqm_layout() failed"), so they become the newline a label is split at.
_CONTROLS.update({0x85: "\n", 0x2028: "\n", 0x2029: "\n"})


def visible(text: str) -> str:
    """Tabs and other control characters as spaces, Unicode line separators as newlines (a font's layout engine
    rejects some of them)."""
    return str(text).translate(_CONTROLS)


def width(text: str, f: Font) -> int:
    """Pixel width of text; of its widest line when it holds newlines (raqm cannot lay out a newline)."""
    return max(int(-(-_length(line, f) // 1)) for line in visible(text).split("\n"))


# No line starts with these (closing punctuation, small kana, ...) or ends with those (opening brackets).
_NO_START = frozenset("、。，．,.:;!?)]}」』】〕〉》）］｝〙〗〟’”…‥ー・：；！？"
                      "ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々〻゛゜")
_NO_END = frozenset("([{「『【〔〈《（［｛〘〖〝‘“")


def _wide(char: str) -> bool:
    """A wide (CJK) character a line may break next to; Hangul is not: Korean breaks at its spaces."""
    code = ord(char)
    hangul = 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F
    return not hangul and unicodedata.east_asian_width(char) in "WF"


def words(text: str) -> list[tuple[str, bool]]:
    """The words of text, each with whether it follows the previous one without a space. Whitespace separates
    words; so does the boundary next to a Chinese or Japanese character, since such text has no spaces."""
    out = []
    for word in text.split():
        start, glued = 0, False
        if not word.isascii():
            for k in range(1, len(word)):
                before, char = word[k - 1], word[k]
                if ((_wide(before) or _wide(char)) and char not in _NO_START and before not in _NO_END
                        and not _attached(char)):
                    out.append((word[start:k], glued))
                    start, glued = k, True
        out.append((word[start:], glued))
    return out


def columns(text: str) -> int:
    """Width in character cells: a wide (CJK) character takes two, a combining mark none."""
    if text.isascii():
        return len(text)
    return sum(0 if _attached(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap_columns(text: str, limit: int, max_lines: int) -> list[str]:
    """Greedy wrap to `limit` character cells (for matplotlib labels, which have no pixel measure here), at
    most `max_lines` lines, the last ending in ' …' when text was left out. Breaks where wrap() does."""
    lines: list[str] = []
    current = ""
    for word, glued in words(text):
        while columns(word) > limit:  # a token longer than a line is split by characters
            cut = next(k for k in range(1, len(word) + 1) if columns(word[:k]) > limit) - 1
            lines += [current] if current else []
            lines.append(word[:max(1, cut)])
            current, word, glued = "", word[max(1, cut):], True
        candidate = f"{current}{'' if glued else ' '}{word}" if current else word
        if current and columns(candidate) > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines += [current] if current else []
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and columns(last + " …") > limit:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return lines


def longest_word(text: str, f: Font) -> int:
    return max((width(w, f) for w, _ in words(text)), default=0)


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
        for word, glued in words(paragraph):
            candidate = f"{current}{'' if glued else ' '}{word}" if current else word
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
        parts = runs(line, f)
        if len(parts) == 1:
            draw.text((left, top + i * step), line, font=parts[0][1], fill=fill)
            continue
        # Runs share the primary font's baseline; each starts where the one before it ends.
        x, baseline = float(left), top + i * step + f.getmetrics()[0]
        for text, run_font in parts:
            draw.text((x, baseline), text, font=run_font, fill=fill, anchor="ls")
            x += run_font.getlength(text)
