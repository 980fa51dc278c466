"""Text cost on a big contact sheet: 1,000 cells (40 prompts x 25 seeds, one page), ASCII or CJK prompts.

    python benchmarks/sheet_text.py [--repeat 3]

Draws the page without encoding it (`write_sheets` with a no-op save) and reports the best wall time of the
whole page and of the calls sheets.py makes into sweep.report.text (width, wrap, draw_block, ...; nested calls
counted once).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from report_fixtures import grid, make_run  # noqa: E402
from sweep.report import text as tx  # noqa: E402
from sweep.report.data import load_run  # noqa: E402
from sweep.report.layout import choose_layout, parse_slot  # noqa: E402
from sweep.report.sheets import style_for, write_sheets  # noqa: E402

ASCII = [f"prompt {i}: a photo of an astronaut riding a horse on mars, oil painting, evening light, detailed"
         for i in range(40)]
CJK = [f"{i}番: 火星で馬に乗る宇宙飛行士の写真, 油絵: 夕方の光, 高精細, 猫の写真 🐱 한국어 프롬프트" for i in range(40)]
PER_PAGE = ("runs", "_length", "_chain")
TIMED = ("width", "longest_word", "wrap", "block_size", "draw_block", "line_height", "fit_lines")


def timed_text() -> list[float]:
    """Wrap text.py's public functions with a timer that counts only the outermost call."""
    spent, depth = [0.0], [0]

    def wrapper(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
                depth[0] -= 1
        return inner

    for name in TIMED:
        setattr(tx, name, wrapper(getattr(tx, name)))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spent = timed_text()
    start = time.perf_counter()
    files = getattr(tx, "fallback_files", lambda: ())()
    for path in (str(tx.font(16).path), *files):
        getattr(tx, "coverage", lambda path: None)(path)
    print(f"ONCE: find fallback fonts and read their coverage: {time.perf_counter() - start:.3f} s ({files})")
    with tempfile.TemporaryDirectory() as tmp:
        for name, prompts in (("ascii", ASCII), ("cjk", CJK)):
            cells = grid(prompt=prompts, seed=list(range(25)), height=[64], width=[64])
            for i, c in enumerate(cells):
                c["cell_id"] = f"c{i}"
                c["image"] = f"images/c{i}.png"
            run = load_run(make_run(Path(tmp) / name, cells))
            sub = run.cells.copy()
            explicit = {"rows": parse_slot("rows", "prompt", run.usable_axes),
                        "cols": parse_slot("cols", "seed", run.usable_axes), "sheets": None}
            layout, deps = choose_layout(run, sub, explicit, None)
            best_total = best_text = float("inf")
            for _ in range(args.repeat):
                # Each page starts with empty measurement caches; fonts and their coverage stay loaded (once
                # per process: ONCE below).
                for cache in (getattr(tx, n, None) for n in PER_PAGE):
                    if cache is not None:
                        cache.cache_clear()
                spent[0] = 0.0
                start = time.perf_counter()
                pages = write_sheets(run, sub, layout, deps, scale=1.0, style=style_for(64), max_cells=1000,
                                     captions=True, out_dir=Path(tmp) / name / "sheets",
                                     save=lambda image, path: path)
                best_total = min(best_total, time.perf_counter() - start)
                best_text = min(best_text, spent[0])
            assert len(pages) == 1
            print(f"{name}: page {best_total:.3f} s, text {best_text:.3f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
