"""Values as users write them: numbers, texts, sizes and ranges (`10..90 step 10`), each checked into one line
per problem; and the model facts those checks read."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sweep.errors import bad_value
from sweep.naming import slug

DEFAULT_PROMPT = "a photo of an astronaut riding a horse on mars"  # the diffusers SDXL tutorial's


MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts [0, 2**64)


# ComfyUI's KSampler bound for cfg: far beyond any useful guidance, and well below where fp16/fp32 overflow
# turns every image black (guidance_scale=1e308 did exactly that).
MAX_GUIDANCE = 100.0


RANGE_HELP = ("a list, a single value, or a range 'START..END step S' (END included) or 'START..<END step S' "
              "(END excluded)")


_RANGE = re.compile(
    r"^\s*(?P<start>[-+0-9.eE]+)\s*\.\.(?P<excl><)?\s*(?P<stop>[-+0-9.eE]+)\s*(?:step\s+(?P<step>[-+0-9.eE]+))?\s*$"
)


_RANDOM = re.compile(r"^\s*random\s+(?P<n>\S+)\s*$")


_SIZE = re.compile(r"^\s*(?P<w>\d+)\s*[xX×]\s*(?P<h>\d+)\s*$")


@dataclass(frozen=True)
class Facts:
    """What the checks need to know about the model, read from its config files before any weight loads."""

    native_size: tuple[int, int] | None = None  # (width, height) diffusers uses when none is given
    num_train_timesteps: int = 1000
    text_layers: int | None = None  # hidden layers of the shallower text encoder (bounds clip_skip)
    scheduler: Any = None  # the model's own scheduler: an axes.samplers.SchedulerSpec (samplers imports this)
    refiner_switch: float | None = None  # the hand-over fraction used when a refiner is loaded and none is given
    vae: str | None = None  # A1111's `VAE` name of model.vae, what an unset `vae` axis means (None: the model's own)
    timestep_spacing: str | None = None  # the model's scheduler config (what Automatic means for a schedule type)
    steps_offset: int | None = None
    # Feature widths at full resolution in the VAE decoder and first width of the UNet (the memory bound,
    # sweep.planning.memory); SDXL's where the configs are not read.
    vae_channels: int = 128
    unet_channels: int = 320


def _int(value: Any, key: str, allowed: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise bad_value(key, value, allowed)
    return value


def _float(value: Any, key: str, allowed: str, minimum: float, maximum: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise bad_value(key, value, allowed) from None
    low_ok = number > minimum if open_low else number >= minimum
    if not (low_ok and number <= maximum) or math.isnan(number):
        raise bad_value(key, value, allowed)
    return number


def check_text(value: Any, key: str, *, optional: bool) -> str | None:
    """Prompt-like text: a string that is valid Unicode (a lone surrogate such as '\\ud800' cannot be written to
    a PNG or a CSV); empty or null means none where that is allowed."""
    if value is None or (optional and isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise bad_value(key, value, "a non-empty prompt")
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise bad_value(key, value, "a non-empty prompt" if not optional else "text, or null/'' for none")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # repr() shows the surrogate escaped ('caf\\ud800'), so the message itself can be printed.
        raise bad_value(key, value, "text that is valid Unicode (no lone surrogates such as \\ud800)") from None
    return value


def check_side(value: Any, key: str) -> int:
    side = _int(value, key, "a positive multiple of 8", 8)
    if side % 8:
        raise bad_value(key, value, "a positive multiple of 8")
    return side


SIZE_HELP = "'WIDTHxHEIGHT' like '1216x832', {width: W, height: H}, or one number for a square"


def check_size(value: Any, key: str) -> tuple[int, int]:
    """'1216x832' / {width: 1216, height: 832} / 512 -> (width, height). Sizes are WIDTHxHEIGHT, as A1111's
    `Size`, ComfyUI and civitai write them; a bare [a, b] pair is refused because readers disagree on its order."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise bad_value(key, value, SIZE_HELP)
        return check_side(match["w"], key), check_side(match["h"], key)
    if isinstance(value, Mapping):
        if set(value) != {"width", "height"}:
            raise bad_value(key, dict(value), SIZE_HELP)
        return check_side(value["width"], key), check_side(value["height"], key)
    if isinstance(value, Sequence):
        pair = list(value)
        shown = f"{pair[0]}x{pair[1]}" if len(pair) == 2 else "WxH"
        raise bad_value(key, pair, f"{SIZE_HELP}: write '{shown}' (width {pair[0] if len(pair) == 2 else 'W'} "
                        "first) or {width: W, height: H}")
    side = check_side(value, key)
    return side, side


def number_text(value: float | int) -> str:
    """Shortest exact text of a number: 5.0 -> '5', 7.5 -> '7.5', 5.0000001 -> '5.0000001' (file names, labels)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _digest(text: str, n: int = 6) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def text_id(prefix: str, text: str, limit: int) -> str:
    """A readable, unique file-name fragment for any text: ASCII slug plus a short hash of the exact text."""
    head = slug(text, limit)
    return "-".join(p for p in (prefix, head, _digest(text)) if p)


# How an axis reads a value: (value, key for the error line, the model facts) -> the checked value.
Parse = Callable[[Any, str, Facts], Any]


def _number(text: str, key: str, raw: Any) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise bad_value(key, raw, RANGE_HELP) from None
    if not value.is_finite():
        raise bad_value(key, raw, RANGE_HELP)
    return value


def range_values(text: str, key: str, limit: int) -> list[Decimal]:
    """'10..90 step 10' -> 10, 20, ..., 90 (end included); '..<' stops before the end. The count is computed
    first, so '1..1e12' is refused at once instead of filling memory."""
    match = _RANGE.match(text)
    if not match:
        raise bad_value(key, text, RANGE_HELP)
    start, stop = _number(match["start"], key, text), _number(match["stop"], key, text)
    step = _number(match["step"], key, text) if match["step"] else Decimal(1)
    if step <= 0:
        raise bad_value(key, text, "a range step > 0")
    if stop < start:
        raise bad_value(key, text, "a range whose END is not below its START")
    span = (stop - start) / step
    count = int(span) + 1 if not match["excl"] or span != span.to_integral_value() else int(span)
    if count < 1:
        raise bad_value(key, text, "a range with at least one value")
    if count > limit:
        raise bad_value(key, text, f"at most max_images={limit} values (raise it with max_images=N if you mean it)")
    # Decimal arithmetic so '2..3 step 0.1' gives 2.1, not 2.1000000000000001.
    return [start + i * step for i in range(count)]


def _unique(values: list[Any], key: str) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            shown = value[1] if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str) else value
            raise bad_value(key, shown, "each value once (to generate the same cell several times use "
                            "sweep.grid.repeat: N)")
        seen.add(value)
    return values
