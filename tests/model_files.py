"""Model files made in the tests: an original-layout SDXL single file, a VAE, a LoRA (no download anywhere).

`original_sdxl_state_dict` writes a diffusers SDXL pipeline in the layout of the checkpoints people download
(A1111 / Stability: `model.diffusion_model.*`, `first_stage_model.*`, `conditioner.embedders.0.transformer.*`,
`conditioner.embedders.1.model.*` with fused q/k/v), the key mapping of diffusers'
`scripts/convert_diffusers_to_original_sdxl.py`, so `from_single_file` has to convert it back for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}


def _unet_key(key: str, layers: int, up_has_attention: list[bool]) -> str:
    """One diffusers UNet key in the original (ldm) layout; layers = layers_per_block."""
    parts = key.split(".")
    for prefix, target in _UNET_TOP.items():
        if key.startswith(prefix + "."):
            return target + key[len(prefix):]
    if parts[0] in ("down_blocks", "up_blocks"):
        i, kind = int(parts[1]), parts[2]
        if kind == "downsamplers":  # down_blocks.i.downsamplers.0.conv -> input_blocks.N.0.op
            return f"input_blocks.{(layers + 1) * (i + 1)}.0.op." + ".".join(parts[5:])
        if kind == "upsamplers":  # after the block's resnet (and its attention, when it has one)
            slot = 2 if up_has_attention[i] else 1
            return f"output_blocks.{(layers + 1) * i + layers}.{slot}." + ".".join(parts[4:])
        j, rest = int(parts[3]), parts[4:]
        block = (layers + 1) * i + j + 1 if parts[0] == "down_blocks" else (layers + 1) * i + j
        name = "input_blocks" if parts[0] == "down_blocks" else "output_blocks"
        if kind == "resnets":
            return f"{name}.{block}.0." + ".".join([_RESNET.get(rest[0], rest[0]), *rest[1:]])
        return f"{name}.{block}.1." + ".".join(rest)
    if parts[0] == "mid_block":  # resnet, attention, resnet
        slot = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[f"{parts[1]}.{parts[2]}"]
        rest = parts[3:]
        if parts[1] == "resnets":
            rest = [_RESNET.get(rest[0], rest[0]), *rest[1:]]
        return f"middle_block.{slot}." + ".".join(rest)
    raise KeyError(key)


def _vae_key(key: str, blocks: int) -> str:
    parts = key.split(".")
    side = parts[0]  # encoder / decoder / quant_conv / post_quant_conv
    if len(parts) > 2 and parts[1] in ("down_blocks", "up_blocks"):
        i = int(parts[2]) if parts[1] == "down_blocks" else blocks - 1 - int(parts[2])  # ldm numbers up bottom-up
        level = "down" if parts[1] == "down_blocks" else "up"
        if parts[3] == "resnets":
            rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.{level}.{i}.block.{parts[4]}.{rest}"
        sampler = "downsample" if level == "down" else "upsample"
        return f"{side}.{level}.{i}.{sampler}." + ".".join(parts[5:])
    if len(parts) > 2 and parts[1] == "mid_block":
        if parts[2] == "resnets":
            rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.mid.block_{int(parts[3]) + 1}.{rest}"
        rest = ".".join(parts[4:])  # mid_block.attentions.0.<rest>
        for diffusers_name, ldm_name in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                                         ("to_out.0.", "proj_out.")):
            rest = rest.replace(diffusers_name, ldm_name)
        return f"{side}.mid.attn_1.{rest}"
    return key.replace("conv_norm_out", "norm_out")


def _open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModelWithProjection weights in OpenCLIP's layout (q/k/v fused into in_proj, projection transposed)."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.position_ids":
            continue
        if key == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out["ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()  # OpenCLIP multiplies x @ P
        elif key.startswith("encoder.layers."):
            layer, rest = key.split(".")[2], ".".join(key.split(".")[3:])
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                _, proj, kind = rest.split(".")
                fused.setdefault(f"transformer.resblocks.{layer}.attn.in_proj_{kind}", {})[proj[0]] = value
                continue
            rest = (rest.replace("self_attn.", "attn.").replace("layer_norm1", "ln_1").replace("layer_norm2", "ln_2")
                    .replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
            out[f"transformer.resblocks.{layer}.{rest}"] = value
        else:
            raise KeyError(key)
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def original_vae_state_dict(vae: Any) -> dict[str, torch.Tensor]:
    """An AutoencoderKL's weights in the original layout (as in a standalone VAE file such as sdxl_vae.safetensors)."""
    blocks = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = _vae_key(key, blocks)
        if ".mid.attn_1." in new and new.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original VAE attention uses 1x1 convolutions
        out[new] = value.detach().contiguous()
    return out


def original_sdxl_state_dict(pipe: Any) -> dict[str, torch.Tensor]:
    """An SDXL base pipeline's weights as an original-layout (A1111 / Stability) single-file checkpoint."""
    unet_config = pipe.unet.config
    layers = unet_config.layers_per_block
    up_has_attention = ["CrossAttn" in t for t in unet_config.up_block_types]
    out: dict[str, torch.Tensor] = {}
    for key, value in pipe.unet.state_dict().items():
        out["model.diffusion_model." + _unet_key(key, layers, up_has_attention)] = value
    for key, value in original_vae_state_dict(pipe.vae).items():
        out["first_stage_model." + key] = value
    for key, value in pipe.text_encoder.state_dict().items():
        if key.endswith("position_ids"):
            continue
        key = key if key.startswith("text_model.") else "text_model." + key  # transformers >= 5.6 flattened it
        out["conditioner.embedders.0.transformer." + key] = value
    for key, value in _open_clip(pipe.text_encoder_2.state_dict()).items():
        out["conditioner.embedders.1.model." + key] = value
    return {k: v.detach().contiguous() for k, v in out.items()}


def write_single_file(pipe: Any, path: Path) -> Path:
    """Save `pipe` as one original-layout `.safetensors` checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(original_sdxl_state_dict(pipe), str(path))
    return path


def write_vae_file(vae: Any, path: Path) -> Path:
    """Save a VAE as one original-layout `.safetensors` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(original_vae_state_dict(vae), str(path))
    return path


def write_lora(unet: Any, path: Path, seed: int = 0, rank: int = 4) -> Path:
    """A LoRA for `unet`'s attention projections with seeded random (non-zero) weights, in diffusers' format.

    `unet` gets the adapter added: pass a UNet that is used for nothing else.
    """
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    # init_lora_weights=False: B is random too, so the LoRA changes the output from the start (a trained one does).
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    StableDiffusionXLPipeline.save_lora_weights(path.parent, unet_lora_layers=get_peft_model_state_dict(unet),
                                               weight_name=path.name)
    return path
