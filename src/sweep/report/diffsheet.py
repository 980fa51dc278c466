"""The compare sheet: for the most different cells of two runs, A | B | an amplified difference map.

The map is the per-pixel largest channel difference, scaled so the row's largest difference is white (the
factor is written beside it), in the 'hot' palette (black, red, yellow, white). When a cell is shown smaller
than it is, the map keeps the largest difference of each block of pixels, so a one-pixel change stays visible.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sweep.report import similarity as sim
from sweep.report import text as tx
from sweep.report.atomic import save_image

MAX_ROWS = 8
# The text chunk that marks a compare.png as this tool's: only such a file is replaced or removed by a rerun.
MARK_KEY, MARK = "sdxl-sweep", "sweep.compare"


def is_ours(path: Path) -> bool:
    """A compare.png this tool wrote (it carries MARK)."""
    try:
        with Image.open(path) as image:
            return getattr(image, "text", {}).get(MARK_KEY) == MARK
    except Exception:
        return False
DISPLAY = 320  # longest edge of a shown image, px
MAX_UPSCALE = 4  # small images (the tiny model's 64 px) are enlarged, pixel-exact
PX = 16
BG, INK, MUTED, BAND, SLOT_BG = "white", "#1b1b1b", "#5f6368", "#e6ebf2", "#f2f3f5"


def _hot(values: np.ndarray) -> np.ndarray:
    """0..255 -> RGB: black, red, yellow, white."""
    t = values.astype(np.float32) / 255.0 * 3.0
    rgb = np.stack([np.clip(t, 0, 1), np.clip(t - 1, 0, 1), np.clip(t - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def _block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """Largest value of each factor x factor block (edges padded with zeros)."""
    if factor <= 1:
        return values
    h, w = values.shape
    padded = np.zeros((math.ceil(h / factor) * factor, math.ceil(w / factor) * factor), values.dtype)
    padded[:h, :w] = values
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).max(axis=(1, 3))


def _shown_size(width: int, height: int) -> tuple[int, int]:
    scale = min(DISPLAY / max(width, height), MAX_UPSCALE)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if size == image.size:
        return image
    smaller = size[0] < image.size[0]
    return image.resize(size, Image.Resampling.LANCZOS if smaller else Image.Resampling.NEAREST)


def diff_map(a: sim.Pixels, b: sim.Pixels, size: tuple[int, int]) -> tuple[Image.Image, float]:
    """The amplified map at `size`, and the amplification factor."""
    diff = sim.abs_diff(a.rgb, b.rgb).max(axis=2)
    top = int(diff.max())
    gain = 255.0 / top if top else 1.0
    factor = max(1, math.ceil(diff.shape[1] / size[0]))  # then only enlarged, pixel-exact
    small = _block_max(diff, factor)
    amplified = np.clip(small.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return _resize(Image.fromarray(_hot(amplified)), size), gain


def write_diff_sheet(run_a: Any, run_b: Any, table: Any, title: list[str], path: Path,
                     headers: tuple[str, str] = ("A", "B")) -> Path | None:
    """The sheet of the (up to MAX_ROWS) most different shared cells; None (and no file) when none differs."""
    differing = table[table["max_abs_diff"].notna()]
    differing = differing[differing["max_abs_diff"] > 0]
    if differing.empty:
        path.unlink(missing_ok=True)
        return None
    rows = differing.sort_values(["mean_abs_diff", "max_abs_diff"], ascending=False).head(MAX_ROWS)
    shared = int((table["in_a"] & table["in_b"]).sum())
    heading = (f"sweep.compare: the {len(rows)} most different of {shared} shared cells "
               f"({len(differing)} differ at all)")
    entries = []
    for _, row in rows.iterrows():
        a, b = sim.load(run_a.run_dir / row["image_a"]), sim.load(run_b.run_dir / row["image_b"])
        if a is None or b is None or not sim.same_size(a, b):
            continue  # changed on disk since the table was made
        size = _shown_size(*a.size)
        amplified, gain = diff_map(a, b, size)
        shown = [_resize(Image.fromarray(a.rgb), size), _resize(Image.fromarray(b.rgb), size), amplified]
        label = [str(row["cell_id"])] + ([str(row["job"])] if row["job"] else []) + [
            f"max abs diff {int(row['max_abs_diff'])} · mean {row['mean_abs_diff']:.3f}",
            f"SSIM {row['ssim']:.4f} · PSNR {row['psnr']:.1f} dB",
            f"map: |A − B| × {gain:.0f}",
        ]
        entries.append((label, shown))
    if not entries:
        path.unlink(missing_ok=True)
        return None
    return save_image(_render(heading, title, headers, entries), path, text={MARK_KEY: MARK})


def _render(heading: str, title: list[str], names: tuple[str, str],
            entries: list[tuple[list[str], list[Image.Image]]]) -> Image.Image:
    f_head, f_small = tx.font(round(PX * 1.3), True), tx.font(round(PX * 0.85))
    f_band = tx.font(PX, True)
    pad, gap, margin = 6, 8, 16
    col_w = max(max(im.width for _, ims in entries for im in ims), 14 * PX)
    label_w = 22 * PX
    grid_w = label_w + gap + 3 * col_w + 2 * gap
    width = grid_w + 2 * margin
    blocks = [(tx.wrap(heading, f_head, grid_w), f_head, INK)]
    blocks += [(tx.wrap(line, f_small, grid_w), f_small, MUTED) for line in title]
    title_h = sum(tx.block_size(lines, f)[1] for lines, f, _ in blocks)
    headers = [*names, "difference |A − B|, amplified (hot: black 0, white = row's max)"]
    header_lines = [tx.wrap(h, f_band, col_w - 2 * pad) for h in headers]
    band_h = max(tx.block_size(lines, f_band)[1] for lines in header_lines) + 2 * pad
    wrapped = [[ln for line in label for ln in tx.wrap(line, f_small, label_w - 2 * pad)] for label, _ in entries]
    row_h = [max(max(im.height for im in ims), tx.block_size(lines, f_small)[1] + 2 * pad)
             for (_, ims), lines in zip(entries, wrapped, strict=True)]
    height = margin + title_h + gap + band_h + gap + sum(row_h) + gap * (len(entries) - 1) + margin

    image = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(image)
    y = margin
    for lines, f, colour in blocks:
        tx.draw_block(draw, lines, f, (margin, y, width - margin, y + 10**6), colour, "left", "top")
        y += tx.block_size(lines, f)[1]
    y += gap
    x_cols = [margin + label_w + gap + j * (col_w + gap) for j in range(3)]
    for x, lines in zip(x_cols, header_lines, strict=True):
        draw.rectangle((x, y, x + col_w, y + band_h), fill=BAND)
        tx.draw_block(draw, lines, f_band, (x + pad, y + pad, x + col_w - pad, y + band_h - pad), INK)
    y += band_h + gap
    for (_, ims), lines, h in zip(entries, wrapped, row_h, strict=True):
        draw.rectangle((margin, y, margin + label_w, y + h), fill=BAND)
        tx.draw_block(draw, lines, f_small, (margin + pad, y + pad, margin + label_w - pad, y + h - pad), INK,
                      "left", "center")
        for x, im in zip(x_cols, ims, strict=True):
            draw.rectangle((x, y, x + col_w, y + h), fill=SLOT_BG)
            image.paste(im, (x + (col_w - im.width) // 2, y + (h - im.height) // 2))
        y += h + gap
    return image
