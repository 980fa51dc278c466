"""A sweep file's `titles:` and `descriptions:`: the viewer's words for its axes and their values.

    titles:
      guidance_scale: CFG                       # the axis's title
      prompt: {values: {"a photo of an astronaut riding a horse on mars": Astronaut}}   # titles of values
      scheduler: {title: Sampler used, values: {Euler a: ancestral Euler}}
    descriptions:
      guidance_scale: How closely the image follows the prompt
      num_inference_steps: {values: {10: the fast preview}}

An axis without a title keeps the registry's words ("CFG scale", "Sampler"). Checked with the plan (every axis
one the sweep varies, every value one of its values), recorded in sweep.json with the layout, read by the viewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweep import axes
from sweep.errors import bad_value

KINDS = {"titles": "title", "descriptions": "description"}
MAX_TEXT = 2000  # a description is a sentence or a paragraph, not a document


def check(sweep: Mapping[str, Any], swept: list[axes.Values], facts: axes.Facts,
          multirun: bool = False) -> dict[str, dict[str, Any]]:
    """{axis: {"title"?: str, "description"?: str, "values": {value as written: {"title"?, "description"?}}}} from
    the sweep's titles and descriptions; raises the one line for an axis the sweep does not vary, a value the
    axis does not have, or a text that is not one. In a multirun any axis may be named (Hydra's -m varies axes
    this job does not see), and values of those are not checked."""
    by_name = {v.axis.name: v for v in swept}
    aliases = axes.aliases()
    found: dict[str, dict[str, Any]] = {}
    for section, field in KINDS.items():
        given = sweep.get(section) or {}
        if not isinstance(given, Mapping):
            raise bad_value(f"sweep.{section}", given, "a mapping of axis names to texts")
        for name, spec in given.items():
            key = f"sweep.{section}.{name}"
            axis = aliases.get(str(name).lower(), str(name))
            varied = [n for n, v in by_name.items() if len(v.values) > 1]
            if axis not in by_name and not (multirun and axis in axes.BY_NAME):
                raise bad_value(key, name, "an axis this sweep varies: " + (", ".join(varied) or "none"))
            if axis in by_name and len(by_name[axis].values) < 2 and not multirun:
                # one value: no sheet, viewer or plot has this axis, so its words would be dropped without a word
                raise bad_value(key, name, f"an axis this sweep varies ({axis} has one value, "
                                f"{by_name[axis].values[0]!s:.40}, shown nowhere by its title): "
                                + (", ".join(varied) or "none"))
            entry = found.setdefault(axis, {"values": {}})
            if isinstance(spec, str):
                entry[field] = _text(spec, key)
                continue
            if not isinstance(spec, Mapping) or set(spec) - {field, "values"}:
                raise bad_value(key, spec, f"a text, or a mapping with {field} (a text) and values (value: text)")
            if spec.get(field) is not None:
                entry[field] = _text(spec[field], f"{key}.{field}")
            values = spec.get("values") or {}
            if not isinstance(values, Mapping):
                raise bad_value(f"{key}.values", values, "a mapping of this axis's values to texts")
            for value, text in values.items():
                if axis in by_name:
                    _check_value(by_name[axis], value, f"{key}.values", facts)
                entry["values"].setdefault(str(value), {})[field] = _text(text, f"{key}.values.{value}")
    return found


def _check_value(values: axes.Values, value: Any, key: str, facts: axes.Facts) -> None:
    try:
        parsed = values.axis.parse(value, key, facts)
    except Exception:
        parsed = object()  # not even a value of the axis's kind
    if parsed not in values.values:
        shown = ", ".join(str(v) for v in values.values[:12]) + (", ..." if len(values.values) > 12 else "")
        raise bad_value(key, value, f"a value of sweep.grid.{values.axis.name}: {shown}")


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip() \
            or len(str(value)) > MAX_TEXT:
        raise bad_value(key, value, f"a text of 1 to {MAX_TEXT:,} characters")
    return str(value).strip()
