"""The tool and the hand loop on a CPU that other processes keep busy (issue 22: no collapse under contention).

    python benchmarks/contention.py [--burners 2] [--runs 1]

Times, as whole processes, the README's `python -m sweep sweep=steps_10_to_90 model=tiny height=64 width=64`
and the hand loop a user writes for the same 9 images (benchmarks/whole_process.py's: load the pipeline, one
`pipe(...)` and one `save` per image; here on the tiny model saved to a folder), first on the machine as it is
("quiet"), then with --burners CPU-bound processes (`while True: pass`) running beside them ("loaded").
Targets: the tool loaded takes at most 2x its quiet time, and no longer than the hand loop loaded.

OMP_NUM_THREADS is removed from both processes' environment (set, it is the user's choice and the tool keeps
it; sweep.running.cpu_threads). The tool's chosen thread count is read back from its results.csv. "Quiet" is only as
quiet as the machine: the load average at the start is printed; on a shared machine the figures are rough.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import HAND_LOOP, ROOT, run  # noqa: E402  (the same hand loop and process timing)

STEPS = "10,20,30,40,50,60,70,80,90"
SEED = "1234"
TARGET_TOOL_LOADED_OVER_QUIET = 2.0


def burners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.wait()


def threads_used(run_dir: Path) -> str:
    with (run_dir / "results.csv").open(newline="") as handle:
        return "/".join(sorted({row.get("threads", "") for row in csv.DictReader(handle)})) or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the loaded runs")
    parser.add_argument("--runs", type=int, default=1, help="runs of each variant per state (the median counts)")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; {args.burners} burner(s) "
          f"when loaded; steps_10_to_90 at {args.size}x{args.size} (9 images)", flush=True)
    times: dict[tuple[str, str], list[float]] = {}
    threads: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-contention-") as tmp:
        work = Path(tmp)
        model = work / "tiny"
        sys.path.insert(0, str(ROOT / "src"))
        from sweep.models.builtin import build_tiny_pipeline

        build_tiny_pipeline().save_pretrained(model)
        for state in ("quiet", "loaded"):
            running = burners(args.burners) if state == "loaded" else []
            try:
                time.sleep(1.0 if running else 0)  # let the burners take the cores
                for attempt in range(args.runs):
                    out = work / f"tool-{state}-{attempt}"
                    tool = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", "model=tiny",
                            f"height={args.size}", f"width={args.size}", f"hydra.run.dir={out}"]
                    times.setdefault(("tool", state), []).append(run(tool, env)[0])
                    threads[state] = threads_used(out)
                    images = work / f"loop-{state}-{attempt}"
                    images.mkdir()
                    loop = [sys.executable, "-c", HAND_LOOP, str(model), str(images), str(args.size), SEED, STEPS]
                    times.setdefault(("loop", state), []).append(run(loop, env)[0])
                    print(f"{state} {attempt + 1}: tool {times['tool', state][-1]:.2f} s "
                          f"({threads[state]} torch threads), hand loop {times['loop', state][-1]:.2f} s",
                          flush=True)
            finally:
                stop(running)
    best = {key: statistics.median(values) for key, values in times.items()}
    tool_ratio = best["tool", "loaded"] / best["tool", "quiet"]
    loop_ratio = best["loop", "loaded"] / best["loop", "quiet"]
    versus_loop = best["tool", "loaded"] / best["loop", "loaded"]
    print(f"tool:      quiet {best['tool', 'quiet']:.2f} s, loaded {best['tool', 'loaded']:.2f} s -> {tool_ratio:.2f}x "
          f"(target <= {TARGET_TOOL_LOADED_OVER_QUIET:g}x)")
    print(f"hand loop: quiet {best['loop', 'quiet']:.2f} s, loaded {best['loop', 'loaded']:.2f} s -> {loop_ratio:.2f}x")
    print(f"tool loaded / hand loop loaded: {versus_loop:.2f} (target <= 1)")
    ok = tool_ratio <= TARGET_TOOL_LOADED_OVER_QUIET and versus_loop <= 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
