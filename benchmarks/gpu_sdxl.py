"""SDXL speed on a CUDA GPU through the runner, beside the physical floor and published figures (SPEC 8).

    python benchmarks/gpu_sdxl.py                              # fp16 and bf16, with and without torch.compile
    python benchmarks/gpu_sdxl.py --dtypes bf16 --compile on --batch-sizes 1,auto

The model is `model=sdxl_arch`: the full SDXL base 1.0 architecture (2.57 B-parameter UNet, both CLIP towers,
the VAE) with random weights, so nothing is downloaded and the cost per image is SDXL's. Each variant is a
sweep of `--images` seeds at 1024x1024, 30 steps, guidance 5.0 (CFG on), run by `sweep.running.runner.run_sweep` as
the CLI runs it; a short warm-up sweep of the same shapes (2 steps) compiles first when compile is on ("first
image s": that sweep's wall time, the model build and the compile included: the time a fresh process waits for
its first image). Seconds per image = the sweep's generation time (pipeline calls and PNG writing, not model
build nor report) / images.

Without CUDA it refuses in one line, exit code 2 (`--allow-cpu`: run on the CPU anyway, for a dry run of the
script with `--model tiny --size 64`; benchmarks/gpu_check.sh uses it with GPU_CHECK_ALLOW_CPU=1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# ANCHORS.md "Performance references": FLOP of one SDXL 1024x1024 image.
UNET_TFLOP_PER_STEP_CFG = 13.5  # 2 x 6.8 TFLOP UNet forwards (classifier-free guidance)
VAE_DECODE_TFLOP = 10.5
# Dense fp16/bf16 tensor-core peaks from NVIDIA's data sheets (TFLOP/s), matched in this order.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
               ("L40S", 362.0), ("L4", 121.0)]
# ANCHORS.md takes ~800 TFLOP/s as what an H100 sustains (of its 989 peak): the same share for other cards.
SUSTAINED = 800.0 / 989.0
PUBLISHED = [
    ("A100, 30 steps, batch 1, fp32 (diffusion-fast)", 7.36),
    ("A100, 30 steps, batch 1, bf16", 4.63),
    ("A100, 30 steps, batch 1, bf16 + SDPA", 3.31),
    ("A100, 30 steps, batch 1, bf16 + SDPA + torch.compile", 2.54),
    ("A100, 50 steps, diffusers SDPA (fal-ai benchmarks)", 5.93),
    ("A100, 50 steps, diffusers compiled", 5.14),
    ("A100, 50 steps, TensorRT", 4.10),
]


def floor_seconds(steps: int, tflops: float, size: int = 1024) -> float:
    """Seconds per image if every FLOP ran at `tflops`; other sizes scaled by pixel count (approximate)."""
    return (steps * UNET_TFLOP_PER_STEP_CFG + VAE_DECODE_TFLOP) * (size / 1024) ** 2 / tflops


def card_peak(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def run_variant(dtype: str, compiled: bool, batch: str, args: argparse.Namespace, scratch: Path) -> dict:
    """One sweep through the runner; returns seconds per image and peak GPU memory."""
    import torch
    from runner_vs_plain import compose

    from sweep.running.runner import run_sweep

    seeds = ",".join(str(s) for s in range(1, args.images + 1))
    overrides = [
        f"model={args.model}", f"model.dtype={dtype}", f"model.compile={str(compiled).lower()}",
        f"model.channels_last={str(args.channels_last).lower()}", "sweep=seed_random", f"sweep.grid.seed=[{seeds}]",
        f"height={args.size}", f"width={args.size}", "guidance_scale=5.0",
    ] + ([] if batch == "auto" else [f"batch_size={batch}"])
    quiet = {"echo": lambda _: None}
    cuda = torch.cuda.is_available()
    with contextlib.redirect_stderr(io.StringIO()):
        # Warm-up: builds the model, and with compile traces every shape the timed sweep will meet: its time is
        # the time to the first image of a fresh process (compile included).
        started = time.perf_counter()
        run_sweep(compose(*overrides, "num_inference_steps=2"), scratch / f"warm-{dtype}-{compiled}-{batch}", **quiet)
        warm = time.perf_counter() - started
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        summary = run_sweep(compose(*overrides, f"num_inference_steps={args.steps}"),
                            scratch / f"run-{dtype}-{compiled}-{batch}", **quiet)
    if not summary.ok or summary.made != args.images:
        raise SystemExit(f"gpu_sdxl: the {dtype} compile={compiled} sweep failed: {summary.lines()}")
    per_image = summary.seconds / summary.made
    return {"per_image": per_image, "per_minute": 60.0 / per_image, "warm_up": warm,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--model", default="sdxl_arch", help="sdxl_base if its weights are in the local cache")
    parser.add_argument("--compile", choices=("both", "on", "off"), default="both")
    parser.add_argument("--batch-sizes", default="1", help="comma-separated; 'auto' = the runner's choice")
    parser.add_argument("--images", type=int, default=4, help="images per timed sweep")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--channels-last", action="store_true", help="also model.channels_last=true")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense fp16/bf16 peak, if not in the table")
    parser.add_argument("--allow-cpu", action="store_true", help="a dry run on the CPU (with --model tiny)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_sdxl: needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    import diffusers

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (dry run)"
    peak = card_peak(name, args.peak_tflops)
    print(f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}, diffusers {diffusers.__version__}; "
          f"model={args.model} {args.size}x{args.size}, {args.steps} steps, CFG on, {args.images} images per sweep")
    if peak:
        print(f"physical floor: {floor_seconds(args.steps, peak, args.size):.2f} s/image at the card's {peak:.0f} "
              f"TFLOP/s dense peak, {floor_seconds(args.steps, peak * SUSTAINED, args.size):.2f} s at a sustained "
              f"{peak * SUSTAINED:.0f} (= 'x floor' 1.0; {args.steps} x {UNET_TFLOP_PER_STEP_CFG} + "
              f"{VAE_DECODE_TFLOP} TFLOP at 1024x1024)")
    else:
        print("physical floor: unknown card peak; pass --peak-tflops")
    print(f"{'dtype':6} {'compile':8} {'batch':6} {'s/image':>8} {'img/min':>8} {'peak GiB':>9} {'x floor':>8} "
          f"{'first image s':>13}", flush=True)
    compiles = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    with tempfile.TemporaryDirectory(prefix="sweep-gpu-") as tmp:
        for dtype in args.dtypes.split(","):
            for compiled in compiles:
                for batch in args.batch_sizes.split(","):
                    started = time.perf_counter()
                    result = run_variant(dtype, compiled, batch, args, Path(tmp))
                    floor = floor_seconds(args.steps, peak * SUSTAINED, args.size) if peak else float("nan")
                    ratio = result["per_image"] / floor
                    print(f"{dtype:6} {str(compiled):8} {batch:6} {result['per_image']:8.2f} "
                          f"{result['per_minute']:8.1f} {result['peak_gib']:9.1f} {ratio:8.1f} "
                          f"{result['warm_up']:13.1f}   ({time.perf_counter() - started:.0f} s in all)", flush=True)
                    gc.collect()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
    print("published (ANCHORS.md):")
    for label, seconds in PUBLISHED:
        print(f"  {label}: {seconds:.2f} s/image, {60 / seconds:.1f} img/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
