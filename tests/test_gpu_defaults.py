"""What a GPU run picks by default, with the CUDA device mocked where the code asks torch about it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sweep.models import devices
from sweep.models.builtin import build_tiny_pipeline
from sweep.models.library_output import to_log


def mock_cuda(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize(("capability", "reported", "expected"), [
    ((9, 0), True, torch.bfloat16),  # H100 / H200
    ((8, 0), True, torch.bfloat16),  # A100
    ((7, 5), True, torch.float16),  # T4: torch reports bf16 (emulated), it is not native
    ((7, 0), False, torch.float16),  # V100
])
def test_auto_dtype_is_bf16_where_the_card_has_it(monkeypatch, capability, reported, expected):
    mock_cuda(monkeypatch, capability, reported)
    assert devices.resolve_dtype("auto", devices.resolve_device("auto")) == expected
    assert devices.resolve_dtype("auto", "cuda:0") == expected
    assert devices.resolve_dtype("float16", "cuda") == torch.float16  # an explicit choice stays


def test_auto_dtype_off_cuda():
    assert devices.resolve_dtype("auto", "cpu") == torch.float32
    assert devices.resolve_dtype("auto", "mps") == torch.float16


def _call(pipe, seed: int = 3) -> np.ndarray:
    return pipe(prompt="a cat", num_inference_steps=1, guidance_scale=5.0, height=64, width=64,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images


def test_bf16_decodes_in_bf16_without_the_fp32_round_trip(tmp_path: Path):
    pipe = build_tiny_pipeline().to(dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.force_upcast  # what makes diffusers decode an fp16 VAE in fp32, casting it per call
    with to_log(tmp_path):
        image = _call(pipe)
    assert np.isfinite(image).all() and pipe.vae.dtype == torch.bfloat16
    log = tmp_path / "sweep.log"
    assert not log.exists() or "kept in float32" not in log.read_text()  # no cast of the VAE in the call
