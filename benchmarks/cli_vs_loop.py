"""The seed's own sweep through the CLI as a whole process, beside the loop a user writes, as a whole process.

    python benchmarks/cli_vs_loop.py                                   # model=sdxl_arch on CUDA, 1 pair
    python benchmarks/cli_vs_loop.py --model tiny --size 64 --pairs 2  # a dry run on the CPU

The tool: `python -m sweep sweep=steps_10_to_90 model=MODEL` (9 images, 10..90 steps, the config's prompt, seed
and guidance), start-up, model build, results.csv, sheets, plots and viewer included. The hand loop: a script
that builds the same model the same way (`sweep.models.builtin`, random weights: nothing to download), then one `pipe()`
call with a fresh CPU generator and one synchronous `image.save()` per image. They run in alternating pairs
(tool first, then loop first, ...); each process's wall time and peak RSS are printed, then the median ratio
tool / loop (target on a GPU: <= 0.8, issue 20) and the per-image intercept of the tool's `seconds` column
(a straight-line fit of seconds against steps; target <= 0.6 s on an H100/H200). The last pair's per-image
seconds of both are printed too (the loop times each `pipe()` call, synchronised), with a least-squares line
through all of them and a Theil-Sen line without the first call (the process's first call also pays the
device's warm-up: kernel selection, allocator growth), so a fixed cost per image can be told from a first-call
cost.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = list(range(10, 100, 10))  # sweeps/steps_10_to_90.yaml

HAND_LOOP = """
import sys, time, torch
from sweep import models
from sweep.models.devices import resolve_device, resolve_dtype
model, out, prompt = sys.argv[1], sys.argv[2], sys.argv[4]
size, seed, guidance = int(sys.argv[3]), int(sys.argv[5]), float(sys.argv[6])
device = resolve_device("auto")
dtype = resolve_dtype("auto", device)
if model == "tiny":
    pipe = models.build_tiny_pipeline().to(device=device, dtype=dtype)
else:
    pipe = models.build_sdxl_arch_pipeline(device=device, dtype=dtype)
pipe.set_progress_bar_config(disable=True)
sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
for n in [int(s) for s in sys.argv[7].split(",")]:
    sync()
    started = time.perf_counter()
    image = pipe(prompt=prompt, num_inference_steps=n, guidance_scale=guidance, height=size, width=size,
                 generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    sync()
    print(f"steps {n} seconds {time.perf_counter() - started:.4f}", flush=True)
    image.save(f"{out}/steps{n}.png")
"""


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB) and stdout of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        said, errors = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"cli_vs_loop: {' '.join(args[:4])} failed ({code}): {errors[-1500:]}")
    return wall, usage.ru_maxrss / 2**20, said  # ru_maxrss: KiB on Linux


def tool_seconds(results_csv: Path) -> list[tuple[float, float]]:
    """(steps, seconds) of the tool's images in the order they were made (results.csv's rows)."""
    with results_csv.open() as handle:
        return [(float(r["num_inference_steps"]), float(r["seconds"])) for r in csv.DictReader(handle)
                if r["status"] == "ok"]


def loop_seconds(said: str) -> list[tuple[float, float]]:
    """(steps, seconds) of the hand loop's calls, as it printed them."""
    return [(float(w[1]), float(w[3])) for w in (line.split() for line in said.splitlines())
            if len(w) == 4 and w[0] == "steps" and w[2] == "seconds"]


def fits(points: list[tuple[float, float]]) -> str:
    """A least-squares line through every call and a Theil-Sen line without the first, as 'a s/step + b s'."""
    from scipy.stats import theilslopes

    slope, offset = statistics.linear_regression([s for s, _ in points], [t for _, t in points])
    text = f"least squares {slope:.4f} s/step + {offset:.2f} s"
    rest = points[1:]
    if len(rest) >= 2:
        robust = theilslopes([t for _, t in rest], [s for s, _ in rest])
        text += f"; Theil-Sen without the first call {robust.slope:.4f} s/step + {robust.intercept:.2f} s"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sdxl_arch", choices=("sdxl_arch", "tiny"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--steps", default=",".join(map(str, STEPS)),
                        help="num_inference_steps of the sweep (default: the seed's 10..90; fewer for a dry run)")
    args = parser.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    prompt, seed, guidance = "a photo of an astronaut riding a horse on mars", 1234, 5.0  # conf/config.yaml
    tool_times, loop_times, last = [], [], {}
    with tempfile.TemporaryDirectory(prefix="sweep-cli-loop-") as tmp:
        for pair in range(args.pairs):
            run_dir = Path(tmp) / f"tool{pair}"
            loop_dir = Path(tmp) / f"loop{pair}"
            loop_dir.mkdir()
            tool = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", f"model={args.model}",
                    f"height={args.size}", f"width={args.size}", f"hydra.run.dir={run_dir}",
                    f"sweep.grid.num_inference_steps=[{args.steps}]"]
            loop = [sys.executable, "-c", HAND_LOOP, args.model, str(loop_dir), str(args.size), prompt, str(seed),
                    str(guidance), args.steps]
            order = [("tool", tool), ("loop", loop)] if pair % 2 == 0 else [("loop", loop), ("tool", tool)]
            for name, command in order:
                wall, rss, said = run(command, env)
                (tool_times if name == "tool" else loop_times).append(wall)
                print(f"pair {pair + 1}: {name:4} {wall:7.1f} s, peak RSS {rss:5.2f} GiB", flush=True)
                if name == "loop":
                    last["loop"] = loop_seconds(said)
            last["tool"] = tool_seconds(run_dir / "results.csv")
    ratios = [t / loop for t, loop in zip(tool_times, loop_times, strict=True)]
    for name in ("tool", "loop"):
        cells = ", ".join(f"{steps:g}: {seconds:.2f}" for steps, seconds in last[name])
        print(f"{name} seconds per image (steps: s, in the order made): {cells}")
        print(f"{name} fit: {fits(last[name])}")
    print(f"tool / hand loop, whole process: median {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}, {args.pairs} pairs; target on a GPU <= 0.8)")
    slope, offset = statistics.linear_regression([s for s, _ in last["tool"]], [t for _, t in last["tool"]])
    print(f"the tool's seconds column: {slope:.4f} s per step + {offset:.2f} s per image (target on an H100/H200: "
          "<= 0.6 s per image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
