"""The tool as a whole process against the hand-written loop as a whole process (what a user feels).

    python benchmarks/whole_process.py [--pairs 3] [--seeds 8] [--steps 10 20 30] [--size 256] [--baseline DIR]

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
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. `git worktree add /tmp/old HEAD~3`) "
                        "whose tool runs in the same rotation: what a change bought, on the same machine state")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > args.max_load:
        print(f"refusing to measure: load average {load:.2f} > {args.max_load} (a busy machine flatters the tool; "
              "stop other work, or wait, and run again)", file=sys.stderr)
        return 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    seeds = ",".join(str(s) for s in range(1, args.seeds + 1))
    steps = ",".join(str(s) for s in args.steps)
    # Each tool is its own checkout's, whatever sdxl-sweep the interpreter has installed (a fresh clone measures
    # itself).
    checkouts = {"tool": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model"
        sys.path.insert(0, str(ROOT / "src"))
        from sweep.models.builtin import build_tiny_layout_pipeline

        build_tiny_layout_pipeline(seed=11).save_pretrained(model)
        tool = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", f"model.path={model}",
                f"height={args.size}", f"width={args.size}", f"sweep.grid.seed=[{seeds}]",
                f"sweep.grid.num_inference_steps=[{steps}]"]
        loop = [sys.executable, "-c", HAND_LOOP, str(model), "", str(args.size), seeds, steps]
        names = [*checkouts, "loop"]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for pair in range(args.pairs):
            shift = pair % len(names)  # each variant takes each place in the order in turn
            for name in names[shift:] + names[:shift]:
                out = work / f"{name}{pair}"
                out.mkdir()
                if name == "loop":
                    argv, child_env = [*loop[:4], str(out), *loop[5:]], env
                else:
                    argv = [*tool, f"hydra.run.dir={out}"]
                    child_env = {**env, "PYTHONPATH": os.pathsep.join(
                        p for p in (str(checkouts[name] / "src"), os.environ.get("PYTHONPATH", "")) if p)}
                results[name].append(run(argv, child_env))
            lw, lr = results["loop"][-1]
            parts = [f"{name} {w:.2f} s {r:.0f} MiB (wall {w / lw:.3f}, peak RSS {r / lr:.3f})"
                     for name in checkouts for w, r in results[name][-1:]]
            print(f"pair {pair + 1}: loop {lw:.2f} s {lr:.0f} MiB; " + "; ".join(parts), flush=True)
    print(f"{args.seeds} seeds x steps {steps} at {args.size}x{args.size}, {args.pairs} alternating pairs:")
    ok = True
    for name in checkouts:
        walls = [t[0] / lo[0] for t, lo in zip(results[name], results["loop"], strict=True)]
        rss = [t[1] / lo[1] for t, lo in zip(results[name], results["loop"], strict=True)]
        print(f"  {name}: wall time / loop: median {statistics.median(walls):.3f} (range {min(walls):.3f}-"
              f"{max(walls):.3f}), target <= {TARGETS['wall']}")
        print(f"  {name}: peak RSS  / loop: median {statistics.median(rss):.3f} (range {min(rss):.3f}-"
              f"{max(rss):.3f}), target <= {TARGETS['rss']}")
        if name == "tool":
            ok = statistics.median(walls) <= TARGETS["wall"] and statistics.median(rss) <= TARGETS["rss"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
