"""One resolved call per cell (sweep.planning.calls): what the records say is what ran.

`<lora:NAME:W>` tags are recorded at the strength applied, Hires. fix runs A1111's second-pass steps, an emptied
negative prompt is zeros however it became empty, and the bounds (steps per pass and sampler, memory at the final
size) see the call, before any model loads. Tiny models and a tiny LoRA built in code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_cfg, quiet
from readers import a1111_parse
from sweep.errors import SweepError
from sweep.models import pipeline
from sweep.planning import calls
from sweep.planning.plan import plan_sweep

ONE = ("sweep=seed_fixed", "sweep.grid.repeat=null", "sweep.layout.cols=null", "sweep.grid.seed=[3]",
       "height=32", "width=32", "num_inference_steps=2")


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    from model_files import write_lora
    from sweep.models.builtin import build_tiny_pipeline

    return write_lora(build_tiny_pipeline().unet, tmp_path_factory.mktemp("lora") / "detail.safetensors")


def made(run_dir, *overrides) -> pd.DataFrame:
    summary = quiet(make_cfg(*ONE, *overrides), run_dir)
    assert summary.ok, summary.lines()
    return pd.read_csv(run_dir / "results.csv", keep_default_na=False)


def pixels(run_dir, image) -> np.ndarray:
    return np.asarray(Image.open(run_dir / image).convert("RGB"), dtype=np.int16)


def test_a_lora_tag_is_recorded_at_the_strength_it_applies(tmp_path, lora_file):
    """`<lora:detail:0.5>`: results.csv, the PNG's JSON chunk, the cell id and file name say 0.5 (they said the
    default 1.0), and the pixels are those of the `lora={detail:[0.5]}` axis run."""
    tagged_dir, axis_dir = tmp_path / "tagged", tmp_path / "axis"
    tagged = made(tagged_dir, f"model.lora=[{lora_file}]", "prompt='a cat <lora:detail:0.5>'").iloc[0]
    axis = made(axis_dir, f"model.lora=[{lora_file}]", "prompt='a cat'", "sweep.grid.lora={detail:[0.5]}").iloc[0]
    assert tagged["lora.detail"] == 0.5
    chunk = json.loads(Image.open(tagged_dir / tagged["image"]).text["sdxl-sweep"])
    assert chunk["lora.detail"] == 0.5 and chunk["cell_id"] == tagged["cell_id"]
    assert "lora-detail-0.5" in tagged["cell_id"] and tagged["image"].endswith(f"/{tagged['cell_id']}.png")
    assert "lora-detail-0.5" in axis["cell_id"]
    parameters = Image.open(tagged_dir / tagged["image"]).text["parameters"]
    assert parameters.splitlines()[0] == "a cat <lora:detail:0.5>"  # the tag once, as A1111 keeps it
    assert np.array_equal(pixels(tagged_dir, tagged["image"]), pixels(axis_dir, axis["image"]))
    manifest = json.loads((tagged_dir / "sweep.json").read_text())
    assert [c["lora.detail"] for c in manifest["expected_cells"]] == [0.5]
    again = quiet(make_cfg(*ONE, f"model.lora=[{lora_file}]", "prompt='a cat <lora:detail:0.5>'"), tagged_dir)
    assert (again.made, again.skipped) == (0, 1)  # resume: the identity check reads the same resolved record
    untagged = tmp_path / "untagged"  # and the strength did something: 1.0 (no tag) is another image
    plain = made(untagged, f"model.lora=[{lora_file}]", "prompt='a cat'").iloc[0]
    assert plain["lora.detail"] == 1 and not np.array_equal(pixels(untagged, plain["image"]),
                                                            pixels(axis_dir, axis["image"]))
    pipeline.release()


@pytest.mark.parametrize(("requested", "denoise"), [(3, 0.3), (20, 0.7), (20, 0.5), (1, 1 / 49), (7, 1.0)])
def test_the_hires_pass_runs_the_requested_steps_over_a1111s_schedule(requested, denoise):
    """A1111's `setup_img2img_steps`: `int(requested / min(denoise, 0.999))` steps, the last `requested` of them
    run. diffusers' img2img pipeline, given the call's schedule and strength, runs exactly those (a step callback
    counts them), from the schedule's timestep A1111 starts at (`sigmas[steps - t_enc - 1:]`)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from sweep.models.builtin import build_tiny_pipeline

    done = calls.hires_pass(requested, denoise)
    assert done.schedule == int(requested / min(denoise, 0.999)) and done.steps == requested
    second = StableDiffusionXLImg2ImgPipeline.from_pipe(build_tiny_pipeline())
    second.set_progress_bar_config(disable=True)
    second.scheduler.set_timesteps(done.schedule)
    schedule = second.scheduler.timesteps.clone()
    ran: list[float] = []

    def count(pipe, step, timestep, kwargs):
        ran.append(float(timestep))
        return kwargs

    with torch.inference_mode():
        second("a cat", image=torch.rand(1, 3, 32, 32), num_inference_steps=done.schedule, strength=done.strength,
               guidance_scale=1.0, generator=torch.Generator().manual_seed(1), output_type="latent",
               callback_on_step_end=count)
    assert len(ran) == requested
    assert ran == [float(t) for t in schedule[done.schedule - requested:]]


def test_hires_steps_3_at_denoise_0_3_runs_3_second_pass_steps(tmp_path, monkeypatch):
    """`Steps: 3, Denoising strength: 0.3` was refused (int(3 x 0.3) = 0); A1111 runs 3 second-pass steps."""
    from sweep.running.signals import Stop

    counted: list[tuple[str, int]] = []

    def watch(self, steps):
        def callback(pipe, step, timestep, kwargs):
            counted.append((type(pipe).__name__, steps))
            return kwargs
        return callback

    monkeypatch.setattr(Stop, "watch", watch)
    run_dir = tmp_path / "hires"
    row = made(run_dir, "num_inference_steps=3", "hires_scale=2", "hires_denoise=0.3").iloc[0]
    assert counted.count(("StableDiffusionXLPipeline", 3)) == 3
    assert counted.count(("StableDiffusionXLImg2ImgPipeline", 3)) == 3 and len(counted) == 6
    parsed = a1111_parse(Image.open(run_dir / row["image"]).text["parameters"])
    assert (parsed["Steps"], parsed["Denoising strength"], parsed["Hires upscale"]) == ("3", "0.3", "2.0")
    assert "Hires steps" not in parsed  # unset: A1111 writes the key only when the second pass has its own steps
    assert Image.open(run_dir / row["image"]).size == (64, 64)


def test_img2img_keeps_a1111s_img2img_steps(tmp_path):
    """The img2img tab (and diffusers): int(steps x strength) of a `steps` schedule; none left is refused."""
    source = tmp_path / "init.png"
    Image.new("RGB", (32, 32), (120, 30, 200)).save(source)
    plan = plan_sweep(make_cfg(*ONE, "num_inference_steps=4", f"init_image={source}", "sweep.grid.strength=[0.5]"))
    assert plan.cells[0].call().passes == (calls.Pass("img2img", 4, 2, 0.5),)
    with pytest.raises(SweepError, match=r"^sweep.grid.strength: got 0.1; allowed: a strength that leaves at least "
                       r"one of the 5 steps \(int\(5 x 0.1\) = 0\)"):
        plan_sweep(make_cfg(*ONE, "num_inference_steps=5", f"init_image={source}", "sweep.grid.strength=[0.1]"))


def test_a_negative_emptied_by_prompt_sr_is_the_empty_negatives_pixels(tmp_path):
    """Prompt S/R that empties the negative prompt gives zeros, as an empty `negative_prompt` does: the same
    recorded parameters and the same pixels (it was encoded as the empty text)."""
    sr_dir, empty_dir = tmp_path / "sr", tmp_path / "empty"
    sr = made(sr_dir, "negative_prompt=blurry", "sweep.grid.prompt_sr=[blurry,'']")
    empty = made(empty_dir, "negative_prompt=''").iloc[0]
    emptied, kept = (sr[sr.prompt_sr == v].iloc[0] for v in ("", "blurry"))
    assert emptied["negative_prompt"] == empty["negative_prompt"] == "" and kept["negative_prompt"] == "blurry"
    assert np.array_equal(pixels(sr_dir, emptied["image"]), pixels(empty_dir, empty["image"]))
    assert not np.array_equal(pixels(sr_dir, kept["image"]), pixels(empty_dir, empty["image"]))  # it matters
    assert a1111_parse(Image.open(sr_dir / emptied["image"]).text["parameters"])["Negative prompt"] == ""


def test_the_memory_bound_sees_the_hires_size(tmp_path, monkeypatch):
    """`height=4096 width=4096 hires_scale=4` (a 16384x16384 image) was accepted where 16384x16384 alone is not."""
    from sweep.models import facts as model_facts
    from sweep.planning import memory

    monkeypatch.setattr(memory, "device_bytes", lambda device: 16 * 2**30)  # a 16 GB machine or card
    monkeypatch.setattr(pipeline, "load", lambda *a: pytest.fail("loaded"))
    sizes = ("sweep=seed_fixed", "num_inference_steps=2", "height=4096", "width=4096")
    facts = model_facts.peek({"source": "tiny"})
    memory.check(plan_sweep(make_cfg(*sizes)), facts, "cpu", {}, "float32")  # the first pass alone fits
    with pytest.raises(SweepError) as caught:
        quiet(make_cfg(*sizes, "hires_scale=4"), tmp_path / "run")
    assert str(caught.value).startswith("height/width: got 4096x4096 x hires_scale 4 = 16384x16384; allowed: a "
                                        "size whose image fits in this cpu's memory (16.0 GB)")
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("overrides", "says"), [
    (("scheduler=DDIM", "hires_steps=1000"), "hires_steps: got 1000; allowed: a Hires. fix whose schedule DDIM can "
     "take: A1111 runs 1000 second-pass steps over int(1000 / 0.7) = 1428, more than 1000"),
    # 999 steps at denoise 1 is a 1000-step schedule: Euler takes it, DDIM on SDXL's config stops at 999.
    (("scheduler=DDIM", "hires_steps=999", "hires_denoise=1"), "hires_steps: got 999; allowed: a Hires. fix whose "
     "schedule DDIM can take: A1111 runs 999 second-pass steps over int(999 / 0.999) = 1000, more than 999 "
     "(timestep_spacing 'leading' plus steps_offset 1"),
    (("hires_steps=5000",), "hires_steps: got 5000; allowed: a Hires. fix whose schedule"),
    (("scheduler=PLMS", "sweep.grid.hires_steps=[2,1000]"), "sweep.grid.hires_steps: got 1000; allowed: a Hires. "
     "fix whose schedule PLMS can take"),
])
def test_second_pass_steps_a_sampler_cannot_take_are_refused_before_the_load(tmp_path, monkeypatch, overrides,
                                                                             says):
    """`hires_steps=1000` with DDIM failed in every cell with IndexError; `hires_steps=5000` ran."""
    monkeypatch.setattr(pipeline, "load", lambda *a: pytest.fail("loaded"))
    with pytest.raises(SweepError) as caught:
        quiet(make_cfg(*ONE, "hires_scale=2", *overrides), tmp_path / "run")
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)
    # Only the run lock can be there (the sampler's own limit needs the model's config, read after it is taken).
    assert {p.name for p in (tmp_path / "run").glob("*")} <= {".sweep.lock"}


def test_euler_takes_the_1000_step_schedule_ddim_cannot():
    plan = plan_sweep(make_cfg(*ONE, "hires_scale=2", "scheduler=Euler", "hires_steps=999", "hires_denoise=1"))
    from sweep.models import facts as model_facts

    assert plan.resolved(model_facts.peek({"source": "tiny"}))[0].call().passes[1].schedule == 1000


@pytest.mark.parametrize(("clip_skip", "layer"), [(0, -2), (1, -3), (2, -4)])
def test_comfyui_clip_skip_counts_from_sdxls_penultimate_layer(clip_skip, layer):
    """ComfyUI's SDXL default is the penultimate layer (-2), as diffusers' clip_skip=None; n more is -(n + 2)."""
    from sweep.rundir.metadata import comfy_prompt

    cell = plan_sweep(make_cfg(*ONE, "scheduler=Euler", f"clip_skip={clip_skip}")).cells[0]
    graph = json.loads(comfy_prompt(cell, {"model": "tiny"}))
    node = next(n for n in graph.values() if n["class_type"] == "CLIPSetLastLayer")
    assert node["inputs"]["stop_at_clip_layer"] == layer


def test_the_work_estimate_counts_every_pass():
    """3 first-pass steps and 3 second-pass steps (A1111's Hires. fix at 0.3), two seeds: 12 steps."""
    from sweep.planning.plan import describe

    plan = plan_sweep(make_cfg("sweep=hires", "num_inference_steps=3", "sweep.grid.hires_denoise=[0.3]"))
    assert describe(plan, "tiny") == "hires: 2 images (2 seed x 1 hires_denoise), 12 denoising steps, model tiny"
