"""Does a VAE fit a checkpoint? Found from safetensors headers and config files, before any model loads.

An SDXL VAE's architecture shows in a few tensor shapes that carry the same names in the original (A1111 /
Stability) layout and in diffusers' layout: the first convolution of each encoder level (`encoder.down.N.block.0
.conv1` / `encoder.down_blocks.N.resnets.0.conv1`, whose output channels are that level's width) and
`quant_conv` (twice the latent channels). A checkpoint's VAE is read the same way from its single file
(`first_stage_model.` prefix), its diffusers folder (`vae/config.json`) or a built-in model's config; a VAE
whose shape differs cannot load into that checkpoint, so the pair is refused in one line instead of failing
after the other checkpoints' images. Hub ids are not read (offline) and are left to the load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.files import checkpoints

Shape = tuple[int, ...]  # the encoder levels' widths, then the latent channels

_LEVEL = re.compile(r"encoder\.down(?:_blocks)?\.(\d+)\.(?:block|resnets)\.0\.conv1\.weight")


def _from_header(header: Mapping[str, Any], prefix: str = "") -> Shape | None:
    widths: dict[int, int] = {}
    latent = None
    for name, entry in header.items():
        if not name.startswith(prefix) or not isinstance(entry, dict):
            continue
        shape = entry.get("shape")
        if not (isinstance(shape, list) and shape and isinstance(shape[0], int)):
            continue
        rest = name[len(prefix):]
        level = _LEVEL.fullmatch(rest)
        if level:
            widths[int(level.group(1))] = shape[0]
        elif rest == "quant_conv.weight":
            latent = shape[0] // 2
    if not widths or latent is None:
        return None
    return (*(widths[i] for i in sorted(widths)), latent)


def _from_config(config: Mapping[str, Any]) -> Shape | None:
    widths, latent = config.get("block_out_channels"), config.get("latent_channels")
    if not isinstance(widths, list) or not isinstance(latent, int):
        return None
    return (*widths, latent)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _header(path: Path) -> dict[str, Any]:
    try:
        return checkpoints.read_header(path)
    except (checkpoints.HeaderError, OSError):
        return {}  # the file checks report a broken file in their own words


def checkpoint_vae(model: Mapping[str, Any]) -> Shape | None:
    """The shape of the VAE a model config loads as its own (None: unknown before the load, e.g. a hub id)."""
    from sweep.files import configs as model_configs

    if model.get("path"):
        path = checkpoints.expand(str(model["path"]))
        if path.is_dir():
            return _from_config(_read_json(path / "vae" / "config.json"))
        if path.suffix == checkpoints.SAFETENSORS:
            return _from_header(_header(path), "first_stage_model.")
        return None
    built = {"tiny": model_configs.TINY_VAE_CONFIG, "tiny-alt": model_configs.TINY_VAE_CONFIG,
             "sdxl_arch": model_configs.SDXL_VAE_CONFIG}.get(str(model.get("source")))
    return _from_config(built) if built else None


def vae_file(value: str) -> Shape | None:
    """The shape of a model.vae / VAE-axis value (None: a hub id, or not readable here)."""
    path = checkpoints.expand(value)
    if path.is_dir():
        return _from_config(_read_json(path / "config.json"))
    if path.is_file() and path.suffix == checkpoints.SAFETENSORS:
        header = _header(path)
        return _from_header(header) or _from_header(header, "first_stage_model.")
    return None


def check(model: Mapping[str, Any], swept: Sequence[axes.Values]) -> None:
    """Every checkpoint of the run (model config or checkpoint axis) with every VAE it is given (model.vae or
    the VAE axis): the VAE's shape is the checkpoint's, or the pair is refused in one line."""
    from sweep.errors import SweepError
    from sweep.models.checkpoint_axes import checkpoint_config, vae_source

    by_name = {v.axis.name: v.values for v in swept}
    checkpoints_given = [v for v in by_name.get("checkpoint", []) if v is not None] or [None]
    vaes = [v for v in by_name.get("vae", []) if v is not None] if "vae" in by_name else [None]
    for checkpoint in checkpoints_given:
        own = checkpoint_config(model, checkpoint) if checkpoint is not None else dict(model)
        expected = checkpoint_vae(own)
        if expected is None:
            continue
        for vae in vaes:
            source = vae_source(model, vae)
            if not source:
                continue
            found = vae_file(str(source))
            if found is not None and found != expected:
                key = "sweep.grid.vae" if vae is not None else "model.vae"
                name = (f"checkpoint {axes.file_label(str(checkpoint))}" if checkpoint is not None
                        else f"the model ({model.get('path') or model.get('source')})")
                raise SweepError(
                    f"{key}: got '{checkpoint_value(vae, source)}' (its layers have other widths than the VAE of "
                    f"{name}: {_say(found)} where the checkpoint has {_say(expected)}); allowed: a VAE "
                    "made for this architecture (an SDXL VAE for SDXL checkpoints)")


def checkpoint_value(vae: str | None, source: Any) -> str:
    return checkpoints.shown(vae if vae is not None else str(source))


def _say(shape: Shape) -> str:
    return f"levels {'/'.join(str(w) for w in shape[:-1])}, {shape[-1]} latent channels"
