"""Which device and dtype `model.device` / `model.dtype` mean on this machine (imports torch)."""

from __future__ import annotations

import torch

from sweep.errors import bad_value

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(requested: str) -> str:
    """auto = cuda > mps > cpu; an explicit device must exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = requested.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise bad_value("model.device", requested, "auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise bad_value("model.device", requested, "a device this machine has (no CUDA here; use auto or cpu)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise bad_value("model.device", requested, "a device this machine has (no MPS here; use auto or cpu)")
    return requested


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    """auto = bf16 on a CUDA card that computes in it (compute capability 8.0+: A100, RTX 30xx, H100, ...), fp16
    on other GPUs, fp32 on the CPU (half-precision matmuls on a CPU are slow or unsupported).

    bf16 has fp32's range: SDXL's VAE decodes in it without overflowing, where in fp16 it needs fp32 (a copy of
    the VAE in fp32 and an fp32 decode per image); the UNet runs as fast in either (ComfyUI's default on such
    cards as well)."""
    if requested == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if device.startswith("cuda") and cuda_has_bf16(device) else torch.float16
    if requested not in DTYPES:
        raise bad_value("model.dtype", requested, "auto, " + ", ".join(DTYPES))
    return DTYPES[requested]


def cuda_has_bf16(device: str = "cuda") -> bool:
    """Native bf16 on this CUDA device (not the emulation torch also reports as supported on older cards)."""
    try:
        return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0) and torch.cuda.is_bf16_supported()
    except (RuntimeError, AssertionError, ValueError):  # no CUDA driver or no such device
        return False
