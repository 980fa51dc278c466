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
    """auto = fp16 on a GPU, fp32 on the CPU (fp16 matmuls on CPU are slow or unsupported)."""
    if requested == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    if requested not in DTYPES:
        raise bad_value("model.dtype", requested, "auto, " + ", ".join(DTYPES))
    return DTYPES[requested]
