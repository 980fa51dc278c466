"""report.scores: per-image scores (scores.csv) against an independent transformers computation on a tiny CLIP
built here, resuming without rescoring or rewriting an image, and the ranking's interval by hand."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import test_viewer
from conftest import run_cli, snapshot
from report_fixtures import grid, make_run
from sweep.report import build_report
from sweep.report.ranking import rank, sentence, t_interval
from sweep.report.scores import ScoreOptions, plain_prompt

browser = test_viewer.browser  # Chromium through Playwright: skips without one, fails in CI

# t(0.975, df) from a printed table (Student's t): the ranking's scipy quantile is checked against these.
T975 = {3: 3.182446305284263, 4: 2.7764451051977987}


def build_tiny_clip(folder: Path) -> Path:
    """A CLIPModel (random, seeded weights) with the character tokenizer of sweep.models.builtin and a 32-px image
    processor, saved as a local folder. Random weights give cosines near 0 (clamped to 0 by CLIP score), so
    both towers end in the same layer-norm offset and projection: scores are positive and still differ per
    image and per text."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from sweep.models.builtin import build_tokenizer

    text = {"vocab_size": 514, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": 512, "eos_token_id": 513,
            "pad_token_id": 513}
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": 32, "patch_size": 8}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    with torch.no_grad():
        for norm in (model.vision_model.post_layernorm, model.text_model.final_layer_norm):
            norm.weight.fill_(0.5)
            norm.bias.fill_(1.0)
        model.text_projection.weight.copy_(model.visual_projection.weight)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=build_tokenizer())
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def reference_scores(folder: Path, run_dir: Path, images: list[str], texts: list[str]) -> dict[str, list[float]]:
    """CLIP score and PickScore as their authors compute them, through CLIPModel.forward (its normalised
    image_embeds / text_embeds), one image at a time."""
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    clip, pick = [], []
    for image, text in zip(images, texts, strict=True):
        with Image.open(run_dir / image) as img:
            inputs = processor(text=[text], images=[img.convert("RGB")], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model(**inputs)
        cos = float((out.image_embeds * out.text_embeds).sum())
        clip.append(max(100 * cos, 0.0))
        pick.append(float(model.logit_scale.detach().exp()) * cos)
    return {"clip_score": clip, "pickscore": pick}


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


PROMPTS = ["a (red:1.3) cat <lora:detail:0.6> on a [mat]", "((blue)) dog BREAK in snow"]


def scored_run(root: Path) -> Path:
    cells = grid(prompt=PROMPTS, seed=[1, 2, 3], guidance_scale=[3.0, 7.0])
    for i, c in enumerate(cells):  # images that differ inside too (a gradient), not one flat colour each
        c["cell_id"] = f"c{i}"
        c["image"] = f"images/c{i}.png"
        c["height"] = c["width"] = 64
    run = make_run(root, cells)
    rng = np.random.default_rng(0)
    from PIL import Image

    for c in cells:
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(run / c["image"])
    return run


def test_plain_prompt_strips_weights_and_lora_tags():
    assert plain_prompt(PROMPTS[0]) == "a red cat on a mat"
    assert plain_prompt(PROMPTS[1]) == "blue dog in snow"
    assert plain_prompt(r"a \(literal\) (word:0.5)") == "a (literal) word"
    # Prompt editing: the text in force at the last step (a switch past the last step never happens).
    assert plain_prompt("a [dog:(cat:1.2):0.5] in snow", 20) == "a cat in snow"
    assert plain_prompt("a [dog:cat:30] in snow", 20) == "a dog in snow"


def test_clip_score_and_pickscore_match_transformers(tmp_path, tiny_clip):
    run = scored_run(tmp_path / "run")
    options = ScoreOptions(("clip_score", "pickscore"), clip_model=str(tiny_clip), pickscore_model=str(tiny_clip),
                           pickscore_processor=str(tiny_clip), score_batch=5)
    result = build_report(run, scores=options)
    rows = read(run / "scores.csv")
    assert len(rows) == 12 and list(rows[0])[:4] == ["image", "image_sha256", "prompt_text", "clip_score"]
    texts = [plain_prompt(PROMPTS[0])] * 6 + [plain_prompt(PROMPTS[1])] * 6
    assert [r["prompt_text"] for r in rows] == texts
    expected = reference_scores(tiny_clip, run, [r["image"] for r in rows], texts)
    for name in ("clip_score", "pickscore"):
        got = [float(r[name]) for r in rows]
        assert got == pytest.approx(expected[name], abs=2e-4), name
        assert len({round(v, 3) for v in got}) > 6  # the scores differ per image: not a constant
    assert all(v > 0 for v in expected["clip_score"])
    manifest = (run / "scores.json").read_text()
    assert str(tiny_clip) in manifest and '"sha256"' in manifest
    # Ranked per prompt (the other varied axis), never across prompts for a text score.
    ranking = pd.read_csv(run / "ranking.csv")
    assert set(ranking["axis"]) == {"guidance_scale"} and set(ranking["group"]) == {"P1", "P2"}
    assert any("scores highest on clip_score" in s or "no value is better beyond seed noise on clip_score" in s
               for s in result.insights)
    assert (run / "plots" / "scores_clip_score_guidance_scale.png").is_file()


def test_resume_keeps_scores_rescores_remade_images_and_adds_a_scorer(tmp_path, tiny_clip):
    run = scored_run(tmp_path / "run")
    options = ScoreOptions(("clip_score",), clip_model=str(tiny_clip))
    build_report(run, scores=options)
    rows = read(run / "scores.csv")
    # A kept score is never recomputed: a value changed by hand survives the next build.
    rows[0]["clip_score"] = "12.5"
    pd.DataFrame(rows).to_csv(run / "scores.csv", index=False)
    # A remade image (other pixels, same name) is rescored.
    from PIL import Image

    Image.new("RGB", (64, 64), (250, 250, 250)).save(run / rows[1]["image"])
    before = snapshot(run / "images")
    layers = {"layers.0.weight": torch.randn(8, 16), "layers.0.bias": torch.randn(8),
              "layers.2.weight": torch.randn(1, 8), "layers.2.bias": torch.randn(1)}
    from safetensors.torch import save_file

    save_file(layers, str(tmp_path / "aesthetic.safetensors"))
    build_report(run, scores=ScoreOptions(("clip_score", "aesthetic"), clip_model=str(tiny_clip),
                                          aesthetic_model=str(tmp_path / "aesthetic.safetensors")))
    assert snapshot(run / "images") == before  # no image rewritten
    again = read(run / "scores.csv")
    assert list(again[0]) == ["image", "image_sha256", "prompt_text", "clip_score", "aesthetic"]
    assert again[0]["clip_score"] == "12.5"
    assert again[1]["image_sha256"] != rows[1]["image_sha256"]
    fresh = reference_scores(tiny_clip, run, [again[1]["image"]], [again[1]["prompt_text"]])
    assert float(again[1]["clip_score"]) == pytest.approx(fresh["clip_score"][0], abs=2e-4)
    assert float(again[1]["clip_score"]) != pytest.approx(float(rows[1]["clip_score"]), abs=1e-3)
    assert all(r["aesthetic"] for r in again)
    # A build with no scorers asked keeps the table and still ranks and shows it.
    result = build_report(run)
    assert read(run / "scores.csv") == again
    assert any("clip_score" in s for s in result.insights)


def test_aesthetic_matches_an_independent_mlp_and_refuses_pickled_code(tmp_path, tiny_clip):
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    run = scored_run(tmp_path / "run")
    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.Dropout(0.2), torch.nn.Linear(12, 6),
                              torch.nn.Dropout(0.1), torch.nn.Linear(6, 1)).eval()
    torch.save(mlp.state_dict(), tmp_path / "sac.pth")
    build_report(run, scores=ScoreOptions(("aesthetic",), clip_model=str(tiny_clip),
                                          aesthetic_model=str(tmp_path / "sac.pth")))
    rows = read(run / "scores.csv")
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    for row in rows[:4]:
        with Image.open(run / row["image"]) as img, torch.no_grad():
            embeds = model(**processor(text=["x"], images=[img.convert("RGB")], return_tensors="pt")).image_embeds
            assert float(row["aesthetic"]) == pytest.approx(float(mlp(embeds)[0, 0]), abs=1e-4)
    # A .pth that unpickles an object (code) is refused in one line, and runs nothing.
    (tmp_path / "evil.pth").write_bytes(b"")
    torch.save({"layers.0.weight": Path("/")}, tmp_path / "evil.pth")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\nfrom sweep.report import build_report\nfrom sweep.report.scores import ScoreOptions\n"
        "from sweep.errors import SweepError\n"
        f"try:\n    build_report({str(run)!r}, scores=ScoreOptions(('aesthetic',), clip_model={str(tiny_clip)!r}, "
        f"aesthetic_model={str(tmp_path / 'evil.pth')!r}))\nexcept SweepError as e:\n    print(e)\n    sys.exit(2)\n",
        encoding="utf-8")
    (run / "scores.csv").unlink()
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout.startswith("report.aesthetic_model: got") and "weights_only" in done.stdout


def test_ranking_interval_by_hand():
    # guidance 5/7/9 x seeds 1-4: 7 is best; 9 is close (within noise), 5 clearly lower on every seed.
    scores = {("5", 1): 28.0, ("5", 2): 29.0, ("5", 3): 27.5, ("5", 4): 28.5,
              ("7", 1): 31.0, ("7", 2): 31.8, ("7", 3): 30.6, ("7", 4): 31.4,
              ("9", 1): 31.5, ("9", 2): 30.9, ("9", 3): 30.2, ("9", 4): 31.6}
    cells = pd.DataFrame([{"guidance_scale": g, "seed": str(s), "status": "ok", "_order": i}
                          for i, (g, s) in enumerate(scores)])
    values = pd.Series(list(scores.values()), index=cells.index, dtype=float)
    (found,) = rank(cells, ["seed", "guidance_scale"], {"clip_score": values})
    table = found.table.set_index("value")
    assert found.best == "7"
    best = np.array([31.0, 31.8, 30.6, 31.4])
    half = T975[3] * best.std(ddof=1) / 2  # sqrt(4) = 2
    assert table.loc["7", "mean"] == pytest.approx(31.2)
    assert (table.loc["7", "low"], table.loc["7", "high"]) == pytest.approx((31.2 - half, 31.2 + half))
    d9 = np.array([31.5, 30.9, 30.2, 31.6]) - best  # paired by seed
    h9 = T975[3] * d9.std(ddof=1) / 2
    assert table.loc["9", "method"] == "paired" and table.loc["9", "pairs"] == 4
    assert (table.loc["9", "diff_low"], table.loc["9", "diff_high"]) == pytest.approx((d9.mean() - h9,
                                                                                       d9.mean() + h9))
    assert table.loc["9", "within_noise"] and not table.loc["5", "within_noise"]
    text = sentence(found, cells)
    assert text == ("CFG 7 scores highest on clip_score (31.20, 95 % interval 30.38-32.02 over 4 seeds); "
                    "9 is within noise of it; 5 is lower beyond seed noise")
    assert f"{31.2 - half:.2f}" == "30.38"


def test_ranking_unpaired_welch_and_no_seed_noise():
    # Other seeds per value: Welch's interval of the difference of the means.
    a, b = [10.0, 11.0, 12.0, 13.0], [20.0, 21.0, 19.0]
    cells = pd.DataFrame([{"sampler": "A", "seed": str(i), "_order": i} for i in range(4)]
                         + [{"sampler": "B", "seed": str(10 + i), "_order": 4 + i} for i in range(3)])
    values = pd.Series(a + b, index=cells.index, dtype=float)
    (found,) = rank(cells, ["seed", "sampler"], {"aesthetic": values})
    row = found.table.set_index("value").loc["A"]
    v1, v2 = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (v1 + v2) ** 2 / (v1 ** 2 / 3 + v2 ** 2 / 2)
    from scipy.stats import t

    half = t.ppf(0.975, df) * math.sqrt(v1 + v2)
    assert row["method"] == "welch"
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((np.mean(a) - 20 - half, np.mean(a) - 20 + half))
    assert t_interval([31.0, 31.8, 30.6, 31.4])[1] == pytest.approx(31.2 - T975[3] * np.std(
        [31.0, 31.8, 30.6, 31.4], ddof=1) / 2)
    # One seed per value: no interval, and the sentence says so.
    one = pd.DataFrame([{"guidance_scale": g, "seed": "1", "_order": i} for i, g in enumerate(["3", "7"])])
    (found,) = rank(one, ["seed", "guidance_scale"], {"clip_score": pd.Series([20.0, 25.0])})
    assert "one seed per value" in sentence(found, one)


def test_sweep_scores_after_generation_and_report_scores_an_unscored_run(tmp_path, tiny_clip):
    """The issue's "done when": a tiny sweep over seeds x guidance with report.scores=[clip_score] and a local
    tiny CLIP writes scores.csv (equal to transformers' own computation) and prints the ranking; sweep.report
    scores a run made without scores, rewriting no image."""
    args = ["model=tiny", "sweep=seeds_steps_guidance", "height=64", "width=64", "sweep.grid.seed=[1,2,3]",
            "sweep.grid.num_inference_steps=[2]", "sweep.grid.guidance_scale=[3,9]", "batch_size=3"]
    scored = tmp_path / "scored"
    done = run_cli(*args, "report.scores=[clip_score]", f"report.clip_model={tiny_clip}",
                   f"hydra.run.dir={scored}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read(scored / "scores.csv")
    assert len(rows) == 6
    expected = reference_scores(tiny_clip, scored, [r["image"] for r in rows], [r["prompt_text"] for r in rows])
    assert [float(r["clip_score"]) for r in rows] == pytest.approx(expected["clip_score"], abs=2e-4)
    ranking = [ln for ln in done.stdout.splitlines() if "on clip_score" in ln]
    assert len(ranking) == 1 and "over 3 seeds" in ranking[0], done.stdout

    # The same run without its scores is an unscored run (one sweep fewer than making it again).
    plain = tmp_path / "plain"
    shutil.copytree(scored, plain)
    for name in ("scores.csv", "scores.json", "ranking.csv"):
        (plain / name).unlink()
    before = snapshot(plain / "images")
    report = subprocess.run([sys.executable, "-m", "sweep.report", str(plain), "report.scores=[clip_score]",
                             f"report.clip_model={tiny_clip}"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert snapshot(plain / "images") == before
    assert [r["clip_score"] for r in read(plain / "scores.csv")] == [r["clip_score"] for r in rows]
    assert any("on clip_score" in ln for ln in report.stdout.splitlines()), report.stdout


def test_bad_scores_input_is_one_line_before_anything(tmp_path):
    run = make_run(tmp_path / "run", grid(seed=[1, 2]))
    before = snapshot(run)
    for arg, key in (("report.scores=[clipscore]", "report.scores: got 'clipscore'"),
                     ("report.clip_model=nobody/no-such-clip", "report.clip_model: got 'nobody/no-such-clip'")):
        extra = ["report.scores=[clip_score]"] if "clip_model" in arg else []
        done = subprocess.run([sys.executable, "-m", "sweep.report", str(run), arg, *extra], capture_output=True,
                              text=True, timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 2 and done.stderr.startswith(f"error: {key}"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot(run) == before
    # Before generation: the run refuses in one line and makes nothing.
    done = run_cli("model=tiny", "report.scores=[clip_score]", "report.clip_model=nobody/no-such-clip",
                   f"hydra.run.dir={tmp_path / 'never'}", cwd=tmp_path)
    assert done.returncode == 2 and "report.clip_model: got 'nobody/no-such-clip'" in done.stderr
    assert not (tmp_path / "never").exists()


def test_viewer_shows_colours_and_sorts_by_score(tmp_path, tiny_clip, browser):
    run = scored_run(tmp_path / "run")
    build_report(run, scores=ScoreOptions(("clip_score",), clip_model=str(tiny_clip)))
    rows = {r["image"]: float(r["clip_score"]) for r in read(run / "scores.csv")}
    cells = pd.read_csv(run / "results.csv", dtype=str)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((run / "index.html").as_uri() + "#x=guidance_scale&y=seed&prompt=" + PROMPTS[1].replace(" ", "%20")
              + "&score=clip_score&sortx=1")
    page.wait_for_selector("html[data-ready]")
    assert "on clip_score" in page.inner_text("#ranking")
    # Columns ordered by their mean score (highest first), each caption with its image's score.
    mine = cells[cells["prompt"] == PROMPTS[1]].assign(score=lambda t: t["image"].map(rows))
    means = mine.groupby("guidance_scale")["score"].mean().sort_values(ascending=False)
    heads = page.eval_on_selector_all("#cells .colhead", "els => els.map(e => e.textContent)")
    assert heads == [f"{float(g):g}" for g in means.index]
    captions = page.eval_on_selector_all("#cells figure[data-score]", "els => els.map(e => [e.querySelector("
                                         "'[data-cell]').dataset.cell, e.querySelector('figcaption').textContent])")
    assert len(captions) == 6
    by_id = mine.set_index("cell_id")["score"]
    for cell_id, caption in captions:
        assert f"clip_score {by_id[cell_id]:.{len(caption.rsplit('.', 1)[1])}f}" in caption
    # The large view lists the score; unticking the sort restores the sweep's order.
    page.click("#cells img >> nth=0")
    assert "clip_score" in page.inner_text("#large-status")
    page.keyboard.press("Escape")
    page.click("#sort-score")
    assert page.eval_on_selector_all("#cells .colhead", "els => els.map(e => e.textContent)") == ["3", "7"]
    assert "sortx" not in page.evaluate("location.hash")
    assert errors == []


def test_aesthetic_weights_by_url_are_fetched_once_into_the_cache(tmp_path, monkeypatch):
    """report.aesthetic_model=https://...: downloaded before any image into the user's cache, read from there
    after (the server gone), and a URL that fails is one line; a served pickle would still meet weights_only."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from safetensors.torch import save_file

    from sweep.report.result import ReportError
    from sweep.report.scores import aesthetic_file, load_aesthetic

    served = tmp_path / "served"
    served.mkdir()
    save_file({"layers.0.weight": torch.ones(1, 8), "layers.0.bias": torch.zeros(1)}, str(served / "sac.safetensors"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *_: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        path = aesthetic_file(f"{base}/sac.safetensors")
        assert path.read_bytes() == (served / "sac.safetensors").read_bytes()
        assert path.is_relative_to(tmp_path / "cache" / "sdxl-sweep" / "aesthetic")
        with pytest.raises(ReportError, match="could not download it"):
            aesthetic_file(f"{base}/missing.safetensors")
        with pytest.raises(ReportError, match="must end in"):
            aesthetic_file(f"{base}/sac.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert aesthetic_file(f"{base}/sac.safetensors") == path  # the cached copy; nothing is fetched again
    assert len(load_aesthetic(path)) == 1
    assert not list((tmp_path / "cache" / "sdxl-sweep" / "aesthetic").glob("*.part"))
