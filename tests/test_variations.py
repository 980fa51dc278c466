"""A1111's variation seeds on the tiny model: strength 0 is the seed's image and strength 1 the subseed's, pixel
for pixel; in between the noise is A1111's slerp; batches keep per-image noise; the PNG text reads back through
A1111's rules; every bad value is one line before the model loads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_cfg, quiet, run_cli
from readers import a1111_parse
from sweep.errors import SweepError
from sweep.models.variations import slerp
from sweep.planning.plan import plan_sweep

SMALL = ("height=64", "width=64", "num_inference_steps=3")


def run(run_dir, *overrides):
    summary = quiet(make_cfg(*SMALL, *overrides), run_dir)
    assert summary.ok, summary.lines()
    return pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype=str)


def pixels(run_dir, image):
    return np.asarray(Image.open(run_dir / image).convert("RGB"), dtype=np.int16)


def by(table, **values):
    rows = table
    for key, value in values.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, (values, table[list(values)])
    return rows.iloc[0]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """seed 5 x subseed [7, 9] x strength [0, 0.4, 1], one image per call, plus plain runs of seeds 5, 7 and 9."""
    root = tmp_path_factory.mktemp("variations")
    table = run(root / "grid", "sweep=variations", "seed=5", "sweep.grid.subseed=[7,9]",
                "sweep.grid.subseed_strength=[0,0.4,1]", "batch_size=1")
    plain = run(root / "plain", "sweep=seed_fixed", "sweep.grid.repeat=null", "sweep.layout.cols=null",
                "sweep.grid.seed=[5,7,9]", "batch_size=1")
    return root, table, plain


def test_strength_0_is_the_seeds_image_and_1_the_subseeds(grid):
    root, table, plain = grid
    seed5 = pixels(root / "plain", by(plain, seed="5")["image"])
    for subseed in ("7", "9"):
        zero = by(table, subseed=subseed, subseed_strength="0.0")
        one = by(table, subseed=subseed, subseed_strength="1.0")
        middle = by(table, subseed=subseed, subseed_strength="0.4")
        target = pixels(root / "plain", by(plain, seed=subseed)["image"])
        assert np.array_equal(pixels(root / "grid", zero["image"]), seed5)
        assert np.array_equal(pixels(root / "grid", one["image"]), target)
        varied = pixels(root / "grid", middle["image"])
        assert np.abs(varied - seed5).max() > 10 and np.abs(varied - target).max() > 10


def test_results_and_png_text_read_back_as_a1111_writes_them(grid):
    root, table, _ = grid
    assert {"subseed", "subseed_strength"} <= set(table.columns)
    middle = by(table, subseed="7", subseed_strength="0.4")
    assert "vseed7" in middle["cell_id"] and "vstr0.4" in middle["cell_id"]
    image = Image.open(root / "grid" / middle["image"])
    fields = a1111_parse(image.text["parameters"])
    assert (fields["Seed"], fields["Variation seed"], fields["Variation seed strength"]) == ("5", "7", "0.4")
    assert "prompt" not in image.text  # ComfyUI's core nodes have no variation seed: no graph that would lie
    # A1111 writes neither key at strength 0.
    zero = Image.open(root / "grid" / by(table, subseed="7", subseed_strength="0.0")["image"])
    assert "Variation seed" not in zero.text["parameters"]
    assert "prompt" in zero.text


def test_batched_variations_keep_each_images_noise(grid, tmp_path):
    root, table, _ = grid
    batched = run(tmp_path, "sweep=variations", "seed=5", "sweep.grid.subseed=[7,9]",
                  "sweep.grid.subseed_strength=[0,0.4,1]", "batch_size=6")
    assert set(batched["batch_size"]) == {"6"}
    for _, row in table.iterrows():
        other = by(batched, subseed=row["subseed"], subseed_strength=row["subseed_strength"])
        assert np.abs(pixels(tmp_path, other["image"]) - pixels(root / "grid", row["image"])).max() <= 1


def test_slerp_is_a1111s_normalised_slerp():
    torch.manual_seed(0)
    low, high = torch.randn(4, 8, 8), torch.randn(4, 8, 8)
    out = slerp(0.3, low, high, dim=1)
    # Per channel and column (vectors along dim 1): the angle between the two, shared out 0.7 : 0.3.
    for c, w in ((0, 0), (3, 5)):
        a, b = low[c, :, w], high[c, :, w]
        omega = math.acos(float(torch.dot(a / a.norm(), b / b.norm())))
        expected = (math.sin(0.7 * omega) * a + math.sin(0.3 * omega) * b) / math.sin(omega)
        assert torch.allclose(out[c, :, w], expected, atol=1e-5)
    assert torch.allclose(slerp(0.0, low, high, dim=1), low, atol=1e-6)
    assert torch.allclose(slerp(1.0, low, high, dim=1), high, atol=1e-5)
    assert torch.equal(slerp(0.5, low, low, dim=1), low)  # parallel: the linear blend


@pytest.mark.parametrize(("override", "key"), [
    ("sweep.grid.subseed=[-1]", "sweep.grid.subseed"),
    (f"sweep.grid.subseed=[{2**64}]", "sweep.grid.subseed"),
    ("sweep.grid.subseed=[1.5]", "sweep.grid.subseed"),
    ("sweep.grid.subseed=[[1,2]]", "sweep.grid.subseed"),
    ("sweep.grid.subseed=[abc]", "sweep.grid.subseed"),
    ("sweep.grid.subseed=[true]", "sweep.grid.subseed"),
    ("sweep.grid.subseed_strength=[nan]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[inf]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[1e308]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[1.5]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[-0.1]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[off]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[false]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[[0.1,0.2]]", "sweep.grid.subseed_strength"),
    ("sweep.grid.subseed_strength=[0.1,0.1]", "sweep.grid.subseed_strength"),
])
def test_bad_values_are_refused_in_one_line(override, key):
    with pytest.raises(SweepError) as refused:
        plan_sweep(make_cfg("sweep=variations", override))
    assert str(refused.value).startswith(key) and "\n" not in str(refused.value)


def test_a_strength_needs_a_subseed_and_a_subseed_a_strength():
    with pytest.raises(SweepError, match=r"^subseed: .*when subseed_strength is above 0"):
        plan_sweep(make_cfg("sweep=seed_fixed", "subseed_strength=0.3"))
    with pytest.raises(SweepError, match=r"^subseed_strength: .*when subseed is set"):
        plan_sweep(make_cfg("sweep=seed_fixed", "subseed=3"))
    plan_sweep(make_cfg("sweep=seed_fixed", "subseed=3", "subseed_strength=0"))  # A1111's default strength: fine


def test_refused_from_the_command_line_before_the_model_loads(tmp_path):
    done = run_cli("sweep=variations", "model=tiny", "sweep.grid.subseed_strength=[0.2,nan]",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sweep.grid.subseed_strength" in lines[0], done.stderr
    assert not (tmp_path / "run" / "images").exists()


# --- Seed resize from -------------------------------------------------------------------------------------------


def test_seed_resize_from_places_the_other_sizes_noise_in_the_middle():
    from diffusers.utils.torch_utils import randn_tensor
    from sweep.grid import Cell

    from sweep.models import pipeline
    from sweep.models.variations import latents

    pipe = pipeline.load(dict(make_cfg()["model"])).pipe

    def noise(seed, side):  # a seed's own unscaled noise at side x side pixels, as diffusers draws it
        return randn_tensor((1, 4, side // 8, side // 8), generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float32)

    def made(resize, subseed=None, strength=None):
        cell = Cell((("seed", 5), ("subseed", subseed), ("subseed_strength", strength), ("seed_resize_from", resize)))
        return latents(pipe, [cell], [torch.Generator().manual_seed(5)], 64, 64, "cpu")

    assert torch.equal(made((64, 64)), noise(5, 64))  # the image's own size: the plain noise
    larger = made((96, 96))  # 12 x 12 latents cut to the middle 8 x 8
    assert torch.equal(larger, noise(5, 96)[:, :, 2:10, 2:10])
    smaller = made((32, 48))  # 32 wide, 48 high: 6 rows x 4 columns inside the plain 8 x 8
    outside = torch.ones(1, 4, 8, 8, dtype=torch.bool)
    outside[:, :, 1:7, 2:6] = False
    assert torch.equal(smaller[outside], noise(5, 64)[outside])  # outside the middle: the image's own noise
    assert torch.equal(smaller[:, :, 1:7, 2:6], randn_tensor((1, 4, 6, 4), generator=torch.Generator().manual_seed(5)))
    # With a variation, both noises are made at the resize size and slerped there.
    assert torch.equal(made((96, 96), subseed=9, strength=1.0), noise(9, 96)[:, :, 2:10, 2:10])


def test_seed_resize_from_is_recorded_as_a1111_writes_it(tmp_path):
    table = run(tmp_path, "sweep=variations", "seed=5", "sweep.grid.subseed=[7]", "sweep.grid.subseed_strength=[0.3]",
                "sweep.grid.seed_resize_from=[null,96x96]", "batch_size=1")
    resized = by(table, seed_resize_from="96x96")
    assert "sfrom96x96" in resized["cell_id"]
    fields = a1111_parse(Image.open(tmp_path / resized["image"]).text["parameters"])
    assert (fields["Seed resize from-1"], fields["Seed resize from-2"]) == ("96", "96")
    assert fields["Variation seed"] == "7" and fields["Size-1"] == "64"
    plain = by(table, seed_resize_from="")
    assert "Seed resize from" not in Image.open(tmp_path / plain["image"]).text["parameters"]
    assert np.abs(pixels(tmp_path, resized["image"]) - pixels(tmp_path, plain["image"])).max() > 10


@pytest.mark.parametrize("value", ["100x100", "[[64,64]]", f"{2**15}x64", "abc", "[true]", "[nan]", "[64]"])
def test_bad_seed_resize_sizes_are_refused(value):
    with pytest.raises(SweepError) as refused:
        plan_sweep(make_cfg("sweep=variations", f"sweep.grid.seed_resize_from={value}"))
    assert str(refused.value).startswith("sweep.grid.seed_resize_from") and "\n" not in str(refused.value)


def test_slerp_of_nearly_parallel_noise_is_its_limit_the_straight_blend_from_low_to_high():
    # Where sin(angle) is about 0 the blend replaces slerp's ratios; it runs the same way round (t=0 is the seed's
    # noise), so it stays within float error of the textbook slerp computed in double precision.
    torch.manual_seed(1)
    low = torch.randn(4, 8, 8)
    high = low + 1e-3 * torch.randn(4, 8, 8)
    out = slerp(0.2, low, high, dim=1)
    a, b = low.double(), high.double()
    cos = ((a / a.norm(dim=1, keepdim=True)) * (b / b.norm(dim=1, keepdim=True))).sum(1).clamp(max=1.0)
    assert cos.mean() > 0.9995
    omega = torch.acos(cos)
    textbook = (torch.sin(0.8 * omega) / torch.sin(omega)).unsqueeze(1) * a \
        + (torch.sin(0.2 * omega) / torch.sin(omega)).unsqueeze(1) * b
    assert torch.allclose(out.double(), textbook, atol=1e-5)
    assert (out - low).abs().sum() < (out - high).abs().sum()
    # seed == subseed (the only way variation noise gets here): the same bits whichever way the weights go.
    for t in (0.1, 0.3, 0.7):
        assert torch.equal(slerp(t, low, low, dim=1), low * t + low * (1 - t))
