"""A stop in the middle of a compile: does `model.compile=true` end within 5 s of SIGTERM, with its one line?

    python benchmarks/compile_stop.py                         # model=sdxl_arch on CUDA
    python benchmarks/compile_stop.py --model tiny --size 64  # on the CPU (inductor compiles C++ there)

Starts `python -m sweep ... model.compile=true` with an empty inductor cache (so it really compiles), waits
until the model is built and the compile has begun (`--after` seconds after sweep.log's header line), sends
SIGTERM, and prints how long the process took to exit, its exit code (143 expected), its last stderr line, and
how many of its child processes (inductor's compile workers, compilers) were still alive a second later.
Exit code 1 when it took more than 5 s, printed no `interrupted` line or left processes behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 5.0


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: children of children too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sdxl_arch", choices=("sdxl_arch", "tiny"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--after", type=float, default=10.0,
                        help="seconds after sweep.log's header line: the model is built and the compile has begun")
    parser.add_argument("--wait", type=float, default=120.0, help="give up waiting for the header after this")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sweep-compile-stop-") as tmp:
        run_dir = Path(tmp) / "run"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor"),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
        command = [sys.executable, "-m", "sweep", "sweep=steps_10_to_90", f"model={args.model}",
                   "model.compile=true", f"height={args.size}", f"width={args.size}", f"hydra.run.dir={run_dir}"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        deadline = time.monotonic() + args.wait
        log = run_dir / "sweep.log"
        while not (log.exists() and log.read_text().strip()) and proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                print("compile_stop: no header line in sweep.log in time")
                return 1
            time.sleep(0.2)
        time.sleep(args.after)
        if proc.poll() is not None:
            print(f"compile_stop: the run ended (code {proc.returncode}) before the signal: raise nothing to stop")
            return 1
        children = descendants(proc.pid)
        cached = sum(1 for path in Path(env["TORCHINDUCTOR_CACHE_DIR"]).rglob("*") if path.is_file())
        images = len(list((run_dir / "images").glob("*.png")))
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        took = time.perf_counter() - sent
        time.sleep(1.0)
        left = sorted(pid for pid in children | descendants(proc.pid) if alive(pid))
        for pid in left:  # ours to clean up: started by the run this script started
            os.kill(pid, signal.SIGKILL)
    last = (err or "").strip().splitlines()[-1:] or [""]
    print(f"at the signal: {images} images made, {cached} files in the fresh inductor cache (compiling), "
          f"{len(children)} child processes; still alive 1 s after the exit: {len(left)}")
    print(f"exit code {proc.returncode}; last line: {last[0]}")
    ok = took <= LIMIT_S and last[0].startswith("interrupted") and not left
    print(f"stop_seconds={took:.2f} (target <= {LIMIT_S:.0f}) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
