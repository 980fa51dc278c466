"""PNGs read right by real readers: A1111's own parsing rules and sd-parsers, on a run with hostile text."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from readers import a1111_parse, read_comfy
from sweep.running.runner import run_sweep

PROMPTS = ['a cat, sitting: "quiet"', "line one\nline two, with a comma", "猫の写真, 油絵: 夕方"]
NEGATIVES = [None, "blurry, bad: hands\nworst quality"]
HUGE_SEED = 2**64 - 1

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
        # Automatic written as the schedule it builds: the tiny model's config spaces timesteps "leading" with
        # steps_offset 1, A1111's DDIM schedule (A1111 reading "Automatic" would pick its own default instead).
        sampler = {"DPM++ 2M Karras": ("DPM++ 2M", "Karras"), "Euler a": ("Euler a", "DDIM")}[row["scheduler"]]
        assert (parsed["Sampler"], parsed.get("Schedule type")) == sampler
        assert (parsed["Steps"], parsed["CFG scale"], parsed["Seed"]) == ("1", "5.0", str(HUGE_SEED))
        assert (parsed["Size-1"], parsed["Size-2"]) == ("64", "32")  # width first, as A1111 writes it
        assert parsed["Model"] == "tiny" and parsed["Clip skip"] == "2"  # A1111 counts the last layer as 1
        assert parsed["Version"].startswith("sdxl-sweep") and parsed["RNG"] == "CPU"


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


def test_comfyui_loads_each_png_as_an_api_graph_that_remakes_it(varied):
    run_dir, table = varied
    for _, row in table.iterrows():
        text = Image.open(run_dir / row["image"]).text
        assert set(text) == {"parameters", "prompt", "sdxl-sweep"}  # no `workflow`: ComfyUI would take that first
        graph = json.loads(text["prompt"])
        assert {n["class_type"] for n in graph.values()} == {
            "CheckpointLoaderSimple", "CLIPSetLastLayer", "CLIPTextEncode", "KSampler", "EmptyLatentImage",
            "VAEDecode", "SaveImage"}
        read = read_comfy(run_dir / row["image"])
        assert (read["prompt"], read["negative"]) == (row["prompt"], row["negative_prompt"])
        assert (read["sampler"], read["schedule"]) == {"DPM++ 2M Karras": ("dpmpp_2m", "karras"),
                                                       "Euler a": ("euler_ancestral", "ddim_uniform")}[row["scheduler"]]
        assert (read["seed"], read["steps"], read["cfg"], read["size"]) == (str(HUGE_SEED), "1", "5.0", "64x32")
        clip_skip = next(n for n in graph.values() if n["class_type"] == "CLIPSetLastLayer")
        # clip_skip=1 (A1111's "Clip skip: 2"): one layer before SDXL's default there, the penultimate (-2).
        assert clip_skip["inputs"]["stop_at_clip_layer"] == -3
        assert json.loads(text["sdxl-sweep"])["cell_id"] == row["cell_id"]


def test_non_ascii_text_is_stored_as_utf8(varied):
    """iTXt for anything beyond ASCII: a tEXt chunk is Latin-1, and ComfyUI decodes it as UTF-8."""
    run_dir, table = varied
    for _, row in table.iterrows():
        data = (run_dir / row["image"]).read_bytes()
        ascii_only = row["prompt"].isascii() and row["negative_prompt"].isascii()
        assert (b"iTXtparameters" in data) == (not ascii_only)
        assert (b"tEXtparameters" in data) == ascii_only
