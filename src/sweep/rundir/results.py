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
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
DIGEST = "image_sha256"  # SHA-256 of the PNG file as written: a resume keeps an image only if it still matches
TAIL = ["batch_size", "seconds", "status", "error", "image", DIGEST, "model", "model_hash", "vae", "vae_hash",
        "lora_hashes", "refiner", "controlnet", "ip_adapter", "device", "dtype", "options", "threads",
        "generator_device", "torch", "diffusers", "transformers", "gpu", "finished_at", "load_avg", "cpus"]
# How an image was made, beside what it shows, as its row records it: a change here is another experiment too
# (the generator's device changes the noise; GPU options and the dtype change pixels). The manifest adds the
# configured batch_size (batch composition moves pixels by up to 1/255); rows record the size each call had.
MADE_WITH = ("model", "dtype", "options", "generator_device", "model_hash")
STATUSES = ("ok", "failed")


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


class TableError(RunDirError):
    """results.csv is not as the tool wrote it (a column renamed, a value edited, random bytes): one line naming
    the file, the line and the problem; nothing is rewritten."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; allowed: results.csv as sdxl-sweep wrote it (undo the edit, or move the file "
                         "away and run the same sweep into this directory again: the table is rebuilt from the "
                         "parameters each image carries)")


@dataclass
class Table:
    """results.csv as read strictly: its header, its complete rows and the line each row starts on."""

    path: Path
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def problem(self, line: int, what: str) -> TableError:
        return TableError(f"{self.path}: line {line}: {what}")


def parse_table(path: Path, required: Sequence[str] = ("cell_id", "status", "image")) -> Table:
    """Read results.csv, refusing anything the tool cannot have written (raises TableError, one line).

    What the tool writes is UTF-8, one complete row per record, status ok or failed. Only the last record may
    be incomplete, and only when the file ends inside it (a kill mid-append): no line ending at the end, or an
    open quote (a prompt's own line break); only its last character may be cut. Anything else (a field too
    many or too few, a status that is not ok or failed, bytes that are not UTF-8, a renamed or doubled column)
    is a hand edit or damage.
    """
    table = Table(Path(path))
    if not table.path.is_file():
        return table
    data = table.path.read_bytes()
    torn = not data.endswith(b"\n") or data.count(b'"') % 2 == 1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (torn and exc.start >= len(data) - 3):  # only a character cut by the kill may be incomplete
            raise table.problem(data[: exc.start].count(b"\n") + 1, "bytes that are not UTF-8 text (random "
                                "bytes?)") from None
        text = data[: exc.start].decode("utf-8")
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for record in reader:
            records.append((line, record))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise table.problem(line, f"not CSV ({exc})") from None
    if not records:
        return table
    _, header = records[0]
    table.columns = header
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise table.problem(1, f"column {doubled[0]!r} appears twice")
    absent = [c for c in required if c not in header]
    if absent:
        raise table.problem(1, f"the header has no {absent[0]!r} column (renamed by hand?)")
    body = records[1:-1] if torn else records[1:]
    for number, record in body:
        if not record:
            continue  # a blank line holds nothing
        if len(record) != len(header):
            raise table.problem(number, f"{len(record)} fields where the header has {len(header)} (edited by hand, "
                                "or random bytes?)")
        row = dict(zip(header, record, strict=True))
        if "status" in row and row["status"] not in STATUSES:
            raise table.problem(number, f"status {_quoted(row['status'])}, not ok or failed (edited by hand, or "
                                "random bytes?)")
        if "cell_id" in row and not row["cell_id"]:
            raise table.problem(number, "an empty cell_id")
        table.rows.append(row)
        table.lines.append(number)
    return table


def check_columns(table: Table, columns: Sequence[str] = (), allowed: Iterable[str] = ()) -> None:
    """Every column of the table is one the tool writes (`columns`, the registry's, `allowed`): a renamed one is
    refused (TableError), naming the column the rename lost."""
    known = {*columns, *COLUMNS, *allowed}
    unknown = [c for c in table.columns if c not in known and axes.axis_of_column(c) is None]
    if unknown:
        missing = [c for c in columns if c not in table.columns and c not in (DIGEST, "scheduler_class")]
        also = f" and {missing[0]!r} is missing" if missing else ""
        raise table.problem(1, f"column {unknown[0]!r} is not one sdxl-sweep writes{also} (renamed or added by "
                            "hand?)")


def check_values(table: Table, expected: Mapping[str, Mapping[str, Any]], cell_of: Any = None) -> None:
    """Every row of a cell in the grid holds that cell's values (the cell_id is made of them: a seed edited to
    999 would otherwise be reported as seed 999). `cell_of(row)`: the expected cell of a row (default: by its
    cell_id in `expected`)."""
    params = _parameter_columns(expected.values())
    for row, line in zip(table.rows, table.lines, strict=True):
        cell = cell_of(row) if cell_of else expected.get(row.get("cell_id", ""))
        if cell is None:
            continue
        for column in _parameter_columns([cell]) if cell_of else params:
            if not _same_value(column, row.get(column), cell.get(column)):
                raise table.problem(line, f"cell {row['cell_id']} has {column} {_quoted(row.get(column) or '')}, "
                                    f"but that cell's {column} is {_quoted(_text(cell.get(column)))} (edited by "
                                    "hand?)")


def _same_value(column: str, written: Any, expected: Any) -> bool:
    """A row's value is its cell's. `vae` is written by the load as the file's name (A1111's `VAE:`,
    `gamma.safetensors`) where the axis value may name it without its suffix (`gamma` under model.models_dir)."""
    if _text(written) == _text(expected):
        return True
    return column == "vae" and bool(written) and bool(expected) and \
        axes.file_label(_text(written)) == axes.file_label(_text(expected))


def _quoted(text: str) -> str:
    text = repr(text)
    return text if len(text) <= 40 else text[:37] + "..."


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_problem(data: bytes, size: tuple[int, int] | None) -> str | None:
    """Why these bytes are not an image a cell may keep (None: a decodable PNG of the recorded (width, height)
    that is not one flat colour). Decodes every pixel: a PNG whose chunks all have valid CRCs can still lack
    an IDAT chunk, and only decoding finds that."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                return "not a PNG"
            if size and image.size != size:
                return f"{image.size[0]}x{image.size[1]}, not {size[0]}x{size[1]}"
            image.load()
            extrema = image.getextrema()
    except Exception as exc:  # truncated, random bytes, 0 bytes, a chunk removed: PIL raises several kinds
        return f"not decodable ({type(exc).__name__})"
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    if all(low == high for low, high in bands):
        return "one flat colour"
    return None


def uniform(array: Any) -> bool:
    """Every pixel the same colour (all black, all white, ...): what a broken or overflowing VAE gives."""
    flat = array.reshape(-1, array.shape[-1]) if array.ndim == 3 else array.reshape(-1)
    return bool((flat == flat[0]).all())


def png_record(path: Path | bytes) -> dict[str, Any] | None:
    """The results row an image of ours carries in its text chunk (None for any other file)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
            data = json.loads(image.text.get(PNG_KEY, "null"))
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def _size(record: Mapping[str, Any]) -> tuple[int, int] | None:
    return axes.output_size(record)  # Hires. fix makes an image larger than the recorded first-pass size


def _same_cell(row: Mapping[str, Any], record: Mapping[str, Any], columns: Sequence[str]) -> bool:
    return all(_text(row.get(c)) == _text(record.get(c)) for c in columns)


def _fits(row: Mapping[str, Any], expected: Mapping[str, Any], columns: Sequence[str], data: bytes) -> bool:
    """The bytes of a cell's file are the image its row describes.

    With the digest recorded at write time: the same bytes. Without (a row from before the digest, or an
    image whose row was lost): a decodable, not flat PNG of the cell's size whose own record is this cell.
    """
    recorded = str(row.get(DIGEST) or "")
    if recorded:
        return file_digest(data) == recorded
    record = png_record(data)
    return (record is not None and _text(record.get("cell_id")) == _text(row.get("cell_id"))
            and _same_cell(record, expected, columns) and image_problem(data, _size(expected)) is None)


@dataclass
class Prepared:
    """What a resume found: the cells already done, and the files it moved aside (not what the run wrote)."""

    done: set[str]
    set_aside: list[Path] = field(default_factory=list)
    moved_to: Path | None = None


class ResultsTable:
    """Append-only results.csv shared by every process of the run (one locked, fsynced write per row)."""

    def __init__(self, run_dir: Path, columns: Sequence[str] = tuple(COLUMNS)) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RESULTS
        self.columns = list(columns)

    def inspect(self, expected: Mapping[str, Mapping[str, Any]], table: Table | None = None) -> Table:
        """The table, refused (TableError, one line, nothing written) when it is not as the tool wrote it.

        Besides parse_table's checks: every column is one the tool writes (a renamed column would otherwise
        be dropped by the rewrite, its values lost), and every row of a cell in the grid holds that cell's
        values (the cell_id is made of them; a seed edited to 999 would otherwise be reported as seed 999).
        """
        table = table or parse_table(self.path)
        check_columns(table, self.columns)
        check_values(table, expected)
        return table

    def prepare(self, table: Table, expected: Mapping[str, Mapping[str, Any]],
                made_with: Mapping[str, Any]) -> Prepared:
        """Repair the (inspected) table for a (re)run; return the cells already done.

        Kept: the last `ok` row of each expected cell whose image is still the file that row was written with
        (its digest; for older rows, a decodable PNG carrying this cell's own record). Adopted: such an image
        whose row was lost, when its embedded row is this cell, made the same way (`made_with`: model, dtype,
        settings). Dropped: failed rows (retried), rows pointing outside images/, duplicates. Any other file
        where a cell's image goes (another cell's image, a blank or undecodable one) is moved aside into
        previous/ before the cell is made again: never overwritten. Rows of cells no longer in the grid stay.
        """
        params = _parameter_columns(expected.values())
        kept: dict[str, dict[str, Any]] = {}
        others: list[dict[str, Any]] = []
        candidates: dict[str, tuple[dict[str, Any], Path]] = {}
        for row in table.rows:
            cell_id = row["cell_id"]
            if cell_id not in expected:
                others.append(row)  # a removed value keeps its row and image, out of the report
                continue
            path = image_path(self.run_dir, row["image"])
            if row["status"] == "ok" and path is not None:
                candidates[cell_id] = (row, path)  # the last ok row wins
        def check_row(item: tuple[str, tuple[dict[str, Any], Path]]) -> str | None:
            cell_id, (row, path) = item
            data = _read(path)  # one file at a time: a 10,000-image run is never held in memory
            if data is None or not _fits(row, expected[cell_id], params, data):
                return None
            return str(row.get(DIGEST) or file_digest(data))

        for (cell_id, (row, _)), digest in zip(candidates.items(), _map(check_row, list(candidates.items())),
                                               strict=True):
            if digest is not None:
                kept[cell_id] = {**row, DIGEST: digest}
        orphans = [(c, self.run_dir / IMAGES / f"{c}.png") for c in expected if c not in kept]
        orphans = [(c, p) for c, p in orphans if p.is_file() or p.is_symlink()]

        def adopt(item: tuple[str, Path]) -> dict[str, Any] | None:
            cell_id, path = item
            data = _read(path)
            record = png_record(data) if data is not None else None
            if (record and record.get("status") == "ok" and _fits(record, expected[cell_id], params, data)
                    and all(_text(record.get(k)) == _text(v) for k, v in made_with.items())):
                return {**record, "image": f"{IMAGES}/{path.name}", DIGEST: file_digest(data)}
            return None

        foreign = []
        for (cell_id, path), row in zip(orphans, _map(adopt, orphans), strict=True):
            if row is not None:
                kept[cell_id] = row
            else:
                foreign.append(path)
        prepared = Prepared(set(kept), foreign)
        if foreign:
            prepared.moved_to = set_aside(self.run_dir, foreign)
        atomic_write(self.path, _csv_text([*others, *kept.values()], self.columns, header=True))
        return prepared

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


def set_aside(run_dir: Path, paths: Sequence[Path]) -> Path:
    """Move files that are not what the run wrote into previous/<date>_<time>/images/ (never deleted)."""
    from sweep.rundir.guard import previous_folder

    target = previous_folder(run_dir) / IMAGES
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        os.replace(path, target / path.name)
    return target.parent


def _parameter_columns(*records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns of these records that say what an image shows (every axis's columns; a scheduler's class
    text is derived from its name, and older runs may lack it)."""
    found = dict.fromkeys(k for group in records for r in group for k in r)
    return [c for c in found if axes.axis_of_column(c) is not None and c != "scheduler_class"]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _map(function: Any, items: list[Any]) -> list[Any]:
    """function over items, on a few threads for many (file reads, zlib and SHA-256 release the GIL)."""
    if len(items) < 16:
        return [function(i) for i in items]
    with ThreadPoolExecutor(4, thread_name_prefix="verify") as pool:
        return list(pool.map(function, items))


def check_images(items: list[tuple[Path, str]]) -> list[bool]:
    """Each file still has the recorded SHA-256 (what a resume checks for every image it keeps), on threads."""
    def one(item: tuple[Path, str]) -> bool:
        data = _read(item[0])
        return data is not None and file_digest(data) == item[1]

    return _map(one, items)


# --- manifest: what experiment this directory holds ----------------------------------------------------


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and "sdxl_sweep" in data):
        return None
    for key, kind, what in (("expected_cells", list, "a list of cells"), ("made_with", dict, "a mapping"),
                            ("model", dict, "a mapping"), ("random_seeds", list, "a list of seeds")):
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is list and key == "expected_cells"
                                                                  and not all(isinstance(c, dict) for c in value))):
            shown = json.dumps(value, default=str)
            raise RunDirError(f"{path}: {key}: got {shown[:60] + '...' if len(shown) > 60 else shown}; allowed: "
                              f"{what}, as sdxl-sweep wrote it (put the file back, or move sweep.json away: the "
                              "run then rebuilds it from results.csv and the images)")
    return data


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
    names = sorted({str(r.get("sweep") or "") for r in rows} - {""})
    return {"sdxl_sweep": 2, "rebuilt": True, "made_with": {k: v[0] if len(v) == 1 else v for k, v in made.items()},
            "sweep": {"name": names[0]} if len(names) == 1 else {}, "expected_cells": rows,
            "random_seeds": sorted({int(r["seed"]) for r in rows if str(r.get("seed") or "").isdigit()})}


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


def _sweep_name(manifest: Mapping[str, Any]) -> str:
    sweep = manifest.get("sweep")
    return str(sweep.get("name") or "") if isinstance(sweep, dict) else ""


def experiment_diff(recorded: Mapping[str, Any], current: Mapping[str, Any], grow: bool = False) -> list[str]:
    """What makes two manifests different experiments, as short phrases (empty: the same one, or the same one
    with values added to or removed from its axes, which reuses every image already made). Another sweep's name
    is another experiment unless `grow` (the user's grow=true) says this sweep's cells join the earlier ones."""
    phrases = []
    old_name, new_name = _sweep_name(recorded), _sweep_name(current)
    if old_name and new_name and old_name != new_name and not grow:
        phrases.append(f"sweep was {_short(old_name)}, now {_short(new_name)}")
    rebuilt = recorded.get("rebuilt")
    old_made, new_made = recorded.get("made_with") or {}, current.get("made_with") or {}
    old_model, new_model = recorded.get("model"), current.get("model")
    if not rebuilt and old_model != new_model:
        if isinstance(old_model, dict) and isinstance(new_model, dict):  # only what differs, whole
            phrases += [f"model.{k} was {_short(old_model.get(k), None)}, now {_short(new_model.get(k), None)}"
                        for k in dict.fromkeys([*old_model, *new_model]) if old_model.get(k) != new_model.get(k)]
        else:
            phrases.append(f"model was {_short(old_model)}, now {_short(new_model)}")
    old_weights, new_weights = recorded.get("weights") or {}, current.get("weights") or {}
    if rebuilt and new_weights.get("model.path"):  # the rows' model_hash: A1111's first 10 digits of a file's
        old_weights = {"model.path": old_made.get("model_hash")} if old_made.get("model_hash") else {}
    for key, old in old_weights.items():
        new = new_weights.get(key)
        if isinstance(old, str) and old and new and not new.startswith(old):
            phrases.append(f"the weights of {key} changed (SHA-256 was {old[:10]}, now {new[:10]})")
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


def _short(value: Any, limit: int | None = 70) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return "unset"  # not an empty gap ("eta was , now 0.5")
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    text = text.replace('"', "")
    return text if limit is None or len(text) <= limit else text[:limit - 3] + "..."


def check_same_experiment(run_dir: Path, current: Mapping[str, Any], grow: bool = False) -> None:
    recorded = recorded_experiment(run_dir)
    if recorded is None:
        return
    diff = experiment_diff(recorded, current, grow)
    if diff:
        how = " (rebuilt from its results.csv and images: sweep.json is missing)" if recorded.get("rebuilt") else ""
        grows = (", or add grow=true to add this sweep's cells to it" if diff[0].startswith("sweep was ")
                 and len(diff) == 1 else "")
        raise RunDirError(
            f"hydra.run.dir: {run_dir} holds another experiment{how} ({'; '.join(diff)}); allowed: the same sweep "
            "to resume it, or the same sweep with values added to or removed from its axes. Run into a new "
            f"directory, or add restart=true to move its results aside{grows}"
        )
