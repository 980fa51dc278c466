"""The runner on the tiny model: shipped sweeps, reproducibility, results.csv, PNG metadata, batching."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import SWEEPS, make_cfg
from sweep.models import pipeline
from sweep.rundir.results import COLUMNS
from sweep.running.runner import run_sweep

SMALL = ("height=64", "width=64", "num_inference_steps=2")


def pixels(run_dir, row) -> np.ndarray:
    return np.asarray(Image.open(run_dir / row["image"]).convert("RGB"), dtype=np.int16)


def run(tmp_path, *overrides, name="run"):
    run_dir = tmp_path / name
    summary = run_sweep(make_cfg(*overrides), run_dir, progress=False, echo=lambda _: None)
    return summary, run_dir, pd.read_csv(run_dir / "results.csv", keep_default_na=False)


# Each shipped sweep as written, only made small where its grid does not set the size or steps itself.
SMOKE = {
    "steps_10_to_90": ("height=32", "width=32"),
    "resolution_512_1024": ("num_inference_steps=1", "sweep.grid.resolution=[64x64,128x96]"),
    "hires": ("height=32", "width=32", "num_inference_steps=4"),  # int(4 x 0.3): one second-pass step
    "controlnet": ("height=64", "width=64", "num_inference_steps=2", "model.controlnet=tiny"),  # built in code
}


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_runs_on_the_tiny_model(tmp_path, name):
    overrides = SMOKE.get(name, ("height=64", "width=64", "sweep.grid.num_inference_steps=[2,3]")
                          if name == "seeds_steps_guidance" else SMALL)
    summary, run_dir, table = run(tmp_path, f"sweep={name}", *overrides)
    assert summary.ok and summary.failed == 0
    assert summary.made == summary.total == len(table) > 0
    assert (table["status"] == "ok").all()
    for image in table["image"]:
        assert Image.open(run_dir / image).size[0] > 0
    assert summary.sheets and all(p.is_file() for p in summary.sheets)
    if name == "steps_10_to_90":  # the headline sweep: 9 rows, steps 10..90 with the end included
        assert sorted(table["num_inference_steps"]) == list(range(10, 91, 10))
        assert set(table["seed"]) == {1234}


def test_results_csv_columns_and_values(tmp_path):
    _, run_dir, table = run(tmp_path, "sweep=seeds_steps_guidance", *SMALL, "sweep.grid.seed=[1,2]",
                            "sweep.grid.num_inference_steps=[1,2]", "sweep.grid.guidance_scale=[1.0,4.5]",
                            "negative_prompt=blurry")
    assert list(table.columns) == COLUMNS
    assert len(table) == 8 and table["cell_id"].is_unique
    row = table[(table.seed == 2) & (table.num_inference_steps == 2) & (table.guidance_scale == 4.5)].iloc[0]
    assert row["prompt"] == "a photo of an astronaut riding a horse on mars"
    assert row["negative_prompt"] == "blurry"
    assert (row["height"], row["width"]) == (64, 64)
    assert row["status"] == "ok" and row["error"] == ""
    assert row["model"] == "tiny" and row["device"] == "cpu" and row["dtype"] == "float32"
    assert row["options"] == "none"
    assert row["scheduler"] == "Euler" and row["scheduler_class"] == "EulerDiscreteScheduler"
    assert row["torch"] == torch.__version__
    assert row["seconds"] > 0 and row["batch_size"] >= 1
    assert row["image"].startswith("images/") and (run_dir / row["image"]).is_file()


def test_same_config_gives_pixel_identical_images(tmp_path):
    _, dir_a, a = run(tmp_path, "sweep=seed_random", *SMALL, "sweep.grid.seed=[5,6]", name="a")
    _, dir_b, b = run(tmp_path, "sweep=seed_random", *SMALL, "sweep.grid.seed=[5,6]", name="b")
    for (_, ra), (_, rb) in zip(a.iterrows(), b.iterrows(), strict=True):
        assert ra["cell_id"] == rb["cell_id"]
        assert np.array_equal(pixels(dir_a, ra), pixels(dir_b, rb))


def test_seed_fixed_gives_identical_images(tmp_path):
    _, run_dir, table = run(tmp_path, "sweep=seed_fixed", *SMALL)
    assert len(table) == 3 and set(table["seed"]) == {1234}
    assert set(table["batch_size"]) == {1}  # three separate pipeline calls, not one batch of copies
    first = pixels(run_dir, table.iloc[0])
    assert all(np.array_equal(first, pixels(run_dir, row)) for _, row in table.iterrows())


def test_seed_random_gives_different_images_with_recorded_seeds(tmp_path):
    import json

    _, run_dir, table = run(tmp_path, "sweep=seed_random", *SMALL)
    seeds = list(table["seed"])
    assert len(set(seeds)) == 3
    assert sorted(json.loads((run_dir / "sweep.json").read_text())["random_seeds"]) == sorted(seeds)
    images = [pixels(run_dir, row) for _, row in table.iterrows()]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


def test_png_carries_its_parameters(tmp_path):
    _, run_dir, table = run(tmp_path, "sweep=steps_10_to_90", *SMALL, "sweep.grid.num_inference_steps=[3]",
                            "negative_prompt=low quality")
    row = table.iloc[0]
    text = Image.open(run_dir / row["image"]).text
    assert text["parameters"] == (
        "a photo of an astronaut riding a horse on mars\nNegative prompt: low quality\n"
        "Steps: 3, Sampler: Euler, Schedule type: DDIM, CFG scale: 5.0, Seed: 1234, Size: 64x64, Model: tiny, "
        "RNG: CPU, Version: sdxl-sweep 0.1.0"
    )
    # `prompt` is a ComfyUI API graph (ComfyUI loads it on a drop); the machine-readable row is our own chunk.
    graph = json.loads(text["prompt"])
    assert {n["class_type"] for n in graph.values()} >= {"CheckpointLoaderSimple", "KSampler", "SaveImage"}
    assert "workflow" not in text
    embedded = json.loads(text["sdxl-sweep"])
    assert (embedded["seed"], embedded["num_inference_steps"], embedded["guidance_scale"]) == (1234, 3, 5.0)


def test_batch_size_one_is_exactly_the_plain_diffusers_call(tmp_path, monkeypatch):
    import threading

    from sweep.running import scheduling

    calls, original = [], scheduling.generate

    def spy(loaded, prompts, unit, *args):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return original(loaded, prompts, unit, *args)

    monkeypatch.setattr(scheduling, "generate", spy)
    # Seeds 12 and 13 at this size give other pixels on 1 torch thread than on 2: a call that ran on another
    # thread count than the plain call's would show here.
    _, run_dir, table = run(tmp_path, "sweep=seed_random", *SMALL, "sweep.grid.seed=[11,12,13]", "batch_size=1")
    default_threads = torch.get_num_threads()
    assert {threads for _, threads in calls} == {default_threads}
    # The plain loop's thread too: a multi-threaded call on a second OS thread gets its own OpenMP team, and
    # libgomp then throttles every team's spinning (2.5-3x slower on 2 cores).
    assert {name for name, _ in calls} == {threading.main_thread().name}
    pipe = pipeline.load(make_cfg("sweep=seed_random").model).pipe
    for _, row in table.iterrows():
        image = pipe(prompt=row["prompt"], num_inference_steps=2, guidance_scale=5.0, height=64, width=64,
                     generator=torch.Generator("cpu").manual_seed(int(row["seed"]))).images[0]
        assert np.array_equal(np.asarray(image, dtype=np.int16), pixels(run_dir, row))
        assert row["batch_size"] == 1


def test_batched_images_match_single_calls_within_one_level(tmp_path):
    seeds = "sweep.grid.seed=[1,2,3,4]"
    _, dir_1, single = run(tmp_path, "sweep=seed_random", *SMALL, seeds, "batch_size=1", name="single")
    _, dir_4, batched = run(tmp_path, "sweep=seed_random", *SMALL, seeds, "batch_size=4", name="batched")
    assert set(batched["batch_size"]) == {4}
    # Rows land in the order calls finish; match them by cell.
    one_by_one = {row["cell_id"]: row for _, row in single.iterrows()}
    assert sorted(one_by_one) == sorted(batched["cell_id"])
    for _, b in batched.iterrows():
        assert np.abs(pixels(dir_1, one_by_one[b["cell_id"]]) - pixels(dir_4, b)).max() <= 1


def test_pipeline_is_loaded_once_per_process(tmp_path):
    run(tmp_path, "sweep=seed_fixed", *SMALL, name="first")
    loads = pipeline.LOADS
    run(tmp_path, "sweep=seed_random", *SMALL, name="second")
    run(tmp_path, "sweep=steps_10_to_90", *SMALL, "sweep.grid.num_inference_steps=[1]", name="third")
    assert pipeline.LOADS == loads


def test_prompt_is_encoded_once_per_sweep(tmp_path):
    pipe = pipeline.load(make_cfg("sweep=seed_fixed").model).pipe
    calls = []
    hooks = [encoder.register_forward_hook(lambda *_: calls.append(1))
             for encoder in (pipe.text_encoder, pipe.text_encoder_2)]
    try:
        run(tmp_path, "sweep=steps_10_to_90", *SMALL, "sweep.grid.num_inference_steps=[1,2,3]",
            "sweep.grid.seed=[1,2]", "batch_size=1")
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == 2  # one pass through each text encoder for 6 images


def test_a_failing_cell_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    from sweep.running import scheduling

    original = scheduling.generate

    def flaky(loaded, prompts, unit, *args):
        if unit[0].num_inference_steps == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(loaded, prompts, unit, *args)

    monkeypatch.setattr(scheduling, "generate", flaky)
    summary, run_dir, table = run(tmp_path, "sweep=steps_10_to_90", *SMALL,
                                  "sweep.grid.num_inference_steps=[1,2,3]")
    assert summary.failed == 1 and summary.made == 2 and not summary.ok
    failed = table[table.status == "failed"].iloc[0]
    assert failed["num_inference_steps"] == 2 and "out of memory" in failed["error"]
    assert failed["image"] == ""
    assert sorted(table[table.status == "ok"]["num_inference_steps"]) == [1, 3]


def test_cpu_runs_batched_calls_side_by_side_reproducibly(tmp_path, monkeypatch):
    import threading

    from sweep.running import scheduling

    grid = ("sweep=seed_random", *SMALL, "sweep.grid.seed=[1,2]", "sweep.grid.num_inference_steps=[1,2,3]")
    threads, original = set(), scheduling.generate

    def spy(loaded, prompts, unit, *args):
        threads.add(threading.current_thread().name)
        return original(loaded, prompts, unit, *args)

    monkeypatch.setattr(scheduling, "generate", spy)
    default_threads = torch.get_num_threads()
    _, dir_a, a = run(tmp_path, *grid, name="a")
    _, dir_b, b = run(tmp_path, *grid, name="b")
    _, dir_1, single = run(tmp_path, *grid, "batch_size=1", name="single")
    assert torch.get_num_threads() == default_threads  # restored for the exact single-image calls
    if default_threads >= 2:
        assert any(name.startswith("sweep-pipe") for name in threads)
    assert set(a["batch_size"]) == {2}
    # Rows land in the order calls finish; match them by cell.
    again = {row["cell_id"]: row for _, row in b.iterrows()}
    one_by_one = {row["cell_id"]: row for _, row in single.iterrows()}
    assert len(a) == len(again) == len(one_by_one) == 6
    for _, row in a.iterrows():
        assert np.array_equal(pixels(dir_a, row), pixels(dir_b, again[row["cell_id"]]))
        assert np.abs(pixels(dir_a, row) - pixels(dir_1, one_by_one[row["cell_id"]])).max() <= 1


def test_cpu_workers_only_for_plain_cpu_pipelines():
    from sweep.running import scheduling

    loaded = pipeline.load(make_cfg("sweep=seed_random").model)
    budget = torch.get_num_threads()
    expected = (min(scheduling.MAX_CPU_WORKERS, budget), budget // min(scheduling.MAX_CPU_WORKERS, budget))
    assert scheduling.cpu_workers(loaded, {}) == (expected if budget >= 2 else (1, 0))
    assert scheduling.cpu_workers(loaded, {"compile": True}) == (1, 0)
    assert scheduling.cpu_workers(loaded, {"cpu_offload": True}) == (1, 0)
    from dataclasses import replace

    assert scheduling.cpu_workers(replace(loaded, device="cuda"), {}) == (1, 0)


def test_a_cpu_decodes_a_batch_one_image_at_a_time():
    # The batch's full-resolution VAE activations were most of a batched CPU call's peak memory; the option a
    # user sets on a GPU stays theirs (the `options` column does not claim it).
    loaded = pipeline.load(make_cfg("sweep=seed_random").model)
    assert loaded.device == "cpu" and loaded.pipe.vae.use_slicing
    assert loaded.options == "none"
