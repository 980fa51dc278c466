"""Decoded images to 8-bit pixels off the generation loop: exactly diffusers' own conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.image_processor import VaeImageProcessor

from sweep.running.pixels import _not_denormalising, convert_where_they_are, from_output


def decoded(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Two 3 x 48 x 40 decodes in about [-1.3, 1.3], with values that round at exactly .5 of a level."""
    images = torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(0)) * 0.6
    images[0, 0, 0, :8] = torch.tensor([(2 * k + 1) / 255 - 1 for k in range(8)])  # (x*0.5+0.5)*255 = k + 0.5
    return images.to(dtype)


def diffusers_pil(images: torch.Tensor) -> list[np.ndarray]:
    return [np.asarray(image) for image in VaeImageProcessor(vae_scale_factor=8).postprocess(images, "pil")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_writer_threads_pixels_are_diffusers_pil_pixels(dtype):
    images = decoded(dtype)
    raw = _not_denormalising(VaeImageProcessor(vae_scale_factor=8)).postprocess(images, output_type="pt")
    assert torch.equal(raw, images)  # the call hands the decode over as it is
    ours = [np.asarray(pixels.to_pil()) for pixels in from_output(raw)]
    assert all(np.array_equal(a, b) for a, b in zip(ours, diffusers_pil(images), strict=True))


def test_the_on_device_conversion_gives_the_same_pixels():
    # The GPU path's arithmetic, run here on the CPU tensor (the same torch operations on any device).
    images = decoded()
    ours = [np.asarray(pixels.to_pil()) for pixels in convert_where_they_are(images)]
    assert all(np.array_equal(a, b) for a, b in zip(ours, diffusers_pil(images), strict=True))


@pytest.mark.parametrize("convert", [from_output, convert_where_they_are])
def test_an_image_with_nan_has_no_pixels_and_its_neighbour_does(convert):
    images = decoded()
    images[1, 2, 5, 5] = float("nan")
    first, second = convert(images)
    assert first.to_pil() is not None and second.to_pil() is None
