"""Time of the similarity metrics and of sweep.compare on 100 images at 1024x1024 (SPEC: seconds, on the CPU).

    python benchmarks/metrics.py                 # 10 seeds x 10 step counts, 1024x1024, best of 3
    python benchmarks/metrics.py --size 512 --runs 5

No model: the run directory is fabricated (results.csv + PNGs written at the runner's zlib level 4). Each image is
a smooth random field with detail that fades as "steps" grow, so SSIM varies as in a real steps sweep and PNG
decoding costs what a photo-like 1024 px image costs (~1.5 MB). Timed, each in a fresh state: the metrics step
of the report (choose the reference, score 100 images against it, seed spread over 45 pairs per step count,
write metrics.csv and seed_spread.csv), and `compare` of the run with itself and with a copy whose every image
differs (writes compare.csv and the sheet). Importing scikit-image/scipy is outside the timing (in the runner
process diffusers has already imported scipy); the first run of each is printed separately.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def fabricate(root: Path, size: int, seeds: int, steps: list[int], shift: int = 0) -> Path:
    """A run dir of seeds x steps images; `shift` adds +-shift noise to every pixel (a changed run)."""
    from sweep.rundir.results import COLUMNS

    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        coarse = rng.random((size // 32, size // 32, 3)) * 255
        base = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC),
                          np.float32)
        detail = rng.normal(0, 40, (size, size, 3)).astype(np.float32)
        for step in steps:
            image = base + detail * (steps[-1] / step - 1) / 4 + rng.normal(0, 4, (size, size, 3))
            if shift:
                image += np.random.default_rng(10_000 + seed * 100 + step).integers(-shift, shift + 1, image.shape)
            cell_id = f"p0_seed{seed}_steps{step}_cfg5_{size}x{size}"
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                root / "images" / f"{cell_id}.png", compress_level=4)
            rows.append({"cell_id": cell_id, "sweep": "bench", "prompt": "p", "negative_prompt": "", "seed": seed,
                         "num_inference_steps": step, "guidance_scale": 5, "height": size, "width": size,
                         "repeat": 0, "batch_size": 1, "seconds": round(0.05 * step, 3), "status": "ok", "error": "",
                         "image": f"images/{cell_id}.png", "model": "bench", "device": "cpu",
                         "dtype": "float16" if shift else "float32", "options": "none", "scheduler": "Euler",
                         "torch": "x", "diffusers": "x", "transformers": "x", "gpu": "", "finished_at": ""})
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


def time_metrics(run_dir: Path) -> float:
    from sweep.report import metrics as mx
    from sweep.report.data import load_run
    from sweep.report.reference import ReferenceSpec

    started = time.perf_counter()
    run = load_run(run_dir)
    reference, _ = mx.choose_reference(run, run.cells, ReferenceSpec())
    mx.write(mx.compute(run, run.cells, reference), run_dir)
    return time.perf_counter() - started


def time_compare(a: Path, b: Path, out: Path) -> float:
    from sweep.compare import compare

    started = time.perf_counter()
    compare(a, b, out=out)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", default="10,20,30,40,50,60,70,80,90,100")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    root = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    try:
        began = time.perf_counter()
        a = fabricate(root / "a", args.size, args.seeds, steps)
        b = fabricate(root / "b", args.size, args.seeds, steps, shift=2)
        n = args.seeds * len(steps)
        print(f"{n} images at {args.size}x{args.size} per run (made in {time.perf_counter() - began:.0f} s), "
              f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores")
        from skimage.metrics import structural_similarity  # noqa: F401  import cost kept out of the timings

        for label, fn in (("metrics (reference + seed spread)", lambda: time_metrics(a)),
                          ("compare, identical runs", lambda: time_compare(a, a, root / "same")),
                          ("compare, every image differs", lambda: time_compare(a, b, root / "diff"))):
            times = [fn() for _ in range(args.runs)]
            print(f"{label:36s} best {min(times):5.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
