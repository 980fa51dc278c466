"""`report.reference`: which image every other image is compared with (parsing only; no heavy imports).

    null / unset     automatic: along num_inference_steps (its largest value) when steps vary, else along the
                     first varying numeric axis other than seed (its last value); no metrics when none varies
    AXIS:VALUE       along AXIS, the image with that value (guidance_scale:7, scheduler:DPM++ 2M Karras)
    AXIS             along AXIS, its last value in reading order
    none             no similarity metrics
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sweep.errors import bad_value

OFF = ("none", "off", "false", "no")
AUTO = ("", "auto")
FORMS = "AXIS:VALUE (e.g. guidance_scale:7), AXIS (its last value), auto, or none"


@dataclass(frozen=True)
class ReferenceSpec:
    """What the user asked for: axis None = automatic; value None = the axis's last value."""

    axis: str | None = None
    value: str | None = None
    off: bool = False


def parse(text: Any, key: str = "report.reference") -> ReferenceSpec:
    """Parse the option; raises SweepError (one line) on a malformed one."""
    if text is None:
        return ReferenceSpec()
    raw = str(text).strip()
    if raw.lower() in AUTO:
        return ReferenceSpec()
    if raw.lower() in OFF:
        return ReferenceSpec(off=True)
    # The axis is before the first colon: axis names have none, values (a prompt) may.
    axis, sep, value = raw.partition(":")
    axis, value = axis.strip(), value.strip()
    if not axis or (sep and not value):
        raise bad_value(key, raw, FORMS)
    return ReferenceSpec(axis, value if sep else None)


def check(text: Any, axes: Mapping[str, Any], key: str = "report.reference", *, strict: bool = False) -> ReferenceSpec:
    """Parse, and when the axis is one this sweep's grid varies, check the value is one of its values, so a
    typo fails before the first image instead of after the last. `strict` (a single run, not a multirun job):
    the axis must be one the grid varies, too. Axes that vary only across the jobs of a multirun (or results
    columns such as model) are checked when the report is built."""
    spec = parse(text, key)
    values = axes.get(spec.axis) if spec.axis else None
    varied = isinstance(values, list | tuple) and len(values) >= 2
    if strict and spec.axis and not varied:
        # The first name of each axis (its own, before its aliases).
        names = list({id(v): name for name, v in reversed(axes.items()) if isinstance(v, list | tuple)
                      and len(v) >= 2}.values())[::-1]
        raise bad_value(key, str(text), "an axis this sweep varies (" + (", ".join(names) or "none varies")
                        + ") as AXIS or AXIS:VALUE, auto, or none")
    if spec.value is None or not varied:
        return spec
    if not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in values):
        return spec  # composite values (a resolution pair): left to the report, which knows their labels
    from sweep.report.data import as_text, norm_number

    known = [norm_number(as_text(v)) for v in values]
    if norm_number(spec.value) not in known:
        raise bad_value(key, str(text), f"a value of {spec.axis}: " + ", ".join(known))
    return spec
