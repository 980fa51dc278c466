"""The readers people open our PNGs with, as tests call them: A1111's own parsing rules (written from its
`parse_generation_parameters`), sd-parsers and sd-prompt-reader (the PyPI packages), and ComfyUI's frontend (a
Python port of what it does with a dropped PNG: the `prompt` chunk as an API graph, else `importA1111`).

Each reader returns the fields it reads, under one set of names: prompt, negative, steps, sampler, schedule,
cfg, seed, size (WIDTHxHEIGHT), model, model_hash, rng. A field a reader has no notion of is absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

# --- A1111 (modules/infotext_utils.py parse_generation_parameters) ---------------------------------------------
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_parse(text: str) -> dict[str, str]:
    """Only the last line holds parameters; an earlier line starting 'Negative prompt:' starts the negative
    prompt; a quoted value is a JSON string; a WxH value is split into KEY-1 (width) and KEY-2 (height)."""
    result: dict[str, str] = {}
    prompt, negative, in_negative = "", "", False
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[16:].strip()
        if in_negative:
            negative += ("" if not negative else "\n") + line
        else:
            prompt += ("" if not prompt else "\n") + line
    for key, value in RE_PARAM.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            value = json.loads(value)
        size = RE_SIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.groups()
        else:
            result[key] = value
    result["Prompt"], result["Negative prompt"] = prompt, negative
    return result


def read_a1111(path: Path) -> dict[str, Any]:
    p = a1111_parse(Image.open(path).text["parameters"])
    fields = {"prompt": p["Prompt"], "negative": p["Negative prompt"], "steps": p.get("Steps"),
              "sampler": p.get("Sampler"), "schedule": p.get("Schedule type"), "cfg": p.get("CFG scale"),
              "seed": p.get("Seed"), "size": f"{p.get('Size-1')}x{p.get('Size-2')}", "model": p.get("Model"),
              "model_hash": p.get("Model hash"), "rng": p.get("RNG", "GPU")}  # A1111's default is GPU noise
    return fields


# --- sd-parsers --------------------------------------------------------------------------------------------------


def read_sd_parsers(path: Path) -> dict[str, Any]:
    from sd_parsers import ParserManager

    info = ParserManager().parse(path)
    if info is None or not info.samplers:
        return {}
    sampler = info.samplers[0]
    params = sampler.parameters
    return {"prompt": "\n".join(p.value for p in sampler.prompts),
            "negative": "\n".join(p.value for p in sampler.negative_prompts), "steps": params.get("steps"),
            "sampler": sampler.name, "schedule": params.get("scheduler"), "cfg": params.get("cfg_scale"),
            "seed": params.get("seed"), "size": info.metadata.get("Size"),
            "model": sampler.model.name if sampler.model else None,
            "model_hash": sampler.model.hash if sampler.model else None, "rng": info.metadata.get("RNG", "GPU")}


# --- sd-prompt-reader --------------------------------------------------------------------------------------------
# Its A1111 format keeps six parameters and shows the whole settings line; other keys are read from that line with
# its own pattern (sd_prompt_reader/format/a1111.py).
SPR_PATTERN = re.compile(r"\s*([^:,]+):\s*([^,]+)")


def sd_prompt_reader_or_skip() -> None:
    """sd-prompt-reader pins old pillow and a GUI, so `.[test]` leaves it out: CI installs it with --no-deps
    (.ci/run); elsewhere its checks skip with the command that adds it."""
    try:
        import sd_prompt_reader.image_data_reader  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        import pytest

        pytest.skip("sd-prompt-reader is not installed: pip install --no-deps sd-prompt-reader==1.3.5 piexif")


def read_sd_prompt_reader(path: Path) -> dict[str, Any]:
    from sd_prompt_reader.image_data_reader import ImageDataReader

    reader = ImageDataReader(str(path))
    settings: dict[str, str] = {}
    for key, value in SPR_PATTERN.findall(reader.setting or ""):
        settings.setdefault(key, value)
    params = reader.parameter
    return {"prompt": reader.positive, "negative": reader.negative, "steps": params.get("steps"),
            "sampler": params.get("sampler"), "schedule": settings.get("Schedule type"), "cfg": params.get("cfg"),
            "seed": params.get("seed"), "size": params.get("size"), "model": params.get("model"),
            "model_hash": settings.get("Model hash"), "rng": settings.get("RNG", "GPU")}


# --- ComfyUI's frontend ------------------------------------------------------------------------------------------
# KSampler's sampler names (comfy/samplers.py KSAMPLER_NAMES + SAMPLER_NAMES), for importA1111's lookup.
COMFY_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "ddim",
    "uni_pc", "uni_pc_bh2",
]
COMFY_OPTION = re.compile(r'\s*([^:]+:\s*([^"{].*?|".*?"|\{.*?\}))\s*(,|$)')


def comfy_import_a1111(parameters: str) -> dict[str, Any]:
    """A port of ComfyUI frontend's `importA1111` (src/scripts/pnginfo.ts): nothing without a `\\nSteps:` line
    and a `\\nNegative prompt:` line before it; options split at the first colon, unquoted values cut at commas;
    handlers for model, cfg scale, clip skip, sampler (lower-cased, '++' -> 'pp', spaces -> '_', 'karras' ->
    scheduler karras, else normal; kept only if ComfyUI has that name), size (rounded up to 64), steps, seed."""
    p = parameters.rfind("\nSteps:")
    if p < 0:
        return {}
    opts: dict[str, str] = {}
    for match in COMFY_OPTION.finditer(parameters[p:].split("\n")[1]):
        parts = match.group(0).split(":")
        value = parts[1][:-1] if parts[1].endswith(",") else parts[1]
        opts[parts[0].strip().lower()] = value.strip()
    p2 = parameters.rfind("\nNegative prompt:", 0, p)
    if p2 < 0:
        return {}
    start, end = p2 + 18, p
    if start > end:  # JavaScript's substring swaps its arguments
        start, end = end, start
    out: dict[str, Any] = {"prompt": parameters[:p2].strip(), "negative": parameters[start:end].strip(),
                           "sampler": "euler", "schedule": "normal"}  # KSampler's defaults
    ceil64 = lambda v: -(-int(v) // 64) * 64  # noqa: E731
    for key, value in opts.items():
        if key == "model":
            out["model"] = value
        elif key == "cfg scale":
            out["cfg"] = value
        elif key == "steps":
            out["steps"] = value
        elif key == "seed":
            out["seed"] = value
        elif key == "size":
            width, height = value.split("x")[:2]
            out["size"] = f"{ceil64(width)}x{ceil64(height)}"
        elif key == "sampler":
            name = value.lower().replace("++", "pp", 1).replace(" ", "_")
            if "karras" in name:
                name = name.replace("karras", "", 1).rstrip("_")
                out["schedule"] = "karras"
            if name in COMFY_SAMPLERS:
                out["sampler"] = name
    return out


def read_comfy_api(graph_text: str) -> dict[str, Any]:
    """What ComfyUI loads from an API graph: the KSampler and the nodes its inputs link to."""
    graph = json.loads(graph_text)
    (sampler,) = [n["inputs"] for n in graph.values() if n["class_type"] == "KSampler"]

    def node(link: list) -> dict[str, Any]:
        return graph[link[0]]

    latent = node(sampler["latent_image"])["inputs"]
    model = sampler["model"]
    while node(model)["class_type"] == "LoraLoader":
        model = node(model)["inputs"]["model"]
    return {"prompt": node(sampler["positive"])["inputs"]["text"],
            "negative": node(sampler["negative"])["inputs"]["text"], "steps": str(sampler["steps"]),
            "sampler": sampler["sampler_name"], "schedule": sampler["scheduler"], "cfg": str(sampler["cfg"]),
            "seed": str(sampler["seed"]), "size": f"{latent['width']}x{latent['height']}",
            "model": node(model)["inputs"]["ckpt_name"]}


def read_comfy(path: Path) -> dict[str, Any]:
    """ComfyUI on a dropped PNG: a `workflow` chunk, else a `prompt` chunk (API graph), else `importA1111`."""
    text = Image.open(path).text
    if "workflow" in text:
        raise AssertionError("a workflow chunk: not what we write")
    if "prompt" in text:
        return read_comfy_api(text["prompt"])
    return comfy_import_a1111(text.get("parameters", ""))
