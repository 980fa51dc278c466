"""Per-image seconds in results.csv grow in a straight line with the steps (they are comparable across cells).

    HF_HUB_OFFLINE=1 python benchmarks/seconds_per_step.py          # tiny model, native size, steps 10..90 x2

Each image's `seconds` is its cost to the sweep, whatever ran beside it, so the steps sweep should give a straight
line: the median per step count (two images each, a median shrugs off one stall) is fitted with a line and its
R^2 printed. Exit code 1 when R^2 < 0.85 or the slope is not positive. A timing claim, so it lives here and not
in tests/: on a busy machine the figure is noise (R^2 0.02 was seen with other processes on the 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from runner_vs_plain import compose  # noqa: E402  (benchmarks/ is the script's folder)

MIN_R2 = 0.85


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--repeat", type=int, default=2, help="images per step count")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from sweep.running.runner import run_sweep

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        run_dir = Path(work) / "run"
        cfg = compose(f"model={args.model}", "sweep=steps_10_to_90", f"sweep.grid.repeat={args.repeat}")
        summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
        table = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    medians = table.groupby("num_inference_steps")["seconds"].median()
    steps, seconds = medians.index.to_numpy(float), medians.to_numpy(float)
    slope, intercept = np.polyfit(steps, seconds, 1)
    residual = seconds - (slope * steps + intercept)
    r2 = 1 - (residual**2).sum() / ((seconds - seconds.mean()) ** 2).sum()
    print(f"load average before: {load:.2f}; {summary.made} images")
    for step, second in zip(steps, seconds, strict=True):
        print(f"  {int(step):3d} steps: {second:.3f} s/image (median)")
    print(f"slope {slope * 1000:.2f} ms/step, intercept {intercept:.3f} s, R^2 {r2:.3f} (target >= {MIN_R2})")
    return 0 if slope > 0 and r2 >= MIN_R2 else 1


if __name__ == "__main__":
    sys.exit(main())
