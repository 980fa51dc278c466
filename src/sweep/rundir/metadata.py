"""What each image and each row carries: PNG text chunks and the software/hardware fingerprint.

Text chunks per PNG: `parameters`, in AUTOMATIC1111's infotext format (what A1111, Forge, civitai, sd-parsers and
sd-prompt-reader read); `prompt`, a ComfyUI API graph (CheckpointLoaderSimple / CLIPTextEncode / KSampler / ...)
that ComfyUI loads on a drop before it looks at `parameters`; and `sdxl-sweep`, the image's whole results.csv
row as JSON (what a resume reads when the table is lost). Text that is not ASCII goes into `iTXt` chunks (UTF-8
by definition): a `tEXt` chunk is Latin-1, and ComfyUI decodes it as UTF-8.
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
from sweep.rundir.results import DIGEST, PNG_KEY

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


def sampler_fields(cell: Any, facts: axes.Facts | None) -> tuple[axes.SchedulerSpec | None, str | None]:
    """(the sampler used, its A1111 schedule type): the cell's, else the model's own; Automatic resolved to the
    schedule it builds, so A1111 does not read `Automatic` as its own default (Karras for DPM++ 2M)."""
    spec = cell.get("scheduler") or (facts.scheduler if facts else None)
    schedule = cell.get("schedule_type")
    if schedule is None and spec is not None:
        schedule = spec.named_schedule or axes.automatic_schedule(spec, facts or axes.Facts())
    return spec, schedule


def a1111_parameters(cell: Any, row: Mapping[str, Any], facts: axes.Facts | None = None) -> str:
    """The `parameters` text: prompt, `Negative prompt: ...` (empty when there is none: ComfyUI's importer builds
    nothing without the line, and A1111 reads it as empty), then one line of `Key: value` fields."""
    texts = cell.texts()
    prompt = str(texts.get("prompt") or "")
    strengths = {name.split(".", 1)[1]: value for name, value in cell.state() if name.startswith(f"{axes.LORA}.")}
    untagged = {k: v for k, v in strengths.items() if k not in _tagged(texts)}
    if untagged:
        from sweep.models.lora import prompt_tags

        prompt = f"{prompt} {prompt_tags(untagged)}"  # A1111 keeps <lora:NAME:W> in the prompt it records
    lines = [prompt, f"Negative prompt: {texts.get('negative_prompt') or ''}"]
    fields: list[tuple[int, str, Any]] = []
    facts = axes.facts_for(facts, cell)
    for name, value in cell.call().values:  # as applied (sweep.planning.calls): tags, S/R and defaults resolved
        axis = axes.get(name)
        if value is None and axis.resolve is not None and facts is not None:
            value = axis.resolve(facts)
        if value is not None and axis.infotext is not None and (not axis.only_with or cell.get(axis.only_with)):
            fields += [(axis.info_rank, key, shown) for key, shown in axis.infotext(value)]
    spec, schedule = sampler_fields(cell, facts)
    if schedule is not None and not any(key == "Schedule type" for _, key, _ in fields):
        fields.append((axes.BY_NAME["schedule_type"].info_rank, "Schedule type", schedule))
    fields += [(rank, key, row[column]) for rank, key, column in ROW_FIELDS if row.get(column) not in (None, "")]
    if row.get("controlnet") or row.get("ip_adapter"):
        from sweep.models.controlnet import units
        from sweep.models.ip_adapter import unit

        found = units(cell, row)
        found += [u for u in [unit(cell, row, len(found))] if u]
        fields += [(88, key, text) for key, text in found]
    if row.get("generator_device") == "cpu":
        fields.append((78, "RNG", "CPU"))  # A1111 assumes GPU noise when the key is missing
    fields.append((999, "Version", f"sdxl-sweep {_version()}"))
    fields.sort(key=lambda f: f[0])  # stable: a registry entry's own fields keep their order
    lines.append(", ".join(f"{key}: {quote(value)}" for _, key, value in fields))
    return "\n".join(lines)


def _tagged(texts: Mapping[str, Any]) -> set[str]:
    from sweep.prompts.syntax import PROMPT_TEXTS, lora_tags

    return {name for key in PROMPT_TEXTS for name in lora_tags(texts.get(key), key)}


def comfy_prompt(cell: Any, row: Mapping[str, Any], facts: axes.Facts | None = None) -> str | None:
    """A ComfyUI API graph (the `prompt` chunk) that remakes the cell: sampler and scheduler in ComfyUI's names,
    LoRAs as LoraLoader nodes, clip skip as CLIPSetLastLayer, FreeU as its `FreeU` node (the constant-factor one
    diffusers implements), PAG as PerturbedAttentionGuidance. None where ComfyUI has no equivalent (a sampler or
    schedule it lacks, a refiner, a second pass, a prompt syntax other than A1111's, which ComfyUI's text encoder
    follows, A1111's prompt editing, a variation seed: ComfyUI's core nodes have none)."""
    from sweep.prompts.syntax import edits_itself, split_tags

    spec, schedule = sampler_fields(cell, axes.facts_for(facts, cell))
    sampler = axes.COMFY_SAMPLERS.get(spec.base_name) if spec else None
    scheduler = axes.COMFY_SCHEDULERS.get(schedule or "")
    if (not sampler or not scheduler or row.get("refiner") or row.get("controlnet") or row.get("ip_adapter")
            or cell.get("prompt_syntax") is not None):
        return None
    if any(cell.get(a.name) is not None for a in axes.AXES if a.enters == "pass"):
        return None  # a Hires. fix or image-to-image pass: this five-node graph would not remake it
    if cell.get("prompt_2") or cell.get("negative_prompt_2"):
        return None  # CLIPTextEncode feeds one text to both encoders
    from sweep.models.variations import custom

    if custom(cell):
        return None
    texts = cell.texts()
    if edits_itself(texts, cell.get("prompt_syntax")):
        return None  # A1111's prompt editing: ComfyUI's CLIPTextEncode would read the brackets as text
    strengths = {name.split(".", 1)[1]: value for name, value in cell.state() if name.startswith(f"{axes.LORA}.")}
    model, clip = ["4", 0], ["4", 1]
    graph: dict[str, Any] = {"4": {"class_type": "CheckpointLoaderSimple",
                                   "inputs": {"ckpt_name": f"{row.get('model') or 'model'}.safetensors"}}}
    for i, (name, weight) in enumerate(strengths.items()):
        node = str(20 + i)
        graph[node] = {"class_type": "LoraLoader", "inputs": {
            "lora_name": f"{name}.safetensors", "strength_model": weight, "strength_clip": weight,
            "model": model, "clip": clip}}
        model, clip = [node, 0], [node, 1]
    if cell.get("freeu") is not None:
        graph["30"] = {"class_type": "FreeU", "inputs": {**dict(zip(axes.FREEU_KEYS, cell["freeu"], strict=True)),
                                                         "model": model}}
        model = ["30", 0]
    if cell.get("pag_scale"):
        graph["31"] = {"class_type": "PerturbedAttentionGuidance", "inputs": {"scale": cell["pag_scale"],
                                                                              "model": model}}
        model = ["31", 0]
    if cell.get("clip_skip") is not None:
        # ComfyUI's SDXL default is already the penultimate layer (-2), as diffusers' clip_skip=None: n more is
        # -(n + 2).
        graph["10"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -(cell["clip_skip"] + 2),
                                                                    "clip": clip}}
        clip = ["10", 0]
    width, height = cell.size or (None, None)
    graph.update({
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": split_tags(texts.get("prompt") or "")[0].strip(),
                                                         "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": texts.get("negative_prompt") or "", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": cell.seed, "steps": cell.num_inference_steps, "cfg": cell.guidance_scale,
            "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0, "model": model,
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sdxl-sweep", "images": ["8", 0]}},
    })
    return json.dumps(graph, ensure_ascii=False)


def png_bytes(image: Image.Image, row: Mapping[str, Any], parameters: str, comfy: str | None = None) -> bytes:
    """The PNG file for one cell with its parameters as text chunks."""
    info = PngInfo()
    _add_text(info, "parameters", parameters)
    if comfy is not None:
        _add_text(info, "prompt", comfy)
    info.add_itxt(PNG_KEY, json.dumps({k: v for k, v in row.items() if k not in ("image", DIGEST)}, default=str,
                                      ensure_ascii=False))
    buffer = io.BytesIO()
    # zlib level 4 (ComfyUI's choice) instead of PIL's 6: a 1024x1024 photo encodes 2.5x faster (140 vs 355 ms)
    # for 4 % more bytes, so one writer thread keeps up with a fast GPU. Pixels are the same (PNG is lossless).
    image.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def _add_text(info: PngInfo, key: str, text: str) -> None:
    """ASCII as tEXt (as A1111 writes it); anything else as iTXt, which every reader decodes as UTF-8."""
    if text.isascii():
        info.add_text(key, text)
    else:
        info.add_itxt(key, text)


def _version() -> str:
    from sweep import __version__

    return __version__
