"""Cells: one image of a sweep each, their ids, how they enter the pipeline, shape order and batches.

A cell holds a value for every axis of the registry (`sweep.axes`); which values exist, how they read and how
they reach diffusers is the registry's business, so nothing here names an axis except through its role.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweep import axes
from sweep.errors import SweepError

MAX_ID = 180  # file names stay far below the 255-byte limit of most file systems


@dataclass(frozen=True)
class Cell:
    """One image: (axis name, value) for every axis in play, in registry order. None = the pipeline's default."""

    params: tuple[tuple[str, Any], ...]
    _map: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)
    _call: Any = field(init=False, repr=False, compare=False, hash=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_map", dict(self.params))

    def call(self) -> Any:
        """What runs (`sweep.planning.calls.Call`): every value after Prompt S/R, `<lora:...>` tags and the passes' step
        semantics. Everything recorded, checked and bounded about the cell reads it."""
        if self._call is None:
            from sweep.planning.calls import resolve

            object.__setattr__(self, "_call", resolve(self))
        return self._call

    def __getitem__(self, name: str) -> Any:
        return self._map[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._map.get(name, default)

    @property
    def seed(self) -> int:
        return self._map["seed"]

    @property
    def num_inference_steps(self) -> int:
        return self._map["num_inference_steps"]

    @property
    def guidance_scale(self) -> float:
        return self._map["guidance_scale"]

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height), or None for the model's native size."""
        return self._map.get("resolution")

    @property
    def width(self) -> int | None:
        return self.size[0] if self.size else None

    @property
    def height(self) -> int | None:
        return self.size[1] if self.size else None

    @property
    def cfg(self) -> bool:
        """Classifier-free guidance is on (diffusers turns it off for guidance_scale <= 1): another UNet batch."""
        return self.guidance_scale > 1.0

    @property
    def cell_id(self) -> str:
        """Stable, file-name-safe identity made of every set value: also the image's file name without `.png`."""
        parts = [axes.get(name).id(value) for name, value in self.call().values
                 if value is not None and not (name == "repeat" and value == 0)]
        text = "_".join(parts)
        if len(text) > MAX_ID:  # many long values: keep a readable head, stay unique with a hash of the whole
            text = text[: MAX_ID - 11].rstrip("_-") + "_" + hashlib.sha1(text.encode()).hexdigest()[:10]
        return text

    def texts(self) -> dict[str, str | None]:
        """The prompt texts as the text encoders get them, after any prompt transform (Prompt S/R); an empty
        optional text is None (an empty negative is zeros however it became empty)."""
        return dict(self.call().texts)

    def encode_args(self) -> dict[str, Any]:
        """Keyword arguments of `pipe.encode_prompt` (the prompt cache key)."""
        args = self.texts()
        args.update({n: v for n, v in self.call().values if axes.get(n).enters == "encode" and n not in args})
        return args

    def call_args(self) -> dict[str, Any]:
        """Pipeline keyword arguments set by the cell (None values are left to the pipeline's default)."""
        return {n: v for n, v in self.call().values if v is not None and axes.get(n).enters == "call"}

    def state(self) -> tuple[tuple[str, Any], ...]:
        """Values set on the shared pipeline rather than passed to a call (LoRA strengths): calls with different
        states never run at the same time. `<lora:NAME:W>` tags are applied (sweep.planning.calls)."""
        call = self.call()
        state = {n: v for n, v in call.values if axes.get(n).enters == "state"}
        state.update({f"{axes.LORA}.{name}": weight for name, weight in call.loras})
        return tuple(state.items())

    def batch_key(self) -> tuple:
        """Cells with equal keys may share one pipeline call: they differ only on axes that do not split calls
        (the seed). Repeats never share a call, so `repeat` shows that separate calls with one seed agree."""
        return tuple((n, v) for n, v in self.params if axes.get(n).splits_calls)

    def record(self, facts: axes.Facts | axes.PerModel | None = None) -> dict[str, Any]:
        """The cell's results.csv columns: every axis's columns, prompt texts as the encoders got them, and unset
        values the model decides (its own scheduler) as `facts` say (those of the cell's checkpoint)."""
        facts = axes.facts_for(facts, self)
        out: dict[str, Any] = {"cell_id": self.cell_id}
        for name, value in self.call().values:
            out.update(axes.get(name).to_record(value, facts))
        out.update({k: v for k, v in self.texts().items() if k in out})
        return out

    def with_size(self, size: tuple[int, int]) -> Cell:
        return Cell(tuple((n, size if n == "resolution" else v) for n, v in self.params))


def expand(base: Mapping[str, Any], swept: Sequence[axes.Values]) -> list[Cell]:
    """The cartesian product of the swept values over the base, in registry order (the reading order)."""
    names = [n for n in base]
    by_name = {v.axis.name: v.values for v in swept}
    order = sorted(by_name, key=lambda n: names.index(n))
    cells = []
    fills = [a for a in axes.AXES if a.part_of and a.fill is not None and a.name in base]
    for combo in itertools.product(*(by_name[n] for n in order)):
        values = {**base, **dict(zip(order, combo, strict=True))}
        for axis in fills:  # a pass that is on gets A1111's defaults for what was left unset (Hires. fix: 0.7)
            if values[axis.name] is None and values.get(axis.part_of) is not None:
                values[axis.name] = axis.fill
        cells.append(Cell(tuple((n, values[n]) for n in names)))
    return cells


def with_native_size(cells: Iterable[Cell], size: tuple[int, int]) -> list[Cell]:
    """Fill an unset size with the model's native (width, height), as diffusers does."""
    return [c if c.size else c.with_size(size) for c in cells]


def shape_order(cells: Sequence[Cell]) -> list[Cell]:
    """Generation order: what is loaded (checkpoint, then VAE: the axes with a `cost`, costliest outermost, in
    grid order) so each loads once; inside that one resolution at a time, CFG on/off grouped inside it,
    batchable cells together.

    Shape changes cost (new buffers, recompiles under torch.compile), so the layout's order is irrelevant here.
    """
    costly = sorted((a for a in axes.AXES if a.cost > 0), key=lambda a: -a.cost)
    loads: dict[str, dict[Any, int]] = {a.name: {} for a in costly}
    for cell in cells:
        for axis in costly:
            loads[axis.name].setdefault(cell.get(axis.name), len(loads[axis.name]))
    first: dict[tuple, int] = {}
    for cell in cells:
        first.setdefault(cell.batch_key(), len(first))
    states: dict[tuple, int] = {}
    for cell in cells:
        states.setdefault(cell.state(), len(states))
    # Pipeline state (LoRA strengths) changes least often after shapes: set_adapters between groups, not calls.
    return sorted(cells, key=lambda c: (*(loads[a.name][c.get(a.name)] for a in costly),
                                        (c.width or 0) * (c.height or 0), c.height or 0, not c.cfg,
                                        states[c.state()], first[c.batch_key()], c.seed))


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


def auto_batch_size(width: int, height: int, device: str) -> int:
    """Images per call: enough to amortise per-call overhead, few enough to stay far from memory limits."""
    # CPU: 4 images of 256x256 per call; more saves no time there and holds more activations (peak memory).
    budget = 4 * 1024 * 1024 if device.startswith("cuda") else 512 * 512
    return max(1, min(8, budget // (height * width)))


def check_unique_ids(cells: Sequence[Cell]) -> None:
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.cell_id in seen and seen[cell.cell_id] != cell:  # never silently overwrite an image
            raise SweepError(f"sweep.grid: two cells share the file name {cell.cell_id}; allowed: values that "
                             "differ in their written form")
        seen[cell.cell_id] = cell
