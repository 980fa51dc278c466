"""Second passes on the loaded pipeline's components: A1111's Hires. fix and image-to-image.

Both run `StableDiffusionXLImg2ImgPipeline.from_pipe(pipe)`: the same UNet, VAE and text encoders, no second
load. Hires. fix as A1111 does it: the first pass at the cell's size, then the image upscaled by `hires_scale`
(in latent space for the `Latent` modes, with PIL for the pixel upscalers `Lanczos` and `Nearest`) and denoised
again at `hires_denoise`. The second pass runs A1111's steps (`sweep.planning.calls.hires_pass`): exactly `hires_steps`
(null: the first pass's steps) over a schedule of int(steps / denoise). Image-to-image runs A1111's img2img
steps, int(steps x strength) of the schedule, as diffusers does. At `hires_denoise` 0 the upscaled first pass is
the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sweep import axes


def needed(cell: Any) -> bool:
    return cell.get("hires_scale") is not None or cell.get("init_image") is not None


def second_pass_pipeline(loaded: Any) -> Any:
    """The image-to-image pipeline over `loaded.pipe`'s components (made once per loaded checkpoint)."""
    return loaded.sibling("second_pass", "StableDiffusionXLImg2ImgPipeline")


def init_image(path: str, width: int, height: int) -> Any:
    """The init image as 8-bit RGB, converted as A1111 does (sweep.files.images), at the cell's size (A1111's
    "Just resize": Lanczos)."""
    import os

    from PIL import Image

    from sweep.files.images import to_rgb

    with Image.open(os.path.expanduser(path)) as image:
        rgb = to_rgb(image)
    return rgb if rgb.size == (width, height) else rgb.resize((width, height), Image.LANCZOS)


def decode(pipe: Any, latents: torch.Tensor) -> np.ndarray:
    """Latents to float pixels in [0, 1], as the SDXL pipelines decode them (fp16 VAE upcast, latents mean/std)."""
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    if upcast:
        pipe.upcast_vae()
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
    elif latents.dtype != vae.dtype:
        latents = latents.to(vae.dtype)
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        latents = latents * std / vae.config.scaling_factor + mean
    else:
        latents = latents / vae.config.scaling_factor
    image = vae.decode(latents, return_dict=False)[0]
    if upcast:
        vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="np")


def upscale_latents(latents: torch.Tensor, size: tuple[int, int], upscaler: str) -> torch.Tensor:
    """A1111's latent upscale: torch interpolation to (width, height) / 8."""
    mode, antialias = axes.HIRES_LATENT[upscaler]
    width, height = size
    return torch.nn.functional.interpolate(latents, size=(height // 8, width // 8), mode=mode, antialias=antialias)


def upscale_pixels(images: np.ndarray, size: tuple[int, int], upscaler: str) -> list[Any]:
    """A1111's pixel upscalers without a model: PIL's Lanczos or nearest neighbour, on the 8-bit first pass."""
    from diffusers.image_processor import VaeImageProcessor
    from PIL import Image

    method = Image.LANCZOS if upscaler == "Lanczos" else Image.NEAREST
    return [pil.resize(size, method) for pil in VaeImageProcessor.numpy_to_pil(images)]


def run(loaded: Any, pipe: Any, embeds: dict[str, Any], common: dict[str, Any], cell: Any, count: int,
        watch: Any, first_pass: dict[str, Any] | None = None) -> np.ndarray | None:
    """Float images for `count` images of `cell` (None: a stop interrupted a pass). `pipe` is the caller's
    fork of the base pipeline; `common` its call arguments and generators; `watch(steps)` a stop callback;
    `first_pass` what only the Hires. fix first pass takes (variation seeds' starting noise)."""
    from sweep.models.pipeline import fork

    width, height = cell.size
    passes = cell.call().passes  # sweep.planning.calls: each pass's schedule, steps and strength
    second = fork(second_pass_pipeline(loaded), cell.get("scheduler"), cell.get("schedule_type"))
    if cell.get("init_image") is not None:
        (img2img,) = passes
        image = init_image(cell["init_image"], width, height)
        output = second(**embeds, **{**common, "num_inference_steps": img2img.schedule}, image=[image] * count,
                        strength=img2img.strength, output_type="np", callback_on_step_end=watch(img2img.steps))
        return None if getattr(second, "_interrupt", False) else output.images
    upscaler, denoise = cell["hires_upscaler"], cell["hires_denoise"]
    size = cell.call().final_size(cell.size)
    latent = upscaler in axes.HIRES_LATENT
    first = pipe(**embeds, **{**common, "num_inference_steps": passes[0].schedule}, **(first_pass or {}),
                 height=height, width=width, output_type="latent" if latent else "np",
                 callback_on_step_end=watch(passes[0].steps))
    if getattr(pipe, "_interrupt", False):
        return None
    if latent:
        upscaled: Any = upscale_latents(first.images, size, upscaler)
        if not denoise:
            return decode(second, upscaled)
    else:
        upscaled = upscale_pixels(first.images, size, upscaler)
        if not denoise:
            return np.stack([np.asarray(p, dtype=np.float32) / 255.0 for p in upscaled])
    hires = passes[1]
    output = second(**embeds, **{**common, "num_inference_steps": hires.schedule}, image=upscaled,
                    strength=hires.strength, output_type="np", callback_on_step_end=watch(hires.steps))
    return None if getattr(second, "_interrupt", False) else output.images
