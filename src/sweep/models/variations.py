"""A1111's variation seeds (`Var. seed`, `Var. strength`): each image's starting noise, made here and handed to
the pipeline as `latents=`.

As A1111 makes it (`processing.create_random_tensors`): `noise = randn(seed)`, `subnoise = randn(subseed)` of the
same shape, `noise = slerp(strength, noise, subnoise)`. The seed's noise is drawn from the image's own generator
exactly as diffusers' `prepare_latents` draws it (same shape, device, dtype; `randn_tensor`), so the generator is
left where the plain call leaves it: ancestral samplers and a Hires. fix pass draw the same further noise as
without a subseed (A1111's step noise also comes from the seed's generator). diffusers scales `latents=` by the
scheduler's `init_noise_sigma` itself (`prepare_latents`), so the noise is passed unscaled.

A1111's `Seed resize from` (WIDTHxHEIGHT): the seed's noise (and the subseed's) is made at that size from a fresh
generator of the seed, slerped there, and placed in the middle of the image's own noise (cut where it is larger), so
a composition found at one size survives at another.

Strength 0 (or no subseed) and no resize pass nothing: the plain call, pixel for pixel. Strength 1 passes the
subseed's noise as it is, so with a sampler that adds no noise per step the image is that of seed = subseed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweep.errors import bad_value

# Where the two noises are nearly parallel (their mean cosine above this, the threshold A1111 uses), sin(angle) is
# about 0 and slerp's ratios lose their precision; it tends to the straight blend there, which is used instead.
PARALLEL = 0.9995


def varies(cell: Any) -> bool:
    """A subseed at a strength above 0."""
    return cell.get("subseed") is not None and bool(cell.get("subseed_strength"))


def custom(cell: Any) -> bool:
    """The cell's noise is not its seed's own: a variation, or a `Seed resize from` size."""
    return varies(cell) or cell.get("seed_resize_from") is not None


def centred(target: Any, source: Any) -> Any:
    """`source` (1 x C x h x w) placed in the middle of `target` (1 x C x H x W), cut where it is larger."""
    out = target.clone()
    spans = []
    for have, want in ((source.shape[2], target.shape[2]), (source.shape[3], target.shape[3])):
        offset = (want - have) // 2
        spans.append((slice(offset, offset + have), slice(0, have)) if offset >= 0
                     else (slice(0, want), slice(-offset, -offset + want)))
    (rows_to, rows_from), (cols_to, cols_from) = spans
    out[:, :, rows_to, cols_to] = source[:, :, rows_from, cols_from]
    return out


def _cosines(a: Any, b: Any, dim: int) -> Any:
    """The cosine of the angle between each pair of vectors of `a` and `b` along `dim`."""
    import torch

    return (a / torch.linalg.vector_norm(a, dim=dim, keepdim=True)
            * (b / torch.linalg.vector_norm(b, dim=dim, keepdim=True))).sum(dim)


def slerp(t: float, low: Any, high: Any, dim: int) -> Any:
    """Spherical interpolation from `low` (t=0) to `high` (t=1), each pair of vectors along `dim` by its own
    angle (A1111 pairs the vectors along dim 1 of a C x H x W noise: per channel and column, over the rows).

    The textbook formula: with `angle` between p0 and p1,
    slerp(t) = sin((1 - t) angle) / sin(angle) * p0 + sin(t angle) / sin(angle) * p1,
    applied to the vectors as they are (not normalised), so their lengths blend too. Where the vectors are nearly
    parallel on average (see PARALLEL), its limit, the straight blend (1 - t) p0 + t p1, with the same ends.
    """
    import torch

    cos = _cosines(low, high, dim)
    if cos.mean() > PARALLEL:
        return low * (1.0 - t) + high * t
    angle = torch.acos(cos)

    def weight(share: float) -> Any:  # sin(share * angle) / sin(angle), broadcast over the vectors' elements
        return (torch.sin(share * angle) / torch.sin(angle)).unsqueeze(dim)

    return weight(1.0 - t) * low + weight(t) * high


def latents(pipe: Any, unit: Sequence[Any], generators: Sequence[Any], height: int, width: int,
            generator_device: str) -> Any | None:
    """The unscaled starting noise of a call's images (B x C x H/8 x W/8), or None where no image of the unit
    varies (the plain call). Draws each image's seed noise from its generator, as diffusers would."""
    if not any(custom(c) for c in unit):
        return None
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    # What the SDXL pipelines' prepare_latents is given: the execution device, the text embeddings' dtype
    # (encode_prompt casts them to the second text encoder's dtype), the UNet's latent channels.
    device = pipe._execution_device
    encoder = getattr(pipe, "text_encoder_2", None)
    dtype = encoder.dtype if encoder is not None else pipe.unet.dtype
    shape = (1, pipe.unet.config.in_channels, int(height) // pipe.vae_scale_factor,
             int(width) // pipe.vae_scale_factor)
    made = []
    for cell, generator in zip(unit, generators, strict=True):
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        resize = cell.get("seed_resize_from")
        # `Seed resize from`: the seed's noise as it is at that size (a fresh generator), centred in the image's
        # own noise; the same size is the plain noise.
        source_shape = shape if resize is None else (*shape[:2], resize[1] // pipe.vae_scale_factor,
                                                     resize[0] // pipe.vae_scale_factor)
        source = noise if source_shape == shape else randn_tensor(
            source_shape, generator=torch.Generator(device=generator_device).manual_seed(cell.seed), device=device,
            dtype=dtype)
        if varies(cell):
            sub_generator = torch.Generator(device=generator_device).manual_seed(cell["subseed"])
            subnoise = randn_tensor(source_shape, generator=sub_generator, device=device, dtype=dtype)
            strength = float(cell["subseed_strength"])
            if strength >= 1.0:
                source = subnoise
            else:  # in float32 whatever the model's dtype: the angles of half-precision vectors are coarse
                source = slerp(strength, source[0].float(), subnoise[0].float(), dim=1).unsqueeze(0).to(dtype)
        made.append(source if source_shape == shape else centred(noise, source))
    return torch.cat(made)


def check(cells: Sequence[Any], swept: Sequence[str]) -> None:
    """Before anything loads: a strength above 0 needs a subseed, a subseed needs a strength (else every image
    of a subseed axis would be the seed's), and variations apply to text-to-image noise only."""
    def key(name: str) -> str:
        return f"sweep.grid.{name}" if name in swept else name

    for cell in cells:
        subseed, strength = cell.get("subseed"), cell.get("subseed_strength")
        if strength and subseed is None:
            raise bad_value(key("subseed"), None, "an integer seed to vary toward when subseed_strength is above 0 "
                            f"(subseed_strength is {strength})")
        if subseed is not None and strength is None:
            raise bad_value(key("subseed_strength"), None, "a variation strength from 0 (the seed's image) to 1 "
                            "(the subseed's) when subseed is set")
        if cell.get("seed_resize_from") is not None and cell.get("init_image") is not None:
            raise bad_value(key("seed_resize_from"), "x".join(map(str, cell["seed_resize_from"])), "null with "
                            "init_image (it resizes the text-to-image starting noise; image-to-image draws its noise "
                            "inside diffusers)")
        if strength and cell.get("init_image") is not None:
            raise bad_value(key("subseed_strength"), strength, "0 or null with init_image (variation seeds vary "
                            "the text-to-image starting noise; image-to-image draws its noise inside diffusers)")
