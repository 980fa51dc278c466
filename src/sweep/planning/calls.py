"""How a cell becomes the call that makes it: the one place that applies Prompt S/R, `<lora:NAME:W>` tags,
A1111's pass defaults and step semantics to a cell's values.

A cell (`sweep.planning.grid.Cell`) holds what the grid asked for; its `Call` holds what runs: the prompt texts as the
encoders get them (an emptied negative is None, which SDXL encodes as zeros), the LoRA strengths applied, and
each denoising pass with the schedule length given to diffusers and the steps that actually run. The record
(results.csv, PNG text and JSON, the ComfyUI graph, the cell id and file name, sweep.json), the resume identity
and the bounds (steps per pass and sampler, memory at the final size) all read the call, so a value cannot be
recorded one way and applied another. docs/cells.md tells the story for users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweep import axes

OPTIONAL_TEXTS = ("negative_prompt", "prompt_2", "negative_prompt_2")  # empty means none (zeros / the prompt)
# A1111 caps the denoising strength at 0.999 when it lengthens the schedule (`setup_img2img_steps`).
MAX_DENOISE = 0.999


@dataclass(frozen=True)
class Pass:
    """One denoising pass: the pipeline's `num_inference_steps` (`schedule`), the steps that run, and the
    `strength` given to an image-to-image pipeline (None: text to image, the whole schedule)."""

    name: str  # "txt2img", "img2img" or "hires"
    schedule: int
    steps: int
    strength: float | None = None


@dataclass(frozen=True)
class Call:
    """Every value of one cell as it is applied."""

    values: tuple[tuple[str, Any], ...]  # the cell's axes in registry order, LoRA strengths after the tags
    texts: tuple[tuple[str, str | None], ...]  # prompt texts after Prompt S/R (tags kept: A1111 records them)
    loras: tuple[tuple[str, float], ...]  # LoRA name -> strength applied
    passes: tuple[Pass, ...]

    @property
    def steps(self) -> int:
        """Denoising steps run over all passes (the work estimate printed before a run)."""
        return sum(done.steps for done in self.passes)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.values).get(name, default)

    def final_size(self, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """(width, height) of the image for a first pass of `size`: Hires. fix's upscaled size where it is on."""
        scale = self.get("hires_scale")
        if size is None or scale is None:
            return size
        return axes.hires_size(size[0], size[1], scale)


def hires_schedule(requested: int, denoise: float) -> int:
    """A1111's Hires. fix schedule (`setup_img2img_steps`): `int(requested / min(denoise, 0.999))` steps, of which
    the last `requested` run (t_enc = requested - 1)."""
    return int(requested / min(denoise, MAX_DENOISE))


def hires_pass(requested: int, denoise: float) -> Pass:
    """The second pass as diffusers' img2img runs A1111's: it runs `min(int(schedule x strength), schedule)` steps,
    so the strength given is one that yields exactly `requested` (denoise itself may not: int(28 x 0.7) = 19, not
    20; and (r / n) x n can fall a hair below r in floating point). The noise level it starts from is the
    schedule's own at that step, as in A1111."""
    schedule = hires_schedule(requested, denoise)
    strength = min(1.0, (requested + 0.5) / schedule) if schedule else 0.0
    return Pass("hires", schedule, min(int(schedule * strength), schedule), strength)


def _texts(cell: Any) -> dict[str, str | None]:
    """The prompt texts after every prompt transform (Prompt S/R); an optional text left empty is None, whichever
    way it became empty, so an S/R-emptied negative is the zeros an unset one is."""
    found = {name: cell.get(name) for name in axes.TEXT_AXES}
    for name, value in cell.params:
        if value is not None and axes.get(name).enters == "transform":
            search, replacement = value
            found = {k: (v.replace(search, replacement) if isinstance(v, str) else v) for k, v in found.items()}
    return {k: (None if k in OPTIONAL_TEXTS and isinstance(v, str) and not v.strip() else v)
            for k, v in found.items()}


def _passes(cell: Any) -> tuple[Pass, ...]:
    steps = cell.get("num_inference_steps")
    if steps is None:
        return ()
    strength = cell.get("strength")
    if cell.get("init_image") is not None and strength is not None:
        # The img2img tab: A1111 (img2img_fix_steps off) and diffusers both run int(steps x strength).
        return (Pass("img2img", steps, min(int(steps * strength), steps), strength),)
    first = Pass("txt2img", steps, steps)
    denoise = cell.get("hires_denoise")
    if cell.get("hires_scale") is None or not denoise:  # denoise 0: the upscaled first pass is the image
        return (first,)
    return first, hires_pass(cell.get("hires_steps") or steps, denoise)


def resolve(cell: Any) -> Call:
    """The call that makes `cell`."""
    from sweep.prompts.syntax import PROMPT_TEXTS, lora_tags

    texts = _texts(cell)
    tags: dict[str, float] = {}
    for key in PROMPT_TEXTS:  # `<lora:NAME:W>` sets that LoRA's strength, as in A1111 (planning.plan checks NAME, W)
        tags.update(lora_tags(texts.get(key), key))
    prefix = f"{axes.LORA}."
    values = tuple((n, tags.get(n[len(prefix):], v) if n.startswith(prefix) else v) for n, v in cell.params)
    loras = {n[len(prefix):]: v for n, v in values if n.startswith(prefix)}
    loras.update({n: w for n, w in tags.items() if n not in loras})
    return Call(values, tuple(texts.items()), tuple(loras.items()), _passes(cell))


def check_steps(cells: Any, facts: axes.Facts | axes.PerModel | None, swept: Any) -> None:
    """Every pass of every cell within what its sampler can take (DDIM/PLMS on SDXL's config: 999), the Hires. fix
    schedule included, and at least one step run; one line naming the key that set it. `swept`: the grid's axis
    names (their keys are `sweep.grid.NAME`)."""
    from sweep.errors import bad_value

    def key(*names: str) -> str:
        return f"sweep.grid.{names[0]}" if any(n in swept for n in names) else names[0]

    seen: set[tuple] = set()
    for cell in cells:
        own = axes.facts_for(facts, cell) or axes.Facts()
        spec, schedule_type = cell.get("scheduler"), cell.get("schedule_type")
        passes = cell.call().passes
        if (spec, schedule_type, passes, own) in seen:
            continue
        seen.add((spec, schedule_type, passes, own))
        # A schedule type other than Automatic sets its own spacing: only the model's timesteps bound it.
        limit = axes.max_steps(spec, own) if schedule_type is None else own.num_train_timesteps
        named = spec or own.scheduler
        sampler = named.name if named else "the model's sampler"
        why = (f"timestep_spacing 'leading' plus steps_offset {own.steps_offset} run past its "
               f"{own.num_train_timesteps} timesteps" if limit < own.num_train_timesteps
               else f"the model's {own.num_train_timesteps} timesteps")
        for done in passes:
            if done.name == "img2img" and done.steps < 1:
                steps, strength = cell.get("num_inference_steps"), cell.get("strength")
                raise bad_value(key("strength"), strength, f"a strength that leaves at least one of the {steps} "
                                f"steps (int({steps} x {strength}) = 0), or more steps")
            if done.schedule <= limit:
                continue
            if done.name == "hires":
                requested, denoise = done.steps, min(cell.get("hires_denoise"), MAX_DENOISE)
                name = "hires_steps" if cell.get("hires_steps") is not None else "hires_denoise"
                raise bad_value(key(name), cell.get(name), f"a Hires. fix whose schedule {sampler} can take: A1111 "
                                f"runs {requested} second-pass steps over int({requested} / {denoise:g}) = "
                                f"{done.schedule}, more than {limit} ({why}); fewer hires_steps or more "
                                "hires_denoise")
            raise bad_value(key("num_inference_steps", "scheduler"), done.schedule, f"an integer from 1 to {limit} "
                            f"with {sampler} ({why}), or another sampler such as Euler")
