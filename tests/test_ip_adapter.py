"""IP-Adapter: model.ip_adapter (a weights file or folder with its image encoder, or tiny), ip_adapter_image and the
ip_adapter_scale axis, on tiny IP-Adapters built in code for the tiny model's UNet (nothing downloads)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg, quiet
from readers import a1111_parse
from sweep.cli import app
from sweep.models import pipeline
from sweep.models.builtin import build_tiny_layout_pipeline, build_tiny_pipeline
from sweep.models.ip_adapter import save_tiny

BASE = ("sweep=steps_10_to_90", "height=64", "width=64", "sweep.grid.num_inference_steps=[3]")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """The tiny IP-Adapter as files (ip-adapter.safetensors + image_encoder/), one made for another UNet, and a
    reference image."""
    root = tmp_path_factory.mktemp("ip_adapters")
    save_tiny(build_tiny_pipeline().unet, root / "tiny-ip")
    save_tiny(build_tiny_layout_pipeline().unet, root / "other-ip")
    reference = np.random.default_rng(3).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(reference).save(root / "reference.png")
    return root


def pixels(run_dir, table, **where) -> np.ndarray:
    row = table
    for key, value in where.items():
        row = row[row[key] == value]
    return np.asarray(Image.open(run_dir / row.iloc[0]["image"]).convert("RGB"), dtype=np.int16)


def test_ip_adapter_scale_sweep_from_files(tmp_path, adapters):
    run_dir = tmp_path / "files"
    summary = quiet(make_cfg(*BASE, f"model.ip_adapter={adapters / 'tiny-ip'}",
                             f"ip_adapter_image={adapters / 'reference.png'}",
                             "+sweep.grid.ip_adapter_scale=[0,0.5,1]"), run_dir)
    assert (summary.made, summary.failed) == (3, 0)
    table = pd.read_csv(run_dir / "results.csv")
    assert set(table.ip_adapter) == {"ip-adapter [e3b0c442]"}  # A1111's legacy hash of a file under 1 MiB
    zero, half, one = (pixels(run_dir, table, ip_adapter_scale=s) for s in (0.0, 0.5, 1.0))
    plain_dir = tmp_path / "plain"
    quiet(make_cfg(*BASE), plain_dir)
    # Scale 0: every IP-Adapter attention adds its image tokens times 0: the plain pipeline's image exactly.
    assert np.array_equal(zero, pixels(plain_dir, pd.read_csv(plain_dir / "results.csv")))
    assert np.abs(half - zero).max() > 8 and np.abs(one - half).max() > 8
    parsed = a1111_parse(Image.open(run_dir / table[table.ip_adapter_scale == 0.5].iloc[0]["image"])
                         .text["parameters"])
    unit = dict(item.strip().split(": ", 1) for item in parsed["ControlNet 0"].split(","))
    assert unit["Module"] == "ip-adapter_clip_sdxl" and unit["Model"] == "ip-adapter [e3b0c442]"
    assert unit["Weight"] == "0.5"
    # model.ip_adapter=tiny builds the same adapter in code: the same pixels.
    quiet(make_cfg(*BASE, "model.ip_adapter=tiny", f"ip_adapter_image={adapters / 'reference.png'}",
                   "+sweep.grid.ip_adapter_scale=[0.5]"), tmp_path / "tiny")
    built = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert np.array_equal(pixels(tmp_path / "tiny", built), half)


def test_ip_adapter_with_a_controlnet_writes_two_units(tmp_path, adapters):
    run_dir = tmp_path / "both"
    quiet(make_cfg(*BASE, "model.ip_adapter=tiny", "ip_adapter_image=builtin:rings", "ip_adapter_scale=0.7",
                   "model.controlnet=tiny", "control_image=builtin:rings", "controlnet_conditioning_scale=0.5"),
          run_dir)
    table = pd.read_csv(run_dir / "results.csv")
    assert (table.status == "ok").all()
    parsed = a1111_parse(Image.open(run_dir / table.image[0]).text["parameters"])
    assert "Model: tiny, Weight: 0.5" in parsed["ControlNet 0"] and "Module: none" in parsed["ControlNet 0"]
    assert "Module: ip-adapter_clip_sdxl, Model: tiny, Weight: 0.7" in parsed["ControlNet 1"]


def test_bad_ip_adapter_input_exits_2_with_one_line_before_anything_loads(tmp_path, adapters, capfd):
    no_encoder = tmp_path / "no-encoder"
    no_encoder.mkdir()
    shutil.copy(adapters / "tiny-ip" / "ip-adapter.safetensors", no_encoder)
    other_encoder = tmp_path / "other-encoder"
    shutil.copytree(adapters / "tiny-ip", other_encoder)
    config = other_encoder / "image_encoder" / "config.json"
    config.write_text(config.read_text().replace('"projection_dim": 16', '"projection_dim": 24'))
    reference = f"ip_adapter_image={adapters / 'reference.png'}"
    cases = [
        (f"model.ip_adapter={adapters / 'other-ip'} {reference}", "model.ip_adapter: got '",
         "its cross-attention width is"),
        (f"model.ip_adapter={other_encoder} {reference}", "model.ip_adapter: got '",
         "it takes image embeddings of width 16, its image encoder gives 24"),
        (f"model.ip_adapter={no_encoder} {reference}", "model.ip_adapter: got '",
         "(no such folder (the IP-Adapter's image encoder))"),
        (f"model.ip_adapter={tmp_path / 'nope.safetensors'} {reference}", "model.ip_adapter: got '", "(no such file)"),
        (f"model.ip_adapter=h94/IP-Adapter {reference}", "model.ip_adapter: got 'h94/IP-Adapter'", "(a hub id"),
        (f"model.ip_adapter={adapters / 'tiny-ip' / 'image_encoder' / 'model.safetensors'} {reference}",
         "model.ip_adapter: got '", "no image_proj.* and ip_adapter.* tensors"),
        ("model.ip_adapter=tiny", "ip_adapter_image: got None", "an image with model.ip_adapter set"),
        (f"model.ip_adapter=tiny ip_adapter_image={tmp_path}", "ip_adapter_image: got '", "(a folder)"),
        (f"{reference} ip_adapter_scale=0.5", "ip_adapter_image: got '", "null unless model.ip_adapter is set"),
        (f"model.ip_adapter=tiny {reference} ip_adapter_scale=-1", "ip_adapter_scale: got -1", "from 0 to 5"),
        (f"model.ip_adapter=tiny {reference} pag_scale=1.5", "pag_scale: got 1.5", "0 or null with model.ip_adapter"),
        (f"model.ip_adapter=tiny {reference} model.refiner=tiny", "model.refiner: got 'tiny'",
         "null when model.ip_adapter is set"),
    ]
    loads = pipeline.LOADS
    for override, start, needle in cases:
        with pytest.raises(SystemExit) as info:
            app.run_job(make_cfg(*BASE, *override.split()), tmp_path / "run")
        err = capfd.readouterr().err
        assert info.value.code == 2, override
        assert err.count("\n") == 1 and err.startswith(f"error: {start}"), (override, err)
        assert needle in err, (override, err)
    assert pipeline.LOADS == loads


def test_ip_adapter_in_hires_fix_and_image_to_image(tmp_path, adapters):
    """The second pass gets the same reference image (StableDiffusionXLImg2ImgPipeline takes ip_adapter_image)."""
    common = (*BASE, "model.ip_adapter=tiny", f"ip_adapter_image={adapters / 'reference.png'}",
              "+sweep.grid.ip_adapter_scale=[0,1]")
    for name, extra in (("hires", ("height=32", "width=32", "hires_scale=2", "hires_denoise=0.5")),
                        ("img2img", (f"init_image={adapters / 'reference.png'}", "strength=0.7"))):
        run_dir = tmp_path / name
        summary = quiet(make_cfg(*common, *extra), run_dir)
        assert (summary.made, summary.failed) == (2, 0), name
        table = pd.read_csv(run_dir / "results.csv")
        assert np.abs(pixels(run_dir, table, ip_adapter_scale=0.0) - pixels(run_dir, table, ip_adapter_scale=1.0)
                      ).max() > 8, name
