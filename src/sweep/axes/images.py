"""File and image values of axes: model files by label, init images and their hashes, Hires. fix upscalers and
sizes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from sweep.axes.samplers import (
    _squash,
)
from sweep.axes.values import (
    Facts,
    Parse,
)
from sweep.errors import bad_value

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth", ".sft")


# Checkpoints built in code, by name (no file): `model=NAME` and `sweep.grid.checkpoint: [tiny, tiny-alt]`.
BUILT_IN_CHECKPOINTS = ("tiny", "tiny-alt", "sdxl_arch")


def file_label(value: str, *, keep_suffix: bool = False) -> str:
    """A model file's name as sheets show it: the file stem (`juggernautXL_v9`), a folder's or hub model's name.
    A1111 names a VAE by its file name, suffix included (`keep_suffix`)."""
    name = str(value).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if not keep_suffix:
        for suffix in MODEL_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    return name


def _model_ref(what: str) -> Parse:
    """A model file given by path or name; only the text is checked here (the file is checked with the model
    config in sweep.planning.plan, before anything loads: it needs model.models_dir)."""
    def parse(value: Any, key: str, facts: Facts) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise bad_value(key, value, what)
        return value.strip()
    return parse


HIRES_LATENT = {  # A1111's latent upscale modes: (torch interpolate mode, antialias)
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


HIRES_PIXEL = ("Lanczos", "Nearest")  # A1111's built-in pixel upscalers (PIL resampling; nothing to download)


_UPSCALERS = {_squash(name): name for name in (*HIRES_LATENT, *HIRES_PIXEL)}


MAX_HIRES_SCALE = 4.0


def _upscaler(value: Any, key: str, facts: Facts) -> str | None:
    if value is None:
        return None
    found = _UPSCALERS.get(_squash(value)) if isinstance(value, str) else None
    if found is None:
        raise bad_value(key, value, "an upscaler: " + ", ".join((*HIRES_LATENT, *HIRES_PIXEL)))
    return found


def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The second pass's (width, height): A1111's `int(side * scale)`, down to a multiple of 8 (the VAE's)."""
    return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8


def output_size(record: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, height) of a cell's image from its results row: the first pass's size, or Hires. fix's."""
    try:
        width, height = int(record["width"]), int(record["height"])
    except (KeyError, TypeError, ValueError):
        return None
    scale = record.get("hires_scale")
    if scale not in (None, ""):
        return hires_size(width, height, float(scale))
    return width, height


_IMAGE_HASHES: dict[tuple[str, int, int], str] = {}


def image_hash(path: str) -> str:
    """The first 10 hex digits of an image file's SHA-256 (A1111's short hash length), kept per size and mtime."""
    import os

    stat = os.stat(os.path.expanduser(path))
    key = (os.path.abspath(os.path.expanduser(path)), stat.st_size, stat.st_mtime_ns)
    if key not in _IMAGE_HASHES:
        with open(key[0], "rb") as handle:
            _IMAGE_HASHES[key] = hashlib.file_digest(handle, "sha256").hexdigest()[:10]
    return _IMAGE_HASHES[key]


def _init_image(value: Any, key: str, facts: Facts) -> str | None:
    """An image file for image-to-image: a regular file, of a bounded size, that decodes in full
    (sweep.files.images)."""
    from sweep.files.images import ALLOWED, check

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise bad_value(key, value, ALLOWED)
    check(value.strip(), key)
    return value.strip()


def _init_record(value: str | None) -> dict[str, Any]:
    return {"init_image": value, "init_image_hash": image_hash(value) if value else None}


# --- control (and IP-Adapter) images: checked before any model loads ----------------------------------------

BUILTIN_IMAGE = "builtin:rings"  # a drawn edge map (`control_image: builtin:rings`): nothing to download or ship


MAX_CONTROL_PIXELS = 64 * 1024 * 1024  # a control image is resized to the cell's size: 64 MP is far beyond SDXL


def check_image(value: Any, key: str, what: str = "such as an edge or depth map") -> str | None:
    """A control (or IP-Adapter) image: `builtin:rings`, or an image file PIL reads in full, at most 64 MP."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    allowed = (f"an image file (PNG, JPEG, WebP, ...; at most {MAX_CONTROL_PIXELS // 2**20} megapixels) {what}, "
               f"or {BUILTIN_IMAGE} (a drawn test pattern)")
    if not isinstance(value, str):
        raise bad_value(key, value, allowed)
    if value.strip() == BUILTIN_IMAGE:
        return BUILTIN_IMAGE
    path = os.path.expanduser(value.strip())
    if os.path.isdir(path):
        raise bad_value(key, value, allowed + " (a folder)")
    if not os.path.isfile(path):
        raise bad_value(key, value, allowed + (" (not a regular file)" if os.path.exists(path) else " (no such file)"))
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size = image.size
            if size[0] * size[1] > MAX_CONTROL_PIXELS:
                raise bad_value(key, value, allowed + f" (it is {size[0]}x{size[1]})")
            image.load()  # a truncated file fails here, not in the middle of the sweep (maps are small)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        raise bad_value(key, value, allowed + " (not an image PIL can read, or truncated)") from None
    return value.strip()


def builtin_image() -> Any:
    """The built-in control image: white rings and a cross on black, 512x512, as an edge detector draws them."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (512, 512), "black")
    draw = ImageDraw.Draw(image)
    for radius in range(40, 260, 44):
        draw.ellipse((256 - radius, 256 - radius, 256 + radius, 256 + radius), outline="white", width=6)
    draw.line((0, 256, 511, 256), fill="white", width=6)
    draw.line((256, 0, 256, 511), fill="white", width=6)
    return image


def control_image_hash(value: str | None) -> str | None:
    """The control image's hash as results.csv records it (10 hex digits of its SHA-256; the pattern's pixels)."""
    if value is None:
        return None
    if value == BUILTIN_IMAGE:
        import hashlib

        return hashlib.sha256(builtin_image().tobytes()).hexdigest()[:10]
    return image_hash(value)
