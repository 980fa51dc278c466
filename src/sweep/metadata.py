"""What each image and each row carries: PNG text chunks and the software/hardware fingerprint."""

from __future__ import annotations

import io
import json
import platform
from collections.abc import Mapping
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

# diffusers scheduler class -> the sampler name A1111-style tools show.
SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DDIMScheduler": "DDIM",
    "UniPCMultistepScheduler": "UniPC",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "PNDMScheduler": "PLMS",
}


def environment(device: str, dtype: str, scheduler: str) -> dict[str, str]:
    """Versions and hardware that can change pixels: a torch upgrade must be traceable from the results."""
    import diffusers
    import torch
    import transformers

    gpu = ""
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    elif device == "mps":
        gpu = "Apple MPS"
    return {
        "device": device,
        "dtype": dtype,
        "scheduler": scheduler,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "gpu": gpu or f"none ({platform.processor() or platform.machine()})",
    }


def a1111_parameters(row: Mapping[str, Any]) -> str:
    """The `parameters` text other SD tools (A1111, Forge, ComfyUI loaders, civitai) read back."""
    prompt = str(row["prompt"])
    if row.get("lora"):
        prompt = f"{prompt} {row['lora']}"  # A1111 keeps <lora:NAME:W> in the prompt it records
    lines = [prompt]
    if row.get("negative_prompt"):
        lines.append(f"Negative prompt: {row['negative_prompt']}")
    sampler = SAMPLERS.get(str(row.get("scheduler")), str(row.get("scheduler")))
    fields = [
        ("Steps", row["num_inference_steps"]),
        ("Sampler", sampler),
        ("CFG scale", row["guidance_scale"]),
        ("Seed", row["seed"]),
        ("Size", f"{row['width']}x{row['height']}"),  # A1111 writes width x height
        # A1111's order: the hash before the name, as create_infotext writes them.
        ("Model hash", row.get("model_hash")),
        ("Model", row["model"]),
        ("VAE hash", row.get("vae_hash")),
        ("VAE", row.get("vae")),
        ("Refiner", row.get("refiner")),
        ("Refiner switch at", row.get("refiner_switch") if row.get("refiner") else None),
        ("Lora hashes", row.get("lora_hashes")),
        ("Version", f"sdxl-sweep {_version()}"),
    ]
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in fields if value not in (None, "")))
    return "\n".join(lines)


def quote(value: Any) -> str:
    """A1111's rule: a value holding a comma, colon or newline is written as a JSON string."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def png_bytes(image: Image.Image, row: Mapping[str, Any]) -> bytes:
    """The PNG file for one cell with its parameters as text chunks."""
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(row))
    for key in ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "height",
                "width", "model", "scheduler", "dtype", "device"):
        value = row.get(key)
        info.add_itxt(key, "" if value is None else str(value))
    info.add_itxt("sdxl-sweep", json.dumps({k: v for k, v in row.items() if k != "image"}, default=str))
    buffer = io.BytesIO()
    # zlib level 4 (ComfyUI's choice) instead of PIL's 6: a 1024x1024 photo encodes 2.5x faster (140 vs 355 ms)
    # for 4 % more bytes, so one writer thread keeps up with a fast GPU. Pixels are the same (PNG is lossless).
    image.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def _version() -> str:
    from sweep import __version__

    return __version__
