"""Real model files: an original-layout single file, a VAE override, LoRAs, a refiner, A1111 names and hashes.

Every file is made here, in code (tests/model_files.py), and loaded the way a user's download would be.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import weakref

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_cfg, run_cli
from model_files import write_lora, write_single_file, write_vae_file
from sweep.cli import app
from sweep.errors import SweepError
from sweep.files import checkpoints
from sweep.models import checks as model_checks
from sweep.models import lora, pipeline
from sweep.models.builtin import build_tiny_layout_pipeline, build_tiny_pipeline, build_tiny_refiner
from sweep.models.refiner import generate_with_refiner
from sweep.rundir.metadata import a1111_parameters
from sweep.running.runner import run_sweep

SMALL = ("sweep=seed_fixed", "sweep.grid.repeat=1", "height=64", "width=64", "num_inference_steps=2")


@pytest.fixture(autouse=True)
def _own_hash_cache(tmp_path, monkeypatch):
    """Hashes go to a per-test cache dir, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two SDXL-layout checkpoints (other weights in the second) as files, the first also as a folder; VAEs; a LoRA."""
    root = tmp_path_factory.mktemp("model-files")
    base, other = build_tiny_layout_pipeline(), build_tiny_layout_pipeline(seed=1)
    base.save_pretrained(root / "base-folder")
    write_single_file(base, root / "base.safetensors")
    write_single_file(other, root / "other.safetensors")
    base.vae.save_pretrained(root / "vae-same")  # diffusers folder, the model's own weights
    other.vae.save_pretrained(root / "vae-other")
    write_vae_file(base.vae, root / "vae-same.safetensors")  # original layout, as sdxl_vae.safetensors is
    write_vae_file(other.vae, root / "vae-other.safetensors")
    write_lora(build_tiny_pipeline().unet, root / "detail.safetensors")
    return root


def run(tmp_path, name, *overrides):
    run_dir = tmp_path / name
    summary = run_sweep(make_cfg(*SMALL, *overrides), run_dir, progress=False, echo=lambda _: None)
    assert summary.ok and summary.made == 1
    row = pd.read_csv(run_dir / "results.csv", keep_default_na=False).iloc[0]
    image = Image.open(run_dir / row["image"])
    return row, np.asarray(image.convert("RGB")), image.text["parameters"]


def infotext_fields(parameters: str) -> dict[str, str]:
    """The key: value pairs of an A1111 parameters text's last line (values quoted by A1111's rule)."""
    import re

    pairs = re.findall(r'\s*([\w ]+): ("(?:\\.|[^"\\])*"|[^,]*)(?:,|$)', parameters.splitlines()[-1])
    return {key: json.loads(value) if value.startswith('"') else value for key, value in pairs}


def sha256_of(path, offset=0) -> str:
    return hashlib.sha256(path.read_bytes()[offset:]).hexdigest()


# --- single-file checkpoints ----------------------------------------------------------------------------


def test_file_is_in_the_original_sdxl_layout(files):
    names = checkpoints.tensor_names(checkpoints.read_header(files / "base.safetensors"))
    assert checkpoints.checkpoint_kind(names) == "sdxl"
    for prefix in ("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
                   "model.diffusion_model.label_emb.0.0.weight", "first_stage_model.decoder.mid.attn_1.q.weight",
                   "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
                   "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
                   "conditioner.embedders.1.model.text_projection"):
        assert prefix in names
    assert not any(".q_proj." in n for n in names if n.startswith("conditioner.embedders.1."))  # fused q/k/v


def test_single_file_and_its_folder_give_pixel_identical_images(tmp_path, files, capfd):
    row_file, file_pixels, parameters = run(tmp_path, "file", f"model.path={files / 'base.safetensors'}",
                                            f"model.config={files / 'base-folder'}")
    assert capfd.readouterr().err == ""  # loading printed nothing: no diffusers warnings, no progress bars
    row_dir, dir_pixels, _ = run(tmp_path, "folder", f"model.path={files / 'base-folder'}")
    assert np.array_equal(file_pixels, dir_pixels)
    assert row_file["model"] == "base" and row_dir["model"] == "base-folder"  # file stem, folder name: no colon
    fields = infotext_fields(parameters)
    assert fields["Model"] == "base"
    assert fields["Model hash"] == row_file["model_hash"] == sha256_of(files / "base.safetensors")[:10]
    assert row_dir["model_hash"] == ""  # a folder is no file A1111 or civitai could look up


def test_other_weights_give_other_pixels(tmp_path, files):
    _, base_pixels, _ = run(tmp_path, "base", f"model.path={files / 'base.safetensors'}",
                            f"model.config={files / 'base-folder'}")
    row, other_pixels, _ = run(tmp_path, "other", f"model.path={files / 'other.safetensors'}",
                               f"model.config={files / 'base-folder'}")
    assert row["model"] == "other" and not np.array_equal(base_pixels, other_pixels)


def test_loading_another_model_releases_the_previous_one_first(tmp_path, files, monkeypatch):
    run(tmp_path, "first", f"model.path={files / 'base-folder'}")  # a whole run: nothing of it may hold the model
    (first,) = pipeline._CACHE.values()
    unet = weakref.ref(first.pipe.unet)
    del first
    build = pipeline._build
    seen = []

    def checked_build(*args, **kwargs):
        seen.append(unet() is None)  # the previous UNet is gone before the next model loads
        return build(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_build", checked_build)
    other = make_cfg(f"model.path={files / 'other.safetensors'}", f"model.config={files / 'base-folder'}")
    pipeline.load(other["model"])
    assert seen == [True]
    pipeline.release()


# --- hashes ---------------------------------------------------------------------------------------------


def test_model_hash_is_a1111s_and_is_computed_once_per_file(tmp_path, files, monkeypatch):
    path = tmp_path / "copy.safetensors"
    shutil.copy(files / "base.safetensors", path)
    calls = []
    digest = checkpoints._digest
    monkeypatch.setattr(checkpoints, "_digest", lambda *a: calls.append(a) or digest(*a))
    expected = sha256_of(path)  # as `sha256sum copy.safetensors` prints it
    assert checkpoints.model_hash(path) == expected[:10] and len(calls) == 1
    cache = tmp_path / "xdg-cache" / "sdxl-sweep" / "hashes.json"
    assert json.loads(cache.read_text())["sha256"][str(path.resolve())]["sha256"] == expected
    # Two runs (the pipeline released in between, as a new process would load it): no more hashing.
    for name in ("first", "second"):
        pipeline.release()
        row, _, _ = run(tmp_path, name, f"model.path={path}", f"model.config={files / 'base-folder'}")
        assert row["model_hash"] == expected[:10]
    assert len(calls) == 1
    # A changed file (new mtime and size) is hashed again.
    with open(path, "ab") as handle:
        handle.write(b"\0")
    assert checkpoints.model_hash(path) == sha256_of(path)[:10] and len(calls) == 2
    pipeline.release()


def test_lora_hash_is_a1111s_addnet_hash(files):
    path = files / "detail.safetensors"
    header = 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert checkpoints.lora_hash(path) == sha256_of(path, offset=header)[:12]


# --- bad files: one line, exit 2, nothing loaded ---------------------------------------------------------


def _bad_files(root, files):
    truncated = root / "truncated.safetensors"
    truncated.write_bytes((files / "base.safetensors").read_bytes()[:-1000])
    not_safetensors = root / "text.safetensors"
    not_safetensors.write_text("hello, I am not a checkpoint\n")
    sd15 = root / "sd15.safetensors"
    from safetensors.torch import save_file

    save_file({"cond_stage_model.transformer.x": torch.zeros(1), "model.diffusion_model.y": torch.zeros(1)}, str(sd15))
    sd15_folder = root / "sd15-folder"
    sd15_folder.mkdir()
    (sd15_folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (root / "weights.ckpt").write_bytes(b"pickle")
    base = files / "base.safetensors"
    return [
        (f"model.path={truncated}", "model.path: got '", "(truncated: "),
        (f"model.path={not_safetensors}", "model.path: got '", "not a safetensors file"),
        (f"model.path={root / 'weights.txt'}", "model.path: got '", "allowed: an existing diffusers folder"),
        (f"model.path={sd15}", "model.path: got '", "(a Stable Diffusion 1.x/2.x checkpoint); allowed: an SDXL"),
        (f"model.path={files / 'detail.safetensors'}", "model.path: got '", "(a LoRA (give it as model.lora))"),
        (f"model.path={sd15_folder}", "model.path: got '", "(a StableDiffusionPipeline folder, not SDXL)"),
        (f"model.path={root / 'weights.ckpt'}", "model.path: got '", "pass model.allow_pickle=true only if"),
        (f"model.config={root / 'no-config'}", "model.config: got '", "(no such folder)"),
        (f"model.vae={root / 'no-vae.safetensors'}", "model.vae: got '", "(no such file)"),
        (f"model.vae={base}", None, None),  # a full checkpoint holds a VAE: allowed
        (f"model.vae={files / 'detail.safetensors'}", "model.vae: got '", "(a LoRA (give it as model.lora))"),
        (f"model.vae={root / 'weights.ckpt'}", "model.vae: got '", "(a pickle checkpoint)"),
        (f"model.lora={root / 'no-lora.safetensors'}", "model.lora: got '", "(no such file)"),
        (f"model.lora=[{base}]", "model.lora: got '", "(an SDXL checkpoint); allowed: a LoRA"),
        (f"model.lora=[{files / 'detail.safetensors'},{files / 'detail.safetensors'}]", "model.lora: got 'detail'",
         "distinct LoRA names"),
        ("model.refiner=./no/such/refiner", "model.refiner: got '", "(no such folder)"),
        (f"model.refiner={files / 'base-folder'}", "model.refiner: got '", "(an SDXL base folder"),
        ("model.refiner=tiny refiner_switch=1.5", "refiner_switch: got 1.5", "strictly between 0 and 1"),
        ("refiner_switch=0.5", "refiner_switch: got 0.5", "allowed: null unless model.refiner is set"),
        ("sweep.grid.lora={nope:[0,1]}", "sweep.grid.lora.nope: got 'nope'", "a LoRA named in model.lora"),
    ]


def test_bad_model_files_exit_2_with_one_line_before_anything_loads(tmp_path, files, capfd):
    loads = pipeline.LOADS
    for override, start, needle in _bad_files(tmp_path, files):
        cfg = make_cfg(*SMALL, f"model.path={files / 'base.safetensors'}", f"model.config={files / 'base-folder'}",
                       *override.split())
        if start is None:
            model_checks.check(cfg["model"])  # passes
            continue
        with pytest.raises(SystemExit) as info:
            app.run_job(cfg, tmp_path / "run")
        err = capfd.readouterr().err
        assert info.value.code == 2, override
        assert err.count("\n") == 1 and err.startswith(f"error: {start}"), (override, err)
        assert needle in err, (override, err)
    assert pipeline.LOADS == loads


def test_a_folder_whose_weights_are_broken_fails_with_one_line(tmp_path, files, capfd):
    folder = tmp_path / "broken-folder"
    shutil.copytree(files / "base-folder", folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(SystemExit):
        app.run_job(make_cfg(*SMALL, f"model.path={folder}"), tmp_path / "run")
    err = capfd.readouterr().err
    # Found from the headers before anything loads (issue 31): the folder and the broken file are named.
    assert err.count("\n") == 1 and err.startswith(f"error: model.path: got '{folder}' (unet/diffusion_pytorch_"
                                                    "model.safetensors: "), err


def test_a_single_file_without_configs_offline_says_what_to_pass(tmp_path, files, capfd, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(SystemExit):
        app.run_job(make_cfg(*SMALL, f"model.path={files / 'base.safetensors'}"), tmp_path / "run")
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "pass model.config=<a diffusers SDXL folder>" in err


def test_a_hub_model_not_in_the_cache_offline_is_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(SystemExit):
        app.run_job(make_cfg(*SMALL, "model=sdxl_base"), tmp_path / "run")
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: model: could not load 'stabilityai/")


def test_long_reasons_are_cut_between_words():
    text = "We could not find the files on the local disk and " + "ourselves " * 30
    short = pipeline.shorten(text, 80)
    assert len(short) <= 80 and short.endswith("...") and text.startswith(short[:-3])
    assert text[len(short) - 3] == " "  # the cut is at a space: the last word is whole


# --- VAE ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vae", "same"), [("vae-same.safetensors", True), ("vae-other", False)])
def test_vae_override(tmp_path, files, vae, same):
    model = (f"model.path={files / 'base-folder'}",)
    _, own, _ = run(tmp_path, "own", *model)
    row, pixels, parameters = run(tmp_path, "vae", *model, f"model.vae={files / vae}")
    assert np.array_equal(own, pixels) == same
    assert row["vae"] == vae
    fields = infotext_fields(parameters)
    assert fields["VAE"] == vae
    if vae.endswith(".safetensors"):  # A1111's VAE hash: the file's SHA-256, 10 digits
        assert row["vae_hash"] == fields["VAE hash"] == sha256_of(files / vae)[:10]
    else:
        assert row["vae_hash"] == "" and "VAE hash" not in fields
    assert list(fields).index("Model") < list(fields).index("VAE hash" if same else "VAE")


# --- LoRA -----------------------------------------------------------------------------------------------


def test_lora_strength_zero_is_the_base_model_and_other_strengths_differ(files):
    def image(pipe):
        pipe.set_progress_bar_config(disable=True)
        out = pipe("a red fox", height=64, width=64, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
        return np.asarray(out.images[0])

    base = image(build_tiny_pipeline())
    loaded = pipeline.load(make_cfg(f"model.lora=[{files / 'detail.safetensors'}]")["model"])
    assert [(x.name, x.text_encoder) for x in loaded.loras] == [("detail", False)]
    images = {}
    for strength in (0.0, 0.5, 1.0, 0.0):
        lora.set_lora_strengths(loaded.pipe, {"detail": strength})
        images[strength] = image(loaded.pipe)
        assert np.array_equal(images[strength], base) == (strength == 0)
    assert not np.array_equal(images[0.5], images[1.0])
    with pytest.raises(SweepError, match="lora: got 'nope'; allowed: a loaded LoRA: detail"):
        lora.set_lora_strengths(loaded.pipe, {"nope": 1.0})
    lora.set_lora_strengths(loaded.pipe, {"detail": 1.0})
    pipeline.release()


def test_lora_is_recorded_as_a1111_writes_it(tmp_path, files):
    path = files / "detail.safetensors"
    row, _, parameters = run(tmp_path, "lora", f"model.lora={{style:{path}}}")
    expected = checkpoints.lora_hash(path)
    assert row["lora.style"] == 1 and row["lora_hashes"] == f"style: {expected}"
    assert parameters.splitlines()[0].endswith(" <lora:style:1>")
    assert f'Lora hashes: "style: {expected}"' in parameters  # quoted: the value holds a colon
    pipeline.release()


@pytest.mark.parametrize("batch_size", ["1", "null"])  # one image per call, and automatic (both seeds in one)
def test_lora_strength_axis_base_at_zero_distinct_otherwise(tmp_path, files, batch_size):
    """sweep.grid.lora: {NAME: [0, 0.5, 1]}: strength 0 gives the base model's pixels (the base run with the same
    calls: a batched call may differ from a single one by 1/255, diffusers #2659), set per call, no reload."""
    path = files / "detail.safetensors"
    seeds = ("sweep.grid.seed=[1234,7]", f"batch_size={batch_size}")
    base_run = run_sweep(make_cfg(*SMALL, *seeds), tmp_path / "base", progress=False, echo=lambda _: None)
    assert base_run.ok and base_run.made == 2
    base_table = pd.read_csv(tmp_path / "base" / "results.csv", keep_default_na=False)
    base = {r["seed"]: np.asarray(Image.open(tmp_path / "base" / r["image"]).convert("RGB"))
            for _, r in base_table.iterrows()}
    run_dir = tmp_path / "axis"
    loads = pipeline.LOADS
    summary = run_sweep(make_cfg(*SMALL, f"model.lora=[{path}]", "sweep.grid.lora={detail:[0,0.5,1]}", *seeds),
                        run_dir, progress=False, echo=lambda _: None)
    assert summary.ok and summary.made == 6 and pipeline.LOADS == loads + 1
    table = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert sorted(set(table["lora.detail"])) == [0, 0.5, 1]
    assert set(table["batch_size"]) == set(base_table["batch_size"]) == {1 if batch_size == "1" else 2}
    pixels = {(r["lora.detail"], r["seed"]): np.asarray(Image.open(run_dir / r["image"]).convert("RGB"))
              for _, r in table.iterrows()}
    for seed in (1234, 7):
        assert np.array_equal(pixels[(0, seed)], base[seed]), seed
        assert not np.array_equal(pixels[(0.5, seed)], base[seed]) and not np.array_equal(pixels[(1, seed)], base[seed])
    assert not np.array_equal(pixels[(0.5, 1234)], pixels[(1, 1234)])
    tags = Image.open(run_dir / table[table["lora.detail"] == 0.5].iloc[0]["image"]).text["parameters"]
    assert tags.splitlines()[0].endswith(" <lora:detail:0.5>")
    if batch_size == "1":
        from sweep.report import build_report

        result = build_report(run_dir, rows="lora.detail", cols="seed")  # any axis lays out, LoRA strengths too
        assert result.layouts[0].rows == ("lora.detail",) and len(result.sheets) == 1
    pipeline.release()


def test_refiner_switch_axis_runs_base_and_refiner(tmp_path):
    run_dir = tmp_path / "switch"
    summary = run_sweep(make_cfg(*SMALL, "model.refiner=tiny", "num_inference_steps=4",
                                 "sweep.grid.refiner_switch=[0.3,0.8]"), run_dir, progress=False, echo=lambda _: None)
    assert summary.ok and summary.made == 2
    table = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert sorted(table["refiner_switch"]) == [0.3, 0.8] and set(table["refiner"]) == {"tiny"}
    a, b = (np.asarray(Image.open(run_dir / image).convert("RGB")) for image in table["image"])
    assert not np.array_equal(a, b)
    fields = infotext_fields(Image.open(run_dir / table.iloc[0]["image"]).text["parameters"])
    assert fields["Refiner"] == "tiny" and float(fields["Refiner switch at"]) in (0.3, 0.8)
    pipeline.release()


@pytest.mark.parametrize(("value", "names"), [
    ("/l/My LoRA v1.2.safetensors", ["My_LoRA_v1_2"]),
    (["/l/a.safetensors", "/l/b.safetensors"], ["a", "b"]),
    ({"x-1": "/l/a.safetensors"}, ["x-1"]),
])
def test_lora_names(monkeypatch, value, names):
    monkeypatch.setattr(lora, "check_lora", lambda key, path, allow_pickle: path)
    assert [name for name, _ in lora.parse(value)] == names


# --- refiner --------------------------------------------------------------------------------------------


def test_refiner_hand_over_point_changes_the_image():
    base = build_tiny_pipeline()
    refiner = build_tiny_refiner(base)
    assert refiner.text_encoder_2 is base.text_encoder_2 and refiner.vae is base.vae and refiner.text_encoder is None
    assert refiner.config.requires_aesthetics_score
    for pipe in (base, refiner):
        pipe.set_progress_bar_config(disable=True)

    def image(switch):
        return np.asarray(generate_with_refiner(
            base, refiner, switch, base_inputs={"prompt": "a red fox"}, refiner_inputs={"prompt": "a red fox"},
            generator=torch.Generator().manual_seed(3), num_inference_steps=4, guidance_scale=5.0,
            height=64, width=64)[0])

    low, high = image(0.3), image(0.8)
    assert low.shape == (64, 64, 3) and not np.array_equal(low, high)
    assert np.array_equal(high, image(0.8))


def test_refiner_through_the_runner_is_recorded(tmp_path):
    row, pixels, parameters = run(tmp_path, "refiner", "model.refiner=tiny", "refiner_switch=0.3",
                                  "num_inference_steps=4")
    _, base_pixels, _ = run(tmp_path, "base", "num_inference_steps=4")
    assert row["refiner"] == "tiny" and float(row["refiner_switch"]) == 0.3
    assert not np.array_equal(pixels, base_pixels)
    fields = infotext_fields(parameters)
    assert (fields["Refiner"], fields["Refiner switch at"]) == ("tiny", "0.3")
    pipeline.release()


def test_refiner_folder_loads_like_the_built_in_one(tmp_path):
    base = build_tiny_pipeline()
    build_tiny_refiner(base).save_pretrained(tmp_path / "tiny-refiner")  # as a refiner repo: no first text encoder
    steps = ("refiner_switch=0.3", "num_inference_steps=4")
    row, from_folder, _ = run(tmp_path, "folder", f"model.refiner={tmp_path / 'tiny-refiner'}", *steps)
    loaded = pipeline.load(make_cfg(*SMALL, f"model.refiner={tmp_path / 'tiny-refiner'}", *steps)["model"])
    assert loaded.refiner.pipe.text_encoder_2 is loaded.pipe.text_encoder_2  # shared, not loaded twice
    assert loaded.refiner.pipe.vae is loaded.pipe.vae
    _, built, _ = run(tmp_path, "built", "model.refiner=tiny", *steps)
    assert row["refiner"] == "tiny-refiner" and np.array_equal(from_folder, built)
    pipeline.release()


# --- infotext -------------------------------------------------------------------------------------------


def test_infotext_order_and_quoting():
    from sweep import axes
    from sweep.planning import grid
    from sweep.planning.plan import base_values

    facts = axes.Facts(scheduler=axes.check_scheduler("Euler", "s"), refiner_switch=0.8)
    base = {**base_values({"prompt": "a fox", "num_inference_steps": 30, "seed": 1, "width": 1024,
                           "height": 1024}, facts), "lora.a": 0.5}
    (cell,) = grid.expand(base, [])
    row = {"model": "my, model", "model_hash": "0123456789", "vae": "sdxl_vae.safetensors", "vae_hash": "abcdef0123",
           "refiner": "sd_xl_refiner_1.0", "lora_hashes": "a: 0123456789ab"}
    text = a1111_parameters(cell, row, facts)
    assert text.splitlines()[0] == "a fox <lora:a:0.5>"
    fields = infotext_fields(text)
    assert list(fields) == ["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model",
                            "VAE hash", "VAE",
                            "Refiner", "Refiner switch at", "Lora hashes", "Version"]
    assert 'Model: "my, model"' in text and fields["Model"] == "my, model"


# --- checkpoint comparison in a multirun ----------------------------------------------------------------


@pytest.mark.slow
def test_multirun_over_two_single_files(tmp_path, files):
    sweep_dir = tmp_path / "sweep"
    paths = f"{files / 'base.safetensors'},{files / 'other.safetensors'}"
    result = run_cli("-m", *SMALL, f"model.path={paths}", f"model.config={files / 'base-folder'}",
                     f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 0, result.stderr
    merged = pd.read_csv(sweep_dir / "results.csv", keep_default_na=False)
    assert sorted(merged["model"]) == ["base", "other"]
    hashes = dict(zip(merged["model"], merged["model_hash"], strict=True))
    assert hashes == {name: sha256_of(files / f"{name}.safetensors")[:10] for name in ("base", "other")}
    pixels = [np.asarray(Image.open(sweep_dir / image)) for image in merged["image"]]
    assert not np.array_equal(*pixels)
    loads = sorted(json.loads(p.read_text())["pipeline_loads"] for p in sweep_dir.glob("*/status.json"))
    assert loads == [1, 2]  # one process, each job loaded its model once
