"""Read a run directory (results.csv + optional sweep.json) into one tidy table of cells.

Every parameter is kept as text exactly as written (seeds up to 2**64 survive, a prompt "NA" stays "NA"),
normalised only where numbers are expected ("5.0" -> "5"). Cells listed in sweep.json but absent from
results.csv become rows with status "missing", so a partial run still shows its whole grid.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from sweep import axes
from sweep.report.result import ReportError

RESULTS = "results.csv"
MANIFEST = "sweep.json"

# Axes a sweep varies on purpose (the registry's, in its order: ties and "master" axes follow it).
PRIMARY = tuple(a.name for a in axes.AXES)
# Columns that vary only across merged runs (Hydra multirun); they may be axes too.
SECONDARY = ("model", "sweep", "dtype", "device")
# Environment fingerprint: shown in the title, never an inferred axis.
ENVIRONMENT = ("device", "dtype", "options", "generator_device", "torch", "diffusers", "transformers", "gpu")
# Columns that describe how a cell went, not what it is, or that belong to an axis: never an axis themselves.
NOT_AXES = ("cell_id", "seconds", "status", "error", "image", "image_sha256", "finished_at", "load_avg", "cpus",
            "overrides", "batch_size", *sorted(axes.dependent_columns()))
NUMERIC = (*(c for a in axes.AXES if a.numeric for c in a.cols), "batch_size", "job")
_OVERRIDE_KEY = re.compile(r"(?:^|[\s,\[\]'\"])[+~]*([A-Za-z_][\w.]*)=")


@dataclass
class RunData:
    """One row per cell (`status` is ok, failed or missing) plus what sweep.json says about layout."""

    run_dir: Path
    cells: pd.DataFrame
    name: str | None = None
    layout_hint: dict[str, str | None] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)  # axes that may be inferred, by priority
    labels: dict[str, Any] = field(default_factory=dict)  # the sweep file's titles/descriptions (sweep.titles)

    @property
    def usable_axes(self) -> list[str]:
        """Every name an explicit layout may use: the candidates plus any other parameter column."""
        extra = [c for c in self.cells.columns if not c.startswith("_") and c not in NOT_AXES]
        return list(dict.fromkeys(self.candidates + extra))


def norm_number(text: str) -> str:
    """'5.0' -> '5', '7.50' -> '7.5', '1e3' -> '1000'; anything else unchanged (exact for huge ints)."""
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if not value.is_finite():
        return text
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def as_text(value: Any) -> str:
    """A cell value as text; None and NaN become '' (JSON and CSV agree)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_results(path: Path) -> pd.DataFrame:
    # newline="": a '\r' inside a quoted prompt stays a '\r' (the csv parser handles line ends itself).
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        # A run killed mid-write leaves a torn last line: drop it rather than misread it.
        text = text[: text.rfind("\n") + 1]
    try:
        table = pd.read_csv(io.StringIO(text, newline=""), dtype=str, keep_default_na=False, on_bad_lines="skip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            return pd.DataFrame(columns=["cell_id", "status"])
        raise ReportError("results.csv", path, f"a CSV table readable by pandas.read_csv ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.astype(object)


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # optional and advisory: an unreadable manifest only loses the layout hint
    return data if isinstance(data, dict) else {}


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in table.columns:
        table[column] = [as_text(v) for v in table[column]]
        if column in NUMERIC:
            table[column] = [norm_number(v) for v in table[column]]
    return table


def _resolution(table: pd.DataFrame) -> list[str]:
    if "height" not in table or "width" not in table:
        return [""] * len(table)
    # WIDTHxHEIGHT, as A1111's Size, ComfyUI and civitai write sizes.
    return [f"{w}x{h}" if h and w else "native" for h, w in zip(table["height"], table["width"], strict=True)]


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory; raises ReportError when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError("DIR", str(run_dir), "an existing run directory (the one holding results.csv)")
    path = run_dir / RESULTS
    if not path.is_file():
        raise ReportError("DIR", str(run_dir), "a run directory that holds results.csv")
    manifest = _read_manifest(run_dir / MANIFEST)
    _check_table(run_dir, path, manifest)  # a table the tool did not write: refused before anything is drawn
    results = _normalise(_read_results(path))
    sweep = manifest.get("sweep") if isinstance(manifest.get("sweep"), dict) else {}
    expected_raw = manifest.get("expected_cells") or []
    expected = _normalise(pd.DataFrame([c for c in expected_raw if isinstance(c, dict)]).astype(object))

    if "status" not in results:
        results["status"] = "ok"
    # A row without a status is a torn write; a status other than ok is some kind of failure.
    results = results.loc[[str(s).strip() != "" for s in results["status"]]].copy()
    results["status"] = ["ok" if s.strip().lower() == "ok" else "failed" for s in results["status"]]
    if "cell_id" not in results:
        results["cell_id"] = [f"row{i}" for i in range(len(results))]
    key = ["job", "cell_id"] if "job" in results else ["cell_id"]
    # Several rows for one cell (a retry after a failure): the last attempt wins.
    results = results.drop_duplicates(subset=key, keep="last")
    results["_row"] = range(len(results))  # the order rows were written (the timing model's warm-up)

    order = {cid: i for i, cid in enumerate(expected.get("cell_id", []))}
    results["_order"] = [order.get(cid, len(order) + i) for i, cid in enumerate(results["cell_id"])]
    if len(expected) and "cell_id" in expected:
        absent = expected[~expected["cell_id"].isin(set(results["cell_id"]))].copy()
        absent["status"] = "missing"
        absent["_order"] = [order[cid] for cid in absent["cell_id"]]
        cells = pd.concat([results, absent], ignore_index=True)
    else:
        cells = results.reset_index(drop=True)
    cells = cells.fillna("").astype(object)

    name = sweep.get("name") if isinstance(sweep.get("name"), str) else None
    if name and ("sweep" not in cells or not any(cells["sweep"])):
        cells["sweep"] = name
    _fill_constants(cells, [c for c in results.columns if c not in expected.columns])
    cells["resolution"] = _resolution(cells)
    cells["_h"] = pd.to_numeric(cells.get("height", pd.Series([""] * len(cells))), errors="coerce")
    cells["_w"] = pd.to_numeric(cells.get("width", pd.Series([""] * len(cells))), errors="coerce")
    cells["_row"] = pd.to_numeric(cells["_row"], errors="coerce")
    cells["_seconds"] = pd.to_numeric(cells.get("seconds", pd.Series([""] * len(cells))), errors="coerce")
    for column in ("error", "image", "prompt", "negative_prompt"):
        if column not in cells:
            cells[column] = ""
    # A hand-edited 'images/../../x' is not followed: only files inside the run (or sweep) dir are shown.
    cells["image"] = [v if v and _inside(run_dir, v) else "" for v in cells["image"]]

    layout = sweep.get("layout") if isinstance(sweep.get("layout"), dict) else manifest.get("layout")
    hint = {k: layout.get(k) for k in ("rows", "cols", "sheets")} if isinstance(layout, dict) else {}
    return RunData(run_dir=run_dir, cells=cells.sort_values("_order", kind="stable").reset_index(drop=True),
                   name=name, layout_hint=hint, candidates=_candidates(cells, sweep.get("grid")),
                   labels=_labels(run_dir, sweep))


def _check_table(run_dir: Path, path: Path, manifest: dict[str, Any]) -> None:
    """results.csv as the run checks it (sweep.rundir.results): random bytes, a torn row inside, an unknown status, a
    renamed column, a value edited against the cell_id it belongs to, or an empty file are refused with one line
    (TableError) before the report writes or deletes anything."""
    from sweep.rundir.results import Table, TableError, check_columns, check_values, parse_table

    if path.stat().st_size == 0:  # the run writes the header atomically before any row: 0 bytes is not its table
        raise TableError(f"{path}: line 1: an empty file (0 bytes), not a results table")
    table: Table = parse_table(path, required=())
    merged = "job" in table.columns  # a multirun's sweep dir: job, overrides and the keys swept on the command line
    swept = {o.partition("=")[0].lstrip("+~") for row in table.rows for o in row.get("overrides", "").split()}
    check_columns(table, allowed=("job", "overrides", *swept) if merged else ())
    if not merged:
        cells = manifest.get("expected_cells") or []
        check_values(table, {c["cell_id"]: c for c in cells if isinstance(c, dict) and c.get("cell_id")})
        return
    jobs: dict[str, dict[str, Any]] = {}
    for row in table.rows:  # each job's manifest, found from its images' paths (`0/images/...`)
        folder = row.get("image", "").rpartition("/images/")[0]
        if folder and row.get("job") not in jobs and _inside(run_dir, folder):
            found = _read_manifest(run_dir / folder / MANIFEST).get("expected_cells") or []
            jobs[row.get("job", "")] = {c["cell_id"]: c for c in found if isinstance(c, dict) and c.get("cell_id")}
    check_values(table, {}, cell_of=lambda row: jobs.get(row.get("job", ""), {}).get(row.get("cell_id", "")))


def words(run: RunData, axis: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The sweep file's words for an axis (its `title`, `description`) and for its values, keyed by the value as
    the report labels it ('7' for 7.0): ({...}, {value: {"title"?, "description"?}})."""
    given = run.labels.get(axis)
    given = given if isinstance(given, dict) else {}
    values = given.get("values") if isinstance(given.get("values"), dict) else {}
    return given, {norm_number(as_text(k)): v for k, v in values.items() if isinstance(v, dict)}


def _labels(run_dir: Path, sweep: dict[str, Any]) -> dict[str, Any]:
    """The titles and descriptions the sweep file gave (sweep.json), or for a multirun's sweep dir its jobs'
    (the first job that names an axis or value wins)."""
    found = sweep.get("labels") if isinstance(sweep.get("labels"), dict) else {}
    if found or (run_dir / MANIFEST).is_file():
        return found
    merged: dict[str, Any] = {}
    for path in sorted(run_dir.glob(f"*/{MANIFEST}")):
        job = _read_manifest(path).get("sweep")
        for axis, entry in ((job or {}).get("labels") or {}).items() if isinstance(job, dict) else ():
            if not isinstance(entry, dict):
                continue
            mine = merged.setdefault(axis, {"values": {}})
            for key in ("title", "description"):
                if entry.get(key) and key not in mine:
                    mine[key] = entry[key]
            for value, texts in (entry.get("values") or {}).items():
                mine["values"].setdefault(value, texts)
    return merged


def _inside(root: Path, relative: str) -> bool:
    base = root.resolve()
    return (root / relative).resolve().is_relative_to(base)


def _fill_constants(cells: pd.DataFrame, unrecorded: list[str]) -> None:
    """Missing cells lack model/device/... (and whatever the manifest did not record): give them the run's
    single value so they do not look different."""
    missing = cells["status"] == "missing"
    if not missing.any():
        return
    for column in dict.fromkeys((*SECONDARY, *ENVIRONMENT, "job", "overrides", *unrecorded)):
        if column not in cells:
            continue
        known = {v for v in cells.loc[~missing, column] if v}
        if len(known) == 1:
            cells.loc[missing & (cells[column] == ""), column] = known.pop()


def _candidates(cells: pd.DataFrame, grid: Any) -> list[str]:
    """Axes that may be inferred: the sweep axes, merged-run columns, keys swept by Hydra and grid keys."""
    names = [a for a in PRIMARY if a == "resolution" or a in cells]
    names += [c for c in cells.columns if c not in names and (a := axes.axis_of_column(c)) and a.name == c]
    names += [a for a in SECONDARY if a in cells]
    # Columns another varying axis rewrites (Prompt S/R rewrites the prompt) follow it; they are not axes.
    derived = {d for a in names if a in axes.BY_NAME and cells[a].nunique() > 1 for d in axes.BY_NAME[a].derives}
    names = [a for a in names if a not in derived]
    swept: list[str] = []
    for text in cells.get("overrides", []):
        for key in _OVERRIDE_KEY.findall(str(text)):
            for name in (key, key.rsplit(".", 1)[-1]):
                if name in cells and name not in NOT_AXES and name not in ("height", "width"):
                    swept.append(name)
                    break
    if isinstance(grid, dict):
        swept += [k for k in grid if k in cells and k not in NOT_AXES]
    return list(dict.fromkeys(names + swept))
