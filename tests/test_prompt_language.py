"""A1111's prompt language pinned by data: tests/data/prompt_language.json holds 240+ hard prompts with the
fragments and weights they parse into and the 75-token chunks they are cut into (docs/prompt-language.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep.errors import SweepError
from sweep.models.builtin import build_tokenizer
from sweep.prompts import language as prompt_language

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


# --- refused before anything loads (issue 31) --------------------------------------------------------------------


def plan(tmp_path, prompts, *overrides):
    from conftest import make_cfg
    from sweep.planning.plan import plan_sweep

    cfg = make_cfg("sweep=seed_fixed", "sweep.grid.repeat=1", "height=64", "width=64", "num_inference_steps=2",
                   *overrides)
    cfg.sweep.grid.prompt = prompts  # set directly: prompts hold colons and brackets
    return plan_sweep(cfg)


@pytest.mark.parametrize(("prompt", "message"), [
    ("a (x:1.2.3) b", r"^prompt: got 'a \(x:1.2.3\) b'; allowed: a weight that is one number, as in \(word:1.2\): "
                      r"':1.2.3\)' is not"),
    ("(x:.)", r"^prompt: got '\(x:.\)'; allowed: a weight that is one number"),
    ("a cat AND a dog", r"^prompt: got 'a cat AND a dog'; allowed: a prompt without the word AND \(A1111 reads AND "
                        r"as composable sub-prompts"),
    ("aspect ratio 16:9", r"^prompt: got 'aspect ratio 16:9'; allowed: a prompt that does not end in ':NUMBER' "
                          r"\(A1111 reads the trailing ':9' as a sub-prompt weight"),
])
def test_what_a1111_would_not_read_as_text_is_refused_in_one_line_for_any_prompt_of_the_grid(tmp_path, prompt,
                                                                                               message):
    from sweep.errors import SweepError as Refusal

    with pytest.raises(Refusal, match=message) as caught:
        plan(tmp_path, ["a plain cat", prompt])
    assert "\n" not in str(caught.value)


def test_the_trailing_weight_is_read_after_lora_tags_are_taken_out():
    from sweep.prompts.syntax import check_texts

    with pytest.raises(SweepError, match=r"allowed: a prompt that does not end in ':NUMBER'"):
        check_texts({"prompt": "a cat: 0.5 <lora:x:1>"}, None, ["x"])
    assert check_texts({"prompt": "a cat <lora:x:0.5>"}, None, ["x"]) == {"x": 0.5}


def test_what_a1111_reads_as_text_stays_text(tmp_path):
    # A closer with nothing open, a colon that ends nothing, AND and ':9' in a negative prompt (A1111 splits only
    # the prompt), and every one of them under prompt_syntax=none.
    plan(tmp_path, ["a:1.2.3)", "aspect ratio 16:9,", "ANDROID and a cat", "(word:1.5e0)"],
         "negative_prompt='blurry AND dark, 16:9'")
    plan(tmp_path, ["a cat AND a dog", "aspect ratio 16:9", "(x:1.2.3)"], "prompt_syntax=none")


# The edges of the hand-written scanners (issue 36: no pattern of A1111's): digits, blanks and word characters of
# any script count as Python's str methods count them (what the earlier regular expressions matched, checked for
# every code point), a tag needs a character between its colon and `>`, an escape takes one character.
@pytest.mark.parametrize(("prompt", "fragments"), [
    ("(a:\u0661.\u0665)", [("a", 1.5)]),  # Arabic-Indic digits are digits: the weight 1.5
    ("(a: +2. )b", [("a", 2.0), ("b", 1.0)]),
    ("(a:+)", [("a:+", 1.1)]),  # a sign and no digit: no weight closer; the colon is text and `)` closes
    ("a\u3000BREAK\u00a0\u2029b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),  # unicode blanks go with BREAK
    ("a BREAK\n\tBREAK b", [("a", 1.0), ("BREAK", -1.0), ("", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("\u732bBREAK \u0661BREAK BREAK_b BREAKBREAK", [("\u732bBREAK \u0661BREAK BREAK_b BREAKBREAK", 1.0)]),
    ("(BREAK)x", [("", 1.1), ("BREAK", -1.1), ("", 1.1), ("x", 1.0)]),  # the (empty) text on each side stays
])
def test_scanner_edges_weigh_as_specified(prompt, fragments):
    assert prompt_language.weigh(prompt) == fragments


@pytest.mark.parametrize(("prompt", "text", "tags"), [
    ("a <lora:detail:0.6> b", "a  b", [("lora", ["detail", "0.6"])]),
    ("<l\u00f3_1:x>", "", [("l\u00f3_1", ["x"])]),  # a word of any script
    ("<lora:>x> <:a> <l-o:r>", "<lora:>x> <:a> <l-o:r>", []),  # nothing after the colon, no word, a dash
    ("<a:<b:c>>", ">", [("a", ["<b", "c"])]),  # up to the first `>` after the colon
    ("<<lora:n:1>>", "<>", [("lora", ["n", "1"])]),
    ("<x:a\nb>", "", [("x", ["a\nb"])]),
])
def test_tags_are_taken_out_as_specified(prompt, text, tags):
    assert prompt_language.split_tags(prompt) == (text, tags)


@pytest.mark.parametrize(("prompt", "separated", "weight"), [
    ("a cat AND a dog", True, None),
    ("ANDROID, xAND, AND_b, \u732bAND, \u0661AND", False, None),
    ("(AND)", True, None),
    ("aspect ratio 16:9", False, ":9"),
    ("a: -1.5 \n", False, ": -1.5"),
    ("a:\u0663", False, ":\u0663"),
    ("a:1.", False, ":1."),
    ("a:.5", False, ":.5"),
    ("a:1.2.3", False, None),
    ("a:1e5", False, None),
    ("a:9 b", False, None),
    ("a:+", False, None),
    ("a:- 1", False, None),
    ("a:.", False, None),
])
def test_sub_prompt_separator_and_trailing_weight_as_specified(prompt, separated, weight):
    from sweep.prompts.syntax import has_separator, trailing_weight

    assert has_separator(prompt) is separated
    assert trailing_weight(prompt) == weight
