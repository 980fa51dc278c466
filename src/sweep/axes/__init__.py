"""The axis registry: what every sweepable setting is, declared once.

Each `Axis` entry says, in one place: its name (diffusers' own argument name where there is one), how a value
is parsed and checked (one-line error: key, value, what is allowed), how it enters the pipeline call (`enters`:
a call argument, the text encoders, the image size, the scheduler, the generator, a prompt transform), whether
cells that differ on it may share one call, its results.csv column(s), its label in sheets and plots, its part
of the cell id / file name, and its A1111 infotext key. Grid expansion, the runner, resume identity, PNG
metadata, the report, the multirun merge and the config schema all read this table; adding an axis is one
entry here (A1111's `AxisOption` list and Infinity Grid's `GridSettingMode` are the field's precedent).

Import cost matters (bad input must be refused in well under a second): nothing here imports torch or
diffusers except the rare paths that validate a scheduler class's options.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.axes.images import (  # noqa: F401 - the registry's names stay sweep.axes.NAME
    BUILT_IN_CHECKPOINTS,
    HIRES_LATENT,
    file_label,
    hires_size,
    image_hash,
    output_size,
)
from sweep.axes.parsers import (  # noqa: F401 - the registry's names stay sweep.axes.NAME
    FREEU_KEYS,
)
from sweep.axes.registry import (  # noqa: F401 - the registry's names stay sweep.axes.NAME
    AXES,
    BY_NAME,
    LORA,
    NOT_AXES,
    TEXT_AXES,
    Axis,
    known,
    label,
    lora_axis,
    says,
    title,
)
from sweep.axes.samplers import (  # noqa: F401 - the registry's names stay sweep.axes.NAME
    COMFY_SAMPLERS,
    COMFY_SCHEDULERS,
    SAMPLERS,
    SCHEDULER_CLASSES,
    SIGMA_DONOR,
    SchedulerSpec,
    _diffusers_folder,
    _parsed,
    _source_defaults,
    automatic_schedule,
    check_schedule_pair,
    check_scheduler,
    max_steps,
    schedule_build,
    spec_from_config,
)
from sweep.axes.values import (  # noqa: F401 - the registry's names stay sweep.axes.NAME
    _RANDOM,
    Facts,
    _float,
    _int,
    _unique,
    check_side,
    check_text,
    number_text,
    range_values,
    text_id,
)
from sweep.errors import SweepError, bad_value, suggest
from sweep.naming import slug


class PerModel(dict):
    """Facts of each model a sweep loads (a `checkpoint` / `vae` axis), keyed by `model_key(cell)`."""


def model_key(cell: Any) -> tuple[tuple[str, Any], ...]:
    """What a cell loads: its values of the axes that enter as "model" (checkpoint, VAE)."""
    return tuple((n, v) for n, v in cell.params if get(n).enters == "model")


def facts_for(facts: Facts | PerModel | None, cell: Any) -> Facts | None:
    """The facts of the model a cell is made with."""
    return facts[model_key(cell)] if isinstance(facts, PerModel) else facts


# --- value checks ----------------------------------------------------------------------------------------


# --- schedulers (samplers) ------------------------------------------------------------------------------




# --- the registry ----------------------------------------------------------------------------------------



# --- model files, second passes and image-to-image ------------------------------------------------------



# --- variation seeds, FreeU and PAG (models.variations, models.unet_tweaks) ----------------------------------



def grid_entries(key: str, raw: Any) -> list[tuple[str, Any]]:
    """A grid key and its value as axes: the `lora` family's mapping gives one axis per LoRA."""
    if key != LORA:
        return [(key, raw)]
    if not isinstance(raw, Mapping) or not raw:
        raise bad_value(f"sweep.grid.{LORA}", raw, "a mapping of LoRA names (from model.lora) to strengths, e.g. "
                        "{detail: [0, 0.5, 1]}")
    return [(f"{LORA}.{name}", values) for name, values in raw.items()]


def get(name: str, key: str | None = None) -> Axis:
    """The axis called `name`; an unknown name exits 2 listing what is allowed."""
    if name.startswith(f"{LORA}."):
        return lora_axis(name.split(".", 1)[1])
    axis = BY_NAME.get(name) or _pipeline_argument(name)
    if axis is None:
        allowed = ", ".join(BY_NAME)
        raise bad_value(key or f"sweep.grid.{name}", name, f"an axis: {allowed}, or a scalar argument of "
                        f"StableDiffusionXLPipeline.__call__{suggest(name, BY_NAME)}")
    return axis


def argument_kind(annotation: str) -> str | None:
    """bool, int, float or str for a scalar argument's annotation text; None for anything else."""
    kind = next((t for t in ("bool", "int", "float", "str") if re.search(rf"\b{t}\b", annotation)), None)
    if kind is None or any(w in annotation for w in ("list", "tuple", "Tensor", "dict", "Callable")):
        return None
    return kind


@functools.cache
def _call_annotations() -> dict[str, str]:
    """StableDiffusionXLPipeline.__call__'s arguments -> their annotations as text, read from the installed
    diffusers' source file: importing diffusers takes seconds (torch with it), and a misspelt axis is refused
    before anything heavy is imported. Falls back to the import where the file is not where diffusers keeps it."""
    from sweep.axes.samplers import call_annotations

    found = call_annotations("pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl.py",
                             "StableDiffusionXLPipeline")
    if found is not None:
        return found
    import inspect

    from diffusers import StableDiffusionXLPipeline

    parameters = inspect.signature(StableDiffusionXLPipeline.__call__).parameters
    return {k: "" if p.annotation is inspect.Parameter.empty else str(p.annotation) for k, p in parameters.items()}


def _pipeline_argument(name: str) -> Axis | None:
    """A scalar keyword argument of the installed diffusers' SDXL call that no entry above covers, typed from
    its annotation (so a newer diffusers' new argument is an axis too)."""
    if name in NOT_AXES or name.startswith("_"):
        return None
    text = _call_annotations().get(name)
    if text is None:
        return None
    kind = argument_kind(text)
    if kind is None:
        return None

    def parse(value: Any, key: str, facts: Facts) -> Any:
        if value is None:
            return None
        if kind == "bool":
            if not isinstance(value, bool):
                raise bad_value(key, value, "true or false")
            return value
        if kind == "int":
            return _int(value, key, "an integer", -(2**63), 2**63 - 1)
        if kind == "float":
            return _float(value, key, "a finite number", -math.inf, math.inf)
        return check_text(value, key, optional=True)

    numeric = kind in ("int", "float")
    return Axis(name, parse, "call", numeric=numeric, ranges=numeric, timing=str,  # unknown cost: its own class
                id=lambda v: f"{slug(name, 12)}{number_text(v) if numeric else text_id('', str(v), 12)}",
                infotext=lambda v: [(name, v)], info_rank=95)


def base_axes() -> list[Axis]:
    """Axes that are also top-level config keys (resolution's are `height`/`width`, diffusers' names)."""
    return [a for a in AXES if a.base_type is not None]


def aliases() -> dict[str, str]:
    """Other names of axes (lower case) -> the axis name."""
    return {alias: a.name for a in AXES for alias in a.aliases}


def dependent_columns() -> set[str]:
    """Columns that belong to an axis without being its name (height/width of resolution, scheduler_class)."""
    return {c for a in AXES for c in a.cols if c != a.name}


def columns(extra: Iterable[str] = ()) -> list[str]:
    """The parameter columns of results.csv, in registry order, plus any extra axes' columns."""
    found = [c for a in AXES for c in a.cols]
    for name in extra:
        found += [c for c in get(name).cols if c not in found]
    return found


def axis_of_column(column: str) -> Axis | None:
    """The axis a results.csv column belongs to ('height' -> resolution), or None."""
    if column.startswith(f"{LORA}."):
        return lora_axis(column.split(".", 1)[1])
    for axis in AXES:
        if column == axis.name or column in axis.cols:
            return axis
    return None


# --- grid values ------------------------------------------------------------------------------------------


@dataclass
class Values:
    """The checked values of one axis, in sweep order, plus how they were given."""

    axis: Axis
    values: list[Any]
    random: bool = False  # seeds drawn with 'random N'
    raw: Any = None


def grid_values(name: str, raw: Any, facts: Facts, limit: int, recorded_seeds: list[int] | None = None) -> Values:
    """Checked values of one grid entry; raises SweepError naming `sweep.grid.NAME`."""
    key = f"sweep.grid.{name}"
    axis = get(name, key)
    if name == "repeat":
        count = _int(raw, key, f"an integer from 1 to max_images={limit} (how many times each cell is made)",
                     1, limit)
        return Values(axis, list(range(count)), raw=raw)
    if isinstance(raw, str) and _RANDOM.match(raw):
        if name != "seed":
            raise bad_value(key, raw, "'random N' only on the seed axis")
        count = _int(_RANDOM.match(raw)["n"], key, f"'random N' with N an integer from 1 to max_images={limit}",
                     1, limit)
        if recorded_seeds is not None and len(recorded_seeds) == count:
            return Values(axis, list(recorded_seeds), random=True, raw=raw)
        # Seeds A1111 and most tools show are 32-bit; stay in that range so they can be typed back in.
        return Values(axis, [secrets.randbelow(2**32) for _ in range(count)], random=True, raw=raw)
    if isinstance(raw, str) and ".." in raw and axis.ranges:
        items: list[Any] = list(range_values(raw, key, limit))
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        items = list(raw)
        if not items:
            raise bad_value(key, [], "at least one value (leave the axis out, or null, to not sweep it)")
    else:
        items = [raw]  # one value (text may contain '..': it is never a range)
    if len(items) > limit:
        raise bad_value(key, f"{len(items)} values", f"at most max_images={limit}")
    if name == "prompt_sr":
        return _prompt_sr(axis, items, key, raw)
    values = [axis.parse(item, key, facts) for item in items]
    return Values(axis, _unique(values, key), raw=raw)


def _prompt_sr(axis: Axis, items: list[Any], key: str, raw: Any) -> Values:
    texts = [axis.parse(item, key, Facts()) for item in items]
    if not texts[0]:
        raise bad_value(key, items[0], "a first value that is the (non-empty) text to find in the prompt")
    search = texts[0]
    return Values(axis, _unique([(search, t) for t in texts], key), raw=raw)


__all__ = ["AXES", "Axis", "Facts", "SchedulerSpec", "SweepError", "Values", "get", "grid_values", "label"]
