"""Tests for the offline, in-code SDXL pipelines in :mod:`sweep.models.builtin`."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # these tests must never reach the hub

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

from sweep.models.builtin import (
    SDXL_TEXT_ENCODER_2_CONFIG,
    SDXL_TEXT_ENCODER_CONFIG,
    SDXL_UNET_CONFIG,
    build_sdxl_arch_pipeline,
    build_tiny_pipeline,
)

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@pytest.fixture(scope="module")
def pipe() -> StableDiffusionXLPipeline:
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: StableDiffusionXLPipeline, prompt: str = "a red fox", seed: int = 0) -> np.ndarray:
    """A 64x64, 2-step image as uint8 pixels."""
    image = pipe(
        prompt,
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(seed),
    ).images[0]
    return np.asarray(image)


def test_tiny_builds_are_identical_and_leave_global_rng_alone() -> None:
    # Different global seeds before each build: the weights must not depend on the caller's RNG.
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = build_tiny_pipeline()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    second = build_tiny_pipeline()
    for name in COMPONENTS:
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs between builds"


def test_tiny_architecture(pipe: StableDiffusionXLPipeline) -> None:
    assert pipe.default_sample_size * pipe.vae_scale_factor == 128
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert pipe.unet.config.cross_attention_dim == (
        pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    )
    assert pipe.config.force_zeros_for_empty_prompt
    for name in COMPONENTS:
        param = next(getattr(pipe, name).parameters())
        assert (param.device.type, param.dtype) == ("cpu", torch.float32)


def test_tokenizer_covers_any_text(pipe: StableDiffusionXLPipeline) -> None:
    for tokenizer in (pipe.tokenizer, pipe.tokenizer_2):
        ids = tokenizer("A café, 東京 & ☃!").input_ids
        eos = tokenizer.eos_token_id
        # Unknown characters would map to <|endoftext|> (the unk token) before the end.
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == eos and eos not in ids[1:-1]
        assert max(ids) < pipe.text_encoder.config.vocab_size


def test_different_prompts_give_different_embeddings(pipe: StableDiffusionXLPipeline) -> None:
    a = pipe.encode_prompt("a red fox", device="cpu", do_classifier_free_guidance=False)
    b = pipe.encode_prompt("a blue whale", device="cpu", do_classifier_free_guidance=False)
    prompt_embeds, pooled = 0, 2
    assert not torch.allclose(a[prompt_embeds], b[prompt_embeds])
    assert not torch.allclose(a[pooled], b[pooled])


def test_generation_is_seed_deterministic(pipe: StableDiffusionXLPipeline) -> None:
    image = generate(pipe, seed=1)
    assert image.shape == (64, 64, 3)
    assert np.array_equal(image, generate(pipe, seed=1))
    assert not np.array_equal(image, generate(pipe, seed=2))


def test_different_prompts_give_different_images(pipe: StableDiffusionXLPipeline) -> None:
    assert not np.array_equal(generate(pipe, "a red fox"), generate(pipe, "a blue whale"))


def test_save_and_reload_offline(pipe: StableDiffusionXLPipeline, tmp_path: Path) -> None:
    pipe.save_pretrained(tmp_path)
    loaded = StableDiffusionXLPipeline.from_pretrained(tmp_path, local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(generate(loaded), generate(pipe))


def test_sdxl_arch_matches_sdxl_base_on_meta_device() -> None:
    pipe = build_sdxl_arch_pipeline(device="meta", dtype=torch.float16)
    unet_params = sum(p.numel() for p in pipe.unet.parameters())
    assert unet_params == pytest.approx(2.567e9, rel=1e-3)
    assert sum(p.numel() for p in pipe.text_encoder_2.parameters()) == pytest.approx(694.7e6, rel=1e-3)
    param = next(pipe.unet.parameters())
    assert (param.device.type, param.dtype) == ("meta", torch.float16)
    assert pipe.default_sample_size * pipe.vae_scale_factor == 1024
    # The SDXL wiring: context = both encoders' widths; added cond = 6 time ids + pooled projection.
    assert SDXL_UNET_CONFIG["cross_attention_dim"] == (
        SDXL_TEXT_ENCODER_CONFIG["hidden_size"] + SDXL_TEXT_ENCODER_2_CONFIG["hidden_size"]
    )
    assert SDXL_UNET_CONFIG["projection_class_embeddings_input_dim"] == (
        6 * SDXL_UNET_CONFIG["addition_time_embed_dim"] + SDXL_TEXT_ENCODER_2_CONFIG["projection_dim"]
    )


def test_sdxl_unet_config_alone_on_meta_device() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684
