"""IP-Adapter on the loaded SDXL pipeline: `model.ip_adapter`, `ip_adapter_image`, and the `ip_adapter_scale` axis.

`model.ip_adapter` is a local IP-Adapter weights file in diffusers' `load_ip_adapter` layout (`image_proj.*` and
`ip_adapter.*` tensors, as h94/IP-Adapter's `sdxl_models/ip-adapter_sdxl.safetensors`), or a folder holding one,
with its CLIP image encoder (a transformers CLIPVisionModelWithProjection folder) in `image_encoder/` beside it or
at `model.ip_adapter_encoder`; or `tiny` (built in code for the loaded UNet, with a tiny CLIP image encoder).
Checked before anything loads: the files, safetensors (pickle only with model.allow_pickle), and the fit: the
adapter's cross-attention width is the UNet's and its input width the image encoder's.

The scale is state of the shared UNet's attention processors (`pipe.set_ip_adapter_scale`), set between calls as
LoRA strengths are. The PNG text carries one more `ControlNet N` unit, as sd-webui-controlnet writes IP-Adapters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.errors import bad_value
from sweep.files import checkpoints
from sweep.files.checkpoints import bad_file, expand

KEY = "model.ip_adapter"
TINY = "tiny"
ALLOWED = ("an IP-Adapter .safetensors file in diffusers' load_ip_adapter layout (image_proj.* and ip_adapter.* "
           "tensors) or a folder holding one, with its CLIP image encoder in image_encoder/ beside it (or "
           "model.ip_adapter_encoder=FOLDER), or tiny (built in code)")
ENCODER_ALLOWED = "a transformers CLIPVisionModelWithProjection folder (config.json + model.safetensors)"
MAX_SCALE = 5.0  # sd-webui-controlnet's Weight slider stops at 2; diffusers has no bound


@dataclass(frozen=True)
class IpAdapterFile:
    value: str
    kind: str  # tiny or file
    weights: Path | None
    encoder: Path | None
    label: str  # `Model: NAME [hash]` as sd-webui-controlnet writes it


def _weights(key: str, value: str, allow_pickle: bool) -> tuple[Path, dict[str, Any] | None]:
    """The adapter's weights file (a folder's one IP-Adapter file) and its safetensors header."""
    path = expand(value)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix == checkpoints.SAFETENSORS and p.is_file())
        if not found:
            pickled = sorted(p for p in path.iterdir() if p.suffix.lower() in checkpoints.PICKLE_SUFFIXES)
            if not pickled:
                raise bad_file(key, path, ALLOWED, "no .safetensors file in it")
            found = pickled
        if len(found) > 1:
            raise bad_file(key, path, ALLOWED, "more than one weights file in it: name the file")
        path = found[0]
    elif not path.exists() and checkpoints.looks_like_hub_id(value):
        raise bad_file(key, value, ALLOWED, "a hub id: download the files and give the local path")
    return checkpoints.check_file(key, path, allow_pickle=allow_pickle, allowed=ALLOWED)


def _shape(header: Mapping[str, Any] | None, name: str) -> list[int] | None:
    entry = (header or {}).get(name)
    return list(entry["shape"]) if isinstance(entry, dict) and isinstance(entry.get("shape"), list) else None


def check(model: Mapping[str, Any]) -> IpAdapterFile | None:
    """model.ip_adapter and its image encoder: there, complete, the right kind and fitting the UNet; None when
    unset. One line each, before anything loads; needs no torch."""
    value = model.get("ip_adapter")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_value(KEY, value, ALLOWED)
    value = value.strip()
    if model.get("refiner"):
        raise bad_value("model.refiner", model["refiner"], f"null when {KEY} is set (the refiner's UNet has no "
                        "IP-Adapter)")
    if value == TINY:
        return IpAdapterFile(value, TINY, None, None, TINY)
    allow_pickle = bool(model.get("allow_pickle"))
    weights, header = _weights(KEY, value, allow_pickle)
    if header is not None:
        names = [n for n in header if n != "__metadata__"]
        if not any(n.startswith("image_proj.") for n in names) or not any(n.startswith("ip_adapter.") for n in names):
            why = checkpoints.KIND_WORDS.get(checkpoints.checkpoint_kind(names), "not an IP-Adapter")
            raise bad_file(KEY, weights, ALLOWED, f"no image_proj.* and ip_adapter.* tensors: {why}")
    encoder = expand(str(model["ip_adapter_encoder"])) if model.get("ip_adapter_encoder") else \
        weights.parent / "image_encoder"
    key = "model.ip_adapter_encoder" if model.get("ip_adapter_encoder") else KEY
    config = _encoder_config(key, encoder, allow_pickle)
    if header is not None:
        _check_fit(weights, header, config, model)
    from sweep.models.controlnet import legacy_hash

    name = weights.stem.replace(",", "_").replace(":", "_").replace("[", "_").replace("]", "_")
    return IpAdapterFile(value, "file", weights, encoder, f"{name} [{legacy_hash(weights)}]")


def _encoder_config(key: str, folder: Path, allow_pickle: bool) -> dict[str, Any]:
    if not folder.is_dir():
        raise bad_file(key, folder, ENCODER_ALLOWED, "no such folder (the IP-Adapter's image encoder)")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise bad_file(key, folder, ENCODER_ALLOWED, "no readable config.json") from None
    if "CLIPVisionModelWithProjection" not in (config.get("architectures") or []):
        raise bad_file(key, folder, ENCODER_ALLOWED, f"a {', '.join(config.get('architectures') or ['model'])} folder")
    weights = folder / "model.safetensors"
    if weights.exists() or not allow_pickle:
        checkpoints.check_file(key, weights, allow_pickle=False, allowed=ENCODER_ALLOWED)
    return config


def _check_fit(weights: Path, header: Mapping[str, Any], encoder: Mapping[str, Any],
               model: Mapping[str, Any]) -> None:
    from sweep.models.controlnet import _unet_config

    unet = _unet_config(model) or {}
    allowed = "an IP-Adapter made for this checkpoint's UNet and its image encoder (an SDXL IP-Adapter for SDXL)"
    proj, proj_out, proj_in = (_shape(header, f"image_proj.{n}.weight") for n in ("proj", "proj_out", "proj_in"))
    width = proj[0] // 4 if proj else (proj_out[0] if proj_out else None)
    if width is not None and unet.get("cross_attention_dim") and width != unet["cross_attention_dim"]:
        raise bad_file(KEY, weights, allowed, f"its cross-attention width is {width}, the UNet's "
                       f"{unet['cross_attention_dim']}")
    takes, gives = ((proj[1], encoder.get("projection_dim")) if proj else
                    (proj_in[1] if proj_in else None, encoder.get("hidden_size")))
    if takes is not None and gives is not None and takes != gives:
        raise bad_file(KEY, weights, allowed, f"it takes image embeddings of width {takes}, its image encoder "
                       f"gives {gives}")


# --- loading -------------------------------------------------------------------------------------------


def load(model: Mapping[str, Any], pipe: Any, device: str, dtype: Any) -> str:
    """Put model.ip_adapter and its image encoder on `pipe` (diffusers' load_ip_adapter); its label."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    item = check(model)
    if item.kind == TINY:
        encoder, state = build_tiny_ip_adapter(pipe.unet)
    else:
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(item.encoder), local_files_only=True, use_safetensors=not model.get("allow_pickle"))
        state = read_state(item.weights)
    encoder = encoder.to(device=device, dtype=dtype).eval()
    size = encoder.config.image_size
    pipe.register_modules(image_encoder=encoder, feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
    state = {part: {k: v.to(dtype=dtype) for k, v in tensors.items()} for part, tensors in state.items()}
    with torch.no_grad():
        pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    return item.label


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """{'image_proj': ..., 'ip_adapter': ...} from a weights file (a pickle only with allow_pickle, loaded with
    torch's weights_only reader: tensors, no code)."""
    import torch
    from safetensors import safe_open

    if path.suffix == checkpoints.SAFETENSORS:
        state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in handle.keys():
                part, _, rest = name.partition(".")
                if part in state:
                    state[part][rest] = handle.get_tensor(name)
        return state
    return torch.load(str(path), map_location="cpu", weights_only=True)


def build_tiny_ip_adapter(unet: Any, seed: int = 11) -> tuple[Any, dict[str, dict[str, Any]]]:
    """(a tiny CLIP image encoder, an IP-Adapter state dict for `unet`), seeded, built in code: the plain
    IP-Adapter (4 image tokens through `image_proj.proj`) with a `to_k_ip` / `to_v_ip` pair per cross-attention."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from sweep.models.builtin import _seeded

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=16)
    with _seeded(seed, torch.device("cpu")):
        encoder = CLIPVisionModelWithProjection(config).eval()
    width = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed)

    def random(*shape: int, std: float) -> Any:
        return torch.randn(*shape, generator=generator) * std

    image_proj = {"proj.weight": random(4 * width, config.projection_dim, std=0.5), "proj.bias": torch.zeros(4 * width),
                  "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    adapter: dict[str, Any] = {}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
        adapter[f"{key}.to_k_ip.weight"] = random(hidden, width, std=0.5)
        adapter[f"{key}.to_v_ip.weight"] = random(hidden, width, std=0.5)
        key += 2
    return encoder, {"image_proj": image_proj, "ip_adapter": adapter}


def save_tiny(unet: Any, folder: Path) -> Path:
    """The tiny IP-Adapter as files, in the layout `model.ip_adapter` reads: FOLDER/ip-adapter.safetensors and
    FOLDER/image_encoder/. Returns the weights file."""
    from safetensors.torch import save_file

    encoder, state = build_tiny_ip_adapter(unet)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    flat = {f"{part}.{k}": v.contiguous() for part, tensors in state.items() for k, v in tensors.items()}
    save_file(flat, folder / "ip-adapter.safetensors")
    return folder / "ip-adapter.safetensors"


def apply_scale(pipe: Any, scale: float | None) -> None:
    """The scale of every IP-Adapter attention of the shared UNet (None: diffusers' 1.0)."""
    pipe.set_ip_adapter_scale(1.0 if scale is None else float(scale))


def unit(cell: Any, row: Mapping[str, Any], index: int) -> tuple[str, str] | None:
    """The IP-Adapter's `ControlNet N` unit as sd-webui-controlnet writes one (its preprocessor: the CLIP encoder)."""
    if not row.get("ip_adapter"):
        return None
    scale = cell.get("ip_adapter_scale")
    fields = (("Module", "ip-adapter_clip_sdxl"), ("Model", row["ip_adapter"]),
              ("Weight", float(1.0 if scale is None else scale)), ("Resize Mode", "Crop and Resize"),
              ("Processor Res", 512), ("Guidance Start", 0.0), ("Guidance End", 1.0), ("Pixel Perfect", False),
              ("Control Mode", "Balanced"))
    return f"ControlNet {index}", ", ".join(f"{k}: {v}" for k, v in fields)
