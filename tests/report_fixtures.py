"""Fabricated run directories for the report tests: solid-colour PNGs of known sizes and a results.csv."""

from __future__ import annotations

import colorsys
import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image

COLUMNS = [
    "cell_id", "sweep", "prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale",
    "height", "width", "repeat", "batch_size", "seconds", "status", "error", "image",
    "model", "device", "dtype", "scheduler", "torch", "diffusers", "transformers", "gpu",
]
PROMPT = "a photo of an astronaut riding a horse on mars"


def colour(index: int) -> tuple[int, int, int]:
    """Distinct saturated colours, far from the sheet's white/grey/blue-grey chrome."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.137) % 1.0, 0.9, 0.85)
    return round(r * 255), round(g * 255), round(b * 255)


def cell(**fields: Any) -> dict[str, Any]:
    """A results row with sensible defaults; `seconds` grows with steps and pixels like a real run."""
    row: dict[str, Any] = {
        "sweep": "demo", "prompt": PROMPT, "negative_prompt": "", "seed": 1234, "num_inference_steps": 30,
        "guidance_scale": 5.0, "height": 128, "width": 128, "repeat": 0, "batch_size": 1, "status": "ok",
        "error": "", "model": "tiny", "device": "cpu", "dtype": "float32",
        "scheduler": "EulerDiscreteScheduler",
        "torch": "2.13.0", "diffusers": "0.42.1", "transformers": "5.24.0", "gpu": "",
    }
    row.update(fields)
    if "seconds" not in fields:
        pixels = row["height"] * row["width"]
        row["seconds"] = round(0.02 * row["num_inference_steps"] * pixels / 65536 + 0.1, 4)
    if "cell_id" not in fields:
        row["cell_id"] = (f"p0_seed{row['seed']}_steps{row['num_inference_steps']}"
                          f"_cfg{row['guidance_scale']:g}_{row['height']}x{row['width']}"
                          + (f"_r{row['repeat']}" if row["repeat"] else ""))
    if "image" not in fields:
        row["image"] = f"images/{row['cell_id']}.png"
    return row


def grid(**axes: list[Any]) -> list[dict[str, Any]]:
    """Cartesian product of axes (keyword order = nesting order, first outermost) as cells."""
    rows: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        rows = [{**r, name: v} for r in rows for v in values]
    return [cell(**r) for r in rows]


def make_run(root: Path, cells: list[dict[str, Any]], *, expected: list[dict[str, Any]] | None = None,
             layout: dict[str, str | None] | None = None, name: str = "demo",
             extra_columns: dict[str, list[Any]] | None = None) -> Path:
    """Write images (ok cells only) and results.csv; sweep.json when expected or layout is given.

    Each ok cell's PNG is a solid colour (colour(i) for the i-th cell) unless the cell has a `colour` key.
    """
    root.mkdir(parents=True, exist_ok=True)
    columns = COLUMNS + list(extra_columns or {})
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(cells):
            extra = {k: v[i] for k, v in (extra_columns or {}).items()}
            if row["status"] == "ok":
                path = root / row["image"]
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (row["width"], row["height"]), row.get("colour", colour(i))).save(path)
            writer.writerow({**row, **extra})
    if expected is not None or layout is not None:
        manifest = {
            "sweep": {"name": name, "grid": {},
                      "layout": layout or {"rows": None, "cols": None, "sheets": None}},
            "expected_cells": [{k: c[k] for k in ("cell_id", "prompt", "negative_prompt", "seed",
                                                 "num_inference_steps", "guidance_scale", "height", "width",
                                                 "repeat", "image", "sweep")}
                               for c in (expected or [])],
        }
        (root / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def require_cjk_font() -> None:
    """Skip unless a fallback font draws Chinese/Japanese and Korean (found as sweep.report.text finds them); with
    CI set, fail instead."""
    from conftest import require
    from sweep.report import text as tx

    missing = [c for c in "猫한" if not any(ord(c) in tx.coverage(p) for p in tx.fallback_files())]
    require(not missing, f"a fallback font for {' '.join(missing)}",
            "apt-get install fonts-droid-fallback fonts-wqy-microhei, or SWEEP_FONTS=FILE")
