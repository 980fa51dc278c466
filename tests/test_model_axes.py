"""Checkpoints and VAEs as axes of one run, Hires. fix and image-to-image, on tiny models built in the test.

Two differently seeded tiny SDXL-layout checkpoints, one saved as a diffusers folder and one as an original-layout
single file, and a tiny VAE file: a checkpoint grid loads each once, makes the pixels single-model runs make, and
resumes exactly; the PNGs read back through A1111's rules.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_cfg
from model_files import write_single_file, write_vae_file
from readers import a1111_parse
from sweep.errors import SweepError
from sweep.models import pipeline
from sweep.models.builtin import build_tiny_layout_pipeline, build_tiny_pipeline
from sweep.running.runner import run_sweep

STEPS = "sweep.grid.num_inference_steps=[1,2]"
FIXED = ("sweep=seed_fixed", "sweep.grid.repeat=null", "sweep.layout.cols=null")  # one image per cell


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """folder: checkpoint A (diffusers folder); single: checkpoint B (one .safetensors, configs from A's
    folder); vae: a third seed's VAE as one file."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_layout_pipeline(seed=11).save_pretrained(root / "alpha")
    write_single_file(build_tiny_layout_pipeline(seed=22), root / "Stable-diffusion" / "beta.safetensors")
    write_vae_file(build_tiny_layout_pipeline(seed=33).vae, root / "VAE" / "gamma.safetensors")
    return root


def run(run_dir, *overrides):
    summary = run_sweep(make_cfg(*overrides), run_dir, progress=False, echo=lambda _: None)
    assert summary.ok, summary.lines()
    return summary, pd.read_csv(run_dir / "results.csv", keep_default_na=False)


def pixels(run_dir, image):
    return np.asarray(Image.open(run_dir / image).convert("RGB"), dtype=np.int16)


def checkpoint_grid(files, *extra):
    # beta is given by name under model.models_dir (A1111's Stable-diffusion/ subfolder), alpha by path.
    return (*FIXED, "sweep.grid.seed=[7]", STEPS, f"model.models_dir={files}",
            f"model.config={files / 'alpha'}", f"sweep.grid.checkpoint=[{files / 'alpha'},beta]", *extra)


@pytest.fixture(scope="module")
def grid_run(files, tmp_path_factory):
    pipeline.release()
    loads = pipeline.LOADS
    run_dir = tmp_path_factory.mktemp("grid") / "run"
    summary, table = run(run_dir, *checkpoint_grid(files))
    return run_dir, table, pipeline.LOADS - loads, summary


def test_checkpoint_grid_loads_each_checkpoint_once(grid_run):
    run_dir, table, loads, _ = grid_run
    assert loads == 2  # 2 checkpoints x 2 step counts, in one process
    assert sorted(table["checkpoint"]) == ["alpha", "alpha", "beta", "beta"]
    assert list(table["model"]) == list(table["checkpoint"])  # A1111's Model: the file stem
    assert json.loads((run_dir / "status.json").read_text())["made"] == 4


def test_checkpoint_grid_makes_the_pixels_of_single_model_runs(grid_run, files, tmp_path):
    run_dir, table, _, _ = grid_run
    for name, path in (("alpha", files / "alpha"), ("beta", files / "Stable-diffusion" / "beta.safetensors")):
        single_dir = tmp_path / name
        _, single = run(single_dir, *FIXED, "sweep.grid.seed=[7]", STEPS,
                        f"model.path={path}", f"model.config={files / 'alpha'}")
        for _, row in single.iterrows():
            mine = table[(table.checkpoint == name) & (table.num_inference_steps == row.num_inference_steps)].iloc[0]
            assert np.array_equal(pixels(run_dir, mine["image"]), pixels(single_dir, row["image"]))
            assert mine["model_hash"] == row["model_hash"]
    a, b = (table[table.checkpoint == n].iloc[0]["image"] for n in ("alpha", "beta"))
    assert not np.array_equal(pixels(run_dir, a), pixels(run_dir, b))  # two checkpoints, two pictures


def test_pngs_name_their_checkpoint_as_a1111_does(grid_run, files):
    run_dir, table, _, _ = grid_run
    digest = hashlib.sha256((files / "Stable-diffusion" / "beta.safetensors").read_bytes()).hexdigest()
    for _, row in table.iterrows():
        parsed = a1111_parse(Image.open(run_dir / row["image"]).text["parameters"])
        assert parsed["Model"] == row["checkpoint"]
        assert parsed.get("Model hash") == (digest[:10] if row["checkpoint"] == "beta" else None)


def test_viewer_puts_two_checkpoints_on_one_axis(grid_run):
    run_dir, _, _, summary = grid_run
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="sweep-data" type="application/json">(.*?)</script>', page,
                                re.S).group(1))
    axes = {a["name"]: a["values"] for a in data["axes"]}
    assert axes["checkpoint"] == ["alpha", "beta"] and "model" not in axes  # model follows the checkpoint
    assert any("rows-checkpoint" in p.name or "checkpoint" in p.name for p in summary.sheets)


def test_resume_after_a_stop_mid_checkpoint_is_exact(grid_run, files, tmp_path, monkeypatch):
    from sweep.running import scheduling

    reference_dir, reference, _, _ = grid_run
    run_dir = tmp_path / "stopped"
    original, made = scheduling._run_unit, []

    def stop_after_three(loaded, prompts, unit, *args):
        if len(made) == 3:  # alpha done, beta half done: as a kill between two images
            raise KeyboardInterrupt
        made.append(unit)
        yield from original(loaded, prompts, unit, *args)

    monkeypatch.setattr(scheduling, "_run_unit", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(make_cfg(*checkpoint_grid(files)), run_dir, progress=False, echo=lambda _: None)
    monkeypatch.setattr(scheduling, "_run_unit", original)
    assert len(pd.read_csv(run_dir / "results.csv")) == 3
    pipeline.release()
    loads = pipeline.LOADS
    summary, table = run(run_dir, *checkpoint_grid(files))
    assert (summary.made, summary.skipped) == (1, 3)
    assert pipeline.LOADS - loads == 1  # alpha is done: only beta loads
    assert set(table["cell_id"]) == set(reference["cell_id"])
    for _, row in table.iterrows():
        assert np.array_equal(pixels(run_dir, row["image"]), pixels(reference_dir, row["image"]))


def test_a_lora_axis_crossed_with_checkpoints_applies_the_lora_to_each(grid_run, files, tmp_path):
    from model_files import write_lora

    reference_dir, reference, _, _ = grid_run
    lora = write_lora(build_tiny_layout_pipeline(seed=44).unet, tmp_path / "style.safetensors")
    run_dir = tmp_path / "lora"
    _, table = run(run_dir, *checkpoint_grid(files, f"model.lora={lora}", "sweep.grid.lora={style:[0,1]}"))
    assert len(table) == 8 and set(table["lora_hashes"]) == {table["lora_hashes"].iloc[0]} != {""}
    for name in ("alpha", "beta"):
        for steps in (1, 2):
            same = (table.checkpoint == name) & (table.num_inference_steps == steps)
            off, on = (table[same & (table["lora.style"] == s)].iloc[0]["image"] for s in (0, 1))
            plain = reference[(reference.checkpoint == name) & (reference.num_inference_steps == steps)]
            assert np.array_equal(pixels(run_dir, off), pixels(reference_dir, plain.iloc[0]["image"]))
            assert not np.array_equal(pixels(run_dir, on), pixels(run_dir, off))  # the LoRA acts on this one
            assert "<lora:style:1>" in Image.open(run_dir / on).text["parameters"]


def test_vae_axis_swaps_the_vae_without_reloading_the_checkpoint(grid_run, files, tmp_path):
    reference_dir, reference, _, _ = grid_run
    pipeline.release()
    loads = pipeline.LOADS
    run_dir = tmp_path / "vae"
    _, table = run(run_dir, *checkpoint_grid(files, "sweep.grid.vae=[null,gamma]"))
    assert pipeline.LOADS - loads == 2 and len(table) == 8
    digest = hashlib.sha256((files / "VAE" / "gamma.safetensors").read_bytes()).hexdigest()[:10]
    for _, row in table.iterrows():
        parsed = a1111_parse(Image.open(run_dir / row["image"]).text["parameters"])
        same = reference[reference.cell_id == row["cell_id"]]
        if row["vae"]:
            assert (row["vae"], row["vae_hash"]) == ("gamma.safetensors", digest)
            assert (parsed["VAE"], parsed["VAE hash"]) == ("gamma.safetensors", digest)
            assert same.empty
        else:  # the checkpoint's own VAE again, after gamma was used: the pixels of the run without the axis
            assert "VAE" not in parsed
            assert np.array_equal(pixels(run_dir, row["image"]), pixels(reference_dir, same.iloc[0]["image"]))
    own, swapped = (table[(table.checkpoint == "beta") & (table.num_inference_steps == 2) & (table.vae == v)]
                    .iloc[0]["image"] for v in ("", "gamma.safetensors"))
    assert not np.array_equal(pixels(run_dir, own), pixels(run_dir, swapped))


@pytest.mark.parametrize(("overrides", "needle"), [
    (("sweep.grid.checkpoint=[tiny,/no/such.safetensors]",), "sweep.grid.checkpoint: got '/no/such.safetensors'"),
    (("sweep.grid.checkpoint=[tiny,nothere]",), "model.models_dir is not set"),
    (("sweep.grid.vae=[/no/vae.safetensors]",), "sweep.grid.vae: got '/no/vae.safetensors'"),
    (("sweep.grid.hires_denoise=[0.5]",), "sweep.grid.hires_denoise: got 0.5; allowed: with hires_scale set"),
    (("hires_scale=2", "sweep.grid.hires_denoise=[0.1,0.001]", "num_inference_steps=5"),
     "sweep.grid.hires_denoise: got 0.001; allowed: a Hires. fix whose schedule the model's sampler can take: A1111 "
     "runs 5 second-pass steps over int(5 / 0.001) = 5000, more than 1000"),
    (("sweep.grid.hires_upscaler=[Latent,ESRGAN_4x]", "hires_scale=2"), "allowed: an upscaler: Latent,"),
    (("sweep.grid.strength=[0.5]",), "sweep.grid.strength: got 0.5; allowed: with init_image set"),
    (("init_image=/no/such.png",), "init_image: got '/no/such.png' (no such file); allowed: an image file"),
])
def test_bad_model_and_pass_values_are_one_line_before_any_load(tmp_path, overrides, needle):
    loads = pipeline.LOADS
    with pytest.raises(SweepError) as caught:
        run_sweep(make_cfg("sweep=seed_fixed", *overrides), tmp_path / "run", progress=False, echo=lambda _: None)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    assert pipeline.LOADS == loads and not (tmp_path / "run").exists()


def test_a_lora_file_is_refused_as_a_checkpoint(tmp_path):
    from model_files import write_lora

    lora = write_lora(build_tiny_pipeline().unet, tmp_path / "style.safetensors")
    with pytest.raises(SweepError, match=r"sweep.grid.checkpoint: got '.*style.safetensors' \(a LoRA"):
        run_sweep(make_cfg("sweep=seed_fixed", f"sweep.grid.checkpoint=[tiny,{lora}]"), tmp_path / "run",
                  progress=False, echo=lambda _: None)


# --- Hires. fix and image-to-image ------------------------------------------------------------------------

ONE = (*FIXED, "sweep.grid.seed=[3]", "height=32", "width=32")
HIRES = (*ONE, "num_inference_steps=2", "hires_scale=2")


def test_hires_at_denoise_0_is_the_upscaled_first_pass_and_differs_at_half(tmp_path):
    plain_dir = tmp_path / "plain"
    _, plain = run(plain_dir, *ONE, "num_inference_steps=2")
    first = Image.open(plain_dir / plain.iloc[0]["image"]).convert("RGB")
    for upscaler in ("Lanczos", "Nearest"):
        run_dir = tmp_path / upscaler
        _, table = run(run_dir, *HIRES, f"hires_upscaler={upscaler}", "sweep.grid.hires_denoise=[0,0.5]")
        method = Image.LANCZOS if upscaler == "Lanczos" else Image.NEAREST
        upscaled = np.asarray(first.resize((64, 64), method), dtype=np.int16)
        zero, half = (pixels(run_dir, table[table.hires_denoise == d].iloc[0]["image"]) for d in (0, 0.5))
        assert zero.shape == (64, 64, 3)
        assert np.abs(zero - upscaled).max() <= 1
        assert np.abs(half - upscaled).max() > 8


def test_latent_hires_at_denoise_0_is_the_decoded_upscaled_latents(tmp_path):
    run_dir = tmp_path / "latent"
    _, table = run(run_dir, *HIRES, "sweep.grid.hires_denoise=[0,0.5]", "sweep.grid.hires_upscaler=[Latent]")
    pipe = build_tiny_pipeline()
    with torch.inference_mode():
        latents = pipe("a photo of an astronaut riding a horse on mars", height=32, width=32, num_inference_steps=2,
                       guidance_scale=5.0, generator=torch.Generator().manual_seed(3), output_type="latent").images
        upscaled = torch.nn.functional.interpolate(latents, size=(8, 8), mode="bilinear")
        decoded = pipe.vae.decode(upscaled / pipe.vae.config.scaling_factor).sample
    expected = pipe.image_processor.postprocess(decoded, output_type="np")[0]
    zero, half = (pixels(run_dir, table[table.hires_denoise == d].iloc[0]["image"]) for d in (0, 0.5))
    assert np.abs(zero / 255.0 - expected).max() <= 1 / 255 + 1e-6
    assert np.abs(half - zero).max() > 8


def test_hires_pngs_carry_a1111s_hires_keys_and_first_pass_size(tmp_path):
    run_dir = tmp_path / "keys"
    _, table = run(run_dir, *HIRES, "hires_steps=4", "sweep.grid.hires_denoise=[0.5]",
                   "sweep.grid.hires_upscaler=['Latent (bicubic antialiased)']")
    row = table.iloc[0]
    parsed = a1111_parse(Image.open(run_dir / row["image"]).text["parameters"])
    assert (parsed["Size-1"], parsed["Size-2"]) == ("32", "32")  # the first pass's size, as A1111 writes it
    assert parsed["Hires upscale"] == "2.0" and parsed["Hires steps"] == "4"
    assert parsed["Hires upscaler"] == "Latent (bicubic antialiased)" and parsed["Denoising strength"] == "0.5"
    assert Image.open(run_dir / row["image"]).size == (64, 64)
    resumed = run_sweep(make_cfg(*HIRES, "hires_steps=4", "sweep.grid.hires_denoise=[0.5]",
                                 "sweep.grid.hires_upscaler=['Latent (bicubic antialiased)']"), run_dir,
                        progress=False, echo=lambda _: None)
    assert (resumed.made, resumed.skipped) == (0, 1)  # the larger image is this cell's, not a damaged one


def test_the_second_pass_pipeline_shares_the_modules_in_their_dtype():
    from sweep.running.passes import second_pass_pipeline

    pipeline.release()
    loaded = pipeline.load({"source": "tiny", "name": "tiny", "dtype": "bfloat16", "device": "cpu"})
    second = second_pass_pipeline(loaded)
    assert second.unet is loaded.pipe.unet and second.vae is loaded.pipe.vae  # no second load
    assert {p.dtype for p in loaded.pipe.unet.parameters()} == {torch.bfloat16}  # from_pipe casts to fp32 unasked
    assert loaded.pipe.vae.dtype == torch.bfloat16
    pipeline.release()


def test_img2img_strength_axis_records_the_init_image_hash(tmp_path):
    source = tmp_path / "init.png"
    Image.fromarray((np.indices((48, 40)).sum(0) * 3 % 256).astype(np.uint8)).convert("RGB").save(source)
    run_dir = tmp_path / "img2img"
    _, table = run(run_dir, *ONE, "num_inference_steps=4", f"init_image={source}", "sweep.grid.strength=[0.25,1.0]")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
    assert set(table["init_image_hash"]) == {digest} and set(table["init_image"]) == {str(source)}
    low, full = (table[table.strength == s].iloc[0] for s in (0.25, 1.0))
    parsed = a1111_parse(Image.open(run_dir / low["image"]).text["parameters"])
    assert parsed["Denoising strength"] == "0.25"
    init = np.asarray(Image.open(source).convert("RGB").resize((32, 32), Image.LANCZOS), dtype=np.int16)
    # One step of four from the init image stays nearer to it than a full denoise does.
    assert np.abs(pixels(run_dir, low["image"]) - init).mean() < np.abs(pixels(run_dir, full["image"]) - init).mean()
