"""Prompts and samplers as the community writes them: A1111 weighting and long prompts, `<lora:...>` tags, the
Schedule type axis, and every PNG read back by the four readers people use."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from readers import (
    read_a1111,
    read_comfy,
    read_comfy_parameters,
    read_sd_parsers,
    read_sd_prompt_reader,
    sd_prompt_reader_or_skip,
)
from sweep.errors import SweepError
from sweep.models.builtin import build_tokenizer
from sweep.planning.plan import plan_sweep
from sweep.prompts import language as prompt_language
from sweep.prompts import syntax as prompt_syntax
from sweep.running.runner import run_sweep

SMALL = ("sweep=seed_fixed", "sweep.grid.repeat=1", "height=64", "width=64", "num_inference_steps=3")


def run(tmp_path, name, grid: dict, *overrides):
    cfg = make_cfg(*SMALL, *overrides)
    for key, values in grid.items():
        cfg.sweep.grid[key] = values  # set directly: prompts hold commas, colons and brackets
    run_dir = tmp_path / name
    summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    assert summary.ok, summary.errors
    return run_dir, pd.read_csv(run_dir / "results.csv", keep_default_na=False)


def pixels(run_dir, relative) -> bytes:
    return np.asarray(Image.open(run_dir / relative).convert("RGB")).tobytes()


def tokens(text: str) -> int:
    """Tokens of the tiny model's tokenizer (one per character, spaces excluded): what the 75-token chunks count."""
    return len(build_tokenizer()(text, add_special_tokens=False)["input_ids"])


# --- A1111's parser ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [  # the examples in A1111's prompt_parser.py docstring
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1), ("b", 1.0)]),
])
def test_attention_is_parsed_as_a1111_parses_it(text, parsed):
    assert prompt_language.weigh(text) == parsed


def test_long_prompts_split_into_77_token_chunks_at_a_comma_as_a1111_does():
    tokenizer = build_tokenizer()
    words = "abcdefghij " * 7 + ", " + "klmnopqrst " * 3  # 70 tokens, a comma, 30 more
    pieces = prompt_language.cut_chunks(tokenizer, words)
    assert [len(ids) for ids, _ in pieces] == [77, 77]
    first, _ = pieces[0]
    assert first[0] == tokenizer.bos_token_id and first[72] == tokenizer.eos_token_id  # cut after the comma
    assert prompt_language.cut_chunks(tokenizer, "a BREAK b")[0][0][:4] == [tokenizer.bos_token_id,
                                                                      tokenizer.convert_tokens_to_ids("a</w>"),
                                                                      tokenizer.eos_token_id, tokenizer.pad_token_id]


def test_the_prompt_cache_keys_on_the_parsed_prompt():
    key = prompt_syntax.cache_key
    assert key({"prompt": "cat", "prompt_syntax": None}) == key({"prompt": "(cat:1.0)", "prompt_syntax": None})
    assert key({"prompt": "cat", "prompt_syntax": None}) != key({"prompt": "(cat:1.5)", "prompt_syntax": None})
    assert key({"prompt": "cat", "prompt_syntax": "none"}) != key({"prompt": "(cat:1.0)", "prompt_syntax": "none"})


# --- images --------------------------------------------------------------------------------------------------

LONG = ("a photograph of a small grey tabby cat sitting on a wooden windowsill in the warm light of a late "
        "summer afternoon with a potted basil plant beside it")  # 120+ tokens of the tiny model's tokenizer


def test_weights_change_the_image_and_weight_one_does_not(tmp_path):
    run_dir, table = run(tmp_path, "weights", {"prompt": ["cat", "(cat:1.5)", "(cat:1.0)", "[cat]"]})
    by = {p: pixels(run_dir, i) for p, i in zip(table["prompt"], table["image"], strict=True)}
    assert by["(cat:1.5)"] != by["cat"] and by["[cat]"] != by["cat"]
    assert by["(cat:1.0)"] == by["cat"]


def test_words_past_77_tokens_change_the_image_unless_prompt_syntax_is_none(tmp_path):
    head = LONG[:100]
    assert tokens(head) >= 80  # past CLIP's 77 (75 between BOS and EOS)
    a, b = f"{head} red hat", f"{head} blue sky"
    run_dir, table = run(tmp_path, "long", {"prompt": [a, b], "prompt_syntax": ["a1111", "none"]})
    by = {(r.prompt, r.prompt_syntax): pixels(run_dir, r.image) for r in table.itertuples()}
    assert by[(a, "")] != by[(b, "")]  # a1111 (the default, recorded empty): every chunk reaches the UNet
    assert by[(a, "none")] == by[(b, "none")]  # diffusers' plain encoder cuts at 77 tokens


def test_compel_syntax_weights_with_compels_rules(tmp_path):
    pytest.importorskip("compel", reason="compel is not installed: pip install compel (or '.[compel]')")
    run_dir, table = run(tmp_path, "compel", {"prompt": ["cat", "cat++"]}, "prompt_syntax=compel")
    by = {p: pixels(run_dir, i) for p, i in zip(table["prompt"], table["image"], strict=True)}
    assert by["cat++"] != by["cat"]
    text = Image.open(run_dir / table["image"][0]).text
    assert "Prompt syntax: compel" in text["parameters"] and "prompt" not in text  # ComfyUI's syntax differs


def test_lora_tags_and_broken_prompt_editing_are_refused_in_one_line_when_they_cannot_apply():
    with pytest.raises(SweepError, match=r"^prompt: got '<lora:detail:0.5>'; allowed: a LoRA named in model.lora"):
        plan_sweep(make_cfg(*SMALL, "prompt='a cat <lora:detail:0.5>'"))
    with pytest.raises(SweepError, match=r"^prompt: got .*; allowed: prompt editing .* that A1111's grammar does "
                                         r"not read"):
        plan_sweep(make_cfg(*SMALL, "prompt='a [cat|dog'"))
    with pytest.raises(SweepError, match=r"<lora:NAME:W> tags only"):
        plan_sweep(make_cfg(*SMALL, "prompt='a cat <hypernet:x:1>'"))
    plan_sweep(make_cfg(*SMALL, "prompt='a [cat|dog'", "prompt_syntax=none"))  # literal text there


def test_a_schedule_type_a_sampler_cannot_take_is_refused_in_one_line():
    with pytest.raises(SweepError) as info:
        plan_sweep(make_cfg(*SMALL, "sweep.grid.scheduler=[DDIM]", "sweep.grid.schedule_type=[Karras]"))
    assert str(info.value).startswith("sweep.grid.schedule_type: got 'Karras'; allowed: a schedule type DDIM can "
                                      "take: Automatic, Uniform, SGM Uniform, DDIM")
    with pytest.raises(SweepError, match="which sets its own schedule"):
        plan_sweep(make_cfg(*SMALL, "scheduler=DPM++ 2M Karras", "sweep.grid.schedule_type=[SGM Uniform]"))
    with pytest.raises(SweepError, match="a sampler diffusers builds .diffusers has no Restart sampler"):
        plan_sweep(make_cfg(*SMALL, "sweep.grid.scheduler=[Restart]"))
    with pytest.raises(SweepError, match="a schedule type diffusers builds"):
        plan_sweep(make_cfg(*SMALL, "sweep.grid.schedule_type=[Polyexponential]"))


# --- the issue's sweep, read back by every reader ------------------------------------------------------------

PROMPTS = ["(a red:1.4) cat", "a red cat", LONG]
SAMPLERS = ["Euler a", "DPM++ 2M", "DPM++ 2S a"]
SCHEDULES = ["Automatic", "Karras", "SGM Uniform"]
# What Automatic is on the tiny model (its config spaces timesteps "leading" with steps_offset 1: A1111's DDIM
# schedule; DPM-Solver singlestep spaces its own way, A1111's SGM Uniform).
AUTOMATIC = {"Euler a": "DDIM", "DPM++ 2M": "DDIM", "DPM++ 2S a": "SGM Uniform"}
COMFY_SAMPLER = {"Euler a": "euler_ancestral", "DPM++ 2M": "dpmpp_2m", "DPM++ 2S a": "dpmpp_2s_ancestral"}
COMFY_SCHEDULE = {"DDIM": "ddim_uniform", "Karras": "karras", "SGM Uniform": "sgm_uniform"}
FIELDS = ("prompt", "negative", "steps", "sampler", "schedule", "cfg", "seed", "size", "model", "model_hash", "rng")


@pytest.fixture(scope="module")
def issue_sweep(tmp_path_factory):
    assert tokens(LONG) >= 120
    return run(tmp_path_factory.mktemp("issue"), "run", {"prompt": PROMPTS, "scheduler": SAMPLERS,
                                                         "schedule_type": SCHEDULES})


def test_the_sweep_gives_distinct_images_where_the_setting_changes_the_computation(issue_sweep):
    run_dir, table = issue_sweep
    assert len(table) == 27 and set(table["status"]) == {"ok"}
    digest = {(r.prompt, r.scheduler, r.schedule_type or "Automatic"): hashlib.sha1(pixels(run_dir, r.image)).digest()
              for r in table.itertuples()}
    # DPM-Solver singlestep's own spacing is SGM Uniform: asking for it changes nothing; every other pair differs.
    same = {(p, "DPM++ 2S a", "Automatic"): (p, "DPM++ 2S a", "SGM Uniform") for p in PROMPTS}
    for a, b in same.items():
        assert digest[a] == digest[b]
    assert len(set(digest.values())) == 27 - len(same)


def expected(row) -> dict[str, str]:
    schedule = row["schedule_type"] or AUTOMATIC[row["scheduler"]]
    return {"prompt": row["prompt"], "negative": "", "steps": "3", "sampler": row["scheduler"], "schedule": schedule,
            "cfg": "5.0", "seed": "1234", "size": "64x64", "model": "tiny", "model_hash": None, "rng": "CPU"}


def test_every_png_reads_back_right_in_the_four_readers(issue_sweep):
    """Counts, per reader, the PNGs whose every field it has a notion of reads back right (the tiny model has no
    file, so no Model hash: each reader must read none). ComfyUI loads the `prompt` chunk's API graph on a drop,
    which has no model hash and no RNG (ComfyUI's noise is always the CPU's)."""
    sd_prompt_reader_or_skip()
    run_dir, table = issue_sweep
    readers = {"A1111": read_a1111, "sd-parsers": read_sd_parsers, "sd-prompt-reader": read_sd_prompt_reader,
               "ComfyUI": read_comfy}
    right: Counter = Counter()
    wrong: list[str] = []
    for _, row in table.iterrows():
        want = expected(row)
        comfy = {**want, "sampler": COMFY_SAMPLER[row["scheduler"]], "schedule": COMFY_SCHEDULE[want["schedule"]],
                 "model": "tiny.safetensors"}
        for name, read in readers.items():
            got = read(run_dir / row["image"])
            target = comfy if name == "ComfyUI" else want
            bad = [f for f in FIELDS if (f in got or name != "ComfyUI") and got.get(f) != target[f]]
            if bad:
                wrong.append(f"{name} {row['image']}: " + ", ".join(f"{f}={got.get(f)!r}" for f in bad))
            else:
                right[name] += 1
    assert not wrong, "\n".join(wrong[:10])
    assert right == {name: 27 for name in readers}


def test_comfyuis_a1111_importer_builds_a_graph_from_each_png_without_its_prompt_chunk(issue_sweep):
    """Where the `prompt` chunk is dropped (tools that keep only `parameters`): the empty `Negative prompt:` line
    lets ComfyUI's importer build, and nothing it reads is cut at a comma. It knows no Schedule type and has no
    name for Euler a or DPM++ 2S a (it keeps KSampler's euler / normal there)."""
    run_dir, table = issue_sweep
    for _, row in table.iterrows():
        got = read_comfy_parameters(Image.open(run_dir / row["image"]).text["parameters"])
        want = expected(row)
        assert {f: got.get(f) for f in ("prompt", "negative", "steps", "cfg", "seed", "size", "model")} == {
            f: want[f] for f in ("prompt", "negative", "steps", "cfg", "seed", "size", "model")}
        assert got["sampler"] == {"DPM++ 2M": "dpmpp_2m"}.get(row["scheduler"], "euler")
