"""Contact sheets: labelled grids of a run's images, drawn with PIL.

Cells keep their aspect ratio and their relative size (one scale factor for the whole report, so 512x512
next to 1024x1024 looks half as wide), centred in a slot as large as the largest cell of its row/column.
Bands grow to fit their wrapped text, so labels are never cut off; long headers shrink to >= 14 px first.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from sweep import axes
from sweep.report import names as nm
from sweep.report import text as tx
from sweep.report.atomic import save_image
from sweep.report.data import ENVIRONMENT, RunData, words
from sweep.report.layout import labels, order_values
from sweep.report.result import Layout, SheetPage

BG, INK, MUTED, BAND, SLOT_BG = "white", "#1b1b1b", "#5f6368", "#e6ebf2", "#f2f3f5"
RED, RED_BG, RED_LINE = "#c62828", "#fdecea", "#f3b7b2"
AMBER, AMBER_BG = "#a15c00", "#fff3e0"
GREY, GREY_BG = "#80868b", "#eceef1"
MIN_PX = 14
SHORT = {a.name: a.token for a in axes.AXES}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Style:
    """Sizes derived from one font size, itself scaled with the cell size."""

    px: int

    @property
    def title_px(self) -> int:
        return round(self.px * 1.3)

    @property
    def small_px(self) -> int:
        return max(MIN_PX, round(self.px * 0.8))

    @property
    def gap(self) -> int:
        return max(6, self.px // 2)

    @property
    def pad(self) -> int:
        return max(5, self.px // 3)

    @property
    def margin(self) -> int:
        return max(14, self.px)


def style_for(edge: int) -> Style:
    """Font size ~4.5 % of the largest displayed cell edge: legible when the sheet is viewed whole."""
    return Style(px=min(40, max(MIN_PX, round(edge * 0.045))))


@dataclass
class Slot:
    """One cell as drawn: where its image is, how big it is shown, what to write under it."""

    cell_id: str
    status: str  # ok | failed | missing
    size: str  # "HxW" as generated
    disp: tuple[int, int]  # (w, h) on the sheet
    image: Path | None
    error: str
    seconds: float
    similarity: str = ""  # "SSIM 0.93" / "reference" when the report computed metrics
    fitted: bool = False  # seconds from the timing model (captions say "≈")


@dataclass
class Title:
    heading: str
    prompt: str | None
    negative: str | None
    fixed: str
    environment: str
    status: str
    legend: tuple[str, ...] = ()  # 'P1: full prompt' for prompts shown by id in the headers


# --- public entry ----------------------------------------------------------------------------------------


def write_sheets(run: RunData, cells: pd.DataFrame, layout: Layout, deps: dict[str, str], *, scale: float,
                 style: Style, max_cells: int, captions: bool, out_dir: Path,
                 save: Callable[[Image.Image, Path], Path] = save_image) -> list[SheetPage]:
    """Write every sheet of one layout (one per sheet-axis combination, split into parts) and return them.

    `save` writes one page (build_report passes an ImageSaver's, which encodes on a thread)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = layout.group or run.name or _single(cells, "sweep") or run.run_dir.name
    pages: list[SheetPage] = []
    for sheet_key, sub in _groups(cells, layout.sheets):
        pages += _write_sheet(run, sub, layout, deps, sheet_key, name, scale=scale, style=style,
                              max_cells=max_cells, captions=captions, out_dir=out_dir, save=save)
    return pages


def _write_sheet(run: RunData, cells: pd.DataFrame, layout: Layout, deps: dict[str, str],
                 sheet_key: tuple[str, ...], name: str, *, scale: float, style: Style, max_cells: int,
                 captions: bool, out_dir: Path, save: Callable[[Image.Image, Path], Path]) -> list[SheetPage]:
    """One sheet-axis combination: its grid, paginated into parts, each written atomically."""
    pairs = list(zip(layout.sheets, sheet_key, strict=True))
    sheet_label = " · ".join(_axis_value(run, a, v) for a, v in pairs)
    base = safe(name) + "__" + _layout_token(layout)
    if pairs:
        base += "__" + "_".join(f"{safe(SHORT.get(a, a))}-{safe(v)}" for a, v in pairs)
    row_keys, col_keys = _combos(cells, layout.rows), _combos(cells, layout.cols)
    records = [r for _, r in cells.iterrows()]
    places = [(_key(r, layout.rows), _key(r, layout.cols)) for r in records]
    slots = {place: _slot(run, r, scale) for place, r in zip(places, records, strict=True)}
    row_text = [_header(cells, layout.rows, k, deps, run) for k in row_keys]
    col_text = [_header(cells, layout.cols, k, deps, run) for k in col_keys]
    show_size = labels(cells, "resolution").nunique() > 1
    chunks = _paginate(len(row_keys), len(col_keys), max_cells)
    pages, written = [], []
    for part, (rs, cs) in enumerate(chunks, start=1):
        parts = len(chunks)
        page_rows, page_cols = [row_keys[r] for r in rs], [col_keys[c] for c in cs]
        on_page = {(rk, ck) for rk in page_rows for ck in page_cols}
        heading = " — ".join(x for x in (name, sheet_label) if x)
        if parts > 1:
            heading += f" — part {part} of {parts}"
        title = _title(cells.loc[[p in on_page for p in places]], layout, heading, run.candidates, run.cells)
        page_slots = {(i, j): slots.get((rk, ck)) for i, rk in enumerate(page_rows)
                      for j, ck in enumerate(page_cols)}
        rows = [row_text[r] for r in rs] if layout.rows else []
        cols = [col_text[c] for c in cs] if layout.cols else []
        image, boxes, marks = render(rows, cols, page_slots, title, style, captions=captions,
                                     show_size=show_size)
        path = out_dir / (base + (f"_part{part}of{parts}" if parts > 1 else "") + ".png")
        written.append(save(image, path))
        pages.append(SheetPage(path=path, layout=layout, sheet=sheet_label, part=part, parts=parts,
                               rows=tuple(" · ".join(t) for t in rows),
                               cols=tuple(" · ".join(t) for t in cols), boxes=boxes, marks=marks,
                               legend=title.legend))
    _remove_stale(out_dir, base, written)
    return pages


# --- grouping and labels ---------------------------------------------------------------------------------


def _key(row: pd.Series, axes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(row[a]) for a in axes)


def _combos(cells: pd.DataFrame, axes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Combinations of these axes present among the cells, in each axis's reading order."""
    if not axes:
        return [()]
    rank = {a: {v: i for i, v in enumerate(order_values(cells, a))} for a in axes}
    found = {_key(r, axes) for _, r in cells.iterrows()}
    return sorted(found, key=lambda k: tuple(rank[a][v] for a, v in zip(axes, k, strict=True)))


def _groups(cells: pd.DataFrame, axes: tuple[str, ...]) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    if not axes:
        return [((), cells)]
    keys = [_key(r, axes) for _, r in cells.iterrows()]
    return [(k, cells.loc[[x == k for x in keys]]) for k in _combos(cells, axes)]


def shown(value: str, axis: str = "") -> str:
    """A value as a label: an empty one reads as what it means for its axis ('default', '(none)')."""
    return axes.label(axis, value)


def _by_id(run_cells: pd.DataFrame, axis: str) -> bool:
    """A text axis some of whose values are too long for a header: all its values go by id ('P1 “a photo…”')."""
    return nm.is_text(axis) and axis in run_cells and any(len(str(v)) > nm.SHORT for v in run_cells[axis])


def _value(run_cells: pd.DataFrame, axis: str, value: str) -> str:
    if _by_id(run_cells, axis):
        return nm.name(run_cells, axis, value, long=True)
    return shown(value, axis)


def heading(axis: str) -> str:
    """An axis as the viewer titles it: its registry title ('Steps', 'CFG scale'); other columns by name."""
    from sweep.axes import axis_of_column

    found = axis_of_column(axis)
    return found.heading if found is not None and axis in (found.name, found.cols[0]) else axis


def _axis_value(run: RunData, axis: str, value: str) -> str:
    """'Steps = 30' (the viewer's titles), or in the sweep file's words where it gave them (titles:):
    'Guidance = low (3)'."""
    given, by_label = words(run, axis)
    text = _value(run.cells, axis, value)
    title = by_label.get(value, {}).get("title")
    return f"{given.get('title') or heading(axis)} = " + (f"{title} ({text})" if title else text)


def _header(cells: pd.DataFrame, axes: tuple[str, ...], key: tuple[str, ...],
            deps: dict[str, str], run: RunData) -> list[str]:
    """One line per axis: 'Steps = 30', with dependent values beside it ('· dtype fp16'); a long
    prompt by its id and first words (the title lists it in full)."""
    lines = []
    for axis, value in zip(axes, key, strict=True):
        line = _axis_value(run, axis, value)
        for dep, master in deps.items():
            if master == axis and dep in cells:
                found = {v for v in cells.loc[labels(cells, axis) == value, dep] if v}
                if found:
                    line += f" · {dep} {'/'.join(sorted(found))}"
        lines.append(line)
    return lines


def _single(cells: pd.DataFrame, column: str) -> str | None:
    if column not in cells:
        return None
    found = list(dict.fromkeys(v for v in cells[column] if v))
    return found[0] if len(found) == 1 else None


# Shown in the title when they have one value on a page (prompts have lines of their own).
FIXED = (*(a.name for a in axes.AXES if a.name not in ("prompt", "negative_prompt")), "model", "job")


def _title(cells: pd.DataFrame, layout: Layout, heading: str, candidates: list[str],
           run_cells: pd.DataFrame | None = None) -> Title:
    laid = {*layout.rows, *layout.cols, *layout.sheets}
    others = [c for c in candidates if c not in (*FIXED, *ENVIRONMENT, "sweep", "prompt", "negative_prompt")]
    fixed = []
    for axis in (*FIXED, *others):
        value = None if axis in laid else _single(cells, axis)
        if value is None or (axis == "repeat" and value == "0"):
            continue
        fixed.append(value if axis == "resolution" else f"{axis} {value}")
    env = []
    for column in ENVIRONMENT:
        found = sorted({v for v in cells.get(column, []) if v})
        if found and column not in laid:
            env.append(f"{column} {'/'.join(found)}")
    counts = cells["status"].value_counts()
    status = f"{len(cells)} cell{'s' if len(cells) != 1 else ''}: {counts.get('ok', 0)} ok"
    for word in ("failed", "missing"):
        if counts.get(word, 0):
            status += f" · {counts[word]} {word}"
    seconds = cells.loc[cells["status"] == "ok", "_seconds"].dropna()
    if len(seconds):
        status += f" · mean {seconds.mean():.2f} s per image"
    prompt = None if "prompt" in laid else _single(cells, "prompt")
    negative = None if "negative_prompt" in laid else _single(cells, "negative_prompt")
    legend = []
    every = run_cells if run_cells is not None else cells
    for axis in (a for a in (*layout.rows, *layout.cols, *layout.sheets) if _by_id(every, a)):
        ids = nm.ids(every, axis)
        legend += [f"{ids[v]}: {shown(v, axis)}" for v in order_values(cells, axis) if v in ids]
    return Title(heading, prompt, negative, " · ".join(fixed), " · ".join(env), status, tuple(legend))


def _slot(run: RunData, row: pd.Series, scale: float) -> Slot:
    h, w = row["_h"], row["_w"]
    if not (h > 0 and w > 0):  # unknown size (NaN or "native"): a square of the usual size
        h = w = 512
    disp = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = run.run_dir / row["image"] if row.get("image") else None
    # The timing model's seconds for this cell (sweep.report.timing), else what its call measured.
    fitted = row.get("_fitted", float("nan"))
    seconds = fitted if fitted == fitted else (row["_seconds"] if row["_seconds"] == row["_seconds"] else float("nan"))
    return Slot(str(row["cell_id"]), row["status"], str(row["resolution"]), disp, image,
                str(row.get("error", "")), float(seconds), str(row.get("_similarity", "") or ""), fitted == fitted)


def _paginate(n_rows: int, n_cols: int, max_cells: int) -> list[tuple[range, range]]:
    """Split along rows (and along columns only when one row alone exceeds max_cells)."""
    per_row = min(n_cols, max(1, max_cells))
    rows_per_page = max(1, max_cells // per_row)
    # Balance the parts (12 rows at 5 per page -> 4+4+4, not 5+5+2).
    rows_per_page = math.ceil(n_rows / math.ceil(n_rows / rows_per_page))
    return [(range(r, min(r + rows_per_page, n_rows)), range(c, min(c + per_row, n_cols)))
            for r in range(0, n_rows, rows_per_page) for c in range(0, n_cols, per_row)]


def safe(text: str, limit: int = 40) -> str:
    """File-name-safe text ([A-Za-z0-9._-]); long or altered text gets a short hash to stay distinct."""
    clean = _UNSAFE.sub("-", str(text)).strip("-.")
    if clean == str(text) and len(clean) <= limit:
        return clean or "none"
    digest = hashlib.sha1(str(text).encode()).hexdigest()[:8]
    return f"{clean[:limit].strip('-.')}-{digest}".strip("-")


def _layout_token(layout: Layout) -> str:
    parts = [f"{slot}-{'_'.join(safe(SHORT.get(a, a)) for a in axes)}"
             for slot, axes in (("rows", layout.rows), ("cols", layout.cols)) if axes]
    return "__".join(parts) or "single"


def _remove_stale(out_dir: Path, base: str, written: list[Path]) -> None:
    """A rebuild may need fewer parts than the last one: drop the old parts of this same sheet."""
    keep = set(written)
    pattern = re.compile(re.escape(base) + r"(_part\d+of\d+)?\.png")
    for path in out_dir.iterdir():
        if path not in keep and pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)


# --- drawing ---------------------------------------------------------------------------------------------


def _caption(slot: Slot, captions: bool, show_size: bool) -> str:
    parts = [slot.size] if show_size else []
    if slot.status == "ok" and captions and math.isfinite(slot.seconds):
        parts.append(f"≈{slot.seconds:.2f} s" if slot.fitted else f"{slot.seconds:.2f} s")
    if slot.status == "ok" and captions and slot.similarity:
        parts.append(slot.similarity)
    return " · ".join(parts)


def _fit_font(texts: list[list[str]], widths: list[int], style: Style, limit: float,
              bold: bool = True) -> tuple[tx.Font, list[list[str]], int]:
    """Largest font (down to 14 px) whose wrapped header fits `limit` px tall; returns font, lines, height."""
    px = style.px
    while True:
        f = tx.font(px, bold)
        wrapped = [[ln for line in lines for ln in tx.wrap(line, f, w - 2 * style.pad)]
                   for lines, w in zip(texts, widths, strict=True)]
        height = max((tx.block_size(w, f)[1] for w in wrapped), default=0) + 2 * style.pad
        if height <= limit or px <= MIN_PX:
            return f, wrapped, height
        px = max(MIN_PX, px - 2)


def render(row_text: list[list[str]], col_text: list[list[str]], slots: dict[tuple[int, int], Slot | None],
           title: Title, style: Style, *, captions: bool, show_size: bool) -> tuple[Image.Image, dict, dict]:
    """Draw one page. Returns the image, {cell_id: image box} and {cell_id: mark}."""
    n_rows, n_cols = max(1, len(row_text)), max(1, len(col_text))
    pad, gap, margin = style.pad, style.gap, style.margin
    header_font = tx.font(style.px, True)
    cap_font = tx.font(style.small_px)
    cap_text = {k: _caption(s, captions, show_size) for k, s in slots.items() if s is not None}
    cap_h = tx.line_height(cap_font) + pad if any(cap_text.values()) else 0

    # Column widths: the widest cell, caption or unbreakable header word of the column.
    col_w = []
    for j in range(n_cols):
        cells = [slots.get((i, j)) for i in range(n_rows)]
        w = max([s.disp[0] for s in cells if s] + [tx.width(cap_text.get((i, j), ""), cap_font) + 2 * pad
                                                     for i in range(n_rows)] + [8 * style.px])
        if col_text:
            w = max(w, max(tx.longest_word(t, header_font) for t in col_text[j]) + 2 * pad)
        col_w.append(w)
    img_h = [max([s.disp[1] for j in range(n_cols) if (s := slots.get((i, j)))] + [4 * style.px])
             for i in range(n_rows)]

    col_band, col_font, col_lines = 0, header_font, [[] for _ in range(n_cols)]
    if col_text:
        col_font, col_lines, col_band = _fit_font(col_text, col_w, style, max(0.45 * max(img_h), 120))

    row_band, row_font, row_lines = 0, header_font, [[] for _ in range(n_rows)]
    row_h = [h + cap_h for h in img_h]
    if row_text:
        natural = max(tx.width(line, header_font) for t in row_text for line in t) + 2 * pad
        words = max(tx.longest_word(line, header_font) for t in row_text for line in t) + 2 * pad
        # Short labels stay on one line; long ones (prompts) wrap in a band about one cell wide.
        cap = max(20 * style.px, min(max(col_w), 40 * style.px))
        row_band = int(max(words, min(natural, cap)))
        row_font, row_lines, _ = _fit_font(row_text, [row_band] * n_rows, style, max(row_h))
        row_h = [max(h, tx.block_size(lines, row_font)[1] + 2 * pad)
                 for h, lines in zip(row_h, row_lines, strict=True)]

    grid_w = (row_band + gap if row_text else 0) + sum(col_w) + gap * (n_cols - 1)
    grid_h = (col_band + gap if col_text else 0) + sum(row_h) + gap * (n_rows - 1)

    # Title: as wide as the grid, but never so narrow that a short grid gets a tower of text.
    f_head, f_body, f_small = tx.font(style.title_px, True), tx.font(style.px), tx.font(style.small_px)
    blocks = [(title.heading, f_head, INK)]
    if title.prompt is not None:
        blocks.append((f"prompt: {title.prompt}", f_body, INK))
    if title.negative:
        blocks.append((f"negative prompt: {title.negative}", f_body, INK))
    blocks += [(line, f_small, INK) for line in title.legend]
    for text, f, colour in ((title.fixed, f_body, INK), (title.environment, f_small, MUTED),
                            (title.status, f_small, MUTED)):
        if text:
            blocks.append((text, f, colour))
    natural = max(tx.width(t, f) for t, f, _ in blocks)
    width = max(grid_w, min(natural, 48 * style.px), 22 * style.px) + 2 * margin
    wrapped = [(tx.wrap(t, f, width - 2 * margin), f, c) for t, f, c in blocks]
    title_h = sum(tx.block_size(lines, f)[1] for lines, f, _ in wrapped)
    height = margin + title_h + gap + grid_h + margin

    image = Image.new("RGB", (int(width), int(height)), BG)
    draw = ImageDraw.Draw(image)
    y = margin
    for lines, f, colour in wrapped:
        tx.draw_block(draw, lines, f, (margin, y, width - margin, y + 10**6), colour, "left", "top")
        y += tx.block_size(lines, f)[1]

    gx = (width - grid_w) // 2
    top = margin + title_h + gap
    x_cols = []
    x = gx + (row_band + gap if row_text else 0)
    for w in col_w:
        x_cols.append(x)
        x += w + gap
    if col_text:
        for j, lines in enumerate(col_lines):
            box = (x_cols[j], top, x_cols[j] + col_w[j], top + col_band)
            draw.rectangle(box, fill=BAND)
            # A short label is centred over its column; a paragraph (a long prompt) reads better ragged-right.
            align = "left" if len(lines) > 2 else "center"
            tx.draw_block(draw, lines, col_font, _inset(box, pad), INK, align)
        top += col_band + gap

    boxes: dict[str, tuple[int, int, int, int]] = {}
    marks: dict[str, str] = {}
    y = top
    for i in range(n_rows):
        if row_text:
            box = (gx, y, gx + row_band, y + row_h[i])
            draw.rectangle(box, fill=BAND)
            tx.draw_block(draw, row_lines[i], row_font, _inset(box, pad), INK, "left", "center")
        for j in range(n_cols):
            slot = slots.get((i, j))
            area = (x_cols[j], y, x_cols[j] + col_w[j], y + row_h[i] - cap_h)
            draw.rectangle(area, fill=SLOT_BG)
            if slot is None:
                tx.draw_block(draw, ["—"], cap_font, area, GREY)
                continue
            box, mark = _draw_cell(image, draw, slot, area, style)
            boxes[slot.cell_id] = box
            if mark:
                marks[slot.cell_id] = mark
            caption = cap_text.get((i, j), "")
            if caption:
                colour = RED if slot.status == "failed" else MUTED
                tx.draw_block(draw, [caption], cap_font, (area[0], area[3], area[2], y + row_h[i]), colour)
        y += row_h[i] + gap
    return image, boxes, marks


def _inset(box: tuple[int, int, int, int], d: int) -> tuple[int, int, int, int]:
    return box[0] + d, box[1] + d, box[2] - d, box[3] - d


def _centred(area: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int]:
    x0 = area[0] + (area[2] - area[0] - w) // 2
    y0 = area[1] + (area[3] - area[1] - h) // 2
    return x0, y0, x0 + w, y0 + h


def _draw_cell(image: Image.Image, draw: ImageDraw.ImageDraw, slot: Slot, area: tuple[int, int, int, int],
               style: Style) -> tuple[tuple[int, int, int, int], str | None]:
    w, h = slot.disp
    box = _centred(area, w, h)
    if slot.status == "missing":
        _mark(draw, box, style, "missing", "not generated yet", GREY, GREY_BG, dashed=True)
        return box, "missing"
    if slot.status != "ok":
        _mark(draw, box, style, "FAILED", slot.error or "no error recorded", RED, RED_BG, cross=True)
        return box, "failed"
    picture = _load(slot.image)
    if picture is None:
        shown_path = str(slot.image.name) if slot.image else "no path recorded"
        _mark(draw, box, style, "NO IMAGE FILE", shown_path, AMBER, AMBER_BG, cross=True)
        return box, "no image"
    # Fit the real pixels into the slot's box without distortion (the file may differ from the table).
    ratio = min(w / picture.width, h / picture.height)
    size = (max(1, round(picture.width * ratio)), max(1, round(picture.height * ratio)))
    if size != picture.size:
        picture = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    box = _centred(area, *size)
    image.paste(picture, box[:2])
    return box, None


def _load(path: Path | None) -> Image.Image | None:
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _mark(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], style: Style, head: str, body: str,
          ink: str, fill: str, *, cross: bool = False, dashed: bool = False) -> None:
    """A marked empty cell: tinted box, border (solid or dashed), optional cross, wrapped text inside."""
    x0, y0, x1, y1 = box
    line = max(2, style.px // 8)
    draw.rectangle(box, fill=fill)
    if cross:
        draw.line((x0, y0, x1, y1), fill=RED_LINE if ink == RED else ink, width=line)
        draw.line((x0, y1, x1, y0), fill=RED_LINE if ink == RED else ink, width=line)
    if dashed:
        _dashed_rect(draw, box, ink, line, dash=3 * line)
    else:
        draw.rectangle(box, outline=ink, width=line)
    px = max(11, min(style.small_px, (x1 - x0) // 9))
    f_head, f_body = tx.font(px, True), tx.font(px)
    inner = _inset(box, line + max(3, style.pad // 2))
    room_w = inner[2] - inner[0]
    head_lines = tx.wrap(head, f_head, room_w)
    body_lines = tx.wrap(" ".join(body.split()), f_body, room_w)
    room_lines = (inner[3] - inner[1] - tx.block_size(head_lines, f_head)[1]) // tx.line_height(f_body)
    body_lines = tx.fit_lines(body_lines, f_body, max(0, room_lines))
    bw = max(tx.block_size(head_lines, f_head)[0], tx.block_size(body_lines, f_body)[0])
    bh = tx.block_size(head_lines, f_head)[1] + tx.block_size(body_lines, f_body)[1]
    text_box = _centred(inner, bw, bh)
    # A plate under the text keeps it readable over the cross.
    draw.rectangle(_inset(text_box, -3), fill=fill)
    tx.draw_block(draw, head_lines, f_head, (inner[0], text_box[1], inner[2], text_box[3]), ink,
                  "center", "top")
    tx.draw_block(draw, body_lines, f_body,
                  (inner[0], text_box[1] + tx.block_size(head_lines, f_head)[1], inner[2], text_box[3]),
                  ink, "center", "top")


def _dashed_rect(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], ink: str, width: int,
                 dash: int) -> None:
    x0, y0, x1, y1 = box
    for start in range(x0, x1, 2 * dash):
        end = min(start + dash, x1)
        draw.line((start, y0, end, y0), fill=ink, width=width)
        draw.line((start, y1, end, y1), fill=ink, width=width)
    for start in range(y0, y1, 2 * dash):
        end = min(start + dash, y1)
        draw.line((x0, start, x0, end), fill=ink, width=width)
        draw.line((x1, start, x1, end), fill=ink, width=width)
