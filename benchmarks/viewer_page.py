"""The viewer at scale: a synthetic 1,000-image run dir, its index.html size, thumbnail time and paint times.

    python benchmarks/viewer_page.py                 # 10 seeds x 10 steps x 10 guidance, 1024x1024 PNGs
    python benchmarks/viewer_page.py --size 512 --keep /tmp/v1000
    python benchmarks/viewer_page.py --axes 5 --size 64 --keep /tmp/v5 --check /tmp/v5-shots   # layout checks

Writes 1,000 smooth-gradient PNGs (with an A1111 `parameters` chunk) and a results.csv as the runner would, then
times `write_viewer` twice (thumbnails made, then reused) and opens the page in headless Chromium (Debian's
`chromium`, driven by Playwright) several times: first contentful paint, the viewer's own "drawn" mark and the time
until every thumbnail in view has loaded, for the first view (10 x 10 images) and a view of all 1,000 images
(guidance as super-X). Medians over the loads are printed.

`--axes 5`: 4 long prompts x 2 samplers x 5 seeds x 5 steps x 5 guidance instead. `--check DIR`: instead of
timing, open the page at 1024x700 and 1440x900 and check what a user sees (fit without sideways scrolling,
sticky header rows that do not overlap once scrolled, a bad link's notice, the large view by keyboard alone),
saving a screenshot of each window size in DIR.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sweep.report.data import load_run
from sweep.report.result import Layout
from sweep.report.viewer import write_viewer
from sweep.rundir.results import COLUMNS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PROMPT = "a photo of an astronaut riding a horse on mars"
SEEDS, STEPS, GUIDANCE = range(1, 11), range(10, 101, 10), [1 + 0.5 * i for i in range(10)]
PROMPTS = [PROMPT, "an astronaut riding a horse on mars, oil painting in the style of the old masters, dramatic light",
           "a red fox in deep snow under tall pine trees at dawn, 35mm photograph, shallow depth of field",
           "isometric cutaway of a tiny lighthouse on a rocky island, soft pastel colours, highly detailed"]
SAMPLERS = ["Euler", "DPM++ 2M Karras"]


def shape(n_axes: int) -> list[tuple[str, str, int, int, float]]:
    """(prompt, sampler, seed, steps, guidance) of each of the 1,000 cells."""
    if n_axes == 5:
        return [(p, s, d, st, g) for p in PROMPTS for s in SAMPLERS for d in range(1, 6) for st in (10, 20, 30, 40, 50)
                for g in (3.0, 4.5, 6.0, 7.5, 9.0)]
    return [(PROMPT, "Euler", d, st, g) for g in GUIDANCE for st in STEPS for d in SEEDS]


def make_run(root: Path, size: int, n_axes: int = 3) -> None:
    """1,000 PNGs and results.csv/sweep.json in the runner's format."""
    (root / "images").mkdir(parents=True)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    rows, expected = [], []
    for n, (prompt, sampler, seed, steps, guidance) in enumerate(shape(n_axes)):
        cell_id = (f"p{PROMPTS.index(prompt)}-{sampler.replace(' ', '').replace('+', 'p')}_seed{seed}_steps{steps}"
                   f"_cfg{guidance:g}_{size}x{size}")
        image = f"images/{cell_id}.png"
        phase = n * 0.61803
        pixels = np.stack([np.outer(ramp, np.ones(size)) * (0.5 + 0.5 * np.sin(phase + k)) for k in range(3)], -1)
        info = PngInfo()
        info.add_text("parameters", f"{prompt}\nSteps: {steps}, Sampler: {sampler}, CFG scale: {guidance}, "
                                    f"Seed: {seed}, Size: {size}x{size}, Model: synthetic")
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / image, pnginfo=info, compress_level=4)
        row = {"cell_id": cell_id, "sweep": "viewer_1000", "prompt": prompt, "seed": seed,
               "num_inference_steps": steps, "guidance_scale": guidance, "height": size, "width": size,
               "repeat": 0, "batch_size": 4, "seconds": round(0.05 * steps, 3), "status": "ok", "image": image,
               "model": "synthetic", "device": "cuda", "dtype": "float16", "options": "none",
               "scheduler": sampler, "torch": "2.13.0", "diffusers": "0.42.1",
               "transformers": "5.24.0", "gpu": "none", "finished_at": "2026-01-01T00:00:00+00:00"}
        rows.append(row)
        expected.append({k: row[k] for k in ("cell_id", "prompt", "seed", "num_inference_steps", "guidance_scale",
                                             "height", "width", "repeat", "image", "sweep")})
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    grid = {k: list(dict.fromkeys(c[i] for c in shape(n_axes)))
            for i, k in enumerate(("prompt", "scheduler", "seed", "num_inference_steps", "guidance_scale"))}
    manifest = {"sweep": {"name": "viewer_1000", "grid": {k: v for k, v in grid.items() if len(v) > 1},
                          "layout": {"rows": "seed", "cols": "num_inference_steps", "sheets": "guidance_scale"}},
                "expected_cells": expected}
    (root / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")


def paint_times(page_url: str, loads: int) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    found = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = context.new_page()
            page.goto(page_url)
            page.wait_for_selector("html[data-ready]")
            # Thumbnails in view (lazy ones below the fold are not requested until scrolled to).
            page.wait_for_function("""() => [...document.querySelectorAll('#cells img')].every(i => {
                const r = i.getBoundingClientRect();
                return r.top > innerHeight || r.left > innerWidth || i.complete; })""")
            found.append(page.evaluate("""() => ({
                fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime,
                drawn: performance.getEntriesByName('sweep-viewer-drawn')[0].startTime,
                loaded: performance.now(),
                images: document.querySelectorAll('#cells img').length })"""))
            context.close()
        browser.close()
    return found


def check(page_url: str, shots: Path) -> bool:
    """What a user sees at 1024x700 and 1440x900; prints each check and returns whether all passed."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    ok = True

    def say(name: str, passed: bool, detail: str = "") -> None:
        nonlocal ok
        ok &= passed
        print(f"  {'ok  ' if passed else 'FAIL'} {name}{': ' + detail if detail else ''}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for width, height in ((1024, 700), (1440, 900)):
            print(f"{width}x{height}")
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            views = (("first view", ""), ("super X", "#x=num_inference_steps&y=seed&sx=guidance_scale"),
                     ("super X and Y", "#x=num_inference_steps&y=seed&sx=guidance_scale&sy=scheduler"))
            for name, view in views:
                page.goto(page_url + view)
                page.wait_for_selector("html[data-ready]")
                got = page.evaluate("""() => ({n: document.querySelectorAll('#cells [data-cell]').length,
                    sw: document.documentElement.scrollWidth, iw: innerWidth,
                    img: document.querySelector('#cells img').width,
                    note: document.getElementById('fit-note').hidden ? ''
                        : document.getElementById('fit-note').textContent})""")
                say(f"fit, {name}", got["sw"] <= got["iw"] and not got["note"],
                    f"{got['n']} images at {got['img']} px, page {got['sw']} px wide in {got['iw']}")
            page.evaluate("scrollTo(0, document.querySelector('#cells').getBoundingClientRect().top + scrollY + 150)")
            boxes = page.evaluate("""() => ['.axisrow', '.superhead', '.colhead', '.band'].map(s => {
                const r = document.querySelector('#cells ' + s).getBoundingClientRect();
                return [r.top, r.bottom]; })""")
            stacked = boxes[0][0] >= -0.5 and all(a[1] <= b[0] + 0.5 for a, b in zip(boxes, boxes[1:], strict=False))
            say("sticky rows stack after scrolling", stacked, " | ".join(f"{t:.0f}-{b:.0f}" for t, b in boxes))
            page.screenshot(path=str(shots / f"viewer_{width}x{height}.png"))
            page.goto(page_url + "#x=seed&y=seed&guidance_scale=6.5&scheduler=Heun")
            page.wait_for_selector("html[data-ready]")
            alert = page.locator("[role=alert]")
            say("bad link notice", alert.is_visible(), alert.text_content())
            page.goto(page_url + "#x=num_inference_steps&y=seed")
            page.wait_for_selector("html[data-ready]")
            page.focus("#cells [data-cell] >> nth=0")
            page.keyboard.press("Enter")
            opened = page.is_visible("#large")
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            trapped = page.evaluate("document.getElementById('large').contains(document.activeElement)")
            page.keyboard.press("Escape")
            back = page.evaluate("document.activeElement.matches('#cells [data-cell]')")
            say("keyboard open, Tab kept inside, Escape back to the image", opened and trapped and back)
            say("no page errors", not errors, "; ".join(errors))
            page.close()
        browser.close()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="PNG side in pixels (default 1024, SDXL's)")
    parser.add_argument("--loads", type=int, default=5, help="page loads per view (default 5)")
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it (default: a temp dir)")
    parser.add_argument("--axes", type=int, choices=(3, 5), default=3, help="3 (default) or 5 varying axes")
    parser.add_argument("--check", type=Path, help="check the layout at 1024x700 and 1440x900, screenshots here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="viewer1000-"))
    try:
        if not (root / "results.csv").is_file():
            start = time.perf_counter()
            make_run(root, args.size, args.axes)
            print(f"made 1,000 {args.size}x{args.size} PNGs in {time.perf_counter() - start:.1f} s -> {root}")
        layout = Layout(rows=("seed",), cols=("num_inference_steps",), sheets=("guidance_scale",))
        if args.check:
            page = write_viewer(load_run(root), layout)
            return 0 if check(page.as_uri(), args.check) else 1
        for label in ("first build (thumbnails made)", "rebuild (thumbnails reused)"):
            if label.startswith("first"):
                shutil.rmtree(root / "thumbs", ignore_errors=True)
            start = time.perf_counter()
            page = write_viewer(load_run(root), layout)
            print(f"{label}: {time.perf_counter() - start:.2f} s")
        thumbs = list((root / "thumbs").glob("*.jpg"))
        print(f"index.html: {page.stat().st_size / 1024:.0f} KiB; thumbs/: {len(thumbs)} files, "
              f"{sum(p.stat().st_size for p in thumbs) / 2**20:.1f} MiB")
        for name, view in (("first view, 10 x 10 images", ""),
                           ("all 1,000 images (super-X guidance)", "#x=num_inference_steps&y=seed&sx=guidance_scale")):
            times = paint_times(page.as_uri() + view, args.loads)
            med = {k: statistics.median(t[k] for t in times) for k in ("fcp", "drawn", "loaded")}
            print(f"{name}: {times[0]['images']} <img>; median of {len(times)} loads: first contentful paint "
                  f"{med['fcp']:.0f} ms, grid drawn {med['drawn']:.0f} ms, thumbnails in view loaded "
                  f"{med['loaded']:.0f} ms")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
