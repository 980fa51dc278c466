"""The test-side readers (tests/readers.py) read as they did before their rewrite in the project's own code: a
table of `parameters` texts (those the suite's runs write, and hard generated ones) with what each reader gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readers import a1111_parse, read_comfy_parameters

CORPUS = json.loads((Path(__file__).parent / "data" / "readers_corpus.json").read_text(encoding="utf-8"))["cases"]


def outcome(read, text: str) -> list | str:
    try:
        return [list(pair) for pair in read(text).items()]
    except ValueError:
        return "ValueError"


@pytest.mark.parametrize(("read", "column"), [(a1111_parse, "a1111"), (read_comfy_parameters, "comfy")])
def test_each_reader_gives_the_recorded_fields_in_order(read, column):
    wrong = [case["parameters"] for case in CORPUS if outcome(read, case["parameters"]) != case[column]]
    assert not wrong, f"{len(wrong)} of {len(CORPUS)} differ, first: {wrong[0]!r}"


def test_the_table_covers_what_the_readers_must_tell_apart():
    assert len(CORPUS) >= 600
    a1111 = [dict(c["a1111"]) for c in CORPUS if c["a1111"] != "ValueError"]
    comfy = [dict(c["comfy"]) for c in CORPUS if c["comfy"] != "ValueError"]
    assert sum("Size-1" in f for f in a1111) >= 100 and sum(bool(f["Negative prompt"]) for f in a1111) >= 100
    assert sum(any(isinstance(v, str) and "," in v for v in f.values()) for f in a1111) >= 100  # quoted values
    assert sum(bool(f) for f in comfy) >= 100 and sum(f.get("schedule") == "karras" for f in comfy) >= 20
    assert sum(c["a1111"] == "ValueError" for c in CORPUS) and sum(c["comfy"] == "ValueError" for c in CORPUS)


def test_examples():
    """Quoted values, sizes and a last line that is not a settings line (fewer than three fields)."""
    text = 'a cat, "quiet"\nNegative prompt: blurry, bad\nSteps: 3, Sampler: DPM++ 2M Karras, Size: 64x32, ' \
           'Model: "my, model: v2", Seed: 1'
    assert a1111_parse(text) == {"Steps": "3", "Sampler": "DPM++ 2M Karras", "Size-1": "64", "Size-2": "32",
                                 "Model": "my, model: v2", "Seed": "1", "Prompt": 'a cat, "quiet"',
                                 "Negative prompt": "blurry, bad"}
    assert a1111_parse("a cat\nSteps: 3, Seed: 1") == {"Prompt": "a cat\nSteps: 3, Seed: 1", "Negative prompt": ""}
    assert read_comfy_parameters(text) == {"prompt": 'a cat, "quiet"', "negative": "blurry, bad", "steps": "3",
                                           "sampler": "dpmpp_2m", "schedule": "karras", "size": "64x64",
                                           "model": '"my, model', "seed": "1"}  # cut at its second colon
    assert read_comfy_parameters("a cat\nSteps: 3, Seed: 1") == {}
