"""Structured-config schema: a typo in a key or a wrongly typed value fails when Hydra composes the config.

Field names of the base generation parameters are diffusers' own (`num_inference_steps`, `guidance_scale`,
`height`, `width`, ...), so a value can be passed to `StableDiffusionXLPipeline.__call__` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from sweep.naming import safe_name

DEFAULT_PROMPT = "a photo of an astronaut riding a horse on mars"


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
    # Weights variant used when the dtype is fp16 (the SDXL repo ships `fp16` files).
    variant: str | None = "fp16"
    device: str = "auto"  # auto = cuda > mps > cpu
    dtype: str = "auto"  # auto = fp16 on GPU, fp32 on CPU; or float32 / float16 / bfloat16
    # Pickle checkpoints (.ckpt/.bin/.pt) run code when loaded: only on explicit opt-in.
    allow_pickle: bool = False
    # GPU options (recorded in results.csv).
    compile: bool = False
    channels_last: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False


@dataclass
class GridConfig:
    """Axes of the sweep: each is null (not swept), a list of values, or a range string.

    Ranges: "10..90 step 10" includes 90; "10..<90 step 10" stops before 90. Seeds: "random 3" draws 3
    seeds once and records them. Resolution values: "512x768" (height x width), [512, 768], or 512 (square).
    `repeat: N` generates every cell N times (the same seed N times must give N identical images).
    """

    seed: Any = None
    num_inference_steps: Any = None
    guidance_scale: Any = None
    resolution: Any = None
    prompt: Any = None
    repeat: Any = None


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


@dataclass
class Config:
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str | None = None
    seed: int = 1234
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    # null = the model's native size (UNet sample size x VAE scale factor), as diffusers does.
    height: int | None = None
    width: int | None = None
    # Images per pipeline call for cells that differ only by seed; null = chosen by device and size.
    batch_size: int | None = None
    # Upper bound on the number of images, so a typo in a range cannot start a 3-day run.
    max_images: int = 1000
    # Device of the per-image torch.Generator: cpu means a seed gives the same noise on any device.
    generator_device: str = "cpu"
    # Discard an earlier run in the same directory instead of refusing to mix two experiments.
    restart: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def register() -> None:
    """Register the schema so `conf/config.yaml` can extend it (defaults: [schema, ...]).

    Also `${safe:...}`: a sweep name becomes a run-dir component that cannot leave `outputs/`.
    """
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("safe"):
        OmegaConf.register_new_resolver("safe", lambda text: safe_name(str(text)) or "sweep")


register()
