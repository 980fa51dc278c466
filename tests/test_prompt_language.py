"""A1111's prompt language pinned by data: tests/data/prompt_language.json holds 240+ hard prompts with the
fragments and weights they parse into and the 75-token chunks they are cut into (docs/prompt-language.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep import prompt_language
from sweep.errors import SweepError
from sweep.models import build_tokenizer

TABLE = json.loads((Path(__file__).parent / "data" / "prompt_language.json").read_text(encoding="utf-8"))
CASES = TABLE["cases"]
IDS = [f"{i}:{c['prompt'][:40]!r}" for i, c in enumerate(CASES)]


def test_the_table_covers_the_hard_cases():
    prompts = [c["prompt"] for c in CASES]
    assert len(set(prompts)) == len(prompts) >= 150
    assert sum(len(c.get("chunks", [])) > 1 for c in CASES) >= 40  # long prompts, commas near the boundary
    assert sum(bool(c.get("refused")) for c in CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_prompt_parses_into_its_fragments_and_weights(case):
    if case.get("refused"):
        with pytest.raises((SweepError, ValueError)):
            prompt_language.weigh(case["prompt"])
        return
    assert [[t, w] for t, w in prompt_language.weigh(case["prompt"])] == case["fragments"]


@pytest.mark.parametrize("case", [c for c in CASES if "chunks" in c], ids=lambda c: repr(c["prompt"][:40]))
@pytest.mark.parametrize("pad", ["<|endoftext|>", "!"])  # SDXL's two tokenizers pad differently
def test_each_prompt_is_cut_into_its_chunks(case, pad):
    tokenizer = build_tokenizer(pad_token=pad)
    bos, eos, fill = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    expected = []
    for chunk in case["chunks"]:
        ids = chunk["ids"]
        weights = [w for w, n in chunk["weights"] for _ in range(n)]
        padding = TABLE["chunk_tokens"] - len(ids)
        expected.append(([bos, *ids, eos, *[fill] * padding], [1.0, *weights, 1.0, *[1.0] * padding]))
    assert prompt_language.cut_chunks(tokenizer, case["prompt"]) == expected
