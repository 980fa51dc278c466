"""The runner against the loop users write by hand, on the same model in one process (SPEC section 8).

    HF_HUB_OFFLINE=1 python benchmarks/runner_vs_plain.py            # tiny model, 4 seeds x 3 steps, 256x256

The plain loop is the standard diffusers tutorial's pattern: one `pipe(...)` call with a fresh CPU generator
and one `image.save(...)` (PIL defaults) per image. The runner is called as the CLI calls it: a config composed
by Hydra from conf/ and `sweep.running.runner.run_sweep(cfg, run_dir)`, with its progress bar, its PNG metadata,
results.csv and the report (sheets, summary, plots) all inside the timed call. Both use the one pipeline object
that `sweep.models.pipeline.load` caches (the runner finds it there), so weights and their memory layout are the same.

What is compared, fairly: both make the same 12 images (pixel-identical with batch_size=1, checked and printed)
and write one PNG per image. The plain loop saves with PIL's defaults (zlib level 6, no text); the runner's PNGs
carry ~1 KB of parameters as text chunks and use zlib level 4, which at 256x256 costs the same (~12 ms per image
either way; level 4 pays off at 1024x1024). The runner also writes results.csv, sweep.json and the report, and
all of that is inside its time. The pipeline's own per-call progress bar is off for both (the runner turns it
off on the shared pipeline), which if anything favours the plain loop.

Each variant is warmed up once, then timed `--runs` times, interleaved so drift in machine load hits all of them
alike; the best run is the figure (the least disturbed by other processes), min/max of the paired ratios are
printed too. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PROMPT = "a photo of an astronaut riding a horse on mars"
TARGETS = {"batched": 0.5, "batch_size=1": 1.05}  # runner/plain wall time, SPEC section 8


def compose(*overrides: str):
    """The config `python -m sweep ...` would compose for these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import sweep.planning.schema  # noqa: F401  registers the structured schema
    from sweep.paths import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def grid_overrides(args: argparse.Namespace) -> list[str]:
    seeds = ",".join(str(s) for s in range(1, args.seeds + 1))
    return [
        f"model={args.model}", "sweep=seeds_steps_guidance", f"prompt={PROMPT}",
        f"sweep.grid.seed=[{seeds}]", f"sweep.grid.num_inference_steps=[{args.steps}]",
        "sweep.grid.guidance_scale=null", "guidance_scale=5.0", f"height={args.size}", f"width={args.size}",
        "sweep.layout.sheets=null",
    ]


def plain_loop(pipe, seeds: list[int], steps: list[int], size: int, out: Path) -> None:
    """What a user writes: one call and one save per image (diffusers SDXL tutorial)."""
    import torch

    for num_inference_steps in steps:
        for seed in seeds:
            generator = torch.Generator("cpu").manual_seed(seed)
            image = pipe(prompt=PROMPT, num_inference_steps=num_inference_steps, guidance_scale=5.0,
                         height=size, width=size, generator=generator).images[0]
            image.save(out / f"seed{seed}_steps{num_inference_steps}.png")


def runner(cfg, loops: list[float] | None = None) -> Callable[[Path], None]:
    """run_sweep as the CLI calls it; `loops` collects each run's generation-loop seconds (summary.seconds)."""
    from sweep.running.runner import run_sweep

    def run(out: Path) -> None:
        # The CLI's progress bar is drawn (to a buffer, to keep this output readable).
        with contextlib.redirect_stderr(io.StringIO()):
            summary = run_sweep(cfg, out, echo=lambda _: None)
        if not summary.ok or summary.made != summary.total:
            raise SystemExit(f"runner failed: {summary.lines()}")
        if loops is not None:
            loops.append(summary.seconds)

    return run


def timed(fn: Callable[[Path], None], scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch))
    started = time.perf_counter()
    fn(out)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return seconds


def check_same_images(pipe, cfg, seeds: list[int], steps: list[int], size: int, scratch: Path) -> int:
    """Max per-channel difference between batch_size=1 runner images and plain calls (must be 0)."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    out = Path(tempfile.mkdtemp(dir=scratch))
    plain = out / "plain"
    plain.mkdir()
    plain_loop(pipe, seeds, steps, size, plain)
    runner(cfg)(out / "runner")
    table = pd.read_csv(out / "runner" / "results.csv")
    worst = 0
    for row in table.itertuples():
        a = np.asarray(Image.open(out / "runner" / row.image).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(plain / f"seed{row.seed}_steps{row.num_inference_steps}.png"), dtype=np.int16)
        worst = max(worst, int(np.abs(a - b).max()))
    shutil.rmtree(out)
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant (best one counts)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", default="10,20,30", help="comma-separated num_inference_steps")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both (0: torch's default, one per core). On a machine shared with "
                             "other busy processes, 1 avoids OpenMP threads waiting on each other")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from sweep.models import pipeline

    seeds = list(range(1, args.seeds + 1))
    steps = [int(s) for s in args.steps.split(",")]
    base = grid_overrides(args)
    batched_cfg = compose(*base)
    single_cfg = compose(*base, "batch_size=1")
    loaded = pipeline.load(batched_cfg.model)  # the object run_sweep finds in the cache
    pipe = loaded.pipe
    count = len(seeds) * len(steps)
    print(f"{count} images ({len(seeds)} seeds x steps {steps}) at {args.size}x{args.size}, model {args.model}, "
          f"device {loaded.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; best of {args.runs} runs")

    loops: dict[str, list[float]] = {"batched": [], "batch_size=1": []}
    variants: dict[str, Callable[[Path], None]] = {
        "plain": lambda out: plain_loop(pipe, seeds, steps, args.size, out),
        "batched": runner(batched_cfg, loops["batched"]),
        "batch_size=1": runner(single_cfg, loops["batch_size=1"]),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        scratch = Path(tmp)
        diff = check_same_images(pipe, single_cfg, seeds, steps, args.size, scratch)  # also the warm-up
        for fn in variants.values():
            timed(fn, scratch)
        for collected in loops.values():
            collected.clear()  # warm-up runs
        for run in range(args.runs):
            for name, fn in variants.items():
                times[name].append(timed(fn, scratch))
            print(f"run {run + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)

    plain = times["plain"]
    print(f"{'variant':14} {'best s':>8} {'s/image':>8} {'runs (s)'}")
    for name, runs in times.items():
        print(f"{name:14} {min(runs):8.3f} {min(runs) / count:8.4f} " + " ".join(f"{t:.2f}" for t in runs))
    failed = False
    for name, target in TARGETS.items():
        # Ratio of bests, and min/max over paired runs (run i of the runner against run i of the loop).
        best = min(times[name]) / min(plain)
        paired = [r / p for r, p in zip(times[name], plain, strict=True)]
        ok = best <= target
        failed |= not ok
        print(f"runner/plain {name:13} {best:.3f} (paired runs {min(paired):.3f}..{max(paired):.3f})  "
              f"target <= {target}  {'PASS' if ok else 'FAIL'}")
    for name, collected in loops.items():
        # What the runner does besides generating (setup, sweep.json, and mostly the report: sheets, summary.csv,
        # plots); the generation loop alone is the like-for-like part of the comparison.
        rest = [t - g for t, g in zip(times[name], collected, strict=True)]
        print(f"  {name}: generation loop alone {min(collected) / min(plain):.3f} of plain; setup + report "
              f"{min(rest):.2f}..{max(rest):.2f} s of each run")
    print(f"batch_size=1 images vs plain calls: max difference {diff}/255 "
          f"({'PASS: pixel-identical' if diff == 0 else 'FAIL'})")
    return 1 if failed or diff else 0


if __name__ == "__main__":
    sys.exit(main())
