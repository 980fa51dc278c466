"""Peak memory of the runner as the grid grows: a 100-image and a 1,000-image sweep must peak alike (SPEC 8).

    HF_HUB_OFFLINE=1 python benchmarks/memory.py            # tiny model, 64x64, 1 step

Each sweep runs in a fresh process (`python -m sweep` as a user runs it, so nothing from an earlier sweep is
counted) and its peak resident set (VmHWM, read from /proc at exit, Linux only) is printed beside the other. The
whole run counts: model build, generation, PNG writing and the report (sheets, summary, plots). Exit code 1
when the 1,000-image peak is more than 10 % above the 100-image one.
"""

from __future__ import annotations

import argparse
import atexit
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1.10  # 1,000-image peak / 100-image peak
MARK = "peak_rss_kib="


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB (the kernel's high-water mark)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(images: int, run_dir: str, extra: list[str]) -> None:
    """Run the CLI in this process, printing the peak RSS when it exits (sys.exit included)."""
    atexit.register(lambda: print(f"{MARK}{peak_rss_kib()}", flush=True))
    sys.argv = [
        "sweep", "model=tiny", "sweep=seed_random", f"sweep.grid.seed=0..{images - 1}", "height=64", "width=64",
        "num_inference_steps=1", f"max_images={max(images, 1000)}", f"hydra.run.dir={run_dir}", *extra,
    ]
    from sweep.__main__ import EXIT, install_compact_errors, main

    install_compact_errors()  # what `python -m sweep` does around main()
    main()
    sys.exit(EXIT["code"])


def measure(images: int, extra: list[str]) -> tuple[int, float]:
    """Peak RSS (KiB) and wall seconds of one sweep of `images` images in a fresh process."""
    import time

    with tempfile.TemporaryDirectory(prefix="sweep-mem-") as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", str(images), str(Path(tmp) / "run"), *extra],
                              capture_output=True, text=True, env=env, cwd=REPO)
        seconds = time.perf_counter() - started
    peaks = [int(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not peaks:
        sys.exit(f"the {images}-image sweep failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return peaks[-1], seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated image counts, smallest first")
    parser.add_argument("--child", nargs=2, metavar=("IMAGES", "RUN_DIR"), help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    if args.child:
        child(int(args.child[0]), args.child[1], extra)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"tiny model, 64x64, 1 step, one fresh `python -m sweep` process per sweep {' '.join(extra)}".rstrip())
    # A 1-image sweep holds everything but the images (interpreter, torch, model, report): what grows above it
    # is what the sweep keeps per image, which the ratio alone would hide behind ~0.5 GB of fixed cost.
    base, _ = measure(1, extra)
    print(f"{1:6d} image:  peak RSS {base / 1024:7.1f} MiB  (fixed cost)", flush=True)
    peaks = {}
    for images in sizes:
        peaks[images], seconds = measure(images, extra)
        above = (peaks[images] - base) / 1024
        print(f"{images:6d} images: peak RSS {peaks[images] / 1024:7.1f} MiB  ({above:+.1f} MiB above 1 image; "
              f"{seconds:.1f} s wall)", flush=True)
    ratio = peaks[sizes[-1]] / peaks[sizes[0]]
    ok = ratio <= LIMIT
    print(f"peak RSS {sizes[-1]} / {sizes[0]} images: {ratio:.3f}  target <= {LIMIT}  {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
