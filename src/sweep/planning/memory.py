"""Will a cell fit on the device at all? A lower bound of the memory one pipeline call needs, checked before the
load, so 16384x16384 or 9999999992x8 is one line instead of a process that runs for hours or is OOM-killed.

The bound is the largest of three sets of tensors that must exist at one moment: the decoded images (float32,
as the pipeline returns them); unless model.vae_tiling is on, a resnet of the VAE decoder's last block at full
resolution (its input, the normalised input and its activation, side by side); the UNet's first-level
activations. Weights, attention scores and every other temporary come on top, so a cell refused here could
never have run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sweep import axes
from sweep.errors import SweepError

BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2}


def cell_bytes(width: int, height: int, images: int, facts: axes.Facts, dtype_bytes: int, tiling: bool,
               guidance: bool = True) -> int:
    """Lower bound of one call's memory for `images` images of width x height."""
    pixels = width * height
    output = images * pixels * 3 * 4  # the float32 images the pipeline returns
    decode = 0 if tiling else pixels * 3 * facts.vae_channels * dtype_bytes  # one image at a time (slicing)
    latents = (width // 8) * (height // 8)
    unet = (2 if guidance else 1) * images * latents * facts.unet_channels * dtype_bytes * 2
    return max(output, decode, unet)


def device_bytes(device: str) -> int | None:
    """Memory of the device: a GPU's total, or this machine's RAM (the cgroup's limit where lower)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()  # noqa: SIM115
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def _gb(value: int) -> str:
    return f"{value / 2**30:,.1f} GB"


def check(plan: Any, facts: axes.Facts | axes.PerModel | None, device: str, model: Mapping[str, Any],
          dtype: str) -> None:
    """Refuse, with one line, the first size whose lower bound exceeds the device's memory."""
    available = device_bytes(device)
    if available is None:
        return
    dtype_bytes = BYTES.get(dtype, 4)
    tiling = bool(model.get("vae_tiling"))
    where = "sweep.grid.resolution" if any(v.axis.name == "resolution" for v in plan.swept) else "height/width"
    seen: set[tuple[Any, ...]] = set()
    for cell in plan.cells:
        own = axes.facts_for(facts, cell) if facts is not None else None
        size = cell.size or (own.native_size if own else None)
        final = cell.call().final_size(size)  # the image the call makes: Hires. fix's upscaled size included
        if final is None or (size, final) in seen:
            continue
        seen.add((size, final))
        width, height = final
        need = cell_bytes(width, height, 1, own or axes.Facts(), dtype_bytes, tiling)
        if need > available:
            tiles = not tiling and cell_bytes(width, height, 1, own or axes.Facts(), dtype_bytes, True) <= available
            got = f"{size[0]}x{size[1]}" + ("" if final == size else
                                            f" x hires_scale {cell.get('hires_scale'):g} = {width}x{height}")
            if final != size and any(v.axis.name == "hires_scale" for v in plan.swept):
                where = "sweep.grid.hires_scale"
            raise SweepError(f"{where}: got {got}; allowed: a size whose image fits in this {device}'s "
                             f"memory ({_gb(available)}): one image needs at least {_gb(need)}"
                             + ("; or model.vae_tiling=true, which decodes it in tiles" if tiles else ""))
