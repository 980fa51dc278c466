"""The axis registry and the axes it adds: samplers, negative prompts, Prompt S/R, pipeline arguments."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_cfg, run_cli
from readers import a1111_parse
from sweep import axes
from sweep.cli import app
from sweep.errors import SweepError
from sweep.report import build_report
from sweep.running.runner import run_sweep

SMALL = ("sweep=seed_fixed", "sweep.grid.repeat=1", "height=64", "width=64", "num_inference_steps=3")


def run(tmp_path, name, *overrides):
    run_dir = tmp_path / name
    summary = run_sweep(make_cfg(*SMALL, *overrides), run_dir, progress=False, echo=lambda _: None)
    assert summary.ok, summary.errors
    return run_dir, pd.read_csv(run_dir / "results.csv", keep_default_na=False)


def image(run_dir, relative):
    return np.asarray(Image.open(run_dir / relative).convert("RGB"))


# --- the registry ------------------------------------------------------------------------------------------


def test_every_scalar_argument_of_the_sdxl_call_is_an_axis_or_set_by_the_runner():
    from diffusers import StableDiffusionXLPipeline

    for name in inspect.signature(StableDiffusionXLPipeline.__call__).parameters:
        if name not in axes.NOT_AXES:
            assert axes.get(name).name == name  # a registry entry, or typed from the signature


def test_scheduler_classes_are_the_ones_the_sdxl_pipeline_accepts():
    from diffusers.schedulers import KarrasDiffusionSchedulers

    assert set(axes.SCHEDULER_CLASSES) == {e.name for e in KarrasDiffusionSchedulers}


@pytest.mark.parametrize(("typed", "name"), [
    ("dpm++ 2m karras", "DPM++ 2M Karras"), ("DPM++2M Karras", "DPM++ 2M Karras"), ("euler_a", "Euler a"),
    ("EULER A", "Euler a"), ("unipc", "UniPC"), ("DPMSolverMultistepScheduler", "DPM++ 2M")])
def test_sampler_names_are_read_case_and_space_insensitively(typed, name):
    assert axes.check_scheduler(typed, "scheduler").name == name


def test_a_scheduler_class_with_options_reads_well_in_yaml():
    spec = axes.check_scheduler({"class": "DPMSolverMultistepScheduler", "use_karras_sigmas": True,
                                 "algorithm_type": "sde-dpmsolver++"}, "scheduler")
    assert spec.name == "DPM++ 2M SDE Karras"
    odd = axes.check_scheduler({"class": "DPMSolverMultistepScheduler", "solver_order": 3}, "scheduler")
    assert odd.name == odd.class_text == "DPMSolverMultistepScheduler(solver_order=3)"
    with pytest.raises(SweepError, match=r"scheduler.solver_ordr: got 1; allowed: an option of .*did you mean"):
        axes.check_scheduler({"class": "DPMSolverMultistepScheduler", "solver_ordr": 1}, "scheduler")


def test_an_unknown_axis_lists_the_axes_and_arguments_allowed():
    with pytest.raises(SweepError) as info:
        axes.get("colour")
    assert "allowed: an axis: prompt, negative_prompt" in str(info.value)
    assert "scalar argument of StableDiffusionXLPipeline.__call__" in str(info.value)


# --- samplers end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samplers(tmp_path_factory):
    """Every A1111 sampler name at one seed, twice."""
    names = ",".join(f"'{n}'" for n in axes.SAMPLERS)
    dirs = []
    for name in ("a", "b"):
        run_dir = tmp_path_factory.mktemp("samplers") / name
        summary = run_sweep(make_cfg(*SMALL, f"sweep.grid.scheduler=[{names}]"), run_dir, progress=False,
                            echo=lambda _: None)
        assert summary.ok and summary.made == len(axes.SAMPLERS)
        dirs.append(run_dir)
    return dirs


def test_samplers_give_different_images_at_one_seed_and_the_same_on_a_rerun(samplers):
    first, second = samplers
    a, b = (pd.read_csv(d / "results.csv", keep_default_na=False).set_index("scheduler") for d in samplers)
    assert sorted(a.index) == sorted(axes.SAMPLERS)
    for name in axes.SAMPLERS:
        assert np.array_equal(image(first, a.loc[name, "image"]), image(second, b.loc[name, "image"]))
    unique = {image(first, a.loc[n, "image"]).tobytes() for n in ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras",
                                                                  "DDIM", "UniPC", "Heun", "DPM2 a")}
    assert len(unique) == 8
    assert a.loc["DPM++ 2M Karras", "scheduler_class"] == "DPMSolverMultistepScheduler(use_karras_sigmas=True)"


def test_a_karras_sampler_reads_back_in_a1111s_format(samplers):
    first, _ = samplers
    row = pd.read_csv(first / "results.csv", keep_default_na=False).set_index("scheduler").loc["DPM++ 2M SDE Karras"]
    parsed = a1111_parse(Image.open(first / row["image"]).text["parameters"])
    assert (parsed["Sampler"], parsed["Schedule type"]) == ("DPM++ 2M SDE", "Karras")


def test_naming_the_models_own_sampler_changes_no_pixel(tmp_path):
    own_dir, own = run(tmp_path, "own")
    named_dir, named = run(tmp_path, "named", "scheduler=Euler")
    assert own.loc[0, "scheduler"] == named.loc[0, "scheduler"] == "Euler"
    assert np.array_equal(image(own_dir, own.loc[0, "image"]), image(named_dir, named.loc[0, "image"]))


# --- prompt axes and pipeline arguments ---------------------------------------------------------------------


def test_prompt_sr_replaces_in_prompt_and_negative_prompt(tmp_path):
    run_dir, rows = run(tmp_path, "sr", "prompt=a horse on mars", "negative_prompt=no horse",
                        "sweep.grid.prompt_sr=[horse,camel,dragon]")
    rows = rows.set_index("prompt_sr")
    assert rows.loc["camel", "prompt"] == "a camel on mars" and rows.loc["camel", "negative_prompt"] == "no camel"
    assert rows.loc["horse", "prompt"] == "a horse on mars"
    page = build_report(run_dir).pages[0]
    assert page.cols == ("prompt_sr = horse", "prompt_sr = camel", "prompt_sr = dragon")  # labels show the value
    assert len({image(run_dir, p).tobytes() for p in rows["image"]}) == 3


def test_negative_prompt_axis_with_none(tmp_path):
    run_dir, rows = run(tmp_path, "neg", "sweep.grid.negative_prompt=[null,blurry]")
    assert sorted(rows["negative_prompt"]) == ["", "blurry"]
    page = build_report(run_dir).pages[0]
    assert page.cols == ("Negative prompt = (none)", "Negative prompt = blurry")


@pytest.mark.parametrize(("axis", "values", "labels"), [
    ("guidance_rescale", "[null,0.7]", ["default", "0.7"]),
    ("clip_skip", "[null,1]", ["default", "1"]),
    ("eta", "[0.0,1.0]", ["0", "1"]),
    ("denoising_end", "[0.5,1.0]", ["0.5", "1"]),
])
def test_pipeline_arguments_are_axes(tmp_path, axis, values, labels):
    run_dir, rows = run(tmp_path, axis, f"sweep.grid.{axis}={values}", *(("scheduler=DDIM",) if axis == "eta" else ()))
    assert len(rows) == 2
    assert len({image(run_dir, p).tobytes() for p in rows["image"]}) == 2  # the argument reached the pipeline
    page = build_report(run_dir).pages[0]
    from sweep.report.sheets import heading

    assert page.cols == tuple(f"{heading(axis)} = {label}" for label in labels)  # titled as in the viewer


@pytest.mark.parametrize(("args", "message"), [
    (("sweep.grid.scheduler=[Euler,DPM++ 9M]",),
     "sweep.grid.scheduler: got 'DPM++ 9M'; allowed: an A1111 sampler name"),
    (("sweep.grid.prompt_sr=[zebra,camel]",), "sweep.grid.prompt_sr: got 'zebra', which is in neither the prompt"),
    (("+sweep.grid.num_images_per_prompt=[1,2]",), "sweep.grid.num_images_per_prompt: got 'num_images_per_prompt'; "
                                                  "allowed: an axis: prompt"),
    (("sweep.grid.clip_skip=[1,2]",), "sweep.grid.clip_skip: got 2; allowed: an integer from 0 to 1"),
    (("guidance_rescale=1.5",), "guidance_rescale: got 1.5; allowed: a number from 0 to 1"),
])
def test_bad_axis_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        app.run_job(make_cfg(*SMALL, *args), tmp_path / "run")
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run" / "results.csv").exists()


# --- a sweep of four new axes: runs, resumes after kill -9, lays out by any of them --------------------------

# 30 steps: the cells after the third row take seconds, so the kill lands mid-sweep on a fast machine too.
COMBINED = ("sweep=prompt_sr", "model=tiny", "height=64", "width=64", "num_inference_steps=30",
            "sweep.grid.prompt_sr=[horse,camel]", "sweep.grid.seed=[1,2]",
            "'sweep.grid.scheduler=[Euler,DPM++ 2M Karras]'",
            "sweep.grid.guidance_rescale=[null,0.7]", "batch_size=1")


@pytest.mark.slow
def test_a_four_axis_sweep_resumes_after_kill_9_and_lays_out_by_any_axis(tmp_path):
    args = [a.strip("'") for a in COMBINED]
    run_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sweep", *args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:  # no deadline: a busy machine only makes the sweep slower, never ends this loop early
        if (run_dir / "results.csv").is_file() and (run_dir / "results.csv").read_text().count("\n") >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = run_cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "images to make" in resumed.stdout  # the estimate says what is left
    reference = tmp_path / "reference"
    cfg = make_cfg(*[a for a in args if a != "model=tiny"])
    run_sweep(cfg, reference, progress=False, echo=lambda _: None)
    after = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    expected = pd.read_csv(reference / "results.csv", keep_default_na=False).set_index("cell_id")
    assert len(after) == 16 and set(after["cell_id"]) == set(expected.index)
    for _, row in after.iterrows():
        assert np.array_equal(image(run_dir, row["image"]), image(reference, expected.loc[row["cell_id"], "image"]))
    for rows, cols, sheets in (("scheduler", "prompt_sr", "guidance_rescale,seed"),
                               ("guidance_rescale", "seed", "scheduler,prompt_sr"),
                               ("prompt_sr", "scheduler", "seed,guidance_rescale")):
        result = build_report(run_dir, rows=rows, cols=cols, sheets=sheets)
        assert len(result.pages) == 4 and result.layouts[0].rows == (rows,)
