"""ControlNet: model.controlnet (folder, single file, tiny, a list), control_image, and the conditioning scale /
guidance start / end axes, on tiny ControlNets built in code from the tiny model's UNet (nothing downloads)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors.torch import save_file

from conftest import make_cfg, quiet, run_cli
from readers import a1111_parse
from sweep.cli import app
from sweep.models import pipeline
from sweep.models.builtin import build_tiny_layout_pipeline, build_tiny_pipeline
from sweep.models.controlnet import build_tiny_controlnet

SMALL = ("height=64", "width=64", "num_inference_steps=3")
SCALES = ("sweep=controlnet", *SMALL, "sweep.grid.control_guidance_end=null", "sweep.layout.rows=null")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A tiny ControlNet for the tiny model saved as a diffusers folder and as one diffusers-layout file, an edge
    map, and a ControlNet made for another UNet (the tiny-layout model: other cross-attention width, 2 layers)."""
    root = tmp_path_factory.mktemp("controlnets")
    net = build_tiny_controlnet(build_tiny_pipeline().unet)
    net.save_pretrained(root / "cn-folder", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, root / "cn-file.safetensors")
    other = build_tiny_controlnet(build_tiny_layout_pipeline().unet)
    other.save_pretrained(root / "other-folder", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, root / "other-file.safetensors")
    edges = Image.new("RGB", (96, 80), "black")
    edges.paste((255, 255, 255), (20, 10, 30, 70))
    edges.save(root / "edges.png")
    return root


def pixels(run_dir, table, **where) -> np.ndarray:
    row = table
    for key, value in where.items():
        row = row[row[key] == value]
    return np.asarray(Image.open(run_dir / row.iloc[0]["image"]).convert("RGB"), dtype=np.int16)


def test_conditioning_scale_sweep_on_a_saved_controlnet_folder(tmp_path, nets):
    run_dir = tmp_path / "folder"
    summary = quiet(make_cfg(*SCALES, f"model.controlnet={nets / 'cn-folder'}", f"control_image={nets / 'edges.png'}"),
                    run_dir)
    assert (summary.made, summary.failed) == (3, 0)
    table = pd.read_csv(run_dir / "results.csv")
    assert sorted(table.controlnet_conditioning_scale) == [0.0, 0.5, 1.0]
    weights = nets / "cn-folder" / "diffusion_pytorch_model.safetensors"
    with open(weights, "rb") as handle:  # A1111's legacy model hash, the one sd-webui-controlnet names models by
        handle.seek(0x100000)
        legacy = hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    assert set(table.controlnet) == {f"cn-folder [{legacy}]"}
    assert set(table.control_image_hash) == {hashlib.sha256((nets / "edges.png").read_bytes()).hexdigest()[:10]}
    zero, half, one = (pixels(run_dir, table, controlnet_conditioning_scale=s) for s in (0.0, 0.5, 1.0))
    # Scale 0: diffusers adds the ControlNet's residuals times 0, so the image is the plain pipeline's exactly.
    plain_dir = tmp_path / "plain"
    quiet(make_cfg("sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[3]"), plain_dir)
    assert np.array_equal(zero, pixels(plain_dir, pd.read_csv(plain_dir / "results.csv")))
    assert np.abs(half - zero).max() > 8 and np.abs(one - half).max() > 8
    # The PNG text: sd-webui-controlnet's unit, read back by A1111's rules and the extension's `Key: value` split.
    parsed = a1111_parse(Image.open(run_dir / table[table.controlnet_conditioning_scale == 0.5].iloc[0]["image"])
                         .text["parameters"])
    unit = dict(item.strip().split(": ", 1) for item in parsed["ControlNet 0"].split(","))
    assert unit["Model"] == f"cn-folder [{legacy}]" and unit["Module"] == "none"
    assert (unit["Weight"], unit["Guidance Start"], unit["Guidance End"]) == ("0.5", "0.0", "1.0")
    assert parsed["Steps"] == "3" and parsed["Seed"] == "1234"
    # Resumed: nothing made again.
    again = quiet(make_cfg(*SCALES, f"model.controlnet={nets / 'cn-folder'}", f"control_image={nets / 'edges.png'}"),
                  run_dir)
    assert (again.made, again.skipped) == (0, 3)


def test_single_file_and_list_of_controlnets(tmp_path, nets):
    common = (*SCALES, "sweep.grid.controlnet_conditioning_scale=[0.5]", f"control_image={nets / 'edges.png'}")
    quiet(make_cfg(*common, f"model.controlnet={nets / 'cn-folder'}"), tmp_path / "folder")
    quiet(make_cfg(*common, f"model.controlnet={nets / 'cn-file.safetensors'}"), tmp_path / "file")
    folder, file = (pd.read_csv(tmp_path / d / "results.csv") for d in ("folder", "file"))
    # The same weights from one file: the same image.
    assert np.array_equal(pixels(tmp_path / "folder", folder), pixels(tmp_path / "file", file))
    assert file.controlnet[0].startswith("cn-file [")
    quiet(make_cfg(*common, f"model.controlnet=[{nets / 'cn-folder'},tiny]"), tmp_path / "two")
    two = pd.read_csv(tmp_path / "two" / "results.csv")
    assert two.controlnet[0] == f"{folder.controlnet[0]}; tiny"
    parsed = a1111_parse(Image.open(tmp_path / "two" / two.image[0]).text["parameters"])
    assert "Model: tiny" in parsed["ControlNet 1"] and "Weight: 0.5" in parsed["ControlNet 1"]
    assert np.abs(pixels(tmp_path / "two", two) - pixels(tmp_path / "folder", folder)).max() > 0


def test_guidance_start_and_end_follow_diffusers(tmp_path):
    """diffusers keeps the ControlNet at step i of N while i/N >= start and (i+1)/N <= end: start 0.5 of 3 steps
    leaves step 2 only; end 0.34 keeps step 0 only; both differ from the full range and from no control."""
    run_dir = tmp_path / "range"
    quiet(make_cfg(*SCALES, "model.controlnet=tiny", "sweep.grid.controlnet_conditioning_scale=[0,1]",
                   "+sweep.grid.control_guidance_start=[0,0.5]"), run_dir)
    table = pd.read_csv(run_dir / "results.csv")
    off = pixels(run_dir, table, controlnet_conditioning_scale=0.0, control_guidance_start=0.0)
    full = pixels(run_dir, table, controlnet_conditioning_scale=1.0, control_guidance_start=0.0)
    late = pixels(run_dir, table, controlnet_conditioning_scale=1.0, control_guidance_start=0.5)
    assert np.abs(late - full).max() > 8 and np.abs(late - off).max() > 0
    parsed = a1111_parse(Image.open(run_dir / table[(table.controlnet_conditioning_scale == 1.0)
                                                    & (table.control_guidance_start == 0.5)].iloc[0]["image"])
                         .text["parameters"])
    assert "Guidance Start: 0.5, Guidance End: 1.0" in parsed["ControlNet 0"]


def _refusals(nets):
    other = "a ControlNet made for this checkpoint's UNet"
    big = nets / "huge.png"
    if not big.exists():
        Image.new("1", (9000, 8000)).save(big)
    (nets / "not-an-image.png").write_bytes(b"not an image")
    truncated = nets / "truncated.png"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-2000])
    pickled = nets / "pickled"
    if not pickled.exists():
        pickled.mkdir()
        (pickled / "config.json").write_text((nets / "cn-folder" / "config.json").read_text())
        (pickled / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    tiny = "model.controlnet=tiny"
    return [
        (f"model.controlnet={nets / 'other-folder'}", "model.controlnet: got '", other),
        (f"model.controlnet={nets / 'other-file.safetensors'}", "model.controlnet: got '", "cross_attention_dim"),
        (f"model.controlnet={pickled}", "model.controlnet: got '", "(only pickle weights (.bin))"),
        (f"model.controlnet={nets / 'nope'}", "model.controlnet: got '", "(no such file)"),
        ("model.controlnet=someone/sdxl-controlnet", "model.controlnet: got 'someone/sdxl-controlnet'",
         "not in the local Hugging Face cache"),
        ("model.controlnet=[]", None, None),  # an empty list: no ControlNet (and no control axes below)
        ("control_image=null controlnet_conditioning_scale=0.5", "controlnet_conditioning_scale: got 0.5",
         "null unless model.controlnet is set"),
        (f"{tiny} control_image=null", "control_image: got None", "a control image with model.controlnet set"),
        (f"{tiny} control_image={nets}", "control_image: got '", "(a folder)"),
        (f"{tiny} control_image={nets / 'not-an-image.png'}", "control_image: got '", "(not an image PIL can read"),
        (f"{tiny} control_image={truncated}", "control_image: got '", "or truncated)"),
        (f"{tiny} control_image={big}", "control_image: got '", "(it is 9000x8000)"),
        (f"{tiny} control_image=/dev/zero", "control_image: got '/dev/zero'", "(not a regular file)"),
        (f"{tiny} controlnet_conditioning_scale=nan", "controlnet_conditioning_scale: got nan", "from 0 to 5"),
        (f"{tiny} sweep.grid.controlnet_conditioning_scale=[1,inf]", "sweep.grid.controlnet_conditioning_scale: got "
         "inf", "from 0 to 5"),
        (f"{tiny} control_guidance_start=0.6 control_guidance_end=0.4", "control_guidance_start: got 0.6",
         "below control_guidance_end"),
        (f"{tiny} control_guidance_end=0", "control_guidance_end: got 0", "in (0, 1]"),
        (f"{tiny} hires_scale=2", "hires_scale: got 2", "null when model.controlnet is set"),
        (f"{tiny} model.refiner=tiny", "model.refiner: got 'tiny'", "null when model.controlnet is set"),
        (f"{tiny} guidance_rescale=0.5", "guidance_rescale: got 0.5", "StableDiffusionXLControlNetPipeline takes"),
    ]


def test_bad_controlnet_input_exits_2_with_one_line_before_anything_loads(tmp_path, nets, capfd, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    loads = pipeline.LOADS
    for override, start, needle in _refusals(nets):
        cfg = make_cfg(*SCALES, "sweep.grid.controlnet_conditioning_scale=null", "sweep.layout.cols=null",
                       "+sweep.grid.seed=[1]",
                       "control_image=builtin:rings" if "control_image" not in override else "seed=1",
                       *override.split())
        if start is None:
            from sweep.planning.plan import plan_sweep

            cfg.control_image = None
            plan_sweep(cfg)  # passes
            continue
        with pytest.raises(SystemExit) as info:
            app.run_job(cfg, tmp_path / "run")
        err = capfd.readouterr().err
        assert info.value.code == 2, override
        assert err.count("\n") == 1 and err.startswith(f"error: {start}"), (override, err)
        assert needle in err, (override, err)
        assert not (tmp_path / "run" / "images").exists()
    assert pipeline.LOADS == loads


def test_a_controlnet_that_does_not_fit_one_checkpoint_of_the_axis_is_refused(tmp_path, nets, capfd):
    from sweep.errors import SweepError
    from sweep.planning.plan import plan_sweep

    cfg = make_cfg(*SCALES, "sweep.grid.controlnet_conditioning_scale=null", "sweep.layout.cols=null",
                   "+sweep.grid.checkpoint=[tiny,tiny-alt]",
                   f"model.controlnet={nets / 'cn-folder'}")
    assert len(plan_sweep(cfg).cells) == 2  # both tiny checkpoints share the UNet architecture
    cfg = make_cfg(*SCALES, "sweep.grid.controlnet_conditioning_scale=null", "sweep.layout.cols=null",
                   "+sweep.grid.checkpoint=[tiny,sdxl_arch]",
                   f"model.controlnet={nets / 'cn-folder'}")
    with pytest.raises(SweepError, match=r"checkpoint: 'sdxl_arch' with model.controlnet: .*cross_attention"):
        plan_sweep(cfg)


def test_the_shipped_controlnet_sweep_runs_from_the_cli(tmp_path):
    result = run_cli("sweep=controlnet", "model=tiny", "model.controlnet=tiny", "height=64", "width=64",
                     "num_inference_steps=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "controlnet: 6 made, 0 skipped (already done), 0 failed of 6 images" in result.stdout
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(table.control_image) == {"builtin:rings"} and set(table.controlnet) == {"tiny"}


def test_a_16_bit_map_is_scaled_to_8_bits_not_clipped(tmp_path):
    from sweep.models.controlnet import control_image

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "depth16.png")  # a 16-bit grayscale PNG, as depth estimators write them
    rgb = np.asarray(control_image(str(tmp_path / "depth16.png"), 64, 64), dtype=np.int16)
    assert rgb.shape == (64, 64, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, -1].tolist() == [255, 255, 255]
    assert abs(int(rgb[0, 32, 0]) - round(ramp[0, 32] / 257)) <= 1  # mid-grey stays mid-grey


def test_batched_seeds_and_checkpoint_axis_with_a_controlnet(tmp_path):
    common = (*SCALES, "model.controlnet=tiny", "sweep.grid.controlnet_conditioning_scale=[1]",
              "+sweep.grid.seed=[1,2]", "sweep.layout.cols=seed")
    quiet(make_cfg(*common, "batch_size=2"), tmp_path / "batched")
    quiet(make_cfg(*common, "batch_size=1"), tmp_path / "single")
    batched, single = (pd.read_csv(tmp_path / d / "results.csv") for d in ("batched", "single"))
    assert set(batched.batch_size) == {2} and set(single.batch_size) == {1}
    for seed in (1, 2):  # one call for both seeds, one control image repeated by diffusers: within 1/255
        a = pixels(tmp_path / "batched", batched, seed=seed)
        b = pixels(tmp_path / "single", single, seed=seed)
        assert np.abs(a - b).max() <= 1
    summary = quiet(make_cfg(*SCALES, "model.controlnet=tiny", "sweep.grid.controlnet_conditioning_scale=[1]",
                             "+sweep.grid.checkpoint=[tiny,tiny-alt]", "sweep.layout.cols=checkpoint"),
                    tmp_path / "checkpoints")
    table = pd.read_csv(tmp_path / "checkpoints" / "results.csv")
    assert summary.made == 2 and set(table.checkpoint) == {"tiny", "tiny-alt"} and set(table.controlnet) == {"tiny"}
    assert np.abs(pixels(tmp_path / "checkpoints", table, checkpoint="tiny")
                  - pixels(tmp_path / "checkpoints", table, checkpoint="tiny-alt")).max() > 8
