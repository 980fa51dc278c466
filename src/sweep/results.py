"""The results table (results.csv) and the run's manifest (sweep.json): the contract with the report.

results.csv gets one row per image, appended and flushed as each image lands, so a crash loses nothing that
was written. On a rerun into the same directory the table is repaired (torn last line, rows whose image is
gone, failed cells to retry) and only missing cells are generated.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sweep.atomic import atomic_write
from sweep.errors import SweepError

COLUMNS = [
    "cell_id", "sweep", "prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale",
    "height", "width", "repeat", "batch_size", "seconds", "status", "error", "image",
    "model", "model_hash", "vae", "vae_hash", "lora", "lora_hashes", "refiner", "refiner_switch",
    "device", "dtype", "options", "scheduler", "torch", "diffusers", "transformers", "gpu", "finished_at",
]
RESULTS = "results.csv"
MANIFEST = "sweep.json"
IMAGES = "images"
# Keys of a cell that define the experiment (the rest of a row is how and when it was made).
CELL_KEYS = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "height", "width",
             "repeat")


def _csv_text(rows: Iterable[Mapping[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return buffer.getvalue()


def read_rows(path: Path) -> list[dict[str, str]]:
    """Complete rows of a results.csv; a torn last line (killed mid-write) is dropped."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        # A torn row can still parse (e.g. cut inside a quoted field); a complete one has every column.
        if None in row or any(row.get(k) is None for k in COLUMNS) or not row.get("status"):
            continue
        rows.append(row)
    return rows


class ResultsTable:
    """Append-only results.csv shared by every process of the run (one locked write per row)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RESULTS

    def prepare(self, expected: Sequence[str]) -> set[str]:
        """Repair the table for a (re)run and return the cell ids already done.

        Kept: the last `ok` row of each expected cell whose PNG exists. Dropped: torn lines, failed rows
        (retried), rows whose image is missing, duplicates. An image without a row is regenerated.
        """
        # Temp files of writes a kill interrupted: never renamed, never valid, safe to drop before writers start.
        for stale in (self.run_dir / IMAGES).glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        wanted = set(expected)
        kept: dict[str, dict[str, str]] = {}
        for row in read_rows(self.path):
            cell_id = row["cell_id"]
            if cell_id in wanted and row["status"] == "ok" and (self.run_dir / row["image"]).is_file():
                kept[cell_id] = row
        atomic_write(self.path, _csv_text(kept.values(), header=True))
        return set(kept)

    def append(self, row: Mapping[str, Any]) -> None:
        line = _csv_text([row], header=False)
        with open(self.path, "a", encoding="utf-8") as handle:
            # Several ranks append to one table: lock so two rows never interleave.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- manifest: what experiment this directory holds ----------------------------------------------------


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a manifest is written atomically; an unreadable one is from something else


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write(run_dir / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def experiment_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two manifests' experiments, as short phrases (empty: the same experiment)."""
    phrases = []
    if recorded.get("model") != current.get("model"):
        phrases.append(f"model was {_short(recorded.get('model'))}, now {_short(current.get('model'))}")
    old_cells, new_cells = recorded.get("expected_cells", []), current.get("expected_cells", [])
    for key in CELL_KEYS:
        old = sorted({json.dumps(c.get(key)) for c in old_cells})
        new = sorted({json.dumps(c.get(key)) for c in new_cells})
        if old != new:
            phrases.append(f"{key} was {_short(old)}, now {_short(new)}")
    if not phrases and sorted(c["cell_id"] for c in old_cells) != sorted(c["cell_id"] for c in new_cells):
        phrases.append("the grid's combinations changed")
    return phrases


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    text = text.replace('"', "")
    return text if len(text) <= 60 else text[:57] + "..."


def check_same_experiment(run_dir: Path, current: Mapping[str, Any]) -> None:
    recorded = read_manifest(run_dir)
    if recorded is None:
        return
    diff = experiment_diff(recorded, current)
    if diff:
        raise SweepError(
            f"hydra.run.dir: {run_dir} holds another experiment ({'; '.join(diff)}); allowed: the same sweep "
            "to resume it. Run into a new directory, or add restart=true to discard its results"
        )


def discard_run(run_dir: Path) -> None:
    """restart=true: remove an earlier run's results so a new experiment can use the directory."""
    import shutil

    for name in (RESULTS, MANIFEST, "summary.csv", "status.json"):
        (run_dir / name).unlink(missing_ok=True)
    for name in (IMAGES, "sheets", "plots"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
