"""From a composed config to a checked plan: base values, grid axes, cells and layout, before any model loads.

Everything a user typed is checked here (one line per error: key, value, what is allowed), and the grid is
counted before it is expanded, so a range of a trillion values is refused in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sweep import axes
from sweep.errors import SweepError, bad_value, suggest
from sweep.grid import Cell, check_unique_ids, expand, with_native_size
from sweep.planning import calls, titles
from sweep.planning.schema import ReportConfig, RunConfig, typed

GENERATOR_DEVICES = "cpu (the same noise on any device), cuda, cuda:N or mps"
# Report layout names that are not axes of one run but columns a report may use.
LAYOUT_EXTRA = ("model", "sweep", "job", "dtype", "device")


@dataclass
class Plan:
    """Everything checked and expanded before the model is loaded or an image is made."""

    name: str
    base: dict[str, Any]  # axis name -> base value, registry order (+ pipeline arguments the grid uses)
    swept: list[axes.Values]
    cells: list[Cell]  # reading order; an unset size is the model's native size
    layout: dict[str, str | None]
    batch_size: int | None
    generator_device: str
    max_images: int
    grid_spec: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # sweep.titles/descriptions (sweep.titles)

    @property
    def random_seeds(self) -> list[int] | None:
        return next((v.values for v in self.swept if v.random), None)

    @property
    def extra_axes(self) -> list[str]:
        """Grid axes that are pipeline arguments without a registry entry of their own."""
        return [n for n in self.base if n not in axes.BY_NAME]

    @property
    def model_axes(self) -> list[str]:
        """Swept axes that change what is loaded (checkpoint, VAE): the runner loads per group of cells."""
        return [v.axis.name for v in self.swept if v.axis.enters == "model"]

    def swept_values(self, name: str) -> list[Any]:
        return next((v.values for v in self.swept if v.axis.name == name), [])

    def resolved(self, facts: axes.Facts | axes.PerModel) -> list[Cell]:
        """The cells with the model's native size filled in and bounds known only from its config re-checked
        (each cell with the facts of its own checkpoint)."""
        cells = []
        for cell in self.cells:
            own = axes.facts_for(facts, cell)
            for name in (a.name for a in axes.AXES if a.model_bound):
                key = f"sweep.grid.{name}" if any(v.axis.name == name for v in self.swept) else name
                if cell.get(name) is not None:
                    axes.get(name).parse(cell.get(name), key, own)
            cells += with_native_size([cell], own.native_size) if own.native_size else [cell]
        check_schedules(self.cells, facts, self.swept)
        calls.check_steps(cells, facts, {v.axis.name for v in self.swept})  # every pass, with its checkpoint's facts
        check_unique_ids(cells)
        return cells


def _integer(value: Any, key: str, allowed: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_value(key, value, allowed)
    return value


def base_values(settings: RunConfig | Any, facts: axes.Facts) -> dict[str, Any]:
    """Every registry axis's base value: the config's top-level key, or the axis's own default. (A composed
    config or a mapping is converted first, for one release: see schema.typed.)"""
    given = typed(settings).values
    base: dict[str, Any] = {}
    for axis in axes.AXES:
        if axis.name == "resolution":
            height, width = (None if given.get(k) is None else axes.check_side(given[k], k)
                             for k in ("height", "width"))
            if (height is None) != (width is None):
                raise bad_value("height" if height is None else "width", None,
                                "height and width both set, or both null for the model's native size")
            base["resolution"] = None if height is None else (width, height)
        elif axis.base_type is not None:
            base[axis.name] = axis.parse(given.get(axis.name, axis.base_default), axis.name, facts)
        else:
            base[axis.name] = 0 if axis.name == "repeat" else None
    return base


def plan_sweep(settings: RunConfig | Any, recorded_seeds: list[int] | None = None,
               facts: axes.Facts | None = None, *, multirun: bool = False) -> Plan:
    """Check every key and value and expand the grid; raises SweepError naming the first bad one.

    `settings`: the checked config (schema.RunConfig). A composed config or a plain mapping is still accepted
    for one release and converted here at the top (schema.typed)."""
    settings = typed(settings)
    facts = facts or axes.Facts()
    sweep = settings.sweep
    model = settings.model
    name = str(sweep.name or "")
    if not name or name == "???":
        raise bad_value("sweep.name", name, "a non-empty name")
    max_images = _integer(settings.max_images, "max_images", "an integer >= 1")
    batch_size = _integer(settings.batch_size, "batch_size", "an integer >= 1, or null for automatic", optional=True)
    generator_device = str(settings.generator_device)
    _check_generator_device(generator_device)
    base = base_values(settings, facts)

    grid_spec = {k: v for k, v in dict(sweep.grid or {}).items() if v is not None}
    entries = [e for k, v in grid_spec.items() for e in axes.grid_entries(k, v)]
    swept = [axes.grid_values(k, v, facts, max_images, recorded_seeds) for k, v in entries]
    if not swept:
        raise bad_value("sweep.grid", "no axis", "at least one axis among " + ", ".join(axes.BY_NAME))
    total = math.prod(len(v.values) for v in swept)
    if total > max_images:
        raise bad_value("sweep.grid", f"{total} images",
                        f"at most max_images={max_images} (raise it with max_images=N if you mean it)")
    layout = {"rows": sweep.layout.rows, "cols": sweep.layout.cols, "sheets": sweep.layout.sheets}
    _check_layout(layout, [v.axis.name for v in swept], multirun)
    _check_report(settings.report, swept, multirun)
    labels = titles.check({"titles": sweep.titles, "descriptions": sweep.descriptions}, swept, facts, multirun)
    from sweep.models import checks as model_checks  # imports torch: after the cheap checks

    _check_model_axes(model, model_checks.check(model), base, swept)
    for values in swept:  # pipeline arguments without an entry of their own join the base, unset
        base.setdefault(values.axis.name, None)
    cells = expand(base, swept)
    _check_prompt_sr(cells)
    _check_passes(cells, [v.axis.name for v in swept], model)
    from sweep.models.controlnet import check_cells

    check_cells(cells, model, [v.axis.name for v in swept])
    from sweep.models import unet_tweaks, variations

    variations.check(cells, [v.axis.name for v in swept])
    unet_tweaks.check(cells, [v.axis.name for v in swept], model)
    calls.check_steps(cells, facts, {v.axis.name for v in swept})  # again with the model's facts (Plan.resolved)
    _check_prompts(cells, model, swept)
    check_schedules(cells, facts, swept)
    return Plan(name=name, base=base, swept=swept, cells=cells, layout=layout, batch_size=batch_size,
                generator_device=generator_device, max_images=max_images, grid_spec=grid_spec, labels=labels)


def _check_model_axes(model: Mapping[str, Any], names: list[str], base: dict[str, Any],
                      swept: list[axes.Values]) -> None:
    """Axes of model files need the files: a LoRA strength needs that LoRA in model.lora (`names`; every LoRA
    of model.lora is in every cell, at strength 1 unless swept), a refiner switch needs model.refiner."""
    for name in names:
        base[f"{axes.LORA}.{name}"] = 1.0
    for values in swept:
        name = values.axis.name
        if name.startswith(f"{axes.LORA}.") and name.split(".", 1)[1] not in names:
            raise bad_value(f"sweep.grid.{name}", name.split(".", 1)[1], "a LoRA named in model.lora: "
                            + (", ".join(names) or "none is set (model.lora=FILE.safetensors)"))
    for axis in (a for a in axes.AXES if a.requires and not model.get(a.requires)):
        if base.get(axis.name) is not None or any(v.axis.name == axis.name for v in swept):
            given = base.get(axis.name)
            if given is None:
                given = next(v.values for v in swept if v.axis.name == axis.name)
            key = axis.name if base.get(axis.name) is not None else f"sweep.grid.{axis.name}"
            raise bad_value(key, given, f"null unless model.{axis.requires} is set: add model.{axis.requires}=...")
    from sweep.models import checkpoint_axes as model_axes

    model_axes.check(model, swept)
    from sweep.models import fit as model_fit

    model_fit.check(model, swept)  # every checkpoint with every VAE it is given: the shapes fit
    if model.get("refiner") and (base.get("denoising_end") is not None
                                 or any(v.axis.name == "denoising_end" for v in swept)):
        raise bad_value("denoising_end", "set", "null when model.refiner is set (refiner_switch is the hand-over)")


def _check_passes(cells: list[Cell], swept: list[str], model: Mapping[str, Any]) -> None:
    """Settings of a pass need the pass (hires_denoise needs hires_scale), Hires. fix and image-to-image do not
    mix (A1111 has Hires. fix in txt2img only) nor go with a refiner (each pass's steps: planning.calls.check_steps)."""
    def key(name: str) -> str:
        return f"sweep.grid.{name}" if name in swept else name

    parts = [a for a in axes.AXES if a.part_of]
    for cell in cells:
        for axis in parts:
            if cell.get(axis.name) is not None and cell.get(axis.part_of) is None:
                raise bad_value(key(axis.name), cell.get(axis.name), f"with {axis.part_of} set ({axis.help} is a "
                                f"setting of that pass), or null")
        hires, init = cell.get("hires_scale"), cell.get("init_image")
        if hires is not None and init is not None:
            raise bad_value(key("hires_scale"), hires, "null when init_image is set (Hires. fix is a text-to-image "
                            "pass, as in A1111)")
        if (hires is not None or init is not None) and model.get("refiner"):
            name = "hires_scale" if hires is not None else "init_image"
            raise bad_value(key(name), cell.get(name), "null when model.refiner is set (one second pass at a time)")


def _check_prompts(cells: list[Cell], model: Mapping[str, Any], swept: list[axes.Values]) -> None:
    """Prompt syntax before anything loads: `<lora:NAME:W>` names a LoRA of model.lora and is not also swept
    (one strength per LoRA and image); every text an edited prompt takes, and prompt editing only in a single
    pass."""
    from sweep.models.lora import parse
    from sweep.prompts.syntax import check_texts, edits_itself

    names = [name for name, _ in parse(model.get("lora"), allow_pickle=bool(model.get("allow_pickle")))]
    swept_loras = {v.axis.name.split(".", 1)[1] for v in swept if v.axis.name.startswith(f"{axes.LORA}.")}
    seen: set[tuple] = set()
    for cell in cells:
        second_pass = ("hires_scale" if cell.get("hires_scale") is not None else "init_image"
                       if cell.get("init_image") is not None else "model.refiner" if model.get("refiner") else None)
        key = (tuple(cell.texts().items()), cell.get("prompt_syntax"), cell.num_inference_steps, second_pass)
        if key in seen:
            continue
        seen.add(key)
        tagged = check_texts(cell.texts(), cell.get("prompt_syntax"), names, cell.num_inference_steps)
        if second_pass and edits_itself(cell.texts(), cell.get("prompt_syntax")):
            edited = next(k for k, v in cell.texts().items() if v and edits_itself({k: v}, cell.get("prompt_syntax")))
            raise bad_value(edited, cell.texts()[edited], f"prompt editing [from:to:when] / alternation [a|b] in a "
                            f"single pass (not with {second_pass}: its second pass's timeline is not supported)")
        both = sorted(set(tagged) & swept_loras)
        if both:
            raise bad_value(f"sweep.grid.{axes.LORA}.{both[0]}", "swept", f"a LoRA that no prompt tags with "
                            f"<lora:{both[0]}:W> (one strength per image: take the tag out or the axis)")


def check_schedules(cells: list[Cell], facts: axes.Facts | axes.PerModel | None, swept: list[axes.Values]) -> None:
    """Each (sampler, schedule type) pair of the grid is one diffusers can build; the model's own sampler counts
    once its config is known."""
    key = "sweep.grid.schedule_type" if any(v.axis.name == "schedule_type" for v in swept) else "schedule_type"
    pairs = set()
    for cell in cells:
        own = axes.facts_for(facts, cell) if facts is not None else None
        pairs.add((cell.get("scheduler") or (own.scheduler if own else None), cell.get("schedule_type")))
    for spec, schedule in pairs:
        axes.check_schedule_pair(spec, schedule, key)


def _check_generator_device(device: str) -> None:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise bad_value("generator_device", device, GENERATOR_DEVICES)
    if kind == "cpu":
        return
    import torch  # only here: a CPU generator (the default) needs no torch at check time

    if kind == "cuda" and (not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count()):
        raise bad_value("generator_device", device, "a device this machine has (no such CUDA device here; cpu "
                        "gives the same noise on any device)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise bad_value("generator_device", device, "a device this machine has (no MPS here; use cpu)")


def _check_layout(layout: Mapping[str, Any], swept: list[str], multirun: bool) -> None:
    aliases = axes.aliases()  # not sweep.report.layout's copy: that module imports pandas, not needed yet
    used: list[str] = []
    for slot, value in layout.items():
        if not value:
            continue
        axis = aliases.get(str(value).lower(), str(value))
        if axis in swept or (multirun and (axis in axes.BY_NAME or axis in LAYOUT_EXTRA)):
            used.append(axis)
            continue
        allowed = ", ".join(swept)
        raise bad_value(f"sweep.layout.{slot}", value, f"an axis this sweep varies: {allowed}" + suggest(axis, swept))
    if len(used) != len(set(used)):
        raise bad_value("sweep.layout", dict(layout), "a different axis for rows, cols and sheets")


def _check_report(report: ReportConfig, swept: list[axes.Values], multirun: bool = False) -> None:
    import dataclasses

    from sweep.report.reference import check as check_reference

    if not isinstance(report.cell_max, int) or report.cell_max < 64:
        raise bad_value("report.cell_max", report.cell_max, "an integer >= 64 (pixels)")
    if not isinstance(report.max_cells, int) or report.max_cells < 1:
        raise bad_value("report.max_cells", report.max_cells, "an integer >= 1")
    # The similarity reference's value must be one the grid has (aliases too: steps:30).
    check_reference(report.reference, {name: v.values for v in swept for name in (v.axis.name, *v.axis.aliases)},
                    strict=not multirun)
    # The scorers' models are found before generation (offline and not cached: one line now, not after the run).
    from sweep.report.scores import ScoreOptions, check

    check(ScoreOptions.from_mapping(dataclasses.asdict(report)))


def _check_prompt_sr(cells: list[Cell]) -> None:
    """A1111's rule for a prompt transform (Prompt S/R): the search text must be in the prompt or the negative
    prompt of every cell."""
    transforms = [a.name for a in axes.AXES if a.enters == "transform"]
    for cell in cells:
        for name in transforms:
            value = cell.get(name)
            if value is None:
                continue
            texts = [cell.get(n) for n in axes.TEXT_AXES]
            if not any(isinstance(t, str) and value[0] in t for t in texts):
                raise SweepError(f"sweep.grid.{name}: got {value[0]!r}, which is in neither the prompt nor the "
                                 f"negative prompt ({cell.get('prompt')!r}); allowed: a first value found in them")


def describe(plan: Plan, model_name: str, todo: int | None = None) -> str:
    """The work estimate printed before anything runs (A1111 prints the same before a big grid)."""
    steps = sum(c.call().steps for c in plan.cells)
    sizes = " x ".join(f"{len(v.values)} {v.axis.name}" for v in plan.swept)
    left = "" if todo is None or todo == len(plan.cells) else f"; {todo} of {len(plan.cells)} images to make"
    return f"{plan.name}: {len(plan.cells)} images ({sizes}), {steps} denoising steps, model {model_name}{left}"
