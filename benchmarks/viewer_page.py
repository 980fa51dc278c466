"""The viewer at scale: a synthetic 1,000-image run dir, its index.html size, thumbnail time and paint times.

    python benchmarks/viewer_page.py                 # 10 seeds x 10 steps x 10 guidance, 1024x1024 PNGs
    python benchmarks/viewer_page.py --size 512 --keep /tmp/v1000

Writes 1,000 smooth-gradient PNGs (with an A1111 `parameters` chunk) and a results.csv as the runner would, then
times `write_viewer` twice (thumbnails made, then reused) and opens the page in headless Chromium (Debian's
`chromium`, driven by Playwright) several times: first contentful paint, the viewer's own "drawn" mark and the time
until every thumbnail in view has loaded, for the first view (10 x 10 images) and a view of all 1,000 images
(guidance as super-X). Medians over the loads are printed.
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
from sweep.results import COLUMNS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PROMPT = "a photo of an astronaut riding a horse on mars"
SEEDS, STEPS, GUIDANCE = range(1, 11), range(10, 101, 10), [1 + 0.5 * i for i in range(10)]


def make_run(root: Path, size: int) -> None:
    """1,000 PNGs and results.csv/sweep.json in the runner's format."""
    (root / "images").mkdir(parents=True)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    rows, expected = [], []
    for n, (guidance, steps, seed) in enumerate((g, s, d) for g in GUIDANCE for s in STEPS for d in SEEDS):
        cell_id = f"p0-a-photo-of-an-astronaut_seed{seed}_steps{steps}_cfg{guidance:g}_{size}x{size}"
        image = f"images/{cell_id}.png"
        phase = n * 0.61803
        pixels = np.stack([np.outer(ramp, np.ones(size)) * (0.5 + 0.5 * np.sin(phase + k)) for k in range(3)], -1)
        info = PngInfo()
        info.add_text("parameters", f"{PROMPT}\nSteps: {steps}, Sampler: Euler, CFG scale: {guidance}, "
                                    f"Seed: {seed}, Size: {size}x{size}, Model: synthetic")
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / image, pnginfo=info, compress_level=4)
        row = {"cell_id": cell_id, "sweep": "viewer_1000", "prompt": PROMPT, "seed": seed,
               "num_inference_steps": steps, "guidance_scale": guidance, "height": size, "width": size,
               "repeat": 0, "batch_size": 4, "seconds": round(0.05 * steps, 3), "status": "ok", "image": image,
               "model": "synthetic", "device": "cuda", "dtype": "float16", "options": "none",
               "scheduler": "EulerDiscreteScheduler", "torch": "2.13.0", "diffusers": "0.42.1",
               "transformers": "5.24.0", "gpu": "none", "finished_at": "2026-01-01T00:00:00+00:00"}
        rows.append(row)
        expected.append({k: row[k] for k in ("cell_id", "prompt", "seed", "num_inference_steps", "guidance_scale",
                                             "height", "width", "repeat", "image", "sweep")})
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    manifest = {"sweep": {"name": "viewer_1000", "grid": {"seed": list(SEEDS), "num_inference_steps": list(STEPS),
                                                          "guidance_scale": GUIDANCE},
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="PNG side in pixels (default 1024, SDXL's)")
    parser.add_argument("--loads", type=int, default=5, help="page loads per view (default 5)")
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it (default: a temp dir)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="viewer1000-"))
    try:
        if not (root / "results.csv").is_file():
            start = time.perf_counter()
            make_run(root, args.size)
            print(f"made 1,000 {args.size}x{args.size} PNGs in {time.perf_counter() - start:.1f} s -> {root}")
        layout = Layout(rows=("seed",), cols=("num_inference_steps",), sheets=("guidance_scale",))
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
