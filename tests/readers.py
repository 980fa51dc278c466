"""The readers people open our PNGs with, as tests call them. Each is this project's own code, written from a
description of what the reader does, not from its source:

- A1111's reading of a `parameters` text (`a1111_parse`): the last line is the settings line when at least three
  `Key: value` pairs can be read from it, else it is one more prompt line; earlier lines are the prompt until one
  starts `Negative prompt:`, which starts the negative prompt; a value in double quotes is a JSON string; a
  `WIDTHxHEIGHT` value gives two fields, KEY-1 (width) and KEY-2 (height).
- sd-parsers and sd-prompt-reader: the PyPI packages themselves.
- ComfyUI's frontend on a dropped PNG (`read_comfy`): a `prompt` chunk is an API graph; without one, the
  `parameters` text is turned into a graph only when it has a `Steps:` line with a `Negative prompt:` line before
  it (`read_comfy_parameters`, whose docstring says what it keeps).

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

# --- A1111 ---------------------------------------------------------------------------------------------------
NEGATIVE_LABEL = "Negative prompt:"


def _skip_space(line: str, at: int) -> int:
    while at < len(line) and line[at].isspace():
        at += 1
    return at


def _key_end(line: str, at: int) -> int | None:
    """Index of the colon closing a key that starts at `at`, or None. A key is two or more characters out of
    letters, digits, `_`, spaces, `-` and `/`, the first a letter, digit or `_`, with a colon right after it."""
    if at >= len(line) or not (line[at].isalnum() or line[at] == "_"):
        return None
    end = at + 1
    while end < len(line) and (line[end].isalnum() or line[end] in "_ -/"):
        end += 1
    return end if end - at >= 2 and line[end:end + 1] == ":" else None


def _string_end(line: str, at: int) -> int | None:
    """Index just past a non-empty string in double quotes opening at `at` (a backslash takes the character after
    it along, so `\\"` does not close it), or None where it does not close."""
    pos = at + 1
    while pos < len(line) and line[pos] != '"':
        pos += 2 if line[pos] == "\\" else 1
    return pos + 1 if pos < len(line) and pos > at + 1 else None


def settings_pairs(line: str) -> list[tuple[str, str]]:
    """The `Key: value` pairs of one settings line, left to right. Blanks before a key and after its colon are
    skipped; where no key starts, reading moves on one character. A value that opens with a closed string in
    double quotes followed by a comma or the line's end is that string, quotes included; any other value runs to
    the next comma (trailing blanks kept) or the line's end. The comma after a value is used up."""
    pairs: list[tuple[str, str]] = []
    at = 0
    while at < len(line):
        start = _skip_space(line, at)
        colon = _key_end(line, start)
        if colon is None:
            at = start + 1
            continue
        begin = _skip_space(line, colon + 1)
        end = _string_end(line, begin) if line[begin:begin + 1] == '"' else None
        if end is None or line[end:end + 1] not in ("", ","):
            comma = line.find(",", begin)
            end = len(line) if comma < 0 else comma
        pairs.append((line[start:colon], line[begin:end]))
        at = end + 1
    return pairs


def _size(value: str) -> tuple[str, str] | None:
    """(width, height) of a `WIDTHxHEIGHT` value of decimal digits (one trailing newline allowed), else None."""
    width, cross, height = value.removesuffix("\n").partition("x")
    return (width, height) if cross and width.isdecimal() and height.isdecimal() else None


def a1111_parse(text: str) -> dict[str, str]:
    """A `parameters` text as A1111 reads it (see the module docstring): every settings field under its key (a
    size as KEY-1, KEY-2), then `Prompt` and `Negative prompt`. Lines are stripped; blank lines before a text's
    first line are dropped, later ones kept."""
    *lines, last = text.strip().split("\n")
    pairs = settings_pairs(last)
    if len(pairs) < 3:
        lines, pairs = [*lines, last], []
    texts: dict[str, list[str]] = {"Prompt": [], "Negative prompt": []}
    into = texts["Prompt"]
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_LABEL):
            into, line = texts["Negative prompt"], line.removeprefix(NEGATIVE_LABEL).strip()
        if into or line:
            into.append(line)
    fields: dict[str, str] = {}
    for key, value in pairs:
        if value[:1] == value[-1:] == '"':
            value = json.loads(value)  # a ValueError where it is not JSON
        size = _size(value)
        if size is None:
            fields[key] = value
        else:
            fields[f"{key}-1"], fields[f"{key}-2"] = size
    return {**fields, **{name: "\n".join(kept) for name, kept in texts.items()}}


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
# KSampler's sampler names (comfy/samplers.py KSAMPLER_NAMES + SAMPLER_NAMES): a sampler outside them is not set.
COMFY_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "ddim",
    "uni_pc", "uni_pc_bh2",
]
COMFY_FIELDS = {"model": "model", "cfg scale": "cfg", "steps": "steps", "seed": "seed"}  # kept as written


def _past_comma(line: str, at: int) -> int:
    comma = line.find(",", at)
    return len(line) if comma < 0 else comma + 1


def _option_end(line: str, colon: int) -> int | None:
    """Where the option whose name ends at `colon` ends (past the comma that closes it), or None where no value
    can be read there. After the colon and its blanks: a value opening with `"` (or `{`) runs to the first `"`
    (or `}`) after which only blanks come before a comma or the line's end; any other value runs to the first
    comma after its first character (so a value may start with a comma). A value that cannot be read so, or an
    empty one, starts at the last blank after the colon instead; with no blank there, there is no option."""
    begin = _skip_space(line, colon + 1)
    if begin < len(line) and line[begin] not in '"{':
        return _past_comma(line, begin + 1)
    if begin < len(line):
        close = '"' if line[begin] == '"' else "}"
        shut = line.find(close, begin + 1)
        while shut >= 0:
            after = _skip_space(line, shut + 1)
            if after == len(line) or line[after] == ",":
                return min(after + 1, len(line))
            shut = line.find(close, shut + 1)
    return _past_comma(line, begin) if begin > colon + 1 else None


def comfy_options(line: str) -> dict[str, str]:
    """The options ComfyUI's frontend reads from a settings line, by lower-cased name. An option runs from where
    the previous one ended to the end `_option_end` finds for the next colon; where none is found, reading starts
    again after that colon. Its name is its text before the first colon, trimmed; its value the text after that
    colon up to a second colon (or the option's end), less the comma closing the option, trimmed. A name seen
    twice keeps the later value."""
    options: dict[str, str] = {}
    at = 0
    while (colon := line.find(":", at)) >= 0:
        end = _option_end(line, colon) if colon > at else None
        if end is None:
            at = colon + 1
            continue
        name, value = line[at:end].split(":")[:2]
        options[name.strip().lower()] = value.removesuffix(",").strip()
        at = end
    return options


def _comfy_size(value: str) -> str:
    """A `WIDTHxHEIGHT` value with both sides rounded up to a multiple of 64; a ValueError where it is not one."""
    sides = value.split("x")
    if len(sides) < 2:
        raise ValueError(f"not WIDTHxHEIGHT: {value!r}")
    return "x".join(str(-(-int(side) // 64) * 64) for side in sides[:2])


def read_comfy_parameters(parameters: str) -> dict[str, Any]:
    """The graph ComfyUI's frontend makes of a `parameters` text: nothing ({}) unless it has a line starting
    `Steps:` (the last such line is used) and, before it, a line starting `Negative prompt:`. The prompt is the
    text before that label; the negative the text from the second character after the label (the first is taken
    to be a space) to the `Steps:` line; both trimmed. From the options of the `Steps:` line (`comfy_options`):
    model, cfg scale, steps and seed as written, size rounded up to multiples of 64, and the sampler: lower-cased,
    the first `++` as `pp`, spaces as `_`; one `karras` taken out (with the `_`s it leaves at the end) sets the
    karras schedule; the name is kept only if KSampler has it. KSampler's defaults otherwise: euler, normal."""
    steps = parameters.rfind("\nSteps:")
    label = parameters.rfind("\n" + NEGATIVE_LABEL, 0, steps) if steps >= 0 else -1
    if label < 0:
        return {}
    graph: dict[str, Any] = {"prompt": parameters[:label].strip(),
                             "negative": parameters[label + len(NEGATIVE_LABEL) + 2:steps].strip(),
                             "sampler": "euler", "schedule": "normal"}
    for name, value in comfy_options(parameters[steps + 1:].split("\n")[0]).items():
        if name in COMFY_FIELDS:
            graph[COMFY_FIELDS[name]] = value
        elif name == "size":
            graph["size"] = _comfy_size(value)
        elif name == "sampler":
            sampler = value.lower().replace("++", "pp", 1).replace(" ", "_")
            if "karras" in sampler:
                sampler = sampler.replace("karras", "", 1).rstrip("_")
                graph["schedule"] = "karras"
            if sampler in COMFY_SAMPLERS:
                graph["sampler"] = sampler
    return graph


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
    """ComfyUI on a dropped PNG: a `workflow` chunk, else a `prompt` chunk (API graph), else the `parameters` text."""
    text = Image.open(path).text
    if "workflow" in text:
        raise AssertionError("a workflow chunk: not what we write")
    if "prompt" in text:
        return read_comfy_api(text["prompt"])
    return read_comfy_parameters(text.get("parameters", ""))
