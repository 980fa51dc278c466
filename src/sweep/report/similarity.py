"""Image similarity from PNG files: SSIM and PSNR from scikit-image, pixel differences from numpy.

SSIM follows Wang et al.'s reference implementation: on the luma (ITU-R 601, PIL's "L"), after averaging
F x F blocks with F = max(1, round(min(height, width) / 256)), with an 11x11 Gaussian window (sigma 1.5) and
the population covariance. The downsampling is theirs (it models viewing the whole image, not pixel-peeping)
and it is what makes a 1024 px comparison cost ~5 ms instead of ~400 ms for full-resolution RGB SSIM.
PSNR and the absolute differences use every pixel of every RGB channel, so they still see a one-pixel change.
Images of different sizes are never compared: callers check `same_size` first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

SSIM_EDGE = 256  # the block-average factor brings the shorter side near this many pixels
MIN_SSIM_SIDE = 11  # the Gaussian window's size: smaller images have no SSIM
MAX_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Pixels:
    """One decoded image: full RGB for pixel differences, the downsampled luma for SSIM."""

    rgb: np.ndarray  # (h, w, 3) uint8
    luma: np.ndarray  # (h / F, w / F) uint8

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


@dataclass(frozen=True)
class Scores:
    ssim: float
    psnr: float  # inf for identical images
    mean_abs_diff: float  # 0-255 per channel
    max_abs_diff: int


def ssim_factor(width: int, height: int) -> int:
    return max(1, round(min(width, height) / SSIM_EDGE))


def luma(image: Image.Image) -> np.ndarray:
    """The downsampled luma SSIM is computed on (PIL's reduce is a C box average that releases the GIL)."""
    grey = image.convert("L")
    factor = ssim_factor(*grey.size)
    return np.asarray(grey.reduce(factor) if factor > 1 else grey)


def load(path: Path | None) -> Pixels | None:
    """Decode a PNG (any mode) to RGB; None when the file is absent or unreadable."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return Pixels(np.asarray(image), luma(image))


def same_size(a: Pixels, b: Pixels) -> bool:
    return a.rgb.shape == b.rgb.shape


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two equal-size luma arrays (see the module doc); NaN when smaller than the window."""
    if min(a.shape) < MIN_SSIM_SIDE:
        return float("nan")
    if np.array_equal(a, b):
        return 1.0  # exact, and skips the filter for the reference cell and identical reruns
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


# scikit-image's SSIM window with gaussian_weights=True: sigma 1.5, truncated at 3.5 sigma (11 x 11), reflected.
_WINDOW = {"sigma": 1.5, "truncate": 3.5, "mode": "reflect"}
_PAD = 5  # (11 - 1) // 2: skimage averages SSIM without the window's border
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


@dataclass(frozen=True)
class Prepared:
    """What SSIM needs of one image alone (its windowed mean and mean square), so that comparing one image
    with many (the seeds of a setting, all pairs) filters each image once and each pair once: 1 filter per
    pair instead of scikit-image's 5. Same arithmetic as `structural_similarity`, so the same value."""

    luma: np.ndarray  # uint8
    x: np.ndarray  # float64
    mean: np.ndarray
    mean_sq: np.ndarray


def prepare(luma_: np.ndarray) -> Prepared:
    from scipy.ndimage import gaussian_filter

    x = luma_.astype(np.float64)
    return Prepared(luma_, x, gaussian_filter(x, **_WINDOW), gaussian_filter(x * x, **_WINDOW))


def ssim_prepared(a: Prepared, b: Prepared) -> float:
    """`ssim(a.luma, b.luma)`, from prepared images."""
    if min(a.luma.shape) < MIN_SSIM_SIDE:
        return float("nan")
    if np.array_equal(a.luma, b.luma):
        return 1.0
    from scipy.ndimage import gaussian_filter

    ux, uy = a.mean, b.mean
    vx, vy = a.mean_sq - ux * ux, b.mean_sq - uy * uy
    vxy = gaussian_filter(a.x * b.x, **_WINDOW) - ux * uy
    s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux**2 + uy**2 + _C1) * (vx + vy + _C2))
    return float(s[_PAD:-_PAD, _PAD:-_PAD].mean(dtype=np.float64))


def scores(a: Pixels, b: Pixels, b_prepared: Prepared | None = None) -> Scores:
    """Every score of one pair of equal-size images; `b_prepared` (`prepare(b.luma)`) when b is compared with
    many images (a reference), so that its SSIM filtering is done once."""
    diff = abs_diff(a.rgb, b.rgb)
    similarity = ssim_prepared(prepare(a.luma), b_prepared) if b_prepared is not None else ssim(a.luma, b.luma)
    return Scores(similarity, psnr(a.rgb, b.rgb), float(diff.mean()), int(diff.max()))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b):
        return math.inf  # skimage would divide by a zero error
    from skimage.metrics import peak_signal_noise_ratio

    # float32 in, float32 arithmetic in skimage (uint8 would be widened to float64): 2.5x faster at 1024 px,
    # same value to the printed precision (numpy's pairwise summation keeps the mean accurate).
    return float(peak_signal_noise_ratio(a.astype(np.float32), b.astype(np.float32), data_range=255))


def abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| per pixel and channel as uint8 (no wrap-around)."""
    return (np.maximum(a, b) - np.minimum(a, b)).astype(np.uint8)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """fn over items on one thread per core (at most MAX_THREADS), results in order. PNG decoding, PIL's
    reduce and numpy's array arithmetic release the GIL, so threads overlap most of the work."""
    items = list(items)
    if len(items) <= 1 or _cores() == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(_cores(), MAX_THREADS, len(items)), thread_name_prefix="similarity") as pool:
        return list(pool.map(fn, items))
