"""How each axis reads its values: the parse functions the registry's entries name, and how their values are
recorded."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sweep.axes.samplers import (
    SAMPLERS,
    SchedulerSpec,
    check_schedule_type,
    check_scheduler,
)
from sweep.axes.values import (
    MAX_GUIDANCE,
    MAX_SEED,
    Facts,
    Parse,
    _float,
    _int,
    check_size,
    check_text,
    number_text,
    text_id,
)
from sweep.errors import bad_value
from sweep.naming import slug


def _number_or(text: str, default: float) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def _steps(value: Any, key: str, facts: Facts) -> int:
    limit = facts.num_train_timesteps
    return _int(value, key, f"an integer from 1 to {limit} (the scheduler's num_train_timesteps)", 1, limit)


def _guidance(value: Any, key: str, facts: Facts) -> float:
    return _float(value, key, f"a number from 0 to {MAX_GUIDANCE:g} (<= 1 turns classifier-free guidance off)",
                  0.0, MAX_GUIDANCE)


def _seed(value: Any, key: str, facts: Facts) -> int:
    return _int(value, key, f"an integer in [0, {MAX_SEED}]", 0, MAX_SEED)


def _clip_skip(value: Any, key: str, facts: Facts) -> int | None:
    if value is None:
        return None
    top = (facts.text_layers - 1) if facts.text_layers else 10
    # diffusers' clip_skip=1 uses the layer before the penultimate one (A1111's "Clip skip: 2").
    return _int(value, key, f"an integer from 0 to {top} (layers skipped; A1111's 'Clip skip' minus 1), or null",
                0, top)


def _optional_float(low: float, high: float, what: str, open_low: bool = False) -> Parse:
    def parse(value: Any, key: str, facts: Facts) -> float | None:
        return None if value is None else _float(value, key, f"{what}, or null for the pipeline's default",
                                                 low, high, open_low=open_low)
    return parse


def _switch(value: Any, key: str, facts: Facts) -> float | None:
    if value is None:
        return None
    allowed = ("a fraction strictly between 0 and 1 (of the steps the base runs before the refiner takes over), "
               "e.g. 0.8, or null for 0.8")
    switch = _float(value, key, allowed, 0.0, 1.0, open_low=True)
    if switch == 1.0:  # the refiner would get no step at all
        raise bad_value(key, value, allowed)
    return switch


def _text(optional: bool) -> Parse:
    return lambda value, key, facts: check_text(value, key, optional=optional)


def _size(value: Any, key: str, facts: Facts) -> tuple[int, int] | None:
    return None if value is None else check_size(value, key)


def _scheduler(value: Any, key: str, facts: Facts) -> SchedulerSpec | None:
    return check_scheduler(value, key)


def _schedule_type(value: Any, key: str, facts: Facts) -> str | None:
    return check_schedule_type(value, key)


def _prompt_syntax(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.prompts.syntax import syntax_of

    return syntax_of(value, key)


def _syntax_infotext(value: str) -> list[tuple[str, Any]]:
    """A1111 writes `Emphasis: None` when its attention syntax is off; compel's syntax is not A1111's."""
    return [("Emphasis", "None")] if value == "none" else [("Prompt syntax", value)]


def _replacement(value: Any, key: str, facts: Facts) -> str:
    text = check_text(value, key, optional=True)
    return text if text is not None else ""


def _size_record(value: tuple[int, int] | None) -> dict[str, Any]:
    width, height = value if value else (None, None)
    return {"height": height, "width": width}


def _scheduler_record(value: SchedulerSpec | None) -> dict[str, Any]:
    return {"scheduler": value.name if value else None, "scheduler_class": value.class_text if value else None}


def _scheduler_id(value: SchedulerSpec) -> str:
    """'DPM-2M-Karras' for A1111 names (all distinct as slugs); a class with options gets a hash of them."""
    return slug(value.name, 40) if value.name in SAMPLERS else text_id("", value.name, 24)


def _sr_record(value: tuple[str, str] | None) -> dict[str, Any]:
    return {"prompt_sr": value[1] if value else None}


def _control_image(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.axes.images import check_image

    return check_image(value, key)


def _control_record(value: str | None) -> dict[str, Any]:
    from sweep.axes.images import control_image_hash as control_hash

    return {"control_image": value, "control_image_hash": control_hash(value)}


MAX_CONTROL_SCALE = 5.0  # sd-webui-controlnet's Weight slider stops at 2; diffusers has no bound


MAX_FREEU = 10.0  # ComfyUI's FreeU node bounds each of b1, b2, s1, s2 to [0, 10]


MAX_PAG_SCALE = 100.0  # ComfyUI's PerturbedAttentionGuidance node bounds its scale to [0, 100]


FREEU_HELP = (f"off (or false/null) or 'b1,b2,s1,s2': four numbers from 0 to {MAX_FREEU:g} (diffusers' "
              "enable_freeu; SDXL's suggested values are '1.3,1.4,0.9,0.2')")


FREEU_KEYS = ("b1", "b2", "s1", "s2")


def _subseed(value: Any, key: str, facts: Facts) -> int | None:
    return None if value is None else _int(value, key, f"an integer in [0, {MAX_SEED}] (A1111's Variation seed), "
                                           "or null for none", 0, MAX_SEED)


def _freeu(value: Any, key: str, facts: Facts) -> tuple[float, float, float, float] | None:
    """off -> None; 'b1,b2,s1,s2' (or {b1: .., b2: .., s1: .., s2: ..}) -> four floats in [0, MAX_FREEU]."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none",
                                                                                              "null", "")):
        return None  # YAML reads a bare `off` as false
    if isinstance(value, Mapping) and set(value) == set(FREEU_KEYS):
        parts: list[Any] = [value[k] for k in FREEU_KEYS]
    elif isinstance(value, str) and value.count(",") == 3:
        parts = [p.strip() for p in value.split(",")]
    else:
        raise bad_value(key, value, FREEU_HELP)
    numbers = []
    for part in parts:
        if isinstance(part, bool):
            raise bad_value(key, value, FREEU_HELP)
        try:
            number = float(part)
        except (TypeError, ValueError, OverflowError):
            raise bad_value(key, value, FREEU_HELP) from None
        if math.isnan(number) or not 0.0 <= number <= MAX_FREEU:
            raise bad_value(key, value, FREEU_HELP)
        numbers.append(number)
    return tuple(numbers)  # type: ignore[return-value]


MAX_SEED_RESIZE = 16384  # ComfyUI's MAX_RESOLUTION: the noise of a larger size is never useful


SEED_RESIZE_HELP = (f"'WIDTHxHEIGHT' (multiples of 8, at most {MAX_SEED_RESIZE}) the seed's noise is made at, "
                    "or null for the image's own size")


def _seed_resize(value: Any, key: str, facts: Facts) -> tuple[int, int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null", "off")):
        return None
    if not isinstance(value, (str, Mapping)):
        raise bad_value(key, value, SEED_RESIZE_HELP)
    size = check_size(value, key)
    if max(size) > MAX_SEED_RESIZE:
        raise bad_value(key, value, SEED_RESIZE_HELP)
    return size


def freeu_text(value: tuple[float, ...]) -> str:
    """'1.3,1.4,0.9,0.2': the value as users type it (results.csv, labels)."""
    return ",".join(number_text(v) for v in value)


def _freeu_infotext(value: tuple[float, ...]) -> list[tuple[str, Any]]:
    # No A1111 key for diffusers' FreeU: the sd-webui-freeu extension writes its own stage-by-stage settings
    # (backbone windows, cutoffs, a step schedule) that diffusers' four numbers do not fill in. A clear key.
    return [("FreeU", ", ".join(f"{k}={number_text(v)}" for k, v in zip(FREEU_KEYS, value, strict=True)))]


def _ip_image(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.axes.images import check_image

    return check_image(value, key, "to take the look of")


def _ip_record(value: str | None) -> dict[str, Any]:
    from sweep.axes.images import control_image_hash as control_hash

    return {"ip_adapter_image": value, "ip_adapter_image_hash": control_hash(value)}
