"""The `checkpoint` and `vae` axes: from a value to the model config that loads it, checked before anything loads.

A value is a path (a `.safetensors` file or a diffusers folder), a name under `model.models_dir` (found as
`NAME`, `NAME.safetensors`, or in A1111's subfolders `Stable-diffusion/` and `VAE/`), a built-in model
(`tiny`, `tiny-alt`, `sdxl_arch`: built in code, no file) or a hub id. Everything else about the model (dtype,
device, LoRAs, single-file `config`, GPU options) is the model config's, for every checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.errors import SweepError, bad_value
from sweep.files import checkpoints

CHECKPOINT_DIRS = ("", "Stable-diffusion")  # A1111's models/Stable-diffusion
VAE_DIRS = ("", "VAE")  # A1111's models/VAE
MODEL_AXES = tuple(a.name for a in axes.AXES if a.enters == "model")


def _search(value: str, model: Mapping[str, Any], subdirs: Sequence[str]) -> Path | None:
    """The file or folder a value names: the path itself, else NAME or NAME.safetensors under models_dir."""
    path = checkpoints.expand(value)
    if path.exists():
        return path
    root = model.get("models_dir")
    if not root or os.path.isabs(value):
        return None
    for sub in subdirs:
        for name in (value, value + checkpoints.SAFETENSORS):
            candidate = checkpoints.expand(str(root)) / sub / name
            if candidate.exists():
                return candidate
    return None


def _looked_in(model: Mapping[str, Any]) -> str:
    root = model.get("models_dir")
    return f"not a path, nor a name under model.models_dir={root}" if root else \
        "no such file or folder, and model.models_dir is not set"


def checkpoint_config(model: Mapping[str, Any], value: str, key: str = "sweep.grid.checkpoint") -> dict[str, Any]:
    """The model config that loads checkpoint `value` (with the model config's other settings)."""
    out = {k: v for k, v in model.items() if k != "path"}
    label = axes.file_label(value)
    if value in axes.BUILT_IN_CHECKPOINTS:
        return {**out, "path": None, "source": value, "id": None, "name": value}
    path = _search(value, model, CHECKPOINT_DIRS)
    if path is not None:
        return {**out, "path": str(path), "name": label}
    if checkpoints.looks_like_hub_id(value):
        return {**out, "path": None, "source": "hub", "id": value, "name": label}
    raise checkpoints.bad_file(key, value, checkpoints.SDXL_FILE + ", a name under model.models_dir, or a built-in "
                               "model (" + ", ".join(axes.BUILT_IN_CHECKPOINTS) + ")", _looked_in(model))


def vae_source(model: Mapping[str, Any], value: str | None, key: str = "sweep.grid.vae") -> str | None:
    """What model.vae becomes for VAE `value` (None: the model config's model.vae)."""
    if value is None:
        return model.get("vae") or None
    path = _search(value, model, VAE_DIRS)
    if path is not None:
        return str(path)
    if checkpoints.looks_like_hub_id(value):
        return value
    raise checkpoints.bad_file(key, value, "a diffusers VAE folder (config.json), a hub id such as "
                               "madebyollin/sdxl-vae-fp16-fix, a VAE file, or a name under model.models_dir",
                               _looked_in(model))


def axis_file(model: Mapping[str, Any], name: str, value: str) -> Path | None:
    """The local file or folder a checkpoint / VAE axis value loads (None: a built-in model or a hub id)."""
    if name == "checkpoint" and value in axes.BUILT_IN_CHECKPOINTS:
        return None
    return _search(value, model, CHECKPOINT_DIRS if name == "checkpoint" else VAE_DIRS)


def model_config(model: Mapping[str, Any], key: Mapping[str, Any]) -> dict[str, Any]:
    """The model config for one cell's `model_key` (its checkpoint and VAE values)."""
    out = dict(model)
    if key.get("checkpoint") is not None:
        out = checkpoint_config(model, key["checkpoint"])
    if "vae" in key:
        out["vae"] = vae_source(model, key["vae"])
    return out


def check(model: Mapping[str, Any], swept: Sequence[axes.Values]) -> None:
    """Every checkpoint and VAE value: found, readable, the right kind, complete; labels distinct. One line each."""
    allow_pickle = bool(model.get("allow_pickle"))
    for values in swept:
        name = values.axis.name
        if name not in MODEL_AXES:
            continue
        key = f"sweep.grid.{name}"
        labels: dict[str, str] = {}
        for value in values.values:
            if value is None:
                continue
            label = values.axis.to_record(value)[name]
            if label in labels:
                raise bad_value(key, value, f"values with distinct names ({labels[label]!r} and {value!r} are both "
                                f"{label!r} in sheets and file names)")
            labels[label] = value
            if name == "checkpoint":
                found = checkpoint_config(model, value, key)
                if found.get("path"):
                    checkpoints.check_sdxl_path(key, found["path"], allow_pickle=allow_pickle)
                elif found.get("source") == "hub":
                    from sweep.models.hub import require_cached

                    require_cached(key, str(found["id"]))
                if model.get("controlnet"):  # each ControlNet must fit this checkpoint's UNet too
                    from sweep.models.controlnet import check as check_controlnets

                    try:
                        check_controlnets(found)
                    except SweepError as exc:
                        raise SweepError(f"{key}: {value!r} with {exc}") from None
            else:
                checkpoints.check_vae(key, vae_source(model, value, key), allow_pickle=allow_pickle)
    if any(v.axis.name == "vae" for v in swept) and model.get("cpu_offload"):
        raise SweepError("sweep.grid.vae: got a VAE axis with model.cpu_offload=true; allowed: one of them (the "
                         "offload hooks belong to the loaded VAE)")
