"""The results table (results.csv) and the run's manifest (sweep.json): the contract with the report.

results.csv gets one row per image, appended, flushed and fsynced as each image lands, so a crash loses nothing
that was written. On a rerun into the same directory the table is repaired (torn last line, rows whose image is
gone or damaged, failed cells to retry, images whose row was lost) and only missing cells are generated. What
experiment a directory holds is read from its manifest, or rebuilt from its rows and images when the manifest
is gone, and a run that would mix two experiments is refused.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.atomic import FILE_MODE, atomic_write
from sweep.errors import RunDirError

RESULTS = "results.csv"
MANIFEST = "sweep.json"
IMAGES = "images"
PNG_KEY = "sdxl-sweep"  # our PNG text chunk: the image's whole results row as JSON
HEAD = ["cell_id", "sweep"]
TAIL = ["batch_size", "seconds", "status", "error", "image", "model", "model_hash", "vae", "vae_hash",
        "lora_hashes", "refiner", "device", "dtype", "options",
        "generator_device", "torch", "diffusers", "transformers", "gpu", "finished_at"]
# How an image was made, beside what it shows, as its row records it: a change here is another experiment too
# (the generator's device changes the noise; GPU options and the dtype change pixels). The manifest adds the
# configured batch_size (batch composition moves pixels by up to 1/255); rows record the size each call had.
MADE_WITH = ("model", "dtype", "options", "generator_device")


def columns_for(extra: Iterable[str] = ()) -> list[str]:
    """results.csv columns: id, every registry axis's columns (plus extra axes), then how it went (a column that
    is an axis's too, `vae`, is written once, with the axis)."""
    params = axes.columns(extra)
    return [*HEAD, *params, *(c for c in TAIL if c not in params)]


COLUMNS = columns_for()


def _csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], header: bool) -> str:
    """CSV as RFC 4180 writes it: lines end in CRLF, so Python's csv quotes any field holding a CR or an LF (with
    a bare LF line end it leaves a lone CR unquoted, and readers then split the row there)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def read_rows(path: Path) -> list[dict[str, str]]:
    """Complete rows of a results.csv; a torn last line (killed mid-write) is dropped. Read without newline
    translation, so a '\\r' inside a prompt stays a '\\r'."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    required = set(reader.fieldnames or ()) & {"cell_id", "status", "image"}
    for row in reader:
        # A torn row can still parse (e.g. cut inside a quoted field); a complete one has every column.
        if None in row or any(v is None for v in row.values()) or len(required) < 3 or not row.get("status"):
            continue
        rows.append(row)
    return rows


def image_path(run_dir: Path, relative: str) -> Path | None:
    """The image a row points at, only if it lies inside the run's images folder (a hand-edited
    'images/../../x' is not followed)."""
    if not relative:
        return None
    folder = (run_dir / IMAGES).resolve()
    path = (run_dir / relative).resolve()
    return path if path.parent == folder else None


def verify_png(path: Path, size: tuple[int, int] | None) -> bool:
    """The file is a complete PNG (every chunk's CRC checked, IEND present) of the recorded (width, height).

    Cheaper than decoding: PIL's verify reads the chunks without inflating the pixels.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format != "PNG" or (size and image.size != size):
                return False
            image.verify()
        return True
    except Exception:  # truncated, random bytes, 0 bytes: PIL raises several kinds
        return False


def png_record(path: Path) -> dict[str, Any] | None:
    """The results row an image of ours carries in its text chunk (None for any other file)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            data = json.loads(image.text.get(PNG_KEY, "null"))
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def _size(record: Mapping[str, Any]) -> tuple[int, int] | None:
    return axes.output_size(record)  # Hires. fix makes an image larger than the recorded first-pass size


def _same_cell(row: Mapping[str, Any], record: Mapping[str, Any], columns: Sequence[str]) -> bool:
    return all(_text(row.get(c)) == _text(record.get(c)) for c in columns)


class ResultsTable:
    """Append-only results.csv shared by every process of the run (one locked, fsynced write per row)."""

    def __init__(self, run_dir: Path, columns: Sequence[str] = tuple(COLUMNS)) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RESULTS
        self.columns = list(columns)

    def prepare(self, expected: Mapping[str, Mapping[str, Any]], made_with: Mapping[str, Any]) -> set[str]:
        """Repair the table for a (re)run and return the cell ids already done.

        Kept: the last `ok` row of each expected cell whose image is a complete PNG of the right size inside
        images/. Adopted: such an image whose row was lost, when its embedded row is this cell, made the same
        way (`made_with`: model, dtype, settings). Dropped: torn lines, failed rows (retried), rows pointing
        outside images/, duplicates. Rows of cells no longer in the grid stay in the table and on disk.
        """
        params = _parameter_columns(expected.values())
        kept: dict[str, dict[str, Any]] = {}
        others: list[dict[str, Any]] = []
        candidates = []
        for row in read_rows(self.path):
            cell_id = row["cell_id"]
            if cell_id not in expected:
                others.append(row)  # a removed value keeps its row and image, out of the report
                continue
            path = image_path(self.run_dir, row["image"])
            if row["status"] == "ok" and path is not None:
                candidates.append((cell_id, row, path))
        checks = _verify_all([(p, _size(expected[c])) for c, _, p in candidates])
        for (cell_id, row, _), good in zip(candidates, checks, strict=True):
            if good:
                kept[cell_id] = row
        orphans = [(c, self.run_dir / IMAGES / f"{c}.png") for c in expected if c not in kept]
        orphans = [(c, p) for c, p in orphans if p.is_file()]
        for (cell_id, path), good in zip(orphans, _verify_all([(p, _size(expected[c])) for c, p in orphans]),
                                         strict=True):
            record = png_record(path) if good else None
            if (record and record.get("status") == "ok" and _same_cell(record, expected[cell_id], params)
                    and all(_text(record.get(k)) == _text(v) for k, v in made_with.items())):
                kept[cell_id] = {**record, "image": f"{IMAGES}/{path.name}"}
        atomic_write(self.path, _csv_text([*others, *kept.values()], self.columns, header=True))
        return set(kept)

    def append(self, row: Mapping[str, Any]) -> None:
        line = _csv_text([row], self.columns, header=False)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            # Several ranks append to one table: lock so two rows never interleave.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())  # a power cut keeps every row whose image it kept
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _parameter_columns(*records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns of these records that say what an image shows (every axis's columns; a scheduler's class
    text is derived from its name, and older runs may lack it)."""
    found = dict.fromkeys(k for group in records for r in group for k in r)
    return [c for c in found if axes.axis_of_column(c) is not None and c != "scheduler_class"]


def _verify_all(items: list[tuple[Path, tuple[int, int] | None]]) -> list[bool]:
    """verify_png over many files on a few threads (zlib's CRC and file reads release the GIL)."""
    if len(items) < 16:
        return [verify_png(p, s) for p, s in items]
    with ThreadPoolExecutor(4, thread_name_prefix="verify") as pool:
        return list(pool.map(lambda item: verify_png(*item), items))


# --- manifest: what experiment this directory holds ----------------------------------------------------


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "sdxl_sweep" in data else None


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write(run_dir / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def rebuilt_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The experiment a run dir holds when its manifest is missing or unreadable: from results.csv, and from
    the rows our PNGs carry when the table is gone too. None when the dir holds no results of ours."""
    rows = [r for r in read_rows(run_dir / RESULTS) if r.get("status") == "ok"]
    if not rows and (run_dir / IMAGES).is_dir():
        rows = [r for p in sorted((run_dir / IMAGES).glob("*.png")) if (r := png_record(p))]
    if not rows:
        return None
    made = {k: sorted({_text(r.get(k)) for r in rows}) for k in MADE_WITH}
    return {"sdxl_sweep": 2, "rebuilt": True, "made_with": {k: v[0] if len(v) == 1 else v for k, v in made.items()},
            "expected_cells": rows, "random_seeds": sorted({int(r["seed"]) for r in rows if r.get("seed")})}


def recorded_experiment(run_dir: Path) -> dict[str, Any] | None:
    return read_manifest(run_dir) or rebuilt_manifest(run_dir)


def _text(value: Any) -> str:
    """Compare values as results.csv writes them (5.0 and '5.0' alike; None and '' alike)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if number.is_finite() and number == number.to_integral_value() and "e" not in text.lower():
        return str(int(number))
    return text


def _sorted(values: set[str]) -> list[str]:
    """Numbers as numbers (10, 20, 100, not 10, 100, 20); anything else as text."""
    try:
        return sorted(values, key=lambda v: Decimal(v) if v else Decimal("-Infinity"))
    except InvalidOperation:
        return sorted(values)


def experiment_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What makes two manifests different experiments, as short phrases (empty: the same one, or the same one
    with values added to or removed from its axes, which reuses every image already made)."""
    phrases = []
    rebuilt = recorded.get("rebuilt")
    old_made, new_made = recorded.get("made_with") or {}, current.get("made_with") or {}
    if not rebuilt and recorded.get("model") != current.get("model"):
        phrases.append(f"model was {_short(recorded.get('model'))}, now {_short(current.get('model'))}")
    for key, old in old_made.items():
        if key in new_made and _text(old) != _text(new_made[key]) and not (rebuilt and isinstance(old, list)):
            phrases.append(f"{key} was {_short(old)}, now {_short(new_made[key])}")
    old_cells, new_cells = recorded.get("expected_cells") or [], current.get("expected_cells") or []
    for column in _parameter_columns(old_cells, new_cells):
        old = {_text(c.get(column)) for c in old_cells}
        new = {_text(c.get(column)) for c in new_cells}
        if old and new and not old & new:
            phrases.append(f"{column} was {_short(_sorted(old))}, now {_short(_sorted(new))}")
    return phrases


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    text = text.replace('"', "")
    return text if len(text) <= 70 else text[:67] + "..."


def check_same_experiment(run_dir: Path, current: Mapping[str, Any]) -> None:
    recorded = recorded_experiment(run_dir)
    if recorded is None:
        return
    diff = experiment_diff(recorded, current)
    if diff:
        how = " (rebuilt from its results.csv and images: sweep.json is missing)" if recorded.get("rebuilt") else ""
        raise RunDirError(
            f"hydra.run.dir: {run_dir} holds another experiment{how} ({'; '.join(diff)}); allowed: the same sweep "
            "to resume it, or the same sweep with values added to or removed from its axes. Run into a new "
            "directory, or add restart=true to move its results aside"
        )
