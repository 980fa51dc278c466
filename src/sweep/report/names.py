"""Values as users name them in plots and summaries: 'CFG 7', '30 steps', 'DPM++ 2M Karras', and prompts by a
short id ('P1') whose full text is listed once (a legend line or a table), never a paragraph per label."""

from __future__ import annotations

import pandas as pd

from sweep import axes
from sweep.report.layout import order_values

# Prompt-like text axes get ids: their values are paragraphs.
PREFIX = {"prompt": "P", "negative_prompt": "N", "prompt_2": "Q", "negative_prompt_2": "M", "prompt_sr": "S"}
SHORT = 40  # characters of a prompt kept beside its id


def is_text(axis: str) -> bool:
    return axis in PREFIX


def ids(cells: pd.DataFrame, axis: str) -> dict[str, str]:
    """{value: 'P1'} in the sweep's order, for a text axis; {} for others."""
    if not is_text(axis):
        return {}
    return {v: f"{PREFIX[axis]}{i}" for i, v in enumerate(order_values(cells, axis), start=1)}


def shorten(text: str, limit: int = SHORT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def name(cells: pd.DataFrame, axis: str, value: str, *, long: bool = False) -> str:
    """One value with its axis: 'CFG 7'; a prompt 'P1' (long: 'P1 "a photo of an astronaut…"')."""
    found = ids(cells, axis).get(value)
    if found:
        shown = axes.label(axis, value)
        return f"{found} “{shorten(shown)}”" if long else found
    return axes.says(axis, value)


def names(cells: pd.DataFrame, axis: str, values: list[str]) -> str:
    """Several values of one axis, the axis said once where it reads so: 'CFG 3, 5, 7'; samplers listed."""
    if len(values) == 1:
        return name(cells, axis, values[0])
    said = [axes.says(axis, v) for v in values]
    head = axes.title(axis)
    plain = [axes.label(axis, v) for v in values]
    if not is_text(axis) and all(s == f"{head} {p}" for s, p in zip(said, plain, strict=True)):
        return f"{head} {', '.join(plain)}"
    if axis == "num_inference_steps":
        return f"{', '.join(plain)} steps"
    return ", ".join(name(cells, axis, v) for v in values)


def legend(cells: pd.DataFrame, axes_: list[str]) -> list[str]:
    """'P1: full text' lines for the text axes among these axes."""
    out = []
    for axis in axes_:
        for value, found in ids(cells, axis).items():
            out.append(f"{found}: {axes.label(axis, value)}")
    return out


def keys_for(cells: pd.DataFrame, text: str) -> list[str]:
    """The legend lines ('P1: full text') of every prompt id that `text` uses (an id is never left unexplained)."""
    import re

    out = []
    for axis in PREFIX:
        if axis not in cells:
            continue
        for value, found in ids(cells, axis).items():
            if re.search(rf"\b{re.escape(found)}\b", text):
                out.append(f"{found}: {axes.label(axis, value)}")
    return out
