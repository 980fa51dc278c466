"""PNGs read right by real readers: A1111's own parsing rules and sd-parsers, on a run with hostile text."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from sweep.runner import run_sweep

PROMPTS = ['a cat, sitting: "quiet"', "line one\nline two, with a comma", "猫の写真, 油絵: 夕方"]
NEGATIVES = [None, "blurry, bad: hands\nworst quality"]
HUGE_SEED = 2**64 - 1

# --- a parser written from A1111's rules (modules/infotext_utils.py parse_generation_parameters) -------------
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


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    quoted = ",".join(json.dumps(p) for p in PROMPTS).replace("\\n", "\n")
    run_dir = tmp_path_factory.mktemp("varied") / "run"
    cfg = make_cfg("sweep=seed_fixed", "sweep.grid.repeat=1", "num_inference_steps=1", "clip_skip=1",
                   "sweep.grid.resolution=[64x32]", f"sweep.grid.seed=[{HUGE_SEED}]",
                   "sweep.grid.scheduler=[DPM++ 2M Karras,Euler a]")
    cfg.sweep.grid.prompt = PROMPTS  # set directly: Hydra's override grammar is not what is under test here
    cfg.sweep.grid.negative_prompt = NEGATIVES
    summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    assert summary.ok and summary.made == 12, quoted  # the report (labels with newlines, CJK) built too
    return run_dir, pd.read_csv(run_dir / "results.csv", keep_default_na=False)


def test_every_png_reads_back_through_a1111_rules(varied):
    run_dir, table = varied
    for _, row in table.iterrows():
        parsed = a1111_parse(Image.open(run_dir / row["image"]).text["parameters"])
        assert parsed["Prompt"] == row["prompt"]
        assert parsed["Negative prompt"] == row["negative_prompt"]
        sampler = {"DPM++ 2M Karras": ("DPM++ 2M", "Karras"), "Euler a": ("Euler a", None)}[row["scheduler"]]
        assert (parsed["Sampler"], parsed.get("Schedule type")) == sampler
        assert (parsed["Steps"], parsed["CFG scale"], parsed["Seed"]) == ("1", "5.0", str(HUGE_SEED))
        assert (parsed["Size-1"], parsed["Size-2"]) == ("64", "32")  # width first, as A1111 writes it
        assert parsed["Model"] == "tiny" and parsed["Clip skip"] == "2"  # A1111 counts the last layer as 1
        assert parsed["Version"].startswith("sdxl-sweep")


def test_every_png_reads_back_through_sd_parsers(varied):
    from sd_parsers import ParserManager

    run_dir, table = varied
    manager = ParserManager()
    for _, row in table.iterrows():
        info = manager.parse(run_dir / row["image"])
        assert info is not None and info.generator.name == "AUTOMATIC1111"
        (sampler,) = info.samplers
        assert sampler.name == row["scheduler"].removesuffix(" Karras")
        assert [p.value for p in sampler.prompts] == [row["prompt"]]
        assert [p.value for p in sampler.negative_prompts] == ([row["negative_prompt"]] if row["negative_prompt"]
                                                               else [])
        assert sampler.parameters["seed"] == str(HUGE_SEED) and sampler.parameters["steps"] == "1"
        assert sampler.parameters["cfg_scale"] == "5.0" and sampler.model.name == "tiny"


def test_no_chunk_uses_a_key_other_tools_reserve(varied):
    run_dir, table = varied
    for _, row in table.iterrows():
        text = Image.open(run_dir / row["image"]).text
        assert set(text) == {"parameters", "sdxl-sweep"}  # ComfyUI parses `prompt` and `workflow` as JSON
        assert json.loads(text["sdxl-sweep"])["cell_id"] == row["cell_id"]
