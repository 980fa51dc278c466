"""What each image and each row carries: PNG text chunks and the software/hardware fingerprint.

Two text chunks per PNG: `parameters`, in AUTOMATIC1111's infotext format (what A1111, Forge, ComfyUI's loader,
civitai and sd-parsers read), and `sdxl-sweep`, the image's whole results.csv row as JSON (what a resume reads
when the table is lost). No chunk uses a key another tool reserves: ComfyUI parses `prompt` and `workflow` as
JSON workflows.
"""

from __future__ import annotations

import io
import json
import platform
from collections.abc import Mapping
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sweep import axes
from sweep.results import DIGEST, PNG_KEY

# Model-side fields from the row, in A1111's order around the registry's fields (Steps 10 ... Size 50).
ROW_FIELDS = ((60, "Model hash", "model_hash"), (61, "Model", "model"), (62, "VAE hash", "vae_hash"),
              (63, "VAE", "vae"), (64, "Refiner", "refiner"), (85, "Lora hashes", "lora_hashes"))


def environment(device: str, dtype: str) -> dict[str, str]:
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
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "gpu": gpu or f"none ({platform.processor() or platform.machine()})",
    }


def quote(value: Any) -> str:
    """A1111's rule: a value with a comma, colon or newline is written as a JSON string, anything else as is."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text and "\r" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(cell: Any, row: Mapping[str, Any], facts: axes.Facts | None = None) -> str:
    """The `parameters` text: prompt, `Negative prompt: ...`, then one line of `Key: value` fields."""
    texts = cell.texts()
    prompt = str(texts.get("prompt") or "")
    strengths = {name.split(".", 1)[1]: value for name, value in cell.state() if name.startswith(f"{axes.LORA}.")}
    if strengths:
        from sweep.lora import prompt_tags

        prompt = f"{prompt} {prompt_tags(strengths)}"  # A1111 keeps <lora:NAME:W> in the prompt it records
    lines = [prompt]
    if texts.get("negative_prompt"):
        lines.append(f"Negative prompt: {texts['negative_prompt']}")
    fields: list[tuple[int, str, Any]] = []
    facts = axes.facts_for(facts, cell)
    for name, value in cell.params:
        axis = axes.get(name)
        if value is None and axis.resolve is not None and facts is not None:
            value = axis.resolve(facts)
        if value is not None and axis.infotext is not None:
            fields += [(axis.info_rank, key, shown) for key, shown in axis.infotext(value)]
    fields += [(rank, key, row[column]) for rank, key, column in ROW_FIELDS if row.get(column) not in (None, "")]
    fields.append((999, "Version", f"sdxl-sweep {_version()}"))
    fields.sort(key=lambda f: f[0])  # stable: a registry entry's own fields keep their order
    lines.append(", ".join(f"{key}: {quote(value)}" for _, key, value in fields))
    return "\n".join(lines)


def png_bytes(image: Image.Image, row: Mapping[str, Any], parameters: str) -> bytes:
    """The PNG file for one cell with its parameters as text chunks."""
    info = PngInfo()
    info.add_text("parameters", parameters)
    info.add_itxt(PNG_KEY, json.dumps({k: v for k, v in row.items() if k not in ("image", DIGEST)}, default=str,
                                      ensure_ascii=False))
    buffer = io.BytesIO()
    # zlib level 4 (ComfyUI's choice) instead of PIL's 6: a 1024x1024 photo encodes 2.5x faster (140 vs 355 ms)
    # for 4 % more bytes, so one writer thread keeps up with a fast GPU. Pixels are the same (PNG is lossless).
    image.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def _version() -> str:
    from sweep import __version__

    return __version__
