"""Structured-config schema: a typo in a key or a wrongly typed value fails when Hydra composes the config.

Field names of the base generation parameters are diffusers' own (`num_inference_steps`, `guidance_scale`,
`height`, `width`, ...), so a value can be passed to `StableDiffusionXLPipeline.__call__` unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from sweep import axes
from sweep.errors import SweepError
from sweep.naming import safe_name
from sweep.resume import LAST, STAMP


@dataclass
class ModelConfig:
    """Which pipeline to load and how to run it."""

    # Label recorded in results.csv and PNG metadata.
    name: str = "sdxl_base"
    # hub: `id` from the Hugging Face hub or its cache; tiny / sdxl_arch: built in code, no download.
    source: str = "hub"
    id: str | None = "stabilityai/stable-diffusion-xl-base-1.0"
    # A local diffusers folder or single-file checkpoint; when set it wins over `source`/`id`.
    path: str | None = None
    # Config folder (or hub id) for a single-file checkpoint, so it loads offline.
    config: str | None = None
    # Weights variant used when the dtype is fp16 or bf16 (the SDXL repo ships `fp16` files; bf16 casts them).
    variant: str | None = "fp16"
    device: str = "auto"  # auto = cuda > mps > cpu
    # auto = bf16 on CUDA cards with native bf16, else fp16 on a GPU, fp32 on CPU; or float32 / float16 / bfloat16
    dtype: str = "auto"
    # Pickle checkpoints (.ckpt/.bin/.pt) run code when loaded: only on explicit opt-in.
    allow_pickle: bool = False
    # A VAE instead of the model's own: a diffusers VAE folder, a hub id, or a single .safetensors file.
    vae: str | None = None
    # Where `checkpoint` / `vae` axis values given by name are found (NAME, NAME.safetensors, and A1111's
    # Stable-diffusion/ and VAE/ subfolders); null: values are paths (or built-in names, or hub ids).
    models_dir: str | None = None
    # LoRA files, loaded once as adapters at strength 1: one path, a list of paths, or a mapping name: path.
    lora: Any = None
    # An SDXL refiner (base + refiner "ensemble of experts"): a hub id, a diffusers refiner folder, or tiny.
    refiner: str | None = None
    # ControlNets (sweep.models.controlnet): a diffusers folder, a diffusers-layout .safetensors file, a hub id or tiny;
    # one, or a list. Needs control_image.
    controlnet: Any = None
    # An IP-Adapter (sweep.models.ip_adapter): a local weights file or folder in diffusers' load_ip_adapter layout, or
    # tiny; its CLIP image encoder is image_encoder/ beside it unless ip_adapter_encoder names the folder.
    ip_adapter: str | None = None
    ip_adapter_encoder: str | None = None
    # GPU options (recorded in results.csv).
    compile: bool = False  # torch.compile of the UNet (sweep.models.compiling); caches in ~/.cache/sdxl-sweep/inductor
    compile_mode: str = "default"  # default, reduce-overhead (CUDA graphs), max-autotune, max-autotune-no-cudagraphs
    compile_vae: bool = False  # with compile: the VAE's decode too
    fuse_qkv_projections: bool = False  # one matmul for q, k and v in every attention (diffusers' option)
    channels_last: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False


def _grid_config() -> type:
    """One field per registry axis (`sweep.axes`): null (not swept), a list of values, or a range string.

    Ranges: "10..90 step 10" includes 90; "10..<90 step 10" stops before 90. Seeds: "random 3" draws 3 seeds
    once and records them. Sizes: "1216x832" (WIDTHxHEIGHT), {width: W, height: H}, or one number for a square.
    `repeat: N` generates every cell N times (the same seed N times must give N identical images). A pipeline
    argument without a field here can still be swept (`+sweep.grid.NAME=[...]`): the registry types it.
    """
    fields = [(axis.name, Any, field(default=None)) for axis in axes.AXES]
    # Families: `lora: {NAME: [0, 0.5, 1]}` is one axis per LoRA of model.lora.
    fields.append((axes.LORA, Any, field(default=None)))
    # OPEN_KEYS: a key added with `+` is not refused by planning.config_checks; the registry checks it at plan time.
    return make_dataclass("GridConfig", fields, namespace={"OPEN_KEYS": True})


GridConfig = _grid_config()


@dataclass
class LayoutConfig:
    """Which axis the contact sheets put on rows, columns and separate sheets (null = inferred)."""

    rows: str | None = None
    cols: str | None = None
    sheets: str | None = None


@dataclass
class SweepConfig:
    name: str = "???"
    description: str = ""
    grid: GridConfig = field(default_factory=GridConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    # The viewer's words for axes and values: {axis: title} or {axis: {title: ..., values: {value: title}}}.
    titles: dict[str, Any] = field(default_factory=dict)
    # Optional longer texts, the same shape: {axis: text} or {axis: {description: ..., values: {value: text}}}.
    descriptions: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportConfig:
    # Longest edge of a cell on a contact sheet, in pixels (images are downscaled, never upscaled).
    cell_max: int = 512
    # Sheets with more cells than this are split into numbered parts.
    max_cells: int = 64
    # Seconds (and similarity to the reference) under each cell.
    captions: bool = True
    # Image every other image is compared with (metrics.csv, plots/convergence_<axis>.png): AXIS:VALUE
    # (guidance_scale:7), AXIS (its last value), none, or null = the most steps when steps vary.
    reference: str | None = None
    # Per-image scores into scores.csv, ranked per axis over seeds (docs/reports.md): clip_score, pickscore,
    # aesthetic. Models: a local transformers folder or a hub id (safetensors only).
    scores: list[str] = field(default_factory=list)
    clip_model: str = "openai/clip-vit-large-patch14"  # clip_score, and the aesthetic predictor's embeddings
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    # LAION's aesthetic MLP weights: a .safetensors file, or a .pth read with torch.load(weights_only=True); or
    # an http(s) URL of one, fetched once into ~/.cache/sdxl-sweep/aesthetic.
    aesthetic_model: str | None = None
    score_batch: int = 8  # images per scoring batch


@dataclass
class Settings:
    """How the sweep runs (not what an image shows)."""

    # Images per pipeline call for cells that differ only by seed; null = chosen by device and size.
    batch_size: int | None = None
    # Upper bound on the number of images, so a typo in a range cannot start a 3-day run.
    max_images: int = 1000
    # Device of the per-image torch.Generator: cpu means a seed gives the same noise on any device.
    generator_device: str = "cpu"
    # Move an earlier experiment in the same directory aside (into previous/) instead of refusing to mix two.
    restart: bool = False
    # Let a sweep of another name add its cells to the experiment already in the run directory.
    grow: bool = False
    # last: go on with the newest timestamped run of this sweep (outputs/NAME/...) instead of starting a new one.
    resume: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


@dataclass(frozen=True)
class RunConfig:
    """The config after its check, typed: what everything below the edge reads (`settings.sweep.name`).

    The edge that composes and checks the config (cli.app, cli.multirun's Hydra callbacks, planning.config_checks)
    is the only place that holds the raw DictConfig; it builds this once with `typed`. Values are kept as given,
    so sweep.planning.plan's checks still name a bad one in one line. Three parts stay plain containers on purpose:
    `values` (the base generation values, keyed by the registry's axis names, like a cell's), `sweep.grid`,
    `sweep.titles` and `sweep.descriptions` (the sweep's own data: lists and mappings of values), and `model`:
    the checkpoint / VAE axes rewrite it per checkpoint (sweep.models.checkpoint_axes) and the hub resolves an id in it
    (sweep.models.hub), so it is a mapping made here, once, from the checked config.
    """

    values: dict[str, Any] = field(default_factory=dict)  # top-level base values given (diffusers' names)
    max_images: Any = 1000
    batch_size: Any = None
    generator_device: Any = "cpu"
    restart: bool = False
    grow: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def typed(cfg: Any) -> RunConfig:
    """The checked config as a RunConfig: from a composed DictConfig (the CLI), a Config dataclass, or a plain
    mapping. Plain mappings are accepted for one release (tests and scripts pass them to run_sweep / plan_sweep,
    which convert at their top); keys a mapping lacks take the schema's defaults."""
    import dataclasses

    if isinstance(cfg, RunConfig):
        return cfg
    if isinstance(cfg, dict):
        container = cfg
    else:
        container = OmegaConf.to_container(OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg,
                                           resolve=True)
    settings = {f.name for f in dataclasses.fields(RunConfig)} - {"values", "model", "sweep", "report"}
    sweep = dict(container.get("sweep") or {})
    layout = dict(sweep.get("layout") or {})
    report = container.get("report") or {}
    return RunConfig(
        values={k: v for k, v in container.items() if k not in settings and k not in ("model", "sweep", "report",
                                                                                           "resume")},
        **{k: container[k] for k in settings if k in container},
        model=dict(container.get("model") or {}),
        sweep=SweepConfig(name=sweep.get("name", ""), description=sweep.get("description", ""),
                          grid=dict(sweep.get("grid") or {}),  # type: ignore[arg-type]  # user data, plain
                          layout=LayoutConfig(**{k: layout[k] for k in ("rows", "cols", "sheets") if k in layout}),
                          titles=sweep.get("titles") or {}, descriptions=sweep.get("descriptions") or {}),
        report=ReportConfig(**{f.name: report[f.name] for f in dataclasses.fields(ReportConfig) if f.name in report}),
    )


def _config() -> type:
    """The primary config: every registry axis that is also a base parameter, under diffusers' name, typed as
    the registry says (so `num_inference_steps=ten` fails while Hydra composes), then the settings."""
    import dataclasses
    import typing

    fields: list[tuple[str, Any, Any]] = []
    for axis in axes.base_axes():
        fields.append((axis.name, axis.base_type, field(default=axis.base_default)))
    # The size's base parameters keep diffusers' names; null = the model's native size.
    fields += [("height", int | None, field(default=None)), ("width", int | None, field(default=None))]
    types = typing.get_type_hints(Settings)
    for item in dataclasses.fields(Settings):
        default = (field(default_factory=item.default_factory)
                   if item.default_factory is not dataclasses.MISSING else field(default=item.default))
        fields.append((item.name, types[item.name], default))
    return make_dataclass("Config", fields)


Config = _config()


def resume_run_dir(base: str, stamp: str, resume: Any) -> str:
    """Resolver `${sweep_run_dir:BASE,STAMP,${resume}}`: BASE/STAMP for a new run; with resume=last the newest
    timestamped run under BASE (refused in one line when there is none)."""
    if resume in (None, "", "null"):
        return f"{base}/{stamp}"
    if str(resume) != LAST:
        raise SweepError(f"resume: got {str(resume)!r}; allowed: {LAST} (the newest run under {base}/), or leave "
                         "it out and name a run with hydra.run.dir=DIR")
    folder = Path(os.path.expanduser(base))
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir() and STAMP.match(p.name)) if folder.is_dir() else []
    if not runs:
        raise SweepError(f"resume=last: no earlier run in {base}/ (a folder named like {stamp}); allowed: "
                         "resume=last once the sweep has run there, or hydra.run.dir=DIR")
    return f"{base}/{runs[-1]}"


def register() -> None:
    """Register the schema so `conf/config.yaml` can extend it (defaults: [schema, ...]).

    Also `${safe:...}`: a sweep name becomes a run-dir component that cannot leave `outputs/`; and
    `${sweep_run_dir:BASE,STAMP,${resume}}`: a new timestamped run dir, or with resume=last the newest one.
    """
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("safe"):
        OmegaConf.register_new_resolver("safe", lambda text: safe_name(str(text)) or "sweep")
    if not OmegaConf.has_resolver("sweep_run_dir"):
        OmegaConf.register_new_resolver("sweep_run_dir", resume_run_dir)


register()
