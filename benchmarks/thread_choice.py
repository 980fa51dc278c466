"""The tool's own thread choice against each fixed thread count, on a CPU other processes keep busy (issue 37).

    python benchmarks/thread_choice.py [--burners 2] [--rounds 2] [--size 64]

Runs the README's `python -m sweep sweep=steps_10_to_90 model=tiny` (9 images) as whole processes with
--burners CPU-bound processes beside them, three ways per round, in turn: OMP_NUM_THREADS=1, OMP_NUM_THREADS=N
(torch's own count, N = the cores), and without OMP_NUM_THREADS (the tool chooses: sweep.running.cpu_threads samples
the load, then times one UNet call per candidate count and keeps the fastest). Prints each run's wall seconds
and the count the tool chose (results.csv's `threads`), then the worst ratio of the tool's own run to the
better fixed count of the same round. Target: at most 2x (issue 37 item 5). Each round's runs are side by side
in time, so the machine's other load hits all three alike; on a shared machine the figures are rough.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contention import burners, stop, threads_used  # noqa: E402
from whole_process import ROOT  # noqa: E402

TARGET = 2.0


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, exit code and the last line of stderr of one child process (a failed image is exit 1:
    its time still counts)."""
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail = [line for line in proc.stderr.splitlines() if line.strip() and "img/s" not in line and "s/img" not in line]
    return time.perf_counter() - started, proc.returncode, (tail[-1] if tail else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the runs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    base.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
                PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p))
    ways = {"1 thread": {"OMP_NUM_THREADS": "1"}, f"{cores} threads": {"OMP_NUM_THREADS": str(cores)},
            "tool's choice": {}}
    print(f"{cores} usable CPUs, load average {os.getloadavg()[0]:.1f} at the start, {args.burners} burner(s); "
          f"steps_10_to_90 model=tiny at {args.size}x{args.size} (9 images)", flush=True)
    worst = 0.0
    running = burners(args.burners)
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-threads-") as tmp:
            for n in range(args.rounds):
                seconds: dict[str, float] = {}
                for way, extra in ways.items():
                    out = Path(tmp) / f"{n}-{way.replace(' ', '_').replace(chr(39), '')}"
                    tool = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", "model=tiny",
                            f"height={args.size}", f"width={args.size}", f"hydra.run.dir={out}"]
                    seconds[way], code, last = run(tool, {**base, **extra})
                    print(f"round {n + 1}: {way:>13}: {seconds[way]:6.2f} s (threads {threads_used(out)}), "
                          f"load average {os.getloadavg()[0]:.1f}" + (f"; exit {code}: {last}" if code else ""),
                          flush=True)
                fixed = min(v for k, v in seconds.items() if k != "tool's choice")
                ratio = seconds["tool's choice"] / fixed
                worst = max(worst, ratio)
                print(f"round {n + 1}: tool's choice / better fixed count = {ratio:.2f}x", flush=True)
    finally:
        stop(running)
    print(f"worst ratio {worst:.2f}x (target <= {TARGET:g}x)")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
