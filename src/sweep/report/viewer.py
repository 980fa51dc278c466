"""index.html: an offline, interactive grid viewer of a run (or a merged multirun), built from the run dir alone.

One self-contained page (no server, no network: fetch of file:// is blocked, so the data sits in the page as
JSON). The axes are whatever varies among the report's candidate axes, with the report's own labels and value
order, so an axis added to the sweep or swept by Hydra appears without a change here. Static assets (HTML
skeleton, CSS, JS) are package data in `viewer_assets/`.

Page data (`<script id="sweep-data" type="application/json">`), version 1:
    title, prompt (when one), fixed [[axis, value], ...], counts {ok, failed, missing},
    axes [{name, title (the sweep file's titles:, else the registry's words: 'CFG scale'), description?,
           values [label, ...] in sweep order, shown [label with dependent values, ...],
           vt? [value title or null, ...], vd? [value description or null, ...]}],
    default {x, y} (axis names or null), aliases {alias: axis}, thumb_edge,
    columns [results.csv column, ...], strings [text, ...],
    cells [{id, job, k [value index per axis], st ok|failed|missing, i image, t thumbnail, w, h (native pixels),
            s seconds (as the sheets caption it), sf 1 when s is the timing model's, e error, p A1111 parameters,
            r [index into strings per column], sc? [score per scorer]}],
    scores? {names [scorer, ...], lines [ranking sentence, ...]} (report.scores; sc values null when unscored)
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.atomic import atomic_write
from sweep.report.data import RunData, words
from sweep.report.layout import ALIASES, dependents, labels, order_values, varying
from sweep.report.result import Layout
from sweep.report.thumbs import MAX_EDGE, inside, make_thumbs

PAGE = "index.html"
VERSION = 1
COPY_AXIS = "copy"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Inside <script> a JSON text must not close the element or open a comment; U+2028/9 break older JS parsers.
_UNSAFE_JSON = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def write_viewer(run: RunData, default: Layout | None = None,
                 scores: tuple[dict[str, pd.Series], list[str]] | None = None) -> Path:
    """Make the thumbnails and write run_dir/index.html; returns its path. `scores`: ({scorer: Series on the
    cells' index}, the ranking's sentences) when the run has scores."""
    cells = run.cells
    images = [i for i, st in zip(cells["image"], cells["status"], strict=True) if i and st == "ok"]
    thumbs = make_thumbs(run.run_dir, images)
    data = page_data(run, thumbs, default)
    if scores and scores[0]:
        columns, lines = scores
        data["scores"] = {"names": list(columns), "lines": list(lines)}
        for n, index in enumerate(cells.index):
            data["cells"][n]["sc"] = [_score(columns[name].get(index)) for name in columns]
    return atomic_write(run.run_dir / PAGE, render_page(data))


def viewer_axes(run: RunData) -> tuple[list[str], dict[str, str], pd.DataFrame]:
    """The viewer's axes (varying candidates, dependents left out), the dependents {dep: master}, and the cells
    (with a `copy` column when cells would otherwise share every axis value)."""
    cells = run.cells.copy()
    moving = varying(cells, run.candidates)
    deps = dependents(cells, moving)
    axes = [a for a in moving if a not in deps]
    keys = cells[axes].astype(str).agg("\x1f".join, axis=1) if axes else pd.Series([""] * len(cells))
    if len(cells) > 1 and keys.duplicated().any():
        # Same parameters twice (several jobs of one grid, or a foreign table): tell them apart.
        if "job" in cells and labels(cells, "job").nunique() > 1 and not cells.assign(_k=keys).duplicated(
                ["_k", "job"]).any():
            axes.append("job")
        else:
            cells[COPY_AXIS] = (cells.assign(_k=keys).groupby("_k").cumcount() + 1).astype(str)
            axes.append(COPY_AXIS)
    return axes, deps, cells


def page_data(run: RunData, thumbs: dict[str, Any], default: Layout | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-ready values (see the module docstring)."""
    axes, deps, cells = viewer_axes(run)
    values = {a: order_values(cells, a) for a in axes}
    index = {a: {v: i for i, v in enumerate(vs)} for a, vs in values.items()}
    columns = [c for c in cells.columns if not str(c).startswith("_")]
    strings: dict[str, int] = {}

    def intern(text: str) -> int:
        return strings.setdefault(text, len(strings))

    label_of = {a: labels(cells, a).tolist() for a in axes}
    out_cells = []
    for n, row in enumerate(cells.to_dict("records")):
        image = str(row.get("image") or "")
        status, error = str(row["status"]), str(row.get("error") or "")
        if status == "ok" and image and not (run.run_dir / image).is_file():
            # Deleted or moved after the run: counted and marked missing, not shown as a broken image.
            status, error = "missing", f"image file not found: {image}"
        thumb = thumbs.get(image) if status == "ok" else None
        width, height = (thumb.width, thumb.height) if thumb else (_pixels(row["_w"]), _pixels(row["_h"]))
        # The sheets' figure: the timing model's seconds for the cell when it has them ("≈"), else the measured.
        fitted = row.get("_fitted", float("nan"))
        seconds = fitted if fitted == fitted else row["_seconds"]
        out_cells.append({
            "id": str(row.get("cell_id", "")),
            "job": str(row.get("job", "")),
            "k": [index[a][label_of[a][n]] for a in axes],
            "st": status,
            "i": image if image and inside(run.run_dir, image) else "",
            "t": thumb.thumb if thumb else "",
            "w": width, "h": height,
            "s": round(float(seconds), 4) if seconds == seconds else None,
            **({"sf": 1} if fitted == fitted else {}),
            "e": error,
            "p": thumb.parameters if thumb else "",
            "r": [intern(str(row[c])) for c in columns],
        })

    status = pd.Series([c["st"] for c in out_cells]).value_counts() if out_cells else pd.Series(dtype=int)
    moving = set(axes) | set(deps)
    fixed = [[a, v] for a in run.candidates if a not in moving and a not in ("prompt",)
             for v in [_single(cells, a)] if v and not (a == "repeat" and v == "0")]
    default = default or Layout()
    # The sheets' layout gives the first view: its columns on X, its rows on Y.
    x = next((a for a in default.cols if a in axes), None)
    y = next((a for a in default.rows if a in axes and a != x), None)
    others = [a for a in axes if a not in (x, y)]
    if x is None and others:
        x = others.pop(0)
    if y is None and others:
        y = others.pop(0)
    return {
        "version": VERSION,
        "title": run.name or _single(cells, "sweep") or run.run_dir.name,
        "prompt": _single(cells, "prompt") if "prompt" not in moving else None,
        "fixed": fixed,
        "counts": {s: int(status.get(s, 0)) for s in ("ok", "failed", "missing")},
        "axes": [{"name": a, "values": values[a], "shown": [_shown(cells, a, v, deps) for v in values[a]],
                  **_words(run, a, values[a])} for a in axes],
        "default": {"x": x, "y": y},
        "aliases": {k: v for k, v in ALIASES.items() if v in axes and k not in axes},
        "thumb_edge": MAX_EDGE,
        "columns": columns,
        "strings": list(strings),
        "cells": out_cells,
    }


def render_page(data: dict[str, Any]) -> str:
    """The page: the HTML skeleton with the CSS, the JS and the data (escaped for a <script>) filled in."""
    assets = resources.files("sweep.report") / "viewer_assets"
    parts = {
        "title": html.escape(str(data.get("title") or "sweep")),
        "css": (assets / "viewer.css").read_text(encoding="utf-8"),
        "js": (assets / "viewer.js").read_text(encoding="utf-8"),
        "data": script_json(data),
    }
    template = (assets / "index.html").read_text(encoding="utf-8")
    # One pass: text filled in is never scanned for placeholders again.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template)


def script_json(data: Any) -> str:
    """JSON that is safe as the text of a <script> element (`</script>` in a prompt cannot end it)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _UNSAFE_JSON[m.group(0)], text)


def _title(column: str) -> str:
    """How people name an axis ('CFG scale'), from its registry entry; the column name for other columns (the
    sheets' words too: sweep.report.sheets.heading)."""
    from sweep.report.sheets import heading

    return heading(column)


def _words(run: RunData, axis: str, values: list[str]) -> dict[str, Any]:
    """The axis's title (the sweep file's, else the registry's), its description, and the titles (`vt`) and
    descriptions (`vd`) of its values, one per value or null, where the sweep file gave any."""
    given, by_label = words(run, axis)
    found: dict[str, Any] = {"title": str(given.get("title") or _title(axis))}
    if given.get("description"):
        found["description"] = str(given["description"])
    for key, field in (("vt", "title"), ("vd", "description")):
        texts = [by_label.get(v, {}).get(field) for v in values]
        if any(texts):
            found[key] = [str(t) if t else None for t in texts]
    return found


def _shown(cells: pd.DataFrame, axis: str, value: str, deps: dict[str, str]) -> str:
    """An axis value as the sheets label it: '(none)' for empty, dependent values beside it ('· dtype fp16')."""
    text = value if value != "" else "(none)"
    for dep, master in deps.items():
        if master == axis and dep in cells:
            found = {v for v in cells.loc[labels(cells, axis) == value, dep] if v}
            if found:
                text += f" · {dep} {'/'.join(sorted(found))}"
    return text


def _single(cells: pd.DataFrame, column: str) -> str | None:
    if column not in cells:
        return None
    found = list(dict.fromkeys(v for v in cells[column] if v))
    return str(found[0]) if len(found) == 1 else None


def _score(value: Any) -> float | None:
    return round(float(value), 4) if value is not None and value == value else None


def _pixels(value: Any) -> int | None:
    return int(value) if value == value and value and value > 0 else None
