"""The model part's checks before anything loads: the model source, its files, VAE, LoRAs, refiner, device, dtype.

`check(model)` is the one entry: planning (sweep.planning.plan) and loading (sweep.models.pipeline) both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweep.errors import bad_value
from sweep.files import checkpoints
from sweep.models import lora

SOURCES = ("hub", "tiny", "tiny-alt", "sdxl_arch", "path")
FIX_HINT = "try model=tiny (built in, no download) or model.path=/path/to/a/local/diffusers/folder"


def check(model: Mapping[str, Any]) -> list[str]:
    """What can be checked before loading anything (fast: reads at most the files' safetensors headers, imports
    no torch).

    Returns the names of model.lora's LoRAs (the axes `lora.NAME` a sweep may vary).
    """
    from sweep.models.devices import check_names

    source = "path" if model.get("path") else model.get("source")
    if source not in SOURCES:
        raise bad_value("model.source", source, ", ".join(SOURCES))
    if source == "hub" and not model.get("id"):
        raise bad_value("model.id", model.get("id"), "a hub model id such as stabilityai/stable-diffusion-xl-base-1.0")
    allow_pickle = bool(model.get("allow_pickle"))
    if source == "path":
        path = checkpoints.expand(str(model.get("path")))
        if not path.exists():
            raise bad_value("model.path", str(path), "an existing diffusers folder or .safetensors file, or a Hugging "
                            f"Face id such as RunDiffusion/Juggernaut-XL-v9; {FIX_HINT}")
        checkpoints.check_sdxl_path("model.path", path, allow_pickle=allow_pickle)
        if model.get("config"):
            checkpoints.check_config("model.config", model["config"])
    if model.get("vae"):
        checkpoints.check_vae("model.vae", model["vae"], allow_pickle=allow_pickle)
    loras = lora.parse(model.get("lora"), allow_pickle=allow_pickle)
    if model.get("refiner"):
        from sweep.models import refiner

        refiner.check_refiner(model["refiner"])
    if model.get("controlnet"):
        from sweep.models import controlnet

        controlnet.check(model)
    if model.get("ip_adapter"):
        from sweep.models import ip_adapter

        ip_adapter.check(model)
    # The names only: whether this machine has the device is checked when it is resolved (sweep.running.runner, before
    # the run dir is touched; sweep.models.pipeline.load), which imports torch.
    check_names(str(model.get("device", "auto")), str(model.get("dtype", "auto")))
    if model.get("compile"):
        from sweep.models.compiling import check_mode

        check_mode(str(model.get("compile_mode") or "default"))
    if model.get("fuse_qkv_projections") and loras:
        raise bad_value("model.fuse_qkv_projections", True, "false with model.lora (fused projections take no "
                        "LoRA adapters)")
    return [name for name, _ in loras]
