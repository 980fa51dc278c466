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


def scores(a: Pixels, b: Pixels) -> Scores:
    """Every score of one pair of equal-size images."""
    diff = abs_diff(a.rgb, b.rgb)
    return Scores(ssim(a.luma, b.luma), psnr(a.rgb, b.rgb), float(diff.mean()), int(diff.max()))


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
