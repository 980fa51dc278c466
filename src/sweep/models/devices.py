"""Which device and dtype `model.device` / `model.dtype` mean on this machine.

`check_names` needs no torch (bad input is refused before the libraries load); the resolve functions import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweep.errors import bad_value

if TYPE_CHECKING:
    import torch

# model.dtype's names -> torch's
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16"}
DEVICES = ("cpu", "cuda", "mps")


def check_names(device: str, dtype: str) -> None:
    """What no machine has: a device or dtype name the tool does not know (raises the one line)."""
    if device != "auto" and device.split(":")[0] not in DEVICES:
        raise bad_value("model.device", device, "auto, cpu, cuda, cuda:N or mps")
    if dtype != "auto" and dtype not in DTYPES:
        raise bad_value("model.dtype", dtype, "auto, " + ", ".join(DTYPES))


def resolve_device(requested: str) -> str:
    """auto = cuda > mps > cpu; an explicit device must exist."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    check_names(requested, "auto")
    kind = requested.split(":")[0]
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
    import torch

    if requested == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if device.startswith("cuda") and cuda_has_bf16(device) else torch.float16
    check_names("auto", requested)
    return getattr(torch, DTYPES[requested])


def cuda_has_bf16(device: str = "cuda") -> bool:
    """Native bf16 on this CUDA device (not the emulation torch also reports as supported on older cards)."""
    import torch

    try:
        return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0) and torch.cuda.is_bf16_supported()
    except (RuntimeError, AssertionError, ValueError):  # no CUDA driver or no such device
        return False
