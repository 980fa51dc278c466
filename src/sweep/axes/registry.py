"""The registry's data: the Axis type, one entry per sweepable setting, and lookups by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweep.axes.images import (
    BUILT_IN_CHECKPOINTS,
    HIRES_LATENT,
    HIRES_PIXEL,
    MAX_HIRES_SCALE,
    _init_image,
    _init_record,
    _model_ref,
    _upscaler,
    file_label,
)
from sweep.axes.parsers import (
    FREEU_HELP,
    MAX_CONTROL_SCALE,
    MAX_PAG_SCALE,
    SEED_RESIZE_HELP,
    _clip_skip,
    _control_image,
    _control_record,
    _freeu,
    _freeu_infotext,
    _guidance,
    _ip_image,
    _ip_record,
    _number_or,
    _optional_float,
    _prompt_syntax,
    _replacement,
    _schedule_type,
    _scheduler,
    _scheduler_id,
    _scheduler_record,
    _seed,
    _seed_resize,
    _size,
    _size_record,
    _sr_record,
    _steps,
    _subseed,
    _switch,
    _syntax_infotext,
    _text,
    freeu_text,
)
from sweep.axes.samplers import (
    SCHEDULE_HELP,
    SCHEDULER_HELP,
)
from sweep.axes.values import (
    DEFAULT_PROMPT,
    SIZE_HELP,
    Facts,
    Parse,
    _float,
    _int,
    number_text,
    text_id,
)
from sweep.naming import slug


@dataclass(frozen=True)
class Axis:
    """One sweepable setting. `None` as a value means "not set": the pipeline's own default."""

    name: str
    parse: Parse
    # How the value enters generation: "call" (a pipeline keyword argument), "encode" (an argument of the text
    # encoders, so it is part of the prompt cache key), "size" (height and width), "scheduler" (a scheduler
    # built per call), "seed" (the per-image generator), "repeat" (nothing: the same cell again), "transform"
    # (rewrites the prompt texts), "state" (set on the shared pipeline: LoRA strengths), "model" (what is loaded:
    # checkpoint, VAE), "pass" (a second pass or an image-to-image input: Hires. fix, init image, strength),
    # "noise" (the starting noise, made per image from the seed: A1111's variation seeds, sweep.models.variations).
    enters: str
    base_type: Any = None  # type of the top-level config key; None: a grid-only axis
    base_default: Any = None
    columns: tuple[str, ...] = ()  # results.csv columns; default (name,)
    numeric: bool = False  # ordered as numbers, plotted as lines (categorical: sweep order, bars)
    ranges: bool = False  # accepts 'START..END step S'
    splits_calls: bool = True  # cells differing on it cannot share one pipeline call (all but the seed)
    id: Callable[[Any], str] = str  # cell-id / file-name fragment of a (non-None) value
    infotext: Callable[[Any], list[tuple[str, Any]]] | None = None  # A1111 `parameters` fields
    info_rank: int = 100  # position among the A1111 fields (Steps 10, Sampler 20, CFG 30, Seed 40, Size 50, ...)
    record: Callable[[Any], dict[str, Any]] | None = None  # value -> results.csv cells (default {name: value})
    none_label: str = "default"  # how "not set" reads in sheets and the viewer
    short: str = ""  # short name in file names ('steps'); default: the name
    aliases: tuple[str, ...] = ()  # other names a report layout accepts ('steps', 'cfg', 'sampler')
    help: str = ""  # what the axis is, in a few words (plot axis labels)
    title: str = ""  # how people name it (A1111's words: 'CFG scale', 'Sampler'); default: the name
    sort_values: bool | None = None  # order values ascending in sheets (default: when numeric; seeds keep theirs)
    allowed: str = ""
    # What "not set" turns out to be for a given model, for the record (the model's own scheduler); the cell id
    # still leaves it out, so naming it explicitly is a different cell with the same pixels.
    resolve: Callable[[Facts], Any] | None = None
    derives: tuple[str, ...] = ()  # columns whose values this axis rewrites (Prompt S/R: the prompt texts)
    model_bound: bool = False  # its allowed values depend on the model (checked again once its config is read)
    requires: str = ""  # a model setting it needs (`refiner` for the refiner switch)
    # What changing it costs: cells are made in order of the costliest axes first (A1111's AxisOption `cost`:
    # a checkpoint loads once and stays while every cell that uses it is made).
    cost: float = 0.0
    # A setting of the pass another axis turns on (`hires_scale`, `init_image`): refused without it, and `fill`
    # (A1111's default) where that pass is on and it is unset.
    part_of: str = ""
    fill: Any = None
    # One value as users say it with its axis ("CFG 7", "30 steps"); default "TITLE VALUE".
    phrase: Callable[[str], str] | None = None
    # Its infotext fields are written only where this axis of the cell is set and non-zero (A1111 writes
    # `Variation seed` only when `Variation seed strength` is above 0).
    only_with: str = ""
    # Calls with a non-zero value change the shared UNet while they run (PAG swaps its attention processors):
    # they run one at a time, never beside another call.
    solo: bool = False
    # How it moves an image's seconds (the report's timing model): None: it does not (seed, prompt); "linear":
    # a fixed cost plus a cost per unit (steps); else a function naming a value's cost class (each size its
    # own; guidance: CFG on or off, which halves the UNet batch).
    timing: Callable[[str], str] | str | None = None

    @property
    def cols(self) -> tuple[str, ...]:
        return self.columns or (self.name,)

    @property
    def heading(self) -> str:
        return self.title or self.name

    def says(self, text: str) -> str:
        """A results.csv value as users say it with its axis: 'CFG 7', '30 steps', 'DPM++ 2M Karras'."""
        shown = label(self.name, text)
        return self.phrase(shown) if self.phrase and text != "" else f"{self.heading} {shown}"

    @property
    def token(self) -> str:
        return self.short or self.name

    @property
    def sorted(self) -> bool:
        return self.numeric if self.sort_values is None else self.sort_values

    def to_record(self, value: Any, facts: Facts | None = None) -> dict[str, Any]:
        if value is None and self.resolve is not None and facts is not None:
            value = self.resolve(facts)
        if self.record is not None:
            return self.record(value)
        return {self.name: value}


AXES: tuple[Axis, ...] = (
    Axis("prompt", _text(False), "encode",
         title="Prompt", base_type=str, base_default=DEFAULT_PROMPT, aliases=("prompts",),
         id=lambda v: text_id("", v, 24), none_label="(none)", allowed="non-empty prompt text"),
    Axis("negative_prompt", _text(True), "encode",
         title="Negative prompt", base_type=str | None, none_label="(none)", short="neg",
         aliases=("negative", "neg"), id=lambda v: text_id("neg", v, 12), allowed="text, or null/'' for none"),
    Axis("prompt_2", _text(True), "encode", base_type=str | None, none_label="same as prompt",
         id=lambda v: text_id("ptwo", v, 12), infotext=lambda v: [("Prompt 2", v)], info_rank=90,
         allowed="text for the second text encoder, or null for the prompt"),
    Axis("negative_prompt_2", _text(True), "encode", base_type=str | None, none_label="same as negative_prompt",
         id=lambda v: text_id("negtwo", v, 12), infotext=lambda v: [("Negative prompt 2", v)], info_rank=91,
         allowed="text for the second text encoder, or null for the negative prompt"),
    # A1111's Prompt S/R: the first value is the text to find; each value replaces it in every prompt text.
    Axis("prompt_sr", _replacement, "transform", record=_sr_record, short="sr", aliases=("sr", "prompt s/r"),
         derives=("prompt", "negative_prompt", "prompt_2", "negative_prompt_2"),
         id=lambda v: text_id("sr", v[1], 16), none_label="(original)",
         allowed="a list whose first value is text found in the prompt"),
    Axis("seed", _seed, "seed",
         title="Seed", base_type=int, base_default=1234, numeric=True, ranges=True, splits_calls=False,
         sort_values=False, aliases=("seeds",), id=lambda v: f"seed{v}", infotext=lambda v: [("Seed", v)],
         info_rank=40,
         phrase=lambda v: f"seed {v}"),
    Axis("num_inference_steps", _steps, "call",
         title="Steps", base_type=int, base_default=50, numeric=True, ranges=True,
         model_bound=True, short="steps", aliases=("steps", "step"), help="denoising steps", id=lambda v: f"steps{v}",
         infotext=lambda v: [("Steps", v)], info_rank=10,
         phrase=lambda v: f"{v} steps", timing="linear"),
    Axis("guidance_scale", _guidance, "call",
         title="CFG scale", base_type=float, base_default=5.0, numeric=True, ranges=True,
         short="cfg", aliases=("cfg", "guidance", "cfg_scale", "cfg scale"), help="CFG scale; <= 1 turns CFG off",
         id=lambda v: f"cfg{number_text(v)}", infotext=lambda v: [("CFG scale", v)], info_rank=30,
         phrase=lambda v: f"CFG {v}", timing=lambda v: "CFG off" if _number_or(v, 2.0) <= 1 else "CFG on"),
    Axis("resolution", _size, "size",
         title="Size", columns=("height", "width"), record=_size_record, numeric=True,
         id=lambda v: f"{v[0]}x{v[1]}", infotext=lambda v: [("Size", f"{v[0]}x{v[1]}")], info_rank=50,
         none_label="native", aliases=("size", "res", "wxh"), help="megapixels; labels WIDTHxHEIGHT",
         allowed=SIZE_HELP,
         phrase=str, timing=str),
    Axis("scheduler", _scheduler, "scheduler",
         title="Sampler", base_type=Any, columns=("scheduler", "scheduler_class"),
         record=_scheduler_record, id=_scheduler_id, infotext=lambda v: v.a1111(), info_rank=20,
         resolve=lambda facts: facts.scheduler, aliases=("sampler", "samplers", "schedulers"), help="sampler",
         allowed=SCHEDULER_HELP,
         phrase=str, timing=str),
    # A1111 1.9+'s "Schedule type", crossed with the sampler; null/Automatic = what the sampler does by itself.
    Axis("schedule_type", _schedule_type, "scheduler",
         title="Schedule type", base_type=str | None, id=lambda v: slug(v, 20),
         infotext=lambda v: [("Schedule type", v)], info_rank=21, none_label="Automatic",
         aliases=("schedule", "schedule type", "schedule_types"), help="noise schedule", allowed=SCHEDULE_HELP,
         timing=str),
    # How prompt text becomes embeddings (sweep.prompts.syntax); null = a1111. Part of the prompt cache key.
    Axis("prompt_syntax", _prompt_syntax, "encode", base_type=Any, id=lambda v: f"syntax-{v}",
         infotext=_syntax_infotext, info_rank=80, none_label="a1111", allowed="a1111, compel or none"),
    Axis("guidance_rescale", _optional_float(0.0, 1.0, "a number from 0 to 1"), "call", base_type=float | None,
         numeric=True, ranges=True, id=lambda v: f"rescale{number_text(v)}",
         infotext=lambda v: [("Guidance rescale", v)], info_rank=75),
    Axis("clip_skip", _clip_skip, "encode",
         title="Clip skip", base_type=int | None, numeric=True, ranges=True, model_bound=True,
         id=lambda v: f"clipskip{v}", infotext=lambda v: [("Clip skip", v + 1)], info_rank=70),
    Axis("eta", _optional_float(0.0, 1.0, "a number from 0 to 1 (DDIM and ancestral noise)"), "call",
         base_type=float | None, numeric=True, ranges=True, id=lambda v: f"eta{number_text(v)}",
         infotext=lambda v: [("Eta", v)], info_rank=76),
    Axis("denoising_end", _optional_float(0.0, 1.0, "a fraction in (0, 1]", open_low=True), "call",
         base_type=float | None, numeric=True, ranges=True, id=lambda v: f"dend{number_text(v)}",
         infotext=lambda v: [("Denoising end", v)], info_rank=77,
         timing=str),
    # SDXL's base + refiner "ensemble of experts": the base runs denoising_end=F, the refiner denoising_start=F.
    Axis("refiner_switch", _switch, "refiner", base_type=float | None, numeric=True, ranges=True, requires="refiner",
         short="switch", aliases=("switch", "refiner switch at", "high_noise_frac"),
         help="fraction of the steps the base runs before the refiner", id=lambda v: f"refsw{number_text(v)}",
         infotext=lambda v: [("Refiner switch at", v)], info_rank=65, resolve=lambda facts: facts.refiner_switch,
         none_label="no refiner",
         timing=str),
    Axis("repeat", lambda v, k, f: v, "repeat", numeric=True, id=lambda v: f"r{v}",
         allowed="an integer >= 1 (how many times each cell is made)"),
    # What is loaded. A1111's `Model`, `Model hash`, `VAE` and `VAE hash` come from the loaded files (results
    # row), so these entries write no infotext of their own.
    Axis("checkpoint", _model_ref("a checkpoint: a .safetensors file, a diffusers folder, a name under "
                                  "model.models_dir, or a built-in model (" + ", ".join(BUILT_IN_CHECKPOINTS) + ")"),
         "model", record=lambda v: {"checkpoint": file_label(v) if v else None}, derives=("model",),
         id=lambda v: f"ckpt-{slug(file_label(v), 40)}", none_label="model config", cost=1.0,
         aliases=("checkpoints", "checkpoint name", "model_path"), help="checkpoint",
         timing=str),
    Axis("vae", _model_ref("a VAE: a .safetensors file, a diffusers VAE folder, a hub id or a name under "
                           "model.models_dir"),
         "model", record=lambda v: {"vae": file_label(v, keep_suffix=True) if v else None},
         resolve=lambda facts: facts.vae, id=lambda v: f"vae-{slug(file_label(v), 40)}", none_label="model's own",
         cost=0.7, aliases=("vaes", "sd_vae"), help="VAE",
         timing=str),
    # Hires. fix as A1111 does it: first pass at the cell's size, upscale, second pass at hires_denoise.
    Axis("hires_scale", _optional_float(1.0, MAX_HIRES_SCALE, f"a factor from 1 to {MAX_HIRES_SCALE:g} (null: no "
                                        "Hires. fix)"), "pass", base_type=float | None, numeric=True, ranges=True,
         id=lambda v: f"hires{number_text(v)}", infotext=lambda v: [("Hires upscale", v)], info_rank=67,
         none_label="no hires", aliases=("hires", "hr_scale", "hires upscale"), help="Hires. fix upscale factor",
         timing=str),
    Axis("hires_steps", lambda v, k, f: None if v is None else _int(v, k, "an integer >= 1, or null for the "
                                                                     "first pass's steps", 1, 10000),
         "pass", base_type=int | None, numeric=True, ranges=True, part_of="hires_scale",
         id=lambda v: f"hsteps{v}", infotext=lambda v: [("Hires steps", v)], info_rank=68,
         none_label="as first pass", aliases=("hr_steps",), help="Hires. fix steps",
         timing=str),
    Axis("hires_denoise", _optional_float(0.0, 1.0, "a denoising strength from 0 to 1 (0: the upscaled first "
                                          "pass as is)"), "pass", base_type=float | None, numeric=True,
         ranges=True, part_of="hires_scale", fill=0.7, id=lambda v: f"hden{number_text(v)}",
         infotext=lambda v: [("Denoising strength", v)], info_rank=66,
         aliases=("denoising", "denoising strength", "hr_denoise"), help="Hires. fix denoising strength",
         timing=str),
    Axis("hires_upscaler", _upscaler, "pass", base_type=str | None, part_of="hires_scale", fill="Latent",
         id=lambda v: f"hup-{slug(v, 24)}", infotext=lambda v: [("Hires upscaler", v)], info_rank=69,
         aliases=("hr_upscaler", "hires upscaler", "upscaler"), help="Hires. fix upscaler",
         allowed="an upscaler: " + ", ".join((*HIRES_LATENT, *HIRES_PIXEL)),
         timing=str),
    # Image-to-image: the first pass starts from this image (resized to the cell's size) at `strength`.
    Axis("init_image", _init_image, "pass", base_type=str | None, columns=("init_image", "init_image_hash"),
         record=_init_record, id=lambda v: text_id("init", file_label(v, keep_suffix=True), 16),
         none_label="(text to image)", aliases=("init_images",), help="init image",
         timing=str),
    Axis("strength", _optional_float(0.0, 1.0, "a denoising strength in (0, 1]", open_low=True), "pass",
         base_type=float | None, numeric=True, ranges=True, part_of="init_image", fill=0.3,
         id=lambda v: f"str{number_text(v)}", infotext=lambda v: [("Denoising strength", v)], info_rank=66,
         aliases=("img2img strength",), help="image-to-image strength",
         timing=str),
    # ControlNet (models.controlnet): the control image and diffusers' three ControlNet arguments. sd-webui-controlnet's
    # `ControlNet N` text is written from the row's ControlNets and these values (sweep.rundir.metadata), not per entry.
    Axis("control_image", _control_image, "control", base_type=str | None, requires="controlnet",
         columns=("control_image", "control_image_hash"), record=_control_record,
         id=lambda v: text_id("ctl", file_label(v, keep_suffix=True), 16), none_label="(none)",
         aliases=("control image", "control_images"), help="ControlNet input image", title="Control image",
         allowed="an image file, or builtin:rings", timing=str),
    Axis("controlnet_conditioning_scale", _optional_float(0.0, MAX_CONTROL_SCALE, f"a ControlNet weight from 0 to "
                                                          f"{MAX_CONTROL_SCALE:g} (0: no control)"), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet weight",
         short="cnw", aliases=("controlnet weight", "control weight", "cn weight", "controlnet_scale"),
         id=lambda v: f"cnw{number_text(v)}", none_label="1 (default)", help="ControlNet conditioning scale"),
    Axis("control_guidance_start", _optional_float(0.0, 1.0, "a fraction of the steps from 0 to 1 (below "
                                                   "control_guidance_end)"), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet start",
         short="cns", aliases=("guidance start", "controlnet start", "start percent"),
         id=lambda v: f"cns{number_text(v)}", none_label="0 (default)", help="ControlNet guidance start"),
    Axis("control_guidance_end", _optional_float(0.0, 1.0, "a fraction of the steps in (0, 1] (above "
                                                 "control_guidance_start)", open_low=True), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet end",
         short="cne", aliases=("guidance end", "controlnet end", "end percent"),
         id=lambda v: f"cne{number_text(v)}", none_label="1 (default)", help="ControlNet guidance end"),
    # A1111's variation seeds: the starting noise slerped from the seed's toward the subseed's (models.variations).
    # Made per image, so cells that differ only here share a pipeline call, as seeds do.
    Axis("subseed", _subseed, "noise", title="Var. seed", base_type=int | None, numeric=True, ranges=True,
         splits_calls=False, sort_values=False, id=lambda v: f"vseed{v}",
         infotext=lambda v: [("Variation seed", v)], info_rank=64, only_with="subseed_strength",
         none_label="none", aliases=("var. seed", "variation seed", "subseeds", "var_seed"),
         help="variation seed", phrase=lambda v: f"var. seed {v}"),
    Axis("subseed_strength", _optional_float(0.0, 1.0, "a variation strength from 0 (the seed's image) to 1 (the "
                                             "subseed's)"), "noise", title="Var. strength",
         base_type=float | None, numeric=True, ranges=True, splits_calls=False,
         id=lambda v: f"vstr{number_text(v)}", infotext=lambda v: [("Variation seed strength", v)], info_rank=64,
         only_with="subseed_strength", none_label="0", aliases=("var. strength", "variation strength",
                                                                "variation seed strength"),
         help="variation strength", phrase=lambda v: f"var. strength {v}"),
    # A1111's `Seed resize from`: the seed's (and subseed's) noise made at this size, centred in the image's.
    Axis("seed_resize_from", _seed_resize, "noise", title="Seed resize from", base_type=Any, splits_calls=False,
         record=lambda v: {"seed_resize_from": f"{v[0]}x{v[1]}" if v else None}, id=lambda v: f"sfrom{v[0]}x{v[1]}",
         infotext=lambda v: [("Seed resize from", f"{v[0]}x{v[1]}")], info_rank=64, none_label="(image size)",
         aliases=("seed resize from", "seed_resize"), help="size the seed's noise is made at",
         allowed=SEED_RESIZE_HELP, phrase=lambda v: f"seed resized from {v}"),
    # FreeU (diffusers' enable_freeu) set on the shared UNet between calls, like LoRA strengths (models.unet_tweaks).
    Axis("freeu", _freeu, "state", title="FreeU", base_type=Any, record=lambda v: {"freeu": freeu_text(v) if v
                                                                                  else None},
         id=lambda v: "freeu-" + "-".join(number_text(x) for x in v), infotext=_freeu_infotext, info_rank=79,
         none_label="off", help="FreeU b1,b2,s1,s2", allowed=FREEU_HELP,
         phrase=lambda v: f"FreeU {v}"),
    # Perturbed-Attention Guidance: diffusers' StableDiffusionXLPAGPipeline over the same components
    # (sweep.models.unet_tweaks); null or 0 = the plain pipeline. Its calls swap the shared UNet's attention processors.
    Axis("pag_scale", _optional_float(0.0, MAX_PAG_SCALE, f"a PAG scale from 0 (off) to {MAX_PAG_SCALE:g}"),
         "state", title="PAG scale", base_type=float | None, numeric=True, ranges=True, solo=True,
         id=lambda v: f"pag{number_text(v)}", infotext=lambda v: [("PAG scale", v)] if v else [], info_rank=79,
         none_label="off", aliases=("pag", "pag scale"), help="Perturbed-Attention Guidance scale",
         phrase=lambda v: f"PAG {v}", timing=lambda v: "PAG off" if _number_or(v, 0.0) == 0 else "PAG on"),
    # IP-Adapter (sweep.models.ip_adapter): its reference image, and its scale, state of the shared UNet's attention
    # processors (set between calls, as LoRA strengths are). Written as a `ControlNet N` unit (sweep.rundir.metadata).
    Axis("ip_adapter_image", _ip_image, "control", base_type=str | None, requires="ip_adapter",
         columns=("ip_adapter_image", "ip_adapter_image_hash"), record=_ip_record,
         id=lambda v: text_id("ipa", file_label(v, keep_suffix=True), 16), none_label="(none)",
         aliases=("ip adapter image", "ip_adapter_images"), help="IP-Adapter image", title="IP-Adapter image",
         allowed="an image file, or builtin:rings", timing=str),
    Axis("ip_adapter_scale", _optional_float(0.0, MAX_CONTROL_SCALE, f"an IP-Adapter scale from 0 to "
                                             f"{MAX_CONTROL_SCALE:g} (0: no effect)"), "state",
         base_type=float | None, numeric=True, ranges=True, requires="ip_adapter", title="IP-Adapter scale",
         short="ipw", aliases=("ip adapter scale", "ip_scale", "ip-adapter weight"),
         id=lambda v: f"ipw{number_text(v)}", none_label="1 (default)", help="IP-Adapter scale"),
)


BY_NAME = {axis.name: axis for axis in AXES}


# Keyword arguments of StableDiffusionXLPipeline.__call__ the runner sets itself, or that are not scalars.
NOT_AXES = frozenset({
    "self", "kwargs", "height", "width", "generator", "latents", "prompt_embeds", "negative_prompt_embeds",
    "pooled_prompt_embeds", "negative_pooled_prompt_embeds", "ip_adapter_image", "ip_adapter_image_embeds",
    "output_type", "return_dict", "cross_attention_kwargs", "callback_on_step_end",
    "callback_on_step_end_tensor_inputs", "num_images_per_prompt", "timesteps", "sigmas", "original_size",
    "crops_coords_top_left", "target_size", "negative_original_size", "negative_crops_coords_top_left",
    "negative_target_size",
})


TEXT_AXES = tuple(a.name for a in AXES if a.enters == "encode" and a.base_type in (str, str | None))


LORA = "lora"  # grid family: `lora: {NAME: [0, 0.5, 1]}` sweeps the strength of the LoRA called NAME


MAX_LORA_STRENGTH = 10.0


def lora_axis(name: str) -> Axis:
    """The strength of one LoRA of model.lora (adapter NAME), set per call with set_adapters. Pipeline-global
    state ("state"): calls with different strengths never run at the same time."""

    def parse(value: Any, key: str, facts: Facts) -> float:
        return _float(value, key, f"a strength from -{MAX_LORA_STRENGTH:g} to {MAX_LORA_STRENGTH:g} (0 = off, 1 = as "
                      "trained)", -MAX_LORA_STRENGTH, MAX_LORA_STRENGTH)

    return Axis(f"{LORA}.{name}", parse, "state", numeric=True, ranges=True, short=f"lora-{name}",
                id=lambda v: f"lora-{slug(name, 20)}-{number_text(v)}", help=f"strength of LoRA {name}",
                allowed="a LoRA strength")


def label(axis_name: str, text: str) -> str:
    """How a results.csv value reads in sheets and the viewer: an empty value reads as the axis's default."""
    if text != "":
        return text
    axis = BY_NAME.get(axis_name)
    return axis.none_label if axis else "(none)"


def known(name: str) -> Axis | None:
    """The registry entry of a results.csv axis column (a LoRA's strength included), or None (model, job)."""
    if name.startswith(f"{LORA}."):
        return lora_axis(name.split(".", 1)[1])
    return BY_NAME.get(name)


def title(name: str) -> str:
    """How users name an axis: 'CFG scale', 'Sampler'; a column outside the registry by its own name."""
    axis = known(name)
    return axis.heading if axis else name


def says(name: str, text: str) -> str:
    """One value with its axis as users say it: 'CFG 7', '30 steps', 'DPM++ 2M Karras', 'model tiny'."""
    axis = known(name)
    return axis.says(text) if axis else f"{name} {label(name, text)}"
