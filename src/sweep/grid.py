"""From a sweep's grid to the list of cells: axis values, ranges, random seeds, shape order and batches."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from sweep.errors import SweepError, bad_value
from sweep.naming import slug

AXES = ("prompt", "resolution", "num_inference_steps", "guidance_scale", "seed", "repeat")
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts [0, 2**64)
RANGE_HELP = (
    "a list, a single value, or a range 'START..END step S' (END included) or 'START..<END step S' "
    "(END excluded)"
)
_RANGE = re.compile(
    r"^\s*(?P<start>[-+0-9.eE]+)\s*\.\.(?P<excl><)?\s*(?P<stop>[-+0-9.eE]+)\s*(?:step\s+(?P<step>[-+0-9.eE]+))?\s*$"
)
_RANDOM = re.compile(r"^\s*random\s+(?P<n>\S+)\s*$")
_RESOLUTION = re.compile(r"^\s*(?P<h>\d+)\s*[xX×]\s*(?P<w>\d+)\s*$")


@dataclass(frozen=True)
class Cell:
    """One image of the sweep; fields are diffusers' argument names plus its place in the grid."""

    prompt: str
    negative_prompt: str | None
    seed: int
    num_inference_steps: int
    guidance_scale: float
    height: int | None
    width: int | None
    prompt_index: int = 0
    repeat: int = 0

    @property
    def cell_id(self) -> str:
        """Stable, file-name-safe identity: also the image's file name without `.png`."""
        size = f"{self.height}x{self.width}" if self.height and self.width else "native"
        head = f"p{self.prompt_index}"
        text = slug(self.prompt, 24)
        if text:
            head += f"-{text}"
        tail = f"_r{self.repeat}" if self.repeat else ""
        return (
            f"{head}_seed{self.seed}_steps{self.num_inference_steps}"
            f"_cfg{self.guidance_scale:g}_{size}{tail}"
        )

    @property
    def cfg(self) -> bool:
        """Classifier-free guidance is on (diffusers turns it off for guidance_scale <= 1)."""
        return self.guidance_scale > 1.0

    def batch_key(self) -> tuple:
        """Cells with equal keys may share one pipeline call: they differ only by seed. Repeats never share
        a call, so `repeat` shows that separate calls with one seed give one image."""
        return (self.height, self.width, self.cfg, self.prompt_index, self.num_inference_steps,
                self.guidance_scale, self.repeat)

    def record(self) -> dict[str, Any]:
        return {"cell_id": self.cell_id, **asdict(self)}


# --- axis values -----------------------------------------------------------------------------------------


def _number(text: str, key: str, value: Any) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise bad_value(key, value, RANGE_HELP) from None


def parse_range(text: str, key: str) -> list[Decimal]:
    """'10..90 step 10' -> 10, 20, ..., 90 (end included); '10..<90 step 10' stops before 90."""
    match = _RANGE.match(text)
    if not match:
        raise bad_value(key, text, RANGE_HELP)
    start = _number(match["start"], key, text)
    stop = _number(match["stop"], key, text)
    step = _number(match["step"], key, text) if match["step"] else Decimal(1)
    if step <= 0:
        raise bad_value(key, text, "a range step > 0")
    if stop < start:
        raise bad_value(key, text, "a range whose END is not below its START")
    values = []
    current = start
    # Decimal arithmetic so '2..3 step 0.1' gives 2.1, not 2.1000000000000001.
    while current < stop or (current == stop and not match["excl"]):
        values.append(current)
        current += step
    if not values:
        raise bad_value(key, text, "a range with at least one value")
    return values


def _as_list(raw: Any, key: str) -> list[Any]:
    """A YAML list, a range string or a single scalar -> a list of raw values."""
    if raw is None:
        return []
    if isinstance(raw, str) and ".." in raw:
        return parse_range(raw, key)
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        values = list(raw)
        if not values:
            raise bad_value(key, [], "at least one value (leave the axis out, or null, to not sweep it)")
        return values
    if isinstance(raw, Mapping):
        raise bad_value(key, dict(raw), RANGE_HELP)
    return [raw]


def _int(value: Any, key: str, allowed: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise bad_value(key, value, allowed)
    return value


def _float(value: Any, key: str, allowed: str) -> float:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad_value(key, value, allowed) from None
    if not number >= 0 or number == float("inf"):
        raise bad_value(key, value, allowed)
    return number


def check_steps(value: Any, key: str) -> int:
    return _int(value, key, "an integer >= 1", 1)


def check_guidance(value: Any, key: str) -> float:
    return _float(value, key, "a number >= 0 (<= 1 turns classifier-free guidance off)")


def check_seed(value: Any, key: str) -> int:
    return _int(value, key, f"an integer in [0, {MAX_SEED}]", 0, MAX_SEED)


def check_side(value: Any, key: str) -> int:
    side = _int(value, key, "a positive multiple of 8", 8)
    if side % 8:
        raise bad_value(key, value, "a positive multiple of 8")
    return side


def check_resolution(value: Any, key: str) -> tuple[int, int]:
    """'512x768' / [512, 768] / 512 -> (height, width)."""
    allowed = "'HEIGHTxWIDTH' like '512x768', a [height, width] pair or one size for a square"
    if isinstance(value, str):
        match = _RESOLUTION.match(value)
        if not match:
            raise bad_value(key, value, allowed)
        return check_side(match["h"], key), check_side(match["w"], key)
    if isinstance(value, Sequence):
        if len(value) != 2:
            raise bad_value(key, list(value), allowed)
        return check_side(value[0], key), check_side(value[1], key)
    side = check_side(value, key)
    return side, side


def draw_seeds(raw: Any, key: str, recorded: list[int] | None) -> list[int] | None:
    """'random N' -> N seeds drawn once (or the ones recorded by an earlier run); else None."""
    if not isinstance(raw, str):
        return None
    match = _RANDOM.match(raw)
    if not match:
        return None
    count = _int(match["n"], key, "'random N' with N an integer >= 1", 1)
    if recorded is not None and len(recorded) == count:
        return list(recorded)
    # Seeds A1111 and most tools show are 32-bit; stay in that range so they can be typed back in.
    return [secrets.randbelow(2**32) for _ in range(count)]


def _unique(values: list[Any], key: str) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            hint = " (to generate the same cell several times use sweep.grid.repeat: N)"
            raise bad_value(key, value, f"each value once{hint}")
        seen.add(value)
    return values


def axis_values(grid: Mapping[str, Any], recorded_seeds: list[int] | None = None) -> dict[str, list[Any]]:
    """Checked values of every axis that is set in the grid, by axis name."""
    unknown = sorted(set(grid) - set(AXES))
    if unknown:
        raise bad_value(f"sweep.grid.{unknown[0]}", grid[unknown[0]], "one of the axes " + ", ".join(AXES))
    axes: dict[str, list[Any]] = {}
    for name in AXES:
        raw = grid.get(name)
        key = f"sweep.grid.{name}"
        if raw is None:
            continue
        if name == "seed":
            drawn = draw_seeds(raw, key, recorded_seeds)
            values = drawn if drawn is not None else [check_seed(v, key) for v in _as_list(raw, key)]
        elif isinstance(raw, str) and _RANDOM.match(raw):
            raise bad_value(key, raw, "'random N' only on the seed axis")
        elif name == "num_inference_steps":
            values = [check_steps(v, key) for v in _as_list(raw, key)]
        elif name == "guidance_scale":
            values = [check_guidance(v, key) for v in _as_list(raw, key)]
        elif name == "resolution":
            # A list of pairs is a list of resolutions, not a range.
            values = [check_resolution(v, key) for v in _as_list(raw, key)]
        elif name == "prompt":
            # A single prompt may contain "..": it is text, never a range.
            values = [raw] if isinstance(raw, str) else _as_list(raw, key)
            for value in values:
                if not isinstance(value, str) or not value.strip():
                    raise bad_value(key, value, "non-empty prompt strings")
        else:  # repeat
            values = list(range(_int(raw, key, "an integer >= 1 (how many times each cell is made)", 1)))
        axes[name] = _unique(values, key)
    if not axes:
        raise bad_value("sweep.grid", "no axis", "at least one axis among " + ", ".join(AXES))
    return axes


# --- cells -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """The base parameters every cell starts from (an axis replaces its own)."""

    prompt: str
    negative_prompt: str | None
    seed: int
    num_inference_steps: int
    guidance_scale: float
    height: int | None
    width: int | None


def expand(base: Base, axes: Mapping[str, list[Any]]) -> list[Cell]:
    """The cartesian product of the axes, in layout order (prompt, resolution, steps, guidance, seed)."""
    names = [name for name in AXES if name in axes]
    cells = []
    for combo in itertools.product(*(list(enumerate(axes[name])) for name in names)):
        fields: dict[str, Any] = {
            "prompt": base.prompt,
            "negative_prompt": base.negative_prompt,
            "seed": base.seed,
            "num_inference_steps": base.num_inference_steps,
            "guidance_scale": base.guidance_scale,
            "height": base.height,
            "width": base.width,
        }
        for name, (index, value) in zip(names, combo, strict=True):
            if name == "resolution":
                fields["height"], fields["width"] = value
            elif name == "prompt":
                fields["prompt"], fields["prompt_index"] = value, index
            else:
                fields[name] = value
        cells.append(Cell(**fields))
    return cells


def with_native_size(cells: Iterable[Cell], size: tuple[int, int]) -> list[Cell]:
    """Fill unset height/width with the model's native size (as diffusers does)."""
    height, width = size
    return [replace(c, height=c.height or height, width=c.width or width) for c in cells]


def shape_order(cells: Iterable[Cell]) -> list[Cell]:
    """Generation order: one resolution at a time, CFG on/off grouped inside it, batchable cells together.

    Shape changes cost (new buffers, recompiles under torch.compile), so the layout's order is irrelevant here.
    """
    return sorted(
        cells,
        key=lambda c: ((c.height or 0) * (c.width or 0), c.height or 0, not c.cfg, c.prompt_index,
                       c.num_inference_steps, c.guidance_scale, c.repeat, c.seed),
    )


def batches(cells: Sequence[Cell], batch_size: int) -> list[list[Cell]]:
    """Consecutive cells (in shape order) that differ only by seed, in groups of at most batch_size."""
    groups: list[list[Cell]] = []
    for cell in cells:
        last = groups[-1] if groups else None
        if last and len(last) < batch_size and last[0].batch_key() == cell.batch_key():
            last.append(cell)
        else:
            groups.append([cell])
    return groups


def auto_batch_size(height: int, width: int, device: str) -> int:
    """Images per call: enough to amortise per-call overhead, few enough to stay far from memory limits."""
    budget = 4 * 1024 * 1024 if device.startswith("cuda") else 4 * 512 * 512
    return max(1, min(8, budget // (height * width)))


def check_unique_ids(cells: Sequence[Cell]) -> None:
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):  # only possible through a bug; never silently overwrite an image
        raise SweepError("internal error: two cells share a file name")
