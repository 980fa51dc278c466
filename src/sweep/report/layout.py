"""Which axes vary, how their values are ordered, and which go on rows, columns and sheets.

Precedence: explicit arguments > the sweep author's layout in sweep.json > inferred from what varies.
A varying axis that no slot names is never dropped: it is folded into the sheets (one sheet per combination).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pandas as pd

from sweep import axes
from sweep.errors import suggest
from sweep.report.data import PRIMARY, RunData
from sweep.report.result import Layout, ReportError

ALIASES = axes.aliases()
NONE_WORDS = ("none", "null", "-", "")
SLOTS = ("rows", "cols", "sheets")
# Tie-break for the column axis: a progression reads best left to right; long text reads best on rows.
COL_PREFERENCE = tuple(a.name for a in sorted(axes.AXES, key=lambda a: (
    not a.sorted, not a.numeric, a.enters in ("encode", "transform")))) + ("model", "sweep")
# Added when cells share every parameter (e.g. a foreign table without a `repeat` column).
COPY_AXIS = "copy"


def labels(cells: pd.DataFrame, axis: str) -> pd.Series:
    """The text label of every cell on `axis` (copy numbers are made on demand)."""
    return cells[axis].astype(str)


def order_values(cells: pd.DataFrame, axis: str) -> list[str]:
    """Distinct values of an axis in reading order: numbers ascending, resolution by pixel count,
    seeds, prompts and other text in the sweep's own order (first appearance)."""
    values = list(dict.fromkeys(labels(cells.sort_values("_order", kind="stable"), axis)))
    if axis == "resolution":
        return sorted(values, key=_resolution_key)
    known = axes.BY_NAME.get(axis)
    if known is not None and not known.sorted:
        return values  # seeds, prompts, samplers: as the sweep lists them
    numbers = [finite_decimal(v) for v in values if v != ""]
    if values and all(n is not None for n in numbers):
        # '' (the pipeline's default, e.g. clip_skip null) first, then the numbers ascending.
        return [v for v in values if v == ""] + [v for _, v in sorted(
            zip(numbers, [v for v in values if v != ""], strict=True), key=lambda p: p[0])]
    return values


def finite_decimal(text: str) -> Decimal | None:
    """The label as a finite Decimal; None for text, NaN and infinities."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _resolution_key(label: str) -> tuple[float, float, float]:
    """Labels are WIDTHxHEIGHT: by pixel count, then height, then width."""
    try:
        w, h = (float(x) for x in label.split("x"))
    except ValueError:
        return (float("inf"), 0.0, 0.0)
    return (h * w, h, w)


def varying(cells: pd.DataFrame, axes: list[str]) -> list[str]:
    """Axes with more than one value among these cells."""
    return [a for a in axes if a in cells and labels(cells, a).nunique() > 1]


def dependents(cells: pd.DataFrame, axes: list[str]) -> dict[str, str]:
    """Secondary axes that are a function of an earlier axis (dtype follows model): {dependent: master}.

    They are not laid out separately (that would make a sparse grid) but shown beside their master's value.
    Primary sweep axes are never demoted.
    """
    found: dict[str, str] = {}
    for i, axis in enumerate(axes):
        if axis in PRIMARY:
            continue
        for master in axes[:i]:
            if master in found:
                continue
            if cells.groupby(labels(cells, master))[axis].nunique().max() == 1:
                found[axis] = master
                break
    return found


def canonical(name: str, allowed: list[str], key: str) -> str:
    """An axis name or alias -> the column it means; unknown names raise with the list of allowed ones."""
    text = name.strip()
    if text in allowed:
        return text
    alias = ALIASES.get(text.lower())
    if alias in allowed:
        return alias
    raise ReportError(key, name, "one of " + ", ".join(allowed) + " (or none), comma-separated to combine"
                      + suggest(text, [*allowed, *(a for a, axis in ALIASES.items() if axis in allowed)]))


def parse_slot(key: str, value: str | list[str] | tuple[str, ...] | None,
               allowed: list[str]) -> tuple[str, ...] | None:
    """None: not given. (): explicitly empty ('none'). Otherwise the axes, in order."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    if len(parts) == 1 and parts[0].strip().lower() in NONE_WORDS:
        return ()
    axes = tuple(canonical(p, allowed, key) for p in parts if p.strip())
    if len(set(axes)) != len(axes):
        raise ReportError(key, value, "each axis once")
    return axes


def choose_layout(run: RunData, cells: pd.DataFrame, explicit: dict[str, tuple[str, ...] | None],
                  group: str | None = None) -> tuple[Layout, dict[str, str]]:
    """Resolve the layout for these cells; returns it and the dependent axes shown beside masters."""
    moving = varying(cells, run.candidates)
    deps = dependents(cells, moving)
    moving = [a for a in moving if a not in deps]
    slots: dict[str, tuple[str, ...] | None] = dict(explicit)
    used = {a for axes in slots.values() if axes for a in axes}

    # The sweep author's layout fills the slots the user left open, where its axis still varies.
    hint_applies = group is None or group == run.name
    for slot in SLOTS:
        if slots.get(slot) is not None or not hint_applies:
            continue
        name = run.layout_hint.get(slot)
        axis = ALIASES.get(str(name).lower(), name) if name else None
        if axis and axis in moving and axis not in used:
            slots[slot] = (axis,)
            used.add(axis)

    rest = sorted((a for a in moving if a not in used),
                  key=lambda a: (-labels(cells, a).nunique(), _priority(a)))
    rows, cols, sheets = (list(slots.get(s) or ()) for s in SLOTS)
    if slots.get("cols") is None and slots.get("rows") is None and len(rest) >= 2:
        a, b = rest[:2]
        if labels(cells, a).nunique() == labels(cells, b).nunique() and _priority(b) < _priority(a):
            a, b = b, a
        cols, rows, rest = [a], [b], rest[2:]
    if slots.get("cols") is None and not cols and rest:
        cols, rest = [rest[0]], rest[1:]
    if slots.get("rows") is None and not rows and rest:
        rows, rest = [rest[0]], rest[1:]
    if explicit.get("sheets") == () and rest:
        # sheets=none: one sheet (parts only past max_cells). What still varies joins a slot the user left
        # open, with combined labels, rather than quietly becoming sheets again.
        # With rows and cols both given, the rest joins the rows after the user's own (combined labels).
        if explicit.get("cols") is None and explicit.get("rows") is not None:
            cols, rest = cols + rest, []
        else:
            rows, rest = rows + rest, []
    # Whatever still varies becomes one sheet per combination rather than vanishing.
    sheets += [a for a in rest if a not in sheets]

    layout = Layout(tuple(rows), tuple(cols), tuple(sheets), group)
    layout = _separate_copies(cells, layout)
    return layout, deps


def _priority(axis: str) -> int:
    return COL_PREFERENCE.index(axis) if axis in COL_PREFERENCE else len(COL_PREFERENCE) + 1


def _separate_copies(cells: pd.DataFrame, layout: Layout) -> Layout:
    """Cells identical on every laid-out axis would share a slot: add `job` or a copy number to tell them
    apart (the runner's `repeat` column normally does this already)."""
    axes = [*layout.rows, *layout.cols, *layout.sheets]
    if len(cells) <= 1:
        return layout
    if axes:
        keys = cells[axes].astype(str).agg("\x1f".join, axis=1)
    else:
        keys = pd.Series([""] * len(cells), index=cells.index)
    if not keys.duplicated().any():
        return layout
    by_job = "job" in cells and not cells.assign(_k=keys).duplicated(["_k", "job"]).any()
    extra = "job" if by_job else COPY_AXIS
    if extra == COPY_AXIS:
        cells[COPY_AXIS] = (cells.assign(_k=keys).sort_values("_order", kind="stable")
                            .groupby("_k").cumcount() + 1).astype(str)
    if not layout.cols:
        return Layout(layout.rows, (extra,), layout.sheets, layout.group)
    if not layout.rows:
        return Layout((extra,), layout.cols, layout.sheets, layout.group)
    return Layout(layout.rows, layout.cols, (*layout.sheets, extra), layout.group)
