"""model.path takes a Hugging Face id as well as a file or folder; read from a hub-shaped cache, no network."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg, run_cli
from sweep.errors import SweepError
from sweep.models import hub

REPO_ID = "someone/tiny-sdxl"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
TINY_RUN = ("sweep=seed_fixed", "height=64", "width=64", "num_inference_steps=1")


def _cache(root: Path, repo_id: str, *, fp16: bool) -> Path:
    """A hub cache as huggingface_hub lays it out, holding the tiny model saved with save_pretrained."""
    from sweep.models.builtin import build_tiny_pipeline

    folder = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / SNAPSHOT
    pipe = build_tiny_pipeline()
    pipe.save_pretrained(snapshot)
    if fp16:
        pipe.save_pretrained(snapshot, variant="fp16")
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(SNAPSHOT)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    _cache(root, REPO_ID, fp16=False)
    _cache(root, "someone/tiny-fp16", fp16=True)
    return root


def test_a_hub_id_in_model_path_runs_from_the_cache_and_names_the_model(cache, tmp_path):
    run = run_cli(*TINY_RUN, f"model.path={REPO_ID}", cwd=tmp_path, env={"HF_HUB_CACHE": str(cache)})
    assert run.returncode == 0, run.stderr
    assert f"model {REPO_ID}" in run.stderr + run.stdout  # the header
    [run_dir] = list((tmp_path / "outputs" / "seed_fixed").iterdir())
    rows = pd.read_csv(run_dir / "results.csv")
    assert set(rows["model"]) == {REPO_ID} and list(rows["status"]) == ["ok"] * 3
    text = Image.open(run_dir / rows["image"][0]).text["parameters"]
    assert f"Model: {REPO_ID}" in text


def test_the_variant_follows_the_files_the_repository_has(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = dict(make_cfg("model=sdxl_base")["model"])  # the default's variant: fp16
    assert model["variant"] == "fp16"
    plain = hub.resolve({**model, "path": REPO_ID})
    assert (plain["source"], plain["id"], plain["path"], plain["name"], plain["variant"]) == (
        "hub", REPO_ID, None, REPO_ID, None)
    assert hub.resolve({**model, "path": "someone/tiny-fp16"})["variant"] == "fp16"
    # model.id=... on top of sdxl_base: named after the id, not the default's name.
    assert hub.resolve({**model, "id": REPO_ID})["name"] == REPO_ID


@pytest.mark.parametrize("words", [("model.path=nobody/not-cached",),
                                   ("sweep=checkpoints", "sweep.grid.checkpoint=[tiny,nobody/not-cached]")])
def test_offline_a_hub_id_not_in_the_cache_is_one_line(cache, tmp_path, words):
    run = run_cli(*TINY_RUN[1:], "model=tiny", *(("sweep=seed_fixed",) if len(words) == 1 else ()), *words,
                  cwd=tmp_path, env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "'nobody/not-cached'" in run.stderr and "not in the local Hugging Face cache" in run.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.png"))


def test_a_missing_weights_file_is_not_read_as_a_hub_id(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert hub.is_hub_id(REPO_ID) and not hub.is_hub_id("models/juggernaut.safetensors")
    with pytest.raises(SweepError, match="model.path"):
        from sweep.models.checks import check

        check({"path": "models/juggernaut.safetensors", "source": "hub", "device": "cpu", "dtype": "auto"})


def test_docs_show_sweeping_your_own_model_first():
    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    first = text.split("\n## ", 2)[1]
    assert first.lower().startswith("sweep your own model") and "model.path=RunDiffusion/Juggernaut-XL-v9" in first


