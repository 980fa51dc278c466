"""Init images for image-to-image: checked in full before the model loads, and read as A1111 reads them.

A1111 turns whatever PIL opens into an 8-bit RGB image: the EXIF orientation applied, transparency composited
onto the img2img background colour (white by default), every other mode converted to RGB. PIL's own
`convert("RGB")` clips a 16-bit greyscale image (values 0-65535) to white, so 16- and 32-bit modes are scaled
down to 8 bits first: a 16-bit PNG gives the image of its 8-bit copy.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

from sweep.files.checkpoints import bad_file

MAX_PIXELS = 100_000_000  # at most 100 megapixels (10000x10000) are decoded; checked from the header first
ALLOWED = "an image file (PNG, JPEG, WebP, ...) to start from, or null for text-to-image"
BACKGROUND = (255, 255, 255)  # A1111's img2img_background_color default: #ffffff
_OPEN_LOCK = threading.Lock()  # PIL's bomb limit is a module global: lifted for one header read at a time
_CHECKED: dict[tuple[str, int, int], None] = {}


def _not_a_file(path: str) -> str | None:
    """Why `path` is not a regular file an image can be read from (None: it is one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def check(value: str, key: str) -> None:
    """The init image at `value` is a regular file, an image PIL reads, of at most MAX_PIXELS (read from its
    header, before decoding), and decodes in full (a truncated file is refused here, not in every cell)."""
    path = os.path.expanduser(value)
    why = _not_a_file(path)
    if why:
        raise bad_file(key, value, ALLOWED, why)
    info = os.stat(path)
    cache_key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
    if cache_key in _CHECKED:
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with _OPEN_LOCK:
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise bad_file(key, value, f"{ALLOWED}, of at most {MAX_PIXELS // 1_000_000} megapixels",
                               f"{width}x{height}, {width * height / 1e6:.0f} megapixels")
            image.load()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        # truncated, corrupt, or not an image at all
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        what = ("not an image PIL can read" if isinstance(exc, UnidentifiedImageError)
                else f"cannot be decoded: {detail}")
        raise bad_file(key, value, ALLOWED, what) from None
    _CHECKED[cache_key] = None


def to_rgb(image: Any) -> Any:
    """An 8-bit RGB copy of a PIL image, as A1111 takes an init image (see the module docstring)."""
    import numpy as np
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode != "F" and values.max(initial=0) > 255):
            values = values / 257.0  # 65535 -> 255
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info) \
            or (mode in ("L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")
