"""SDXL base + refiner as an "ensemble of expert denoisers" (the diffusers SDXL recipe).

The base denoises the first part of the schedule (`denoising_end=F`) and hands its latents to the refiner, which
denoises the rest (`denoising_start=F`). The refiner shares the base's second text encoder and VAE, so it adds
only its UNet to memory. `model.refiner` is a hub id (stabilityai/stable-diffusion-xl-refiner-1.0), a diffusers
refiner folder, or `tiny` (a small refiner built in code, for tests and trying the tool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweep.errors import bad_value
from sweep.files.checkpoints import bad_file, check_sdxl_folder, expand, looks_like_hub_id

if TYPE_CHECKING:
    import torch

KEY = "model.refiner"
ALLOWED = "a hub id such as stabilityai/stable-diffusion-xl-refiner-1.0, a diffusers SDXL refiner folder, or tiny"
# diffusers' SDXL docs hand over at 0.8 (high_noise_frac); A1111's "Refiner switch at" default is also 0.8.
DEFAULT_SWITCH = 0.8


@dataclass
class Refiner:
    pipe: Any  # StableDiffusionXLImg2ImgPipeline sharing the base's text_encoder_2 and VAE
    label: str  # A1111's `Refiner:` name
    prompts: Any  # prompt_cache.PromptCache on the refiner (its text encoder, its pooled embedding)


def check_refiner(value: Any) -> str:
    """What `model.refiner` names: 'tiny', 'hub' or 'folder'. Checked before anything loads."""
    text = str(value)
    if text == "tiny":
        return "tiny"
    path = expand(text)
    if path.is_dir():
        index = check_sdxl_folder(KEY, path, refiner=True)
        if index.get("text_encoder") and index["text_encoder"][0] is not None:
            raise bad_file(KEY, path, ALLOWED, "an SDXL base folder (give it as model.path)")
        return "folder"
    if path.exists():
        raise bad_file(KEY, path, ALLOWED, "a file; single-file refiners are not supported, use its diffusers folder")
    if looks_like_hub_id(text):
        return "hub"
    raise bad_file(KEY, text, ALLOWED, "no such folder")


def check_switch(value: Any, key: str = "model.refiner_switch") -> float:
    """A hand-over fraction strictly between 0 and 1 (0 would skip the base, 1 the refiner)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) < 1:
        raise bad_value(key, value, "a number between 0 and 1 (the fraction of steps the base runs), e.g. 0.8")
    return float(value)


def refiner_label(value: str) -> str:
    """The refiner's name as A1111 writes it: tiny, the hub repo name, or the folder name."""
    if value == "tiny":
        return "tiny"
    path = expand(value)
    return path.resolve().name if path.is_dir() else value.rstrip("/").split("/")[-1]


def load_refiner(value: str, base: Any, *, device: str, dtype: torch.dtype, variant: str | None = None) -> Refiner:
    """The refiner named by `value`, sharing `base`'s text_encoder_2 and VAE; raises like any model load."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from sweep.models.builtin import build_tiny_refiner
    from sweep.prompts.cache import PromptCache

    kind = check_refiner(value)
    if kind == "tiny":
        pipe = build_tiny_refiner(base)
    else:
        kwargs: dict[str, Any] = {"torch_dtype": dtype, "use_safetensors": True}
        if kind == "hub" and dtype in (torch.float16, torch.bfloat16) and variant:
            kwargs["variant"] = variant
        if kind == "folder":
            kwargs["local_files_only"] = True
        pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            str(expand(value)) if kind == "folder" else value,
            text_encoder_2=base.text_encoder_2, vae=base.vae, **kwargs)
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return Refiner(pipe=pipe, label=refiner_label(value), prompts=PromptCache(pipe, device))


def generate_with_refiner(
    pipe: Any,
    refiner: Any,
    refiner_switch: float,
    *,
    base_inputs: Mapping[str, Any],
    refiner_inputs: Mapping[str, Any],
    generator: Any,
    num_inference_steps: int,
    guidance_scale: float,
    height: int | None = None,
    width: int | None = None,
) -> list[Any]:
    """One base + refiner generation for a batch; PIL images.

    `base_inputs` / `refiner_inputs` are each pipeline's prompt inputs (`prompt=...` or the embeddings of a
    `PromptCache` on that pipeline, for the batch). The base runs `num_inference_steps * refiner_switch` steps
    of the schedule and returns latents (`denoising_end=refiner_switch, output_type="latent"`); the refiner
    continues from them (`denoising_start=refiner_switch, image=latents`) with the same generators, steps and
    guidance, and decodes. `refiner` must not run two calls at once (its scheduler holds per-call state):
    give each concurrent call its own `pipeline.fork(refiner)`.
    """
    common = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "generator": generator}
    latents = pipe(**base_inputs, **common, height=height, width=width, denoising_end=refiner_switch,
                   output_type="latent").images
    return list(refiner(**refiner_inputs, **common, image=latents, denoising_start=refiner_switch,
                        output_type="pil").images)
