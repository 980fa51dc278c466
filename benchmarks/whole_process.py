"""The tool as a whole process against the hand-written loop as a whole process (what a user feels).

    python benchmarks/whole_process.py [--pairs 3] [--seeds 8] [--steps 10 20 30] [--size 256]

Both run on the same small SDXL-architecture model that the tests never use (SDXL's block layout, other seeded
weights), saved with `save_pretrained` and loaded from disk (`model.path=` for the tool). The hand loop is the
diffusers tutorial's: load the pipeline, then one `pipe(...)` call with a fresh CPU generator and one
`image.save(...)` per image. The tool is `python -m sweep ... model.path=DIR`, start-up, model load, results.csv,
sheets, plots and viewer included. The two run in alternating pairs (tool first, then loop first, ...), and
each process's wall time and peak RSS (`os.wait4`) are measured; the median and range of the ratios are printed.

It refuses to measure on a busy machine (1-minute load average above --max-load before it starts): under
contention the loop's OpenMP threads stall and every ratio flatters the tool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a photo of an astronaut riding a horse on mars"
TARGETS = {"wall": 0.5, "rss": 1.3}  # tool / hand loop (issue 16, SPEC section 8)

HAND_LOOP = """
import sys, torch
from diffusers import StableDiffusionXLPipeline
folder, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
seeds = [int(s) for s in sys.argv[4].split(",")]
steps = [int(s) for s in sys.argv[5].split(",")]
pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
pipe.set_progress_bar_config(disable=True)
for seed in seeds:
    for n in steps:
        image = pipe(prompt=PROMPT, num_inference_steps=n, guidance_scale=5.0, height=size, width=size,
                     generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        image.save(f"{out}/seed{seed}_steps{n}.png")
""".replace("PROMPT", repr(PROMPT))


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--max-load", type=float, default=0.5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > args.max_load:
        print(f"refusing to measure: load average {load:.2f} > {args.max_load} (a busy machine flatters the tool; "
              "stop other work, or wait, and run again)", file=sys.stderr)
        return 2
    # The tool of this checkout, whatever sdxl-sweep the interpreter has installed (a fresh clone measures itself).
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONPATH": path}
    seeds = ",".join(str(s) for s in range(1, args.seeds + 1))
    steps = ",".join(str(s) for s in args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model"
        sys.path.insert(0, str(ROOT / "src"))
        from sweep.models import build_tiny_layout_pipeline

        build_tiny_layout_pipeline(seed=11).save_pretrained(model)
        tool = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", f"model.path={model}",
                f"height={args.size}", f"width={args.size}", f"sweep.grid.seed=[{seeds}]",
                f"sweep.grid.num_inference_steps=[{steps}]"]
        loop = [sys.executable, "-c", HAND_LOOP, str(model), "", str(args.size), seeds, steps]
        results: dict[str, list[tuple[float, float]]] = {"tool": [], "loop": []}
        for pair in range(args.pairs):
            order = ("tool", "loop") if pair % 2 == 0 else ("loop", "tool")
            for name in order:
                out = work / f"{name}{pair}"
                out.mkdir()
                argv = [*tool, f"hydra.run.dir={out}"] if name == "tool" else [*loop[:4], str(out), *loop[5:]]
                results[name].append(run(argv, env))
            (tw, tr), (lw, lr) = results["tool"][-1], results["loop"][-1]
            print(f"pair {pair + 1}: tool {tw:.2f} s {tr:.0f} MiB, loop {lw:.2f} s {lr:.0f} MiB -> wall {tw / lw:.3f}, "
                  f"peak RSS {tr / lr:.3f}", flush=True)
    walls = [t[0] / lo[0] for t, lo in zip(results["tool"], results["loop"], strict=True)]
    rss = [t[1] / lo[1] for t, lo in zip(results["tool"], results["loop"], strict=True)]
    ok = statistics.median(walls) <= TARGETS["wall"] and statistics.median(rss) <= TARGETS["rss"]
    print(f"{args.seeds} seeds x steps {steps} at {args.size}x{args.size}, {args.pairs} alternating pairs:")
    print(f"  wall time tool/loop: median {statistics.median(walls):.3f} (range {min(walls):.3f}-{max(walls):.3f}), "
          f"target <= {TARGETS['wall']}")
    print(f"  peak RSS  tool/loop: median {statistics.median(rss):.3f} (range {min(rss):.3f}-{max(rss):.3f}), "
          f"target <= {TARGETS['rss']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
