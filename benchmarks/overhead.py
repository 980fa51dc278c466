"""Per-image overhead of the runner outside the pipeline call, made visible without a GPU (issue 20, SPEC 8).

    python benchmarks/overhead.py                  # CPU; the last line is overhead_ms_per_image=<float>
    python benchmarks/overhead.py --device cuda    # on a GPU machine (benchmarks/gpu_check.sh runs this)

The real runner (`sweep.running.runner.run_sweep`, called as the CLI calls it), the real PNG writer, results.csv,
metadata and the real report, around a stand-in pipeline: the tiny model's own pipeline object (its text
encoders, scheduler and image processor are real) whose `__call__` waits a fixed time and then does what
diffusers' SDXL `__call__` does after its VAE decode: `image_processor.postprocess(image, output_type=...)` on
a decoded image of noise, 1024x1024 by default (SDXL's output; noise is the worst case for PNG), on the device
and in the dtype the real decode returns. It is injected where the runner gets its pipeline
(`models.pipeline.load` -> `_build` -> `models.builtin.build_tiny_pipeline`), so everything from the load on is
the product's code.

The sweep is the seed's own `steps_10_to_90` (9 images, one seed) at --size. Overhead per image = (the
sweep's generation wall time, `RunSummary.seconds`: first call to the last row written) minus the stand-in's
fixed waits, divided by the images. It counts everything per image on the main thread (diffusers' postprocess,
conversions, NaN check, scheduler copy, rows, the progress bar, waiting on a full writer queue) and the writer's
tail after the last call. Target: at most 50 ms (SPEC 8).

The wait (--stand-in):
- sleep (default): `time.sleep`, the GIL released. A GPU-bound call: the main thread has queued the kernels and
  waits for the device, as eager SDXL at 1024x1024 does on an H100/H200 (the CPU launches a step faster than the
  GPU runs it). The waits are measured, so the figure does not depend on the machine's load.
- busy: a fixed amount of pure-Python work, calibrated to --call-seconds on this machine just before the run
  and holding the GIL like a launch-bound call (small models, compiled graphs without CUDA graphs). A writer
  thread that holds the GIL slows it down, which shows as overhead; its calibration drifts on a busy machine.

Each run goes into a fresh directory under the system temp dir; --runs runs, the median is the figure. With
--device cpu the runner treats the pipeline as a CPU one and writes PNGs at a lower priority: on a machine busy
with other work the figure is then mostly the wait for starved writers (seconds per image on a 2-core machine
at load average 20); measure on a quiet machine, or on a GPU with --device cuda.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_MS = 50.0
POOL = 3  # distinct noise images, so consecutive PNGs differ (as a steps sweep's do)


class StandIn:
    """The fixed wait and the decoded noise of the stand-in pipeline; `waited` sums the waits (thread-safe)."""

    def __init__(self, mode: str, seconds: float) -> None:
        self.mode = mode
        self.seconds = seconds
        self.waited = 0.0
        self.calls = 0
        self.loops = 0
        self.pool: list = []
        self._lock = threading.Lock()

    def calibrate(self) -> None:
        """Busy mode: how many loop turns take --call-seconds on this machine, now."""
        if self.mode != "busy":
            return
        turns, started = 200_000, time.perf_counter()
        _spin(turns)
        rate = turns / (time.perf_counter() - started)
        self.loops = int(rate * self.seconds)

    def prepare(self, height: int, width: int, device: str, dtype) -> None:
        """Decoded images in [-1, 1] on the device, made once (not per call): the call's own cost is the wait."""
        import torch

        generator = torch.Generator().manual_seed(0)
        self.pool = [(torch.rand((1, 3, height, width), generator=generator) * 2 - 1).to(device=device, dtype=dtype)
                     for _ in range(POOL)]

    def call(self, count: int):
        import torch

        started = time.perf_counter()
        if self.mode == "sleep":
            time.sleep(self.seconds)
        else:
            _spin(self.loops)
        waited = time.perf_counter() - started if self.mode == "sleep" else self.seconds
        with self._lock:
            index = self.calls
            self.calls += 1
        # A fresh tensor per call, as a VAE decode returns; the copy is the stand-in's cost, not the runner's.
        copied = time.perf_counter()
        image = torch.cat([self.pool[(index + i) % POOL] for i in range(count)]).clone()
        if image.is_cuda:
            torch.cuda.synchronize()
        with self._lock:
            # busy: the nominal time counts, so a slowdown by other threads of this process shows as overhead
            self.waited += waited + time.perf_counter() - copied
        return image


def _spin(turns: int) -> int:
    total = 0
    for i in range(turns):
        total += i
    return total


def stand_in_pipeline(stand_in: StandIn, build_tiny, *args, **kwargs):
    """The tiny model's pipeline with `__call__` replaced by the stand-in (a subclass, built from its parts)."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.pipelines.stable_diffusion_xl.pipeline_output import StableDiffusionXLPipelineOutput

    class StandInPipeline(StableDiffusionXLPipeline):
        def __call__(self, *args, generator=None, output_type="pil", **kwargs):
            count = len(generator) if isinstance(generator, list) else 1
            image = stand_in.call(count)
            # What diffusers' SDXL __call__ does after the VAE decode (0.42): postprocess, then offload hooks.
            image = self.image_processor.postprocess(image, output_type=output_type)
            self.maybe_free_model_hooks()
            return StableDiffusionXLPipelineOutput(images=image)

    real = build_tiny(*args, **kwargs)
    parts = {k: v for k, v in real.components.items()}
    return StandInPipeline(**parts, force_zeros_for_empty_prompt=real.config.force_zeros_for_empty_prompt,
                           add_watermarker=False)


def decoded_dtype(pipe):
    """The dtype diffusers' decode returns: an fp16 VAE with force_upcast decodes in fp32."""
    import torch

    vae = pipe.vae
    if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        return torch.float32
    return vae.dtype


def run_once(cfg, stand_in: StandIn, scratch: Path) -> dict:
    from sweep.rundir.results import read_rows
    from sweep.running import runner
    from sweep.running.writer import ImageWriter

    out = Path(tempfile.mkdtemp(dir=scratch))
    stand_in.waited, stand_in.calls = 0.0, 0
    tail = []
    close = ImageWriter.close

    def timed_close(writer) -> None:  # the real close, timed: how long the sweep waits for its last PNGs
        started = time.perf_counter()
        try:
            close(writer)
        finally:
            tail.append(time.perf_counter() - started)

    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()), mock.patch.object(ImageWriter, "close", timed_close):
        summary = runner.run_sweep(cfg, out, echo=lambda _: None)  # the CLI's progress bar goes to the buffer
    whole = time.perf_counter() - started
    rows = read_rows(out / "results.csv")
    if not summary.ok or summary.made != summary.total or len(rows) != summary.total:
        raise SystemExit(f"overhead: the sweep failed: {summary.lines()}")
    made = summary.made
    return {"made": made, "generation": summary.seconds, "waited": stand_in.waited, "calls": stand_in.calls,
            "whole": whole, "overhead_ms": (summary.seconds - stand_in.waited) / made * 1000,
            "tail_ms": sum(tail) / made * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the decoded images live")
    parser.add_argument("--dtype", default="auto", help="model.dtype (auto: fp32 on cpu, the runner's on cuda)")
    parser.add_argument("--stand-in", choices=("sleep", "busy"), default="sleep",
                        help="sleep: a GPU-bound call (GIL released); busy: fixed Python work (GIL held)")
    parser.add_argument("--call-seconds", type=float, default=0.5,
                        help="the stand-in call's fixed time (0.5: about the seed sweep's shortest SDXL call, "
                             "10 steps, on an H200)")
    parser.add_argument("--size", type=int, default=1024, help="WIDTH = HEIGHT of the images")
    parser.add_argument("--runs", type=int, default=3, help="timed sweeps; the median is the figure")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("overhead: --device cuda needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2

    from runner_vs_plain import compose

    from sweep.models import builtin as models
    from sweep.models import pipeline

    stand_in = StandIn(args.stand_in, args.call_seconds)
    cfg = compose("model=tiny", "sweep=steps_10_to_90", f"height={args.size}", f"width={args.size}",
                  f"model.device={args.device}", f"model.dtype={args.dtype}")
    build_tiny = models.build_tiny_pipeline

    def build(*args, **kwargs):
        return stand_in_pipeline(stand_in, build_tiny, *args, **kwargs)

    with mock.patch.object(models, "build_tiny_pipeline", build):
        loaded = pipeline.load(cfg.model)  # built once; every run_sweep below finds it in the cache
    stand_in.prepare(args.size, args.size, loaded.device, decoded_dtype(loaded.pipe))
    stand_in.calibrate()
    print(f"stand-in pipeline ({args.stand_in}, {args.call_seconds:.3f} s per call) on {loaded.device} "
          f"({loaded.dtype}), {args.size}x{args.size} noise, sweep steps_10_to_90 (9 images); torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    figures = []
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        for run in range(args.runs):
            result = run_once(cfg, stand_in, Path(tmp))
            figures.append(result["overhead_ms"])
            print(f"run {run + 1}: generation {result['generation']:.3f} s for {result['made']} images, stand-in "
                  f"waits {result['waited']:.3f} s in {result['calls']} calls -> {result['overhead_ms']:.1f} ms per "
                  f"image, of which {result['tail_ms']:.1f} waiting for the writers after the last call; "
                  f"run_sweep with report {result['whole']:.2f} s", flush=True)
    figure = statistics.median(figures)
    print(f"median of {len(figures)} runs: {figure:.1f} ms per image (target <= {TARGET_MS:.0f} ms)")
    print(f"overhead_ms_per_image={figure:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
