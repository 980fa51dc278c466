"""How long a resume takes to verify the images it keeps (each file's SHA-256 against the one its row recorded).

    python benchmarks/verify_images.py [N] [SIDE]     # default 1000 images of 1024x1024

Writes N PNGs of a photo-like size (smooth colour plus noise, ~1-2 MB each at 1024 px, as SDXL images are)
into a temp dir, then times `check_images` cold-ish (files just written: in the page cache, as on a resume
right after a crash) and prints the time per image and the figure for 10,000 images.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sweep.rundir.results import check_images, file_digest


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.float32) * (255 / (2 * side))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first = folder / "0.png"
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(first, compress_level=4)
        data = first.read_bytes()
        for i in range(1, count):
            (folder / f"{i}.png").write_bytes(data)
        digest = file_digest(data)
        items = [(folder / f"{i}.png", digest) for i in range(count)]
        started = time.perf_counter()
        checks = check_images(items)
        seconds = time.perf_counter() - started
    assert all(checks)
    print(f"{count} PNGs of {side}x{side} ({len(data) / 1e6:.1f} MB each): verified in {seconds:.2f} s, "
          f"{1000 * seconds / count:.2f} ms per image, ~{seconds / count * 10000:.0f} s for 10,000")


if __name__ == "__main__":
    main()
