"""A pipeline call's decoded images to 8-bit pixels, off the generation loop's thread where that is cheaper.

diffusers' `output_type="pil"` converts on the calling thread: `(image * 0.5 + 0.5).clamp(0, 1)`, a float
copy to the host, then `(image * 255).round().astype("uint8")` in numpy (~40-100 ms per 1024x1024 image on a CPU
core), time during which the next call cannot start. Here the call returns the VAE's decode as it is
(`output_type="pt"` through an image processor that does not denormalise, `raw_output`), and:
- on a GPU the same denormalising, NaN check and rounding run there, and only the 8-bit pixels come back (a
  quarter of the float copy; the copy is the call's one synchronisation);
- on the CPU nothing more happens on the loop's thread: the float32 tensor goes to the writer thread, which
  does the same in numpy (numpy runs on one thread and releases the GIL; a torch op there would start an
  OpenMP team of its own beside the pipeline's, see NOTES.md). Other CPU dtypes are denormalised on the loop's
  thread, in their own dtype as diffusers does.
Either way the pixels equal diffusers' "pil" conversion exactly: the same float32 operations (each correctly
rounded on every device, no fused multiply-add), round half to even, then uint8.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

NAN_ERROR = ("the image came out NaN (numeric overflow: an fp16 VAE is the usual cause; try model.dtype=float32 "
             "or an fp16-fix VAE)")
# In a float32 run the usual cause is ruled out: the weights or the settings overflow.
NAN_ERROR_FP32 = ("the image came out NaN in float32 (the model's or the VAE's weights hold NaN or overflow, or a "
                  "setting does, such as an extreme guidance_scale or eta: check model.vae and the swept values)")


@dataclass
class Pixels:
    """One image on its way to the writer: 8-bit HxWx3 already checked (`finite`), or the float32 decode
    (CxHxW in [-1, 1]) still to be converted (`finite` None)."""

    data: np.ndarray
    finite: bool | None = None

    def to_pil(self) -> Any | None:
        """The PIL image, or None when the pixels hold NaN or infinity."""
        from PIL import Image

        if self.finite is None:
            data = np.clip(self.data * 0.5 + 0.5, 0, 1)  # diffusers' denormalize
            if not np.isfinite(data).all():
                return None
            data = np.ascontiguousarray((data * 255).round().astype(np.uint8).transpose(1, 2, 0))
        elif not self.finite:
            return None
        else:
            data = self.data
        return Image.fromarray(data)

    def to_image(self) -> tuple[Any | None, str | None]:
        """(the PIL image, None), or (None, why it is no picture): NaN, or one colour all over."""
        from sweep.rundir.results import uniform

        picture = self.to_pil()
        if picture is None:
            return None, NAN_ERROR
        # diffusers clamps the VAE's output to [0, 1]: +inf comes out all white, a dead VAE all black.
        pixels = np.asarray(picture)
        if uniform(pixels):
            colour = "black" if not pixels.any() else "white" if (pixels == 255).all() else "one colour"
            return None, (f"the image came out all {colour} (the VAE's output was infinite or constant: an "
                          "overflowing or broken VAE is the usual cause)")
        return picture, None


@functools.cache
def _not_denormalising(processor: Any) -> Any:
    return type(processor).from_config(processor.config, do_normalize=False)


def raw_output(pipe: Any) -> None:
    """Make this call's pipeline object (a `pipeline.fork`) return the decode as it is with `output_type="pt"`:
    its image processor does not denormalise (`from_output` does, off the loop's thread on the CPU)."""
    pipe.__dict__["image_processor"] = _not_denormalising(pipe.image_processor)


def from_numpy(images: np.ndarray) -> list[Pixels]:
    """`Pixels` per image of diffusers' `output_type="np"` (B x H x W x 3 in [0, 1], what the Hires. fix and
    image-to-image passes return), rounded here as "pil" would."""
    checked = [bool(np.isfinite(array).all()) for array in images]
    return [Pixels((array * 255).round().astype(np.uint8) if ok else array, ok)
            for array, ok in zip(images, checked, strict=True)]


def from_output(images: Any) -> list[Pixels]:
    """`Pixels` per image of a call made after `raw_output`: a B x 3 x H x W tensor in [-1, 1]."""
    import torch

    if images.device.type == "cpu" and images.dtype == torch.float32:
        # A view, not a copy; the writer thread reads it.
        return [Pixels(array) for array in images.numpy()]
    return convert_where_they_are(images)


def convert_where_they_are(images: Any) -> list[Pixels]:
    """Denormalise, check and round on the tensor's own device (a GPU's kernels), then copy the 8-bit pixels to
    the host: the one wait for the device in a call."""
    import torch

    images = (images * 0.5 + 0.5).clamp(0, 1)  # diffusers' denormalize, in the decode's own dtype
    finite = torch.isfinite(images).flatten(1).all(dim=1)
    # NaN would round to an arbitrary byte: such an image is dropped by its `finite` flag.
    eight_bit = (images.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    eight_bit, finite = eight_bit.cpu(), finite.cpu()
    return [Pixels(array, bool(ok)) for array, ok in zip(eight_bit.numpy(), finite.tolist(), strict=True)]
