"""`model.compile` and the other speed options: what is compiled and how, the caches, and a stop mid-compile."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import make_cfg
from sweep.errors import SweepError
from sweep.models import checks as model_checks
from sweep.models import compiling, pipeline
from sweep.models.builtin import build_tiny_pipeline
from sweep.running.signals import Interrupted, stop_on_signals


def test_options_column_names_the_compile_mode_and_the_new_options():
    assert pipeline.options_label({"compile": True}) == "compile"
    assert pipeline.options_label({"compile": True, "compile_mode": "reduce-overhead", "compile_vae": True,
                                   "channels_last": True}) == "compile=reduce-overhead+compile_vae+channels_last"
    assert pipeline.options_label({"compile_vae": True, "compile_mode": "max-autotune"}) == "none"  # no compile
    assert pipeline.options_label({"fuse_qkv_projections": True}) == "fuse_qkv_projections"


def test_bad_compile_options_are_one_line_before_any_load():
    model = make_cfg("model.compile=true", "model.compile_mode=fastest").model
    with pytest.raises(SweepError) as bad:
        model_checks.check(model)
    assert str(bad.value).startswith("model.compile_mode") and "reduce-overhead" in str(bad.value)
    model_checks.check(make_cfg("model.compile_mode=fastest").model)  # unused without compile: not an error


def test_compile_uses_default_mode_fullgraph_and_a_disk_cache(monkeypatch, tmp_path: Path):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **options: calls.append((fn, options)) or fn)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(compiling.CACHE_ENV, "x")  # so that the test's own change is undone afterwards
    monkeypatch.delenv(compiling.CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    pipe = build_tiny_pipeline()
    unet = pipe.unet
    compiling.compile_pipeline(pipe, {"compile": True})
    assert calls == [(unet, {"mode": None, "dynamic": False, "fullgraph": True})]
    assert os.environ[compiling.CACHE_ENV] == str(tmp_path / ".cache" / "sdxl-sweep" / "inductor")
    assert (tmp_path / ".cache" / "sdxl-sweep" / "inductor").is_dir()
    import torch._inductor.config as inductor_config

    assert inductor_config.fx_graph_cache and inductor_config.autotune_local_cache

    calls.clear()
    monkeypatch.setenv(compiling.CACHE_ENV, str(tmp_path / "mine"))
    compiling.compile_pipeline(pipe, {"compile": True, "compile_mode": "reduce-overhead", "compile_vae": True})
    assert [options["mode"] for _, options in calls] == ["reduce-overhead", "reduce-overhead"]
    assert os.environ[compiling.CACHE_ENV] == str(tmp_path / "mine")


def test_the_unet_traces_as_one_graph():
    """fullgraph=True must hold for the UNet (a graph break would fail the first call): dynamo's trace only."""
    unet = build_tiny_pipeline().unet.eval()
    inputs = {"sample": torch.randn(2, 4, 8, 8), "timestep": torch.tensor(10),
              "encoder_hidden_states": torch.randn(2, 77, unet.config.cross_attention_dim),
              "added_cond_kwargs": {"time_ids": torch.randn(2, 6), "text_embeds": torch.randn(
                  2, unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim)}}
    with torch.no_grad():
        expected = unet(**inputs).sample
        traced = torch.compile(unet, fullgraph=True, dynamic=False, backend="eager")(**inputs).sample
    torch.testing.assert_close(traced, expected)


def test_a_stop_during_a_compiled_run_ends_it_at_once_and_ends_the_compile_workers(monkeypatch):
    stopped = []
    monkeypatch.setattr(compiling, "stop_workers", lambda: stopped.append(True))
    with pytest.raises(Interrupted) as stop, stop_on_signals() as state:
        state.immediate = True
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between two bytecodes of this loop
            pass
    assert stop.value.code == 143 and stopped == [True]


def test_a_stop_of_an_eager_run_waits_for_the_step_to_end():
    with stop_on_signals() as state:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        assert state.signum == signal.SIGTERM  # noted; the call in flight decides (Stop.watch)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_in_one_line_without_cuda(tmp_path: Path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script), str(tmp_path / "report.md")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "GPU_CHECK_ALLOW_CPU": "0"}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu_check: needs a CUDA GPU"), done.stderr
    assert done.stdout == "" and not (tmp_path / "report.md").exists()


def test_fused_qkv_projections_make_the_same_image():
    import numpy as np

    plain, fused = build_tiny_pipeline(), build_tiny_pipeline()
    pipeline._configure(fused, {"fuse_qkv_projections": True}, "cpu")
    assert {type(p).__name__ for p in fused.unet.attn_processors.values()} == {"FusedAttnProcessor2_0"}
    images = [p(prompt="a cat", num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator("cpu").manual_seed(1)).images for p in (plain, fused)]
    assert np.abs(images[0] - images[1]).max() <= 1 / 255
