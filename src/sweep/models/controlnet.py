"""ControlNet on the loaded SDXL pipeline: `model.controlnet` (one or a list), `control_image`, and the axes
`controlnet_conditioning_scale`, `control_guidance_start`, `control_guidance_end` (diffusers' names and semantics).

A ControlNet is a folder in diffusers' layout (config.json + diffusion_pytorch_model.safetensors), a single
.safetensors file in diffusers' layout (lllyasviel's `diffusers_xl_*` files), a hub id, or `tiny` (built in code
from the loaded UNet: `ControlNetModel.from_unet`, for tests and trying the tool). Before anything loads, each is
checked for its files and for whether it fits the checkpoint: input channels, cross-attention width, block widths
and layers, and SDXL's added embeddings must be the UNet's (the ControlNet adds its outputs to the UNet's).

The calls run on `StableDiffusionXLControlNetPipeline.from_pipe(pipe, controlnet=...)`: the loaded components, no
second load. The PNG text carries one `ControlNet N` field per ControlNet as sd-webui-controlnet writes it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.axes.images import (  # noqa: F401 - the control image's checks live with the axes
    BUILTIN_IMAGE,
    MAX_CONTROL_PIXELS,
    builtin_image,
    check_image,
)
from sweep.axes.images import control_image_hash as image_hash  # noqa: F401
from sweep.errors import SweepError, bad_value
from sweep.files import checkpoints
from sweep.files.checkpoints import bad_file, expand

KEY = "model.controlnet"
TINY = "tiny"
ALLOWED = ("a diffusers ControlNet folder (config.json + .safetensors weights), a .safetensors ControlNet file in "
           "diffusers' layout, a hub id such as diffusers/controlnet-canny-sdxl-1.0, or tiny (built in code); "
           "or a list of them")
# The ControlNet's settings that must equal the UNet's: its residuals are added to the UNet's blocks.
FIT = ("in_channels", "cross_attention_dim", "block_out_channels", "layers_per_block", "addition_embed_type",
       "addition_time_embed_dim", "projection_class_embeddings_input_dim")


@dataclass(frozen=True)
class ControlNetFile:
    """One ControlNet of model.controlnet: what loads it and how sd-webui-controlnet names it."""

    value: str
    kind: str  # tiny, folder, file, hub
    label: str  # `Model: NAME [hash]` as sd-webui-controlnet writes it


def entries(value: Any) -> list[str]:
    """model.controlnet as a list of values (one, or a list); [] when unset."""
    if value is None or value == "" or value == []:
        return []
    items = list(value) if isinstance(value, list | tuple) else [value]
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise bad_value(KEY, item, ALLOWED)
    return [item.strip() for item in items]


def _unet_config(model: Mapping[str, Any]) -> dict[str, Any] | None:
    """The base UNet's config, read before anything loads (None: not on this machine; the load then decides)."""
    from sweep.files import configs as model_configs

    source = "path" if model.get("path") else model.get("source")
    if source in ("tiny", "tiny-alt"):
        return dict(model_configs.TINY_UNET_CONFIG)
    if source == "sdxl_arch":
        return dict(model_configs.SDXL_UNET_CONFIG)
    if source == "hub":
        return _hub_json(str(model.get("id")), "unet/config.json")
    path = expand(str(model.get("path")))
    if path.is_dir():
        return _read_json(path / "unet" / "config.json")
    config = model.get("config")
    if config:
        folder = expand(str(config))
        return _read_json(folder / "unet" / "config.json") if folder.is_dir() else _hub_json(str(config),
                                                                                             "unet/config.json")
    return dict(model_configs.SDXL_UNET_CONFIG)  # a single file without configs is read as SDXL base


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hub_json(repo: str, name: str) -> dict[str, Any] | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, name)
    except Exception:  # an invalid repo id: None, and the caller words it
        return None
    return _read_json(Path(found)) if isinstance(found, str) else None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def check(model: Mapping[str, Any]) -> list[ControlNetFile]:
    """Every ControlNet of model.controlnet: there, complete, safetensors (pickle refused unless allowed), and
    fitting the model's UNet; one line each, before anything loads. Needs no torch."""
    values = entries(model.get("controlnet"))
    unet = _unet_config(model) if values else None
    found = []
    for index, value in enumerate(values):
        key = KEY if len(values) == 1 else f"{KEY}[{index}]"
        kind, config, weights = _inspect(key, value, bool(model.get("allow_pickle")))
        if config is not None and unet is not None:
            _check_fit(key, value, config, unet)
        found.append(ControlNetFile(value, kind, _label(value, kind, weights)))
    labels = [f.label for f in found]
    if len(set(labels)) != len(labels):
        raise bad_value(KEY, values, "distinct ControlNets (each is one `ControlNet N` unit)")
    if found and model.get("refiner"):
        raise bad_value("model.refiner", model["refiner"], f"null when {KEY} is set (the refiner's steps would "
                        "run without the ControlNet)")
    if found and model.get("cpu_offload"):
        raise bad_value("model.cpu_offload", True, f"false with {KEY} (the offload hooks are the base pipeline's)")
    return found


def _inspect(key: str, value: str, allow_pickle: bool) -> tuple[str, dict[str, Any] | None, Path | None]:
    """(kind, the ControlNet's config as far as it is known before the load, its weights file)."""
    if value == TINY:
        return TINY, None, None  # built from the loaded UNet's own config: it fits by construction
    path = expand(value)
    if path.is_dir():
        config = _read_json(path / "config.json")
        if config is None:
            raise bad_file(key, path, ALLOWED, "no readable config.json")
        if config.get("_class_name") != "ControlNetModel":
            raise bad_file(key, path, ALLOWED, f"a {config.get('_class_name') or 'model'} folder, not ControlNetModel")
        weights = sorted(path.glob("diffusion_pytorch_model*.safetensors"))
        if not weights:
            pickled = sorted(path.glob("diffusion_pytorch_model*.bin"))
            if not pickled:
                raise bad_file(key, path, ALLOWED, "no diffusion_pytorch_model.safetensors")
            if not allow_pickle:
                raise bad_file(key, path, f"{ALLOWED}; pickle weights run code when loaded, pass "
                               "model.allow_pickle=true only if you trust them", "only pickle weights (.bin)")
            return "folder", config, pickled[0]
        if len(weights) == 1:  # a sharded folder is checked by the load; one file is checked whole now
            checkpoints.check_file(key, weights[0], allow_pickle=False, allowed=ALLOWED)
        return "folder", config, weights[0]
    if path.exists() or not checkpoints.looks_like_hub_id(value):
        path, header = checkpoints.check_file(key, path, allow_pickle=False, allowed=ALLOWED)
        return "file", header_config(key, path, header), path
    config = _hub_json(value, "config.json")
    if config is None and _offline():
        raise bad_file(key, value, ALLOWED, "a hub id that is not in the local Hugging Face cache, and "
                       "HF_HUB_OFFLINE is set")
    if config is not None and config.get("_class_name") != "ControlNetModel":
        raise bad_file(key, value, ALLOWED, f"a {config.get('_class_name') or 'model'} repository, not a ControlNet")
    return "hub", config, None


_DOWN = re.compile(r"^down_blocks\.(\d+)\.resnets\.(\d+)\.conv1\.weight$")


def header_config(key: str, path: Path, header: Mapping[str, Any]) -> dict[str, Any]:
    """The fit settings of a diffusers-layout ControlNet file, from its tensor shapes (no weight is read)."""
    def shape(name: str) -> list[int] | None:
        entry = header.get(name)
        return list(entry["shape"]) if isinstance(entry, dict) and isinstance(entry.get("shape"), list) else None

    names = [n for n in header if n != "__metadata__"]
    if not any(n.startswith("controlnet_cond_embedding.") for n in names):
        why = ("an original-layout (A1111 / kohya) ControlNet: use its diffusers folder or a diffusers-layout file"
               if any(n.startswith(("control_model.", "input_hint_block.")) for n in names)
               else checkpoints.KIND_WORDS.get(checkpoints.checkpoint_kind(names), "not a ControlNet"))
        raise bad_file(key, path, ALLOWED, why)
    config: dict[str, Any] = {}
    conv_in = shape("conv_in.weight")
    if conv_in:
        config["in_channels"] = conv_in[1]
    widths: dict[int, int] = {}
    layers: dict[int, int] = {}
    for name in names:
        match = _DOWN.match(name)
        if match and shape(name):
            block, layer = int(match[1]), int(match[2])
            if layer == 0:
                widths[block] = shape(name)[0]
            layers[block] = max(layers.get(block, 0), layer + 1)
    if widths:
        config["block_out_channels"] = [widths[i] for i in sorted(widths)]
        config["layers_per_block"] = layers[0]
    cross = next((shape(n) for n in sorted(names) if n.endswith("attn2.to_k.weight")), None)
    if cross:
        config["cross_attention_dim"] = cross[1]
    added = shape("add_embedding.linear_1.weight")
    config["addition_embed_type"] = "text_time" if added else None
    if added:
        config["projection_class_embeddings_input_dim"] = added[1]
    return config


def _check_fit(key: str, value: str, config: Mapping[str, Any], unet: Mapping[str, Any]) -> None:
    for name in FIT:
        if name not in config or (name == "addition_time_embed_dim" and "addition_time_embed_dim" not in unet):
            continue
        theirs, ours = config.get(name), unet.get(name)
        if isinstance(theirs, list | tuple) or isinstance(ours, list | tuple):
            theirs, ours = list(theirs or []), list(ours or [])
        if theirs != ours:
            raise bad_file(key, value, "a ControlNet made for this checkpoint's UNet (an SDXL ControlNet for an SDXL "
                           "model)", f"its {name} is {theirs}, the UNet's {ours}")


def _label(value: str, kind: str, weights: Path | None) -> str:
    """`NAME [hash]` as sd-webui-controlnet lists its models: the file stem (a folder's or hub repo's name) and
    A1111's legacy model hash of the weights file (8 hex digits); tiny has no file and no hash."""
    if kind == TINY:
        return TINY
    name = expand(value).resolve().name if kind == "folder" else (
        expand(value).stem if kind == "file" else value.rstrip("/").split("/")[-1])
    name = re.sub(r"[,:\[\]\n\r]", "_", name)  # the unit's text has no quoting: its separators stay out
    return f"{name} [{legacy_hash(weights)}]" if weights is not None else name


def legacy_hash(path: Path) -> str:
    """A1111's `sd_models.model_hash` (the name sd-webui-controlnet shows): SHA-256 of 64 KiB at 1 MiB, 8 digits."""
    import hashlib

    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]


# --- loading -------------------------------------------------------------------------------------------


def load(model: Mapping[str, Any], pipe: Any, device: str, dtype: Any) -> tuple[Any, tuple[str, ...]]:
    """(ControlNetModel or MultiControlNetModel, the labels) for model.controlnet, on the pipeline's device."""
    import torch
    from diffusers import ControlNetModel

    found = check(model)
    nets = []
    for item in found:
        if item.kind == TINY:
            net = build_tiny_controlnet(pipe.unet)
        elif item.kind == "hub":
            net = ControlNetModel.from_pretrained(item.value, torch_dtype=dtype, use_safetensors=True)
        elif item.kind == "folder":
            net = ControlNetModel.from_pretrained(str(expand(item.value)), torch_dtype=dtype, local_files_only=True,
                                                  use_safetensors=not model.get("allow_pickle"))
        else:
            net = _from_file(expand(item.value), pipe.unet)
        if any(p.dtype != dtype for p in net.parameters()):  # built in fp32: cast plainly (diffusers' `to` warns)
            net = torch.nn.Module.to(net, dtype=dtype)
        nets.append(net.to(device=device).eval())
    if len(nets) == 1:
        return nets[0], (found[0].label,)
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    return MultiControlNetModel(nets), tuple(f.label for f in found)


def _from_file(path: Path, unet: Any) -> Any:
    """A diffusers-layout ControlNet file: the architecture from the UNet's config (the fit check made sure the
    file's shapes are those), the conditioning embedding's widths from the file, every tensor loaded strictly."""
    import torch
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    state = load_file(str(path))
    # Its conditioning embedding: conv_in, then (same width, next width) pairs of convolutions.
    embedding = [int(state["controlnet_cond_embedding.conv_in.weight"].shape[0])]
    index = 1
    while f"controlnet_cond_embedding.blocks.{index}.weight" in state:
        embedding.append(int(state[f"controlnet_cond_embedding.blocks.{index}.weight"].shape[0]))
        index += 2
    with torch.device("meta"):
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(embedding),
                                        load_weights_from_unet=False,
                                        conditioning_channels=int(state["controlnet_cond_embedding.conv_in.weight"]
                                                                  .shape[1]))
    net.load_state_dict(state, strict=True, assign=True)
    return net


def build_tiny_controlnet(unet: Any, seed: int = 7) -> Any:
    """A ControlNet for `unet` built in code: `ControlNetModel.from_unet` (the UNet's config and encoder weights)
    with small seeded weights where diffusers starts from zeros (the output convolutions), so that it changes the
    image: a ControlNet fresh from `from_unet` adds exact zeros, whatever its scale."""
    import torch
    from diffusers import ControlNetModel

    from sweep.models.builtin import _seeded

    with _seeded(seed, torch.device("cpu")):
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 16))
        with torch.no_grad():
            for module in (net.controlnet_cond_embedding.conv_out, *net.controlnet_down_blocks,
                           net.controlnet_mid_block):
                module.weight.normal_(0.0, 0.6)
                module.bias.normal_(0.0, 0.1)
    return net.to(dtype=torch.float32)


def control_pipeline(loaded: Any) -> Any:
    """StableDiffusionXLControlNetPipeline over `loaded.pipe`'s components (made once per loaded checkpoint)."""
    return loaded.sibling("control_pipe", "StableDiffusionXLControlNetPipeline", controlnet=loaded.controlnet)


# --- control image -------------------------------------------------------------------------------------


def control_image(value: str, width: int, height: int) -> Any:
    """The control image as RGB at the cell's size (sd-webui-controlnet's `Just Resize`: Lanczos, no crop)."""
    from PIL import Image

    if value == BUILTIN_IMAGE:
        rgb = builtin_image()
    else:
        with Image.open(os.path.expanduser(value)) as image:
            image.load()
            rgb = to_rgb(image)
    return rgb if rgb.size == (width, height) else rgb.resize((width, height), Image.LANCZOS)


def to_rgb(image: Any) -> Any:
    """8-bit RGB of any PIL image: a 16-bit map (depth maps often are) scaled to 8 bits, not clipped at 255 as
    PIL's own conversion does; CMYK, palette and alpha images as PIL converts them."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "F":
        gray = np.clip(np.round(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return image.convert("RGB")


# --- the PNG text --------------------------------------------------------------------------------------

DEFAULTS = {"controlnet_conditioning_scale": 1.0, "control_guidance_start": 0.0, "control_guidance_end": 1.0}


def units(cell: Any, row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`ControlNet N` fields as sd-webui-controlnet writes them (its `serialize_unit`), one per ControlNet of the
    row, with the values the call used (diffusers' defaults where the cell leaves one unset)."""
    names = [n for n in str(row.get("controlnet") or "").split("; ") if n]
    values = {k: cell.get(k) if cell.get(k) is not None else v for k, v in DEFAULTS.items()}
    fields = []
    for index, name in enumerate(names):
        text = ", ".join(f"{k}: {v}" for k, v in (
            ("Module", "none"), ("Model", name), ("Weight", float(values["controlnet_conditioning_scale"])),
            ("Resize Mode", "Just Resize"), ("Processor Res", 512),
            ("Guidance Start", float(values["control_guidance_start"])),
            ("Guidance End", float(values["control_guidance_end"])), ("Pixel Perfect", False),
            ("Control Mode", "Balanced")))
        fields.append((f"ControlNet {index}", text))
    return fields


def check_cells(cells: list[Any], model: Mapping[str, Any], swept: list[str]) -> None:
    """Across axes, before anything loads: a control image for every cell once model.controlnet is set (an
    IP-Adapter image once model.ip_adapter is), a guidance start below its end, and no second pass (Hires. fix,
    image-to-image) with a ControlNet."""
    def key(name: str) -> str:
        return f"sweep.grid.{name}" if name in swept else name

    if model.get("ip_adapter"):
        for cell in cells:
            if cell.get("ip_adapter_image") is None:
                raise bad_value(key("ip_adapter_image"), None, "an image with model.ip_adapter set: an image file, "
                                f"or {BUILTIN_IMAGE} (a drawn test pattern)")
            if cell.get("pag_scale"):  # a PAG call swaps the UNet's attention processors, the adapter's among them
                raise bad_value(key("pag_scale"), cell["pag_scale"], "0 or null with model.ip_adapter set (PAG "
                                "replaces the IP-Adapter's attention processors during its calls)")
    if not entries(model.get("controlnet")):
        return

    for cell in cells:
        if cell.get("control_image") is None:
            raise bad_value(key("control_image"), None, f"a control image with {KEY} set: an image file, or "
                            f"{BUILTIN_IMAGE} (a drawn test pattern)")
        start = cell.get("control_guidance_start")
        end = cell.get("control_guidance_end")
        start = DEFAULTS["control_guidance_start"] if start is None else start
        end = DEFAULTS["control_guidance_end"] if end is None else end
        if start >= end:
            name = "control_guidance_start" if "control_guidance_start" in swept or "control_guidance_end" not in \
                swept else "control_guidance_end"
            raise bad_value(key(name), cell.get(name) if cell.get(name) is not None else DEFAULTS[name],
                            f"control_guidance_start below control_guidance_end (got {start} and {end})")
        for name in ("hires_scale", "init_image"):
            if cell.get(name) is not None:
                raise bad_value(key(name), cell.get(name), f"null when {KEY} is set (the ControlNet runs in the "
                                "text-to-image pass only)")
        for name in cell.call_args():
            if name not in control_call_arguments():
                raise bad_value(key(name), cell.get(name), f"null when {KEY} is set (diffusers' "
                                "StableDiffusionXLControlNetPipeline takes no such argument)")


def control_call_arguments() -> frozenset[str]:
    """The keyword arguments of StableDiffusionXLControlNetPipeline.__call__ (read from diffusers' source)."""
    from sweep.axes.samplers import call_annotations

    found = call_annotations("pipelines/controlnet/pipeline_controlnet_sd_xl.py", "StableDiffusionXLControlNetPipeline")
    if found is not None:
        return frozenset(found)
    raise SweepError("diffusers' StableDiffusionXLControlNetPipeline was not found in the installed diffusers")
