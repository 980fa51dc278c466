"""A1111's prompt editing `[from:to:when]` and alternation `[a|b]` at run time: the conditioning (prompt and pooled
embeddings) switches between sampling steps as A1111 switches it (docs/prompt-language.md, section 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg
from sweep.errors import SweepError
from sweep.planning.plan import plan_sweep
from sweep.prompts import schedule as prompt_schedule
from sweep.running.runner import run_sweep

SMALL = ("sweep=seed_fixed", "sweep.grid.repeat=1", "height=64", "width=64")


@pytest.mark.parametrize(("prompt", "steps", "texts"), [
    # A1111's rule: a text holds while the 0-based step is <= its last step; `when` with a dot is a fraction of the
    # steps (int(0.5 x 20) = 10), without one a step number.
    ("a [red cat:blue dog:0.5]", 20, ["a red cat"] * 11 + ["a blue dog"] * 9),
    ("[a:b:3]", 6, ["a"] * 4 + ["b"] * 2),
    ("[to:2]", 4, ["", "", "", "to"]),
    ("[from::2]", 4, ["from", "from", "from", ""]),
    ("[a:b:1.0]", 5, ["a"] * 5),  # a dot: the whole of the steps
    ("[a:b:0]", 3, ["b"] * 3),
    ("[a|b]", 5, ["a", "a", "b", "a", "b"]),  # entry 1 covers steps 0 and 1, then one per step
    ("[a|b|c]", 5, ["a", "a", "b", "c", "a"]),
    ("(x [a:b:0.5]:1.2) BREAK y", 4, ["(x a:1.2) BREAK y"] * 3 + ["(x b:1.2) BREAK y"]),
    ("[[a|b]:c:0.5]", 4, ["a", "a", "b", "c"]),
    ("[a:b] and [c]", 3, ["[a:b] and [c]"] * 3),  # no number: square brackets around text, as A1111 reads them
    ("a | b", 3, ["a | b"] * 3),  # A1111's grammar does not read it: the text as it is
    ("\\[a:b:0.5\\]", 3, ["\\[a:b:0.5\\]"] * 3),
    ("x [a:b:0.5", 3, ["x [a:b:0.5"] * 3),  # no edit fits: the characters, as A1111's grammar reads them
    ("style: photo, [a:b:1] c)", 3, ["style: photo, a c)"] * 2 + ["style: photo, b c)"]),  # a colon, a closer
])
def test_each_step_gets_the_text_a1111_gives_it(prompt, steps, texts):
    entries = prompt_schedule.timeline(prompt, steps)
    assert [prompt_schedule.text_at(entries, step) for step in range(steps)] == texts


@pytest.mark.parametrize("prompt", ["[a|b", "a [b|c", "(a [b:c:0.5]", "[x [b:c:0.5]"])
def test_editing_a1111_could_read_two_ways_is_refused_in_one_line(prompt):
    with pytest.raises(SweepError, match=r"^prompt: got .*; allowed: prompt editing "):
        plan_sweep(make_cfg(*SMALL, "num_inference_steps=4", f"prompt='{prompt}'"))


def test_editing_with_a_second_pass_is_refused_before_the_model_loads():
    with pytest.raises(SweepError, match=r"^prompt: got .*; allowed: prompt editing .* single pass \(not with "
                                         r"hires_scale"):
        plan_sweep(make_cfg(*SMALL, "num_inference_steps=4", "prompt='[a:b:0.5]'", "hires_scale=1.5"))


def run(tmp_path, prompts, *overrides):
    cfg = make_cfg(*SMALL, *overrides)
    cfg.sweep.grid.prompt = prompts  # set directly: the prompts hold colons and brackets
    run_dir = tmp_path / "run"
    summary = run_sweep(cfg, run_dir, progress=False, echo=lambda _: None)
    assert summary.ok, summary.errors
    table = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    return {r.prompt: np.asarray(Image.open(run_dir / r.image).convert("RGB")) for r in table.itertuples()}, run_dir


def test_an_edit_differs_from_both_ends_and_equals_each_where_it_holds_all_steps(tmp_path):
    a, b = "a red cat, (long:1.3) " + "word " * 20 + "BREAK tail", "a blue dog"  # weighted, 2 chunks, BREAK
    images, run_dir = run(tmp_path, [a, b, f"[{a}:{b}:0.5]", f"[{a}:{b}:1.0]", f"[{a}:{b}:0]", "a red cat",
                                     "[a red cat:a blue dog:0.5]"],
                          "num_inference_steps=6", "negative_prompt='[blurry:dark:2]'")
    edited = images[f"[{a}:{b}:0.5]"]
    assert not np.array_equal(edited, images[a]) and not np.array_equal(edited, images[b])
    edited = images["[a red cat:a blue dog:0.5]"]
    assert not np.array_equal(edited, images["a red cat"]) and not np.array_equal(edited, images[b])
    # Holding all steps: the image of that text alone (with the same edited negative prompt).
    assert np.array_equal(images[f"[{a}:{b}:1.0]"], images[a])
    assert np.array_equal(images[f"[{a}:{b}:0]"], images[b])
    parameters = Image.open(next((run_dir / "images").glob("*.png"))).text["parameters"]
    assert "Negative prompt: [blurry:dark:2]" in parameters  # the text as written, as A1111 writes it


def test_the_conditioning_switches_after_the_step_a1111_switches_at(monkeypatch):
    """Which embeddings each step's UNet call gets: the prompt's and the pooled, both halves of the CFG batch."""
    import torch

    from sweep.models.builtin import build_tiny_pipeline
    from sweep.prompts.cache import PromptCache

    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    cache = PromptCache(pipe, "cpu")
    args = {"prompt": "[a red cat:a blue dog:0.5]", "negative_prompt": "[ugly|dark]", "prompt_syntax": None}
    texts = prompt_schedule.step_texts(args, 6)
    ends = {(p, n): cache.embeds({**args, "prompt": p, "negative_prompt": n}, 1)
            for p in ("a red cat", "a blue dog") for n in ("ugly", "dark")}
    seen = []
    forward = pipe.unet.forward

    def spy(sample, timestep, encoder_hidden_states, **kwargs):
        pooled = kwargs["added_cond_kwargs"]["text_embeds"]
        for (p, n), e in ends.items():
            if (torch.equal(encoder_hidden_states, torch.cat([e["negative_prompt_embeds"], e["prompt_embeds"]]))
                    and torch.equal(pooled, torch.cat([e["negative_pooled_prompt_embeds"],
                                                       e["pooled_prompt_embeds"]]))):
                seen.append((p, n))
                break
        else:
            seen.append(None)
        return forward(sample, timestep, encoder_hidden_states, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    pipe(**cache.embeds(texts.at(0), 1), num_inference_steps=6, guidance_scale=5, height=64, width=64,
         output_type="latent", callback_on_step_end=prompt_schedule.switcher(texts, lambda a: cache.embeds(a, 1)),
         generator=torch.Generator().manual_seed(1))
    # int(0.5 x 6) = 3: the red cat for steps 0-3, the dog for 4-5; the negative alternates ugly, ugly, dark, ...
    assert seen == [("a red cat", "ugly"), ("a red cat", "ugly"), ("a red cat", "dark"), ("a red cat", "ugly"),
                    ("a blue dog", "dark"), ("a blue dog", "ugly")]


def test_an_edited_prompt_writes_no_comfyui_graph(tmp_path):
    _, run_dir = run(tmp_path, ["[a:b:0.5]"], "num_inference_steps=2")
    text = Image.open(next((run_dir / "images").glob("*.png"))).text
    assert text["parameters"].startswith("[a:b:0.5]\n") and "prompt" not in text


def test_deep_brackets_are_text_or_one_line_never_a_recursion_error():
    deep = "(" * 3000 + "x"
    assert prompt_schedule.timeline(deep, 4) == [(4, deep)]  # no editing: the weighting reads it as it is
    with pytest.raises(prompt_schedule.ScheduleError, match="at most 100 nested brackets"):
        prompt_schedule.timeline("[" * 3000 + "a:b:0.5" + "]" * 3000, 4)


@pytest.mark.parametrize(("prompt", "steps", "texts"), [
    # Plain text of the editing grammar: a backslash keeps the next character (any, a newline too) as written.
    ("[a\\:b:c:0.5]", 4, ["a\\:b"] * 3 + ["c"]),
    ("[a\\|b|c]", 3, ["a\\|b", "a\\|b", "c"]),
    ("[a\\\nb:c:1]", 3, ["a\\\nb", "a\\\nb", "c"]),
    ("\\x [a:b:1]", 3, ["\\x a", "\\x a", "\\x b"]),
])
def test_escapes_stay_in_the_plain_text_of_each_step(prompt, steps, texts):
    entries = prompt_schedule.timeline(prompt, steps)
    assert [prompt_schedule.text_at(entries, step) for step in range(steps)] == texts


def test_a_backslash_ending_an_edited_prompt_is_refused():
    with pytest.raises(prompt_schedule.ScheduleError):
        prompt_schedule.read("[a:b:0.5] \\")
