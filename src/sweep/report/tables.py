"""summary.csv: counts and seconds per image for every value of every axis that varies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sweep.report.atomic import save_csv
from sweep.report.layout import labels, order_values

SUMMARY = "summary.csv"
COLUMNS = ["axis", "value", "count", "ok", "failed", "missing", "mean_seconds", "min_seconds", "max_seconds"]


def _stats(cells: pd.DataFrame, axis: str, value: str) -> dict[str, object]:
    ok = cells["status"] == "ok"
    # Only finished images count for time: a failed cell's seconds measure how long it took to fail.
    seconds = cells.loc[ok, "_seconds"].dropna()
    timed = len(seconds) > 0
    return {
        "axis": axis, "value": value if value != "" else "(none)", "count": len(cells), "ok": int(ok.sum()),
        "failed": int((cells["status"] == "failed").sum()),
        "missing": int((cells["status"] == "missing").sum()),
        "mean_seconds": round(float(seconds.mean()), 4) if timed else float("nan"),
        "min_seconds": round(float(seconds.min()), 4) if timed else float("nan"),
        "max_seconds": round(float(seconds.max()), 4) if timed else float("nan"),
    }


def summarise(cells: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One 'all' row, then one row per (axis, value) in reading order."""
    rows = [_stats(cells, "all", "all")]
    for axis in axes:
        values = labels(cells, axis)
        rows += [_stats(cells[values == value], axis, value) for value in order_values(cells, axis)]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_summary(cells: pd.DataFrame, axes: list[str], run_dir: Path) -> Path:
    return save_csv(summarise(cells, axes), run_dir / SUMMARY)
