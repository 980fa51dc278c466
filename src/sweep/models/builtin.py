"""Offline SDXL pipelines built entirely in code, with seeded random weights.

* :func:`build_tiny_pipeline` – an SDXL-*architecture* pipeline (two CLIP text encoders, ``text_time``
  micro-conditioning, 8x VAE, Euler scheduler) that is small enough for CPU tests and demo sweeps.
* :func:`build_tiny_layout_pipeline` – the same at tiny size but with SDXL base's exact block layout, so it
  can be written out as an original-layout single-file checkpoint; :func:`build_tiny_refiner` – a tiny SDXL
  refiner (``model.refiner=tiny``) sharing a base's second text encoder and VAE.
* :func:`build_sdxl_arch_pipeline` – the full-size SDXL base 1.0 architecture with random weights, for
  measuring GPU speed and memory without downloading the 7 GB checkpoint.

Both pipelines use a tiny character-level CLIP tokenizer, so nothing touches the Hugging Face hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# transformers warns at import about image processors SDXL does not use; a user's own setting wins.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

from sweep.files.configs import (  # noqa: E402  (the plain configs, shared with model_facts)
    SDXL_SCHEDULER_CONFIG,
    SDXL_TEXT_ENCODER_2_CONFIG,
    SDXL_TEXT_ENCODER_CONFIG,
    SDXL_UNET_CONFIG,
    SDXL_VAE_CONFIG,
    TINY_ADD_TIME_DIM,
    TINY_ALT_SEED,
    TINY_LAYOUT_TE2_HIDDEN,
    TINY_LAYOUT_TE2_PROJECTION,
    TINY_LAYOUT_TE_HIDDEN,
    TINY_LAYOUT_UNET_CONFIG,
    TINY_LAYOUT_VAE_CONFIG,
    TINY_SEED,
    TINY_TE2_HIDDEN,
    TINY_TE2_PROJECTION,
    TINY_TE_HIDDEN,
    TINY_UNET_CONFIG,
    TINY_VAE_CONFIG,
)

__all__ = [
    "SDXL_SCHEDULER_CONFIG",
    "SDXL_TEXT_ENCODER_2_CONFIG",
    "SDXL_TEXT_ENCODER_CONFIG",
    "SDXL_UNET_CONFIG",
    "SDXL_VAE_CONFIG",
    "TINY_LAYOUT_UNET_CONFIG",
    "TINY_LAYOUT_VAE_CONFIG",
    "TINY_ALT_SEED",
    "TINY_SEED",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "build_sdxl_arch_pipeline",
    "build_tiny_layout_pipeline",
    "build_tiny_pipeline",
    "build_tiny_refiner",
    "build_tokenizer",
]

def _tiny_text_config(hidden: int, projection: int, act: str) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_attention_heads": 4,
        # >= 2 layers: SDXL conditions on the penultimate hidden state.
        "num_hidden_layers": 2,
        "max_position_embeddings": 77,
        "projection_dim": projection,
        "hidden_act": act,
        "layer_norm_eps": 1e-05,
        "vocab_size": len(_char_vocab()),
    }


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2/CLIP), in CLIP's id order."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _char_vocab() -> dict[str, int]:
    """Every byte symbol, alone and word-final, plus CLIP's specials last (as in the real vocab).

    With no merges, CLIP's BPE splits each word into single byte symbols, the last one carrying
    ``</w>``; this vocab therefore covers any text, and ids 0-511 match the real CLIP vocab.
    ``<|endoftext|>`` has the highest id, so the legacy ``eos_token_id == 2`` argmax pooling in
    ``CLIPTextModel`` still finds it.
    """
    symbols = _bytes_to_unicode()
    tokens = [*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def build_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A character-level ``CLIPTokenizer`` (77 tokens) built without any download.

    SDXL's first tokenizer pads with ``<|endoftext|>`` and its second with ``!``; pass ``pad_token``
    accordingly.
    """
    vocab = _char_vocab()
    if int(transformers.__version__.split(".")[0]) >= 5:
        return CLIPTokenizer(vocab=vocab, merges=[], pad_token=pad_token, model_max_length=77)
    # transformers 4.x only builds CLIPTokenizer from files.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        # The first line of merges.txt is a version header that the loader skips.
        (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        config = {"model_max_length": 77, "pad_token": pad_token, "tokenizer_class": "CLIPTokenizer"}
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed weight init on ``device`` without disturbing the caller's RNG state."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index]):
            torch.default_generator.manual_seed(seed)
            torch.cuda.default_generators[index].manual_seed(seed)
            yield
    else:
        # Only the CPU generator is touched: torch.manual_seed would also (lazily) reseed CUDA.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


def _assemble(
    unet_config: dict[str, Any],
    vae_config: dict[str, Any],
    te_config: dict[str, Any],
    te2_config: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
) -> StableDiffusionXLPipeline:
    tokenizer = build_tokenizer()
    tokenizer_2 = build_tokenizer(pad_token="!")  # as stabilityai/stable-diffusion-xl-base-1.0

    # Build on the target device so a GPU does not wait for a CPU init of billions of parameters;
    # cast each component right away so that only one component is ever held in fp32.
    def make(offset: int, factory: Callable[[], Any]) -> Any:
        with _seeded(seed + offset, device), device:
            module = factory().eval()
        if dtype == torch.float32:
            return module
        if getattr(module, "_keep_in_fp32_modules", None):
            return module.to(dtype=dtype)
        # Plain cast: diffusers' ModelMixin.to(dtype) warns about fp32-kept modules even when there
        # are none, and nothing else in its override applies to a freshly built model.
        return torch.nn.Module.to(module, dtype=dtype)

    unet = make(0, lambda: UNet2DConditionModel(**unet_config))
    vae = make(1, lambda: AutoencoderKL(**vae_config))
    text_encoder = make(2, lambda: CLIPTextModel(CLIPTextConfig(**te_config)))
    text_encoder_2 = make(3, lambda: CLIPTextModelWithProjection(CLIPTextConfig(**te2_config)))
    scheduler = EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def _tiny_text_configs(te_hidden: int, te2_hidden: int, te2_projection: int) -> tuple[dict, dict]:
    """Configs of the two tiny CLIP text encoders, with the character tokenizer's special ids."""
    vocab = _char_vocab()
    special = {
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }
    te = {**_tiny_text_config(te_hidden, te_hidden, "quick_gelu"), **special}
    te2 = {**_tiny_text_config(te2_hidden, te2_projection, "gelu"), **special}
    return te, te2


def build_tiny_pipeline(seed: int = TINY_SEED) -> StableDiffusionXLPipeline:
    """A small, seeded SDXL-architecture pipeline (fp32, CPU, native 128x128), built without downloads.

    Two builds have identical weights in any process; another `seed` is another "checkpoint" of the same
    architecture (`tiny-alt`, TINY_ALT_SEED).
    """
    te, te2 = _tiny_text_configs(TINY_TE_HIDDEN, TINY_TE2_HIDDEN, TINY_TE2_PROJECTION)
    return _assemble(
        TINY_UNET_CONFIG,
        TINY_VAE_CONFIG,
        te,
        te2,
        torch.device("cpu"),
        torch.float32,
        seed,
    )


def build_tiny_layout_pipeline(seed: int = TINY_SEED) -> StableDiffusionXLPipeline:
    """A small pipeline with SDXL base's exact block layout (fp32, CPU, native 64x64).

    Unlike :func:`build_tiny_pipeline`, every block sits where SDXL has it (three UNet levels of two layers,
    attention in the last two, a mid-block attention in the VAE), so it can be written out as an original-layout
    (A1111 / Stability) single-file checkpoint and read back by ``from_single_file``. ``seed`` gives another
    set of weights with the same architecture (a "different checkpoint").
    """
    te, te2 = _tiny_text_configs(TINY_LAYOUT_TE_HIDDEN, TINY_LAYOUT_TE2_HIDDEN, TINY_LAYOUT_TE2_PROJECTION)
    return _assemble(
        TINY_LAYOUT_UNET_CONFIG,
        TINY_LAYOUT_VAE_CONFIG,
        te,
        te2,
        torch.device("cpu"),
        torch.float32,
        seed,
    )


def build_tiny_refiner(base: Any, seed: int = TINY_SEED) -> StableDiffusionXLImg2ImgPipeline:
    """A small seeded SDXL *refiner* for ``base``: the refiner architecture at tiny size, built without downloads.

    As stabilityai/stable-diffusion-xl-refiner-1.0: the UNet is conditioned on ``text_encoder_2`` alone and on an
    aesthetic score (5 micro-conditioning numbers instead of 6), ``requires_aesthetics_score=True``, and there is no
    first text encoder. ``base``'s ``text_encoder_2``, ``tokenizer_2`` and VAE are shared, not copied, as in the
    diffusers "ensemble of expert denoisers" recipe.
    """
    te2 = base.text_encoder_2.config
    unet_config = {
        **TINY_UNET_CONFIG,
        "sample_size": base.unet.config.sample_size,
        "cross_attention_dim": te2.hidden_size,
        # original size (2), crop coords (2), aesthetic score (1) + pooled text embedding.
        "projection_class_embeddings_input_dim": 5 * TINY_ADD_TIME_DIM + te2.projection_dim,
    }
    device, dtype = base.unet.device, base.unet.dtype
    with _seeded(seed + 4, device), device:  # its own stream: not the base UNet's weights
        unet = UNet2DConditionModel(**unet_config).eval()
    if dtype != torch.float32:
        unet = torch.nn.Module.to(unet, dtype=dtype)
    return StableDiffusionXLImg2ImgPipeline(
        vae=base.vae,
        text_encoder=None,
        text_encoder_2=base.text_encoder_2,
        tokenizer=None,
        tokenizer_2=base.tokenizer_2,
        unet=unet,
        scheduler=type(base.scheduler).from_config(base.scheduler.config),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=True,
    )


def build_sdxl_arch_pipeline(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusionXLPipeline:
    """The full SDXL base 1.0 architecture (UNet 2.57 B parameters) with seeded random weights.

    Meant for speed/memory measurement without a download; images are noise. Weights are created
    directly on ``device`` (``"meta"`` gives a free, weightless skeleton for shape/parameter checks).
    """
    return _assemble(
        SDXL_UNET_CONFIG,
        SDXL_VAE_CONFIG,
        SDXL_TEXT_ENCODER_CONFIG,
        SDXL_TEXT_ENCODER_2_CONFIG,
        torch.device(device),
        dtype,
        TINY_SEED,
    )
