"""FreeU and Perturbed-Attention Guidance on the tiny model: off / 0 is the plain image pixel for pixel, on changes
it, the shared UNet is left as it was, the PNG text and the ComfyUI graph say what was applied, and every bad value
is one line before the model loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg, quiet
from readers import a1111_parse
from sweep import axes
from sweep.errors import SweepError
from sweep.models import pipeline
from sweep.planning.plan import plan_sweep

SMALL = ("height=64", "width=64", "num_inference_steps=3", "batch_size=1")
FREEU = "1.3,1.4,0.9,0.2"


def run(run_dir, *overrides):
    summary = quiet(make_cfg("sweep=freeu", *SMALL, *overrides), run_dir)
    assert summary.ok, summary.lines()
    return pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype=str)


def pixels(run_dir, image):
    return np.asarray(Image.open(run_dir / image).convert("RGB"), dtype=np.int16)


def row(table, **values):
    rows = table
    for key, value in values.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, values
    return rows.iloc[0]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """FreeU [on, off] (on first: off must come back as the plain UNet) x PAG [0, 3, null] on seed 4, and the plain
    image of seed 4 from a run that has neither axis."""
    root = tmp_path_factory.mktemp("freeu")
    table = run(root / "grid", f'sweep.grid.freeu=["{FREEU}",off]', "sweep.grid.pag_scale=[0,3,null]",
                "sweep.grid.seed=[4]", "sweep.layout.sheets=null")
    plain = quiet(make_cfg("sweep=seed_fixed", *SMALL, "sweep.grid.repeat=null", "sweep.layout.cols=null",
                           "sweep.grid.seed=[4]"), root / "plain")
    assert plain.ok
    plain_table = pd.read_csv(root / "plain" / "results.csv", keep_default_na=False, dtype=str)
    return root, table, pixels(root / "plain", plain_table.iloc[0]["image"])


def test_off_and_zero_are_the_plain_image_on_changes_it(grid):
    root, table, plain = grid
    for pag in ("0.0", ""):
        assert np.array_equal(pixels(root / "grid", row(table, freeu="", pag_scale=pag)["image"]), plain)
    freeu = pixels(root / "grid", row(table, freeu=FREEU, pag_scale="")["image"])
    pag = pixels(root / "grid", row(table, freeu="", pag_scale="3.0")["image"])
    both = pixels(root / "grid", row(table, freeu=FREEU, pag_scale="3.0")["image"])
    for changed in (freeu, pag, both):
        assert np.abs(changed - plain).max() > 3
    assert np.abs(both - freeu).max() > 3 and np.abs(both - pag).max() > 3


def test_png_text_and_comfy_graph_say_what_was_applied(grid):
    root, table, _ = grid
    image = Image.open(root / "grid" / row(table, freeu=FREEU, pag_scale="3.0")["image"])
    fields = a1111_parse(image.text["parameters"])
    assert fields["FreeU"] == "b1=1.3, b2=1.4, s1=0.9, s2=0.2"
    assert fields["PAG scale"] == "3.0" and fields["Seed"] == "4" and fields["Steps"] == "3"
    graph = json.loads(image.text["prompt"])
    nodes = {node["class_type"]: node["inputs"] for node in graph.values()}
    assert {k: nodes["FreeU"][k] for k in ("b1", "b2", "s1", "s2")} == {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}
    assert nodes["PerturbedAttentionGuidance"]["scale"] == 3.0
    # The sampler's model is PAG's, PAG's is FreeU's, FreeU's the checkpoint's.
    sampler = nodes["KSampler"]["model"][0]
    assert graph[sampler]["class_type"] == "PerturbedAttentionGuidance"
    assert graph[graph[sampler]["inputs"]["model"][0]]["class_type"] == "FreeU"
    plain = Image.open(root / "grid" / row(table, freeu="", pag_scale="0.0")["image"])
    assert "FreeU" not in plain.text["parameters"] and "PAG" not in plain.text["parameters"]
    assert "FreeU" not in plain.text["prompt"] and "Perturbed" not in plain.text["prompt"]


def test_labels_come_from_the_registry(grid):
    _, table, _ = grid
    assert axes.title("freeu") == "FreeU" and axes.title("pag_scale") == "PAG scale"
    assert axes.says("freeu", "") == "FreeU off" and axes.says("pag_scale", "3.0") == "PAG 3.0"
    assert axes.says("freeu", FREEU) == f"FreeU {FREEU}"
    assert "freeu-1.3-1.4-0.9-0.2" in row(table, freeu=FREEU, pag_scale="3.0")["cell_id"]


def test_the_shared_unet_is_left_as_it_was():
    """After a PAG call and a FreeU call the loaded pipeline runs plain: attention processors and FreeU factors
    are back (a PAG call that fails puts them back too)."""
    from sweep.models import unet_tweaks

    loaded = pipeline.load(dict(make_cfg()["model"]))
    before = {k: type(v) for k, v in loaded.pipe.unet.attn_processors.items()}
    pag = unet_tweaks.pag_pipeline(loaded)
    assert any("mid_block" in name for name in pag.unet.attn_processors)  # the tiny model has PAG's layers
    with pytest.raises(RuntimeError), unet_tweaks.attention_kept(pag):
        pag._set_pag_attn_processor(pag_applied_layers=pag.pag_applied_layers, do_classifier_free_guidance=True)
        raise RuntimeError("a call that fails half-way")
    assert {k: type(v) for k, v in loaded.pipe.unet.attn_processors.items()} == before
    pipeline.set_freeu(loaded.pipe, (1.3, 1.4, 0.9, 0.2))
    assert loaded.pipe.unet.up_blocks[0].b1 == 1.3
    pipeline.set_freeu(loaded.pipe, None)
    assert all(getattr(block, "b1", None) is None for block in loaded.pipe.unet.up_blocks)


@pytest.mark.parametrize("value", [False, "off", "OFF", None, " none "])
def test_freeu_off_in_every_spelling(value):
    assert axes.get("freeu").parse(value, "freeu", axes.Facts()) is None


def test_freeu_values():
    parse = axes.get("freeu").parse
    assert parse(" 1.3, 1.4 ,0.9,0.2", "freeu", axes.Facts()) == (1.3, 1.4, 0.9, 0.2)
    assert parse({"b1": 1, "b2": 1.2, "s1": 0, "s2": 0.5}, "freeu", axes.Facts()) == (1.0, 1.2, 0.0, 0.5)


@pytest.mark.parametrize(("override", "key"), [
    ('sweep.grid.freeu=["1.3,1.4,0.9"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["1.3,1.4,0.9,0.2,1"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["a,b,c,d"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["nan,1,1,1"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["inf,1,1,1"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["11,1,1,1"]', "sweep.grid.freeu"),
    ('sweep.grid.freeu=["-1,1,1,1"]', "sweep.grid.freeu"),
    ("sweep.grid.freeu=[1.3,1.4,0.9,0.2]", "sweep.grid.freeu"),  # four values, not one: each is refused
    ("sweep.grid.freeu=[true]", "sweep.grid.freeu"),
    ("sweep.grid.freeu=[[1,2,3,4]]", "sweep.grid.freeu"),
    ("sweep.grid.freeu=[off,false]", "sweep.grid.freeu"),  # the same value twice
    ("sweep.grid.pag_scale=[nan]", "sweep.grid.pag_scale"),
    ("sweep.grid.pag_scale=[inf]", "sweep.grid.pag_scale"),
    ("sweep.grid.pag_scale=[1e308]", "sweep.grid.pag_scale"),
    ("sweep.grid.pag_scale=[-1]", "sweep.grid.pag_scale"),
    ("sweep.grid.pag_scale=[off]", "sweep.grid.pag_scale"),
    ("sweep.grid.pag_scale=[[1,2]]", "sweep.grid.pag_scale"),
    ("freeu=7", "freeu"),
])
def test_bad_values_are_refused_in_one_line(override, key):
    with pytest.raises(SweepError) as refused:
        plan_sweep(make_cfg("sweep=freeu", override))
    assert str(refused.value).startswith(key) and "\n" not in str(refused.value)


def test_pag_with_a_second_pass_is_refused():
    with pytest.raises(SweepError, match=r"^sweep.grid.pag_scale: .*hires_scale"):
        plan_sweep(make_cfg("sweep=freeu", "hires_scale=2"))


def test_pag_with_a_controlnet_is_refused():
    with pytest.raises(SweepError, match=r"^sweep.grid.pag_scale: .*model.controlnet"):
        plan_sweep(make_cfg("sweep=freeu", "model.controlnet=tiny", "control_image=builtin:rings"))


def test_pag_with_prompt_editing_is_refused():
    with pytest.raises(SweepError, match=r"^sweep.grid.pag_scale: .*prompt editing"):
        plan_sweep(make_cfg("sweep=freeu", "prompt='[a red cat:a blue dog:0.5]'"))


def test_batched_pag_and_freeu_calls_match_single_ones(grid, tmp_path):
    """PAG calls run alone even where batched calls run side by side on the CPU: a batch of two seeds gives each
    seed's single-call image to within 1/255."""
    root, table, _ = grid
    batched = quiet(make_cfg("sweep=freeu", *SMALL[:3], "batch_size=2", f'sweep.grid.freeu=["{FREEU}",off]',
                             "sweep.grid.pag_scale=[0,3,null]", "sweep.grid.seed=[4,6]", "sweep.layout.sheets=null"),
                    tmp_path)
    assert batched.ok
    other = pd.read_csv(tmp_path / "results.csv", keep_default_na=False, dtype=str)
    assert set(other["batch_size"]) == {"2"}
    for _, single in table.iterrows():
        twin = row(other, freeu=single["freeu"], pag_scale=single["pag_scale"], seed="4")
        assert np.abs(pixels(tmp_path, twin["image"]) - pixels(root / "grid", single["image"])).max() <= 1
