"""What the checks need to know about a model, read from its small config files before any weight loads.

Native size (so cell ids, and with them the resume check, are known before a 7 GB load), the scheduler's
`num_train_timesteps` (the bound on steps), the text encoders' depth (the bound on clip_skip) and the model's
own scheduler. None when the files are not on this machine: the runner then reads the same from the loaded
pipeline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweep.axes import Facts, spec_from_config

Reader = Callable[[str], "dict[str, Any] | None"]


def facts_from_configs(read: Reader) -> Facts | None:
    """Facts from a reader of a diffusers pipeline's component config files ('unet/config.json', ...)."""
    unet, vae = read("unet/config.json"), read("vae/config.json")
    if not unet or not vae:
        return None
    scale = 2 ** (len(vae.get("block_out_channels") or [0] * 4) - 1)
    side = int(unet.get("sample_size") or 128) * scale
    scheduler = read("scheduler/scheduler_config.json") or {}
    layers = [c.get("num_hidden_layers") for c in (read("text_encoder/config.json"), read("text_encoder_2/config.json"))
              if c and c.get("num_hidden_layers")]
    spec = spec_from_config(scheduler["_class_name"], scheduler) if scheduler.get("_class_name") else None
    return Facts(native_size=(side, side), num_train_timesteps=int(scheduler.get("num_train_timesteps") or 1000),
                 text_layers=min(layers) if layers else None, scheduler=spec, **_spacing(scheduler),
                 **_widths(unet, vae))


def _spacing(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler config's spacing: what a sampler's Automatic schedule type is for this model."""
    return {"timestep_spacing": config.get("timestep_spacing"), "steps_offset": config.get("steps_offset")}


def _widths(unet: Mapping[str, Any], vae: Mapping[str, Any]) -> dict[str, Any]:
    """The feature widths the memory bound needs (sweep.planning.memory), where the configs give them."""
    found: dict[str, Any] = {}
    if vae.get("block_out_channels"):
        found["vae_channels"] = int(vae["block_out_channels"][0])
    if unet.get("block_out_channels"):
        found["unet_channels"] = int(unet["block_out_channels"][0])
    return found


def _folder_reader(folder: Path) -> Reader:
    def read(name: str) -> dict[str, Any] | None:
        try:
            return json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return read


def _hub_reader(repo: str) -> Reader:
    def read(name: str) -> dict[str, Any] | None:
        from huggingface_hub import try_to_load_from_cache

        from sweep.models.hub import hub_cache

        try:
            found = try_to_load_from_cache(repo, name, cache_dir=str(hub_cache()))
        except Exception:  # an invalid repo id: the load reports it in its own words
            return None
        return _folder_reader(Path(found).parent)(Path(found).name) if isinstance(found, str) else None
    return read


def _built_in(source: str) -> Facts:
    from sweep.files import configs as models  # plain data: no torch before the input is checked

    if source in ("tiny", "tiny-alt"):
        unet, vae, layers = models.TINY_UNET_CONFIG, models.TINY_VAE_CONFIG, 2
    else:
        unet, vae = models.SDXL_UNET_CONFIG, models.SDXL_VAE_CONFIG
        layers = models.SDXL_TEXT_ENCODER_CONFIG["num_hidden_layers"]
    side = unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)
    return Facts(native_size=(side, side), num_train_timesteps=models.SDXL_SCHEDULER_CONFIG["num_train_timesteps"],
                 text_layers=layers, scheduler=spec_from_config("EulerDiscreteScheduler", models.SDXL_SCHEDULER_CONFIG),
                 **_spacing(models.SDXL_SCHEDULER_CONFIG), **_widths(unet, vae))


def peek(model: Mapping[str, Any]) -> Facts | None:
    """The model's facts without loading it, or None when its config files are not here."""
    if model.get("path"):
        path = Path(os.path.expanduser(str(model["path"])))
        if path.is_dir():
            return facts_from_configs(_folder_reader(path))
        config = model.get("config")
        if not config:
            return None  # a single file without a config folder: facts come from the loaded pipeline
        folder = Path(os.path.expanduser(str(config)))
        return facts_from_configs(_folder_reader(folder) if folder.is_dir() else _hub_reader(str(config)))
    source = model.get("source")
    if source in ("tiny", "tiny-alt", "sdxl_arch"):
        return _built_in(str(source))
    if source == "hub" and model.get("id"):
        return facts_from_configs(_hub_reader(str(model["id"])))
    return None


def from_pipeline(pipe: Any) -> Facts:
    """The same facts from a loaded pipeline (for models whose config files could not be read first)."""
    layers = [e.config.num_hidden_layers for e in (pipe.text_encoder, pipe.text_encoder_2) if e is not None]
    side = pipe.default_sample_size * pipe.vae_scale_factor
    scheduler = pipe.scheduler
    return Facts(native_size=(side, side), num_train_timesteps=int(scheduler.config.num_train_timesteps),
                 text_layers=min(layers) if layers else None,
                 scheduler=spec_from_config(type(scheduler).__name__, dict(scheduler.config)),
                 **_spacing(dict(scheduler.config)), **_widths(dict(pipe.unet.config), dict(pipe.vae.config)))
