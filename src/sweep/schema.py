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
    # A VAE instead of the model's own: a diffusers VAE folder, a hub id, or a single .safetensors file.
    vae: str | None = None
    # LoRA files, loaded once as adapters at strength 1: one path, a list of paths, or a mapping name: path.
    lora: Any = None
    # An SDXL refiner (base + refiner "ensemble of experts"): a hub id, a diffusers refiner folder, or tiny.
    refiner: str | None = None
    # Fraction of the denoising schedule the base runs before the refiner takes over (A1111's "Refiner switch at").
    refiner_switch: float = 0.8
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
    # Seconds under each cell.
    captions: bool = True


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
