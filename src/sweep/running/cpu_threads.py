"""How many torch threads a CPU run uses: torch's own count on free cores, fewer when other processes are busy.

GNU OpenMP threads wait for each other at the end of every parallel region, spinning first. When other
processes keep the cores busy, a team of N threads on N cores has members that are not running while the others
spin for them, and every one of the thousands of small ops per denoising step waits for a scheduler time slice:
`steps_10_to_90 model=tiny` at 64x64 took 37x its quiet time with two CPU-bound processes on 2 cores, and 1.0x
with one thread (OMP_NUM_THREADS=1). So before generating, a CPU run looks at how busy the cores are (the
machine's /proc/stat over a tenth of a second, minus this process's own use; the 1-minute load average where
/proc/stat is missing) and keeps its thread count to the cores left free, at least one.

One such sample can be wrong (a burst of other work starts a second later: once 2 threads were chosen at load
3.7 and ran 8x slower than 1 thread), so the sample only proposes a count: before the first image, one UNet
call of the loaded model (at the run's size, at most 512 px) is timed with each candidate (1 thread, the
sample's count, torch's own count), alternating, twice each, and the fastest is kept (`measure`).

The count changes the last bit of some float results (how a sum is split between threads), so:
- OMP_NUM_THREADS, when set, is the user's choice and is kept as it is (pixels identical whatever the load);
- the count is decided once per process (every job of a multirun in it makes images the same way), recorded per
  image in results.csv (`threads`), and a resumed run uses the count its earlier images were made with, so it
  ends with the uninterrupted run's pixels.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.1
ROUNDS = 2  # timings per candidate count (the fastest of them counts: interference only ever slows a call)
CLOCK = time.perf_counter  # what `measure` times with (a test gives it a clock of its own)
PROBE_LATENT = 64  # the probe's UNet call is at most 64x64 latents (512 px for SDXL): same ops, bounded cost
# Cores must be this free (of 1.0) to count: a core some other process half uses still stalls a team.
SPARE = 0.7

_decided: int | None = None  # this process's choice, once made
_default: int | None = None  # torch's own count, before any change


def choose_threads(default: int, cores: int, busy: float) -> int:
    """Threads for a run: `default` (torch's count) capped at the cores other processes leave free (`busy`:
    how many cores' worth of CPU they use, out of `cores` this process may run on), at least 1."""
    free = cores - max(0.0, busy)
    return max(1, min(default, int(free + (1 - SPARE))))


def _stat() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _cpu_count() -> int:
    return os.cpu_count() or 1


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores' worth of CPU other processes use right now (this process's own use left out)."""
    first, own = _stat(), _own_seconds()
    if first is None:
        return max(0.0, os.getloadavg()[0] - 1) if hasattr(os, "getloadavg") else 0.0
    time.sleep(seconds)
    second, own = _stat(), _own_seconds() - own
    busy, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    # total ticks = cores x elapsed ticks; this process's CPU seconds are ticks too
    return max(0.0, (busy - own * ticks) / total * _cpu_count())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return _cpu_count()


def measure(candidates: Iterable[int], work: Callable[[], object], rounds: int = ROUNDS,
            clock: Callable[[], float] | None = None) -> tuple[int, dict[int, float]]:
    """The candidate thread count under which `work()` ran fastest, and each one's best time (seconds).

    One unmeasured call first (allocations, first-call setup); then the candidates take turns, the order
    rotated each round, so a burst of other work hurts all of them rather than one."""
    import torch

    clock = clock or CLOCK
    order = sorted(set(candidates))
    best: dict[int, float] = {}
    before = torch.get_num_threads()
    try:
        work()
        for n in range(rounds):
            for threads in order[n % len(order):] + order[: n % len(order)]:
                torch.set_num_threads(threads)
                start = clock()
                work()
                best[threads] = min(best.get(threads, float("inf")), clock() - start)
    finally:
        torch.set_num_threads(before)
    return min(order, key=lambda t: (best[t], -t)), best


def unet_probe(pipe: object, width: int, height: int) -> Callable[[], object] | None:
    """One UNet call of `pipe` (a classifier-free-guidance pair, as a denoising step makes) at the run's size,
    capped at PROBE_LATENT latents; None where the pipeline has no SDXL UNet to call."""
    import torch

    unet = getattr(pipe, "unet", None)
    config = getattr(unet, "config", None)
    if config is None or getattr(config, "addition_time_embed_dim", None) is None:
        return None
    scale = getattr(pipe, "vae_scale_factor", 8) or 8
    h = max(8, min(PROBE_LATENT, height // scale))
    w = max(8, min(PROBE_LATENT, width // scale))
    dtype = unet.dtype
    text = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    sample = torch.zeros(2, config.in_channels, h, w, dtype=dtype)
    states = torch.zeros(2, 77, config.cross_attention_dim, dtype=dtype)
    extra = {"text_embeds": torch.zeros(2, text, dtype=dtype),
             "time_ids": torch.tensor([[h * scale, w * scale, 0, 0, h * scale, w * scale]] * 2, dtype=dtype)}
    step = torch.tensor(500)

    def work() -> object:
        with torch.inference_mode():
            return unet(sample, step, encoder_hidden_states=states, added_cond_kwargs=extra)
    return work


def settle(recorded: Iterable[str] = (), probe: Callable[[], object] | None = None) -> int:
    """Set this process's torch thread count for a CPU run and return it.

    `recorded`: the `threads` values of the run dir's rows (a resume makes its images as they were made).
    `probe`: one model call (`unet_probe`); with it the candidates are timed and the fastest is kept.
    """
    global _decided, _default
    import torch

    if _default is None:
        _default = torch.get_num_threads()
    counts = sorted({int(v) for v in recorded if str(v).isdigit() and int(v) > 0})
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # the user's choice
    if counts:
        threads, why = counts[-1], "as this run dir's earlier images were made"
    elif _decided is not None:
        threads, why = _decided, "as decided earlier in this process"
    else:
        cores, busy = usable_cores(), busy_elsewhere()
        threads = choose_threads(_default, cores, busy)
        why = f"other processes use {busy:.1f} of {cores} cores"
        candidates = {1, threads, _default}
        if probe is not None and len(candidates) > 1:
            threads, best = measure(candidates, probe)
            why = "measured: " + ", ".join(f"{n} thread(s) {best[n]:.3g} s" for n in sorted(best)) + " per UNet call"
        _decided = threads
    if threads != torch.get_num_threads():
        log.info("CPU: %d torch thread(s) instead of %d (%s; set OMP_NUM_THREADS to choose)", threads,
                 torch.get_num_threads(), why)
        torch.set_num_threads(threads)
    return threads
