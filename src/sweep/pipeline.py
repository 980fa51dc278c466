"""Load the SDXL pipeline once per process and share it: every cell and every Hydra job in the process."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sweep.errors import SweepError, bad_value

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
SOURCES = ("hub", "tiny", "sdxl_arch", "path")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
GPU_OPTIONS = ("compile", "channels_last", "attention_slicing", "vae_slicing", "vae_tiling", "cpu_offload")
FIX_HINT = "try model=tiny (built in, no download) or model.path=/path/to/a/local/diffusers/folder"

# How many times a pipeline was built or loaded in this process: multirun jobs must share one.
LOADS = 0
_CACHE: dict[str, Loaded] = {}


@dataclass
class Loaded:
    pipe: Any
    device: str
    dtype: str
    native_size: tuple[int, int]
    label: str
    options: str = "none"  # GPU options applied, as recorded in results.csv (e.g. "compile+channels_last")


def resolve_device(requested: str) -> str:
    """auto = cuda > mps > cpu; an explicit device must exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = requested.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise bad_value("model.device", requested, "auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise bad_value("model.device", requested, "a device this machine has (no CUDA here; use auto or cpu)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise bad_value("model.device", requested, "a device this machine has (no MPS here; use auto or cpu)")
    return requested


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    """auto = fp16 on a GPU, fp32 on the CPU (fp16 matmuls on CPU are slow or unsupported)."""
    if requested == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    if requested not in DTYPES:
        raise bad_value("model.dtype", requested, "auto, " + ", ".join(DTYPES))
    return DTYPES[requested]


def check_model_config(model: Mapping[str, Any]) -> None:
    """What can be checked before loading anything (fast: runs before the first image)."""
    source = "path" if model.get("path") else model.get("source")
    if source not in SOURCES:
        raise bad_value("model.source", source, ", ".join(SOURCES))
    if source == "hub" and not model.get("id"):
        raise bad_value("model.id", model.get("id"), "a hub model id such as stabilityai/stable-diffusion-xl-base-1.0")
    if source == "path":
        path = Path(os.path.expanduser(str(model.get("path"))))
        if not path.exists():
            raise bad_value("model.path", str(path), f"an existing diffusers folder or .safetensors file; {FIX_HINT}")
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES and not model.get("allow_pickle"):
            raise bad_value("model.path", str(path),
                            "a .safetensors checkpoint; pickle checkpoints run code when loaded, "
                            "pass model.allow_pickle=true only if you trust the file")
        if path.is_file() and path.suffix.lower() not in (".safetensors", *PICKLE_SUFFIXES):
            raise bad_value("model.path", str(path), "a diffusers folder or a .safetensors checkpoint file")
        if path.is_dir() and not (path / "model_index.json").is_file():
            raise bad_value("model.path", str(path), "a diffusers pipeline folder (it has model_index.json)")
    resolve_dtype(str(model.get("dtype", "auto")), resolve_device(str(model.get("device", "auto"))))


def load(model: Mapping[str, Any]) -> Loaded:
    """The pipeline for this model config, built or loaded once per process."""
    global LOADS
    device = resolve_device(str(model.get("device", "auto")))
    dtype = resolve_dtype(str(model.get("dtype", "auto")), device)
    # Keyed by the resolved device/dtype: "auto" and "cpu" on a CPU machine are one pipeline.
    key = json.dumps({**dict(model), "device": device, "dtype": str(dtype)}, sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    check_model_config(model)
    pipe = _build(model, device, dtype)
    LOADS += 1
    _configure(pipe, model, device)
    pipe.set_progress_bar_config(disable=True)  # one bar for the whole sweep instead
    native = pipe.default_sample_size * pipe.vae_scale_factor
    loaded = Loaded(pipe, device, str(dtype).removeprefix("torch."), (native, native), model_label(model),
                    options_label(model))
    _CACHE.clear()  # keep one pipeline in memory: a multirun over models must not pile them up
    _CACHE[key] = loaded
    return loaded


def model_label(model: Mapping[str, Any]) -> str:
    """The model's name as results.csv and the A1111 `Model:` field show it: a config's name (tiny,
    sdxl_base), or a local checkpoint's file stem / folder name (no colon: A1111 readers split on it)."""
    if model.get("path"):
        path = Path(os.path.expanduser(str(model["path"])))
        return path.stem if path.is_file() else path.name
    return str(model.get("name") or model.get("id"))


def resolved_dtype_name(model: Mapping[str, Any]) -> str:
    """'float32' etc.: what model.dtype=auto means on this machine (known before the load)."""
    device = resolve_device(str(model.get("device", "auto")))
    return str(resolve_dtype(str(model.get("dtype", "auto")), device)).removeprefix("torch.")


def _build(model: Mapping[str, Any], device: str, dtype: torch.dtype) -> Any:
    # transformers warns at import about image processors SDXL does not use; a user's own setting wins.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from diffusers import StableDiffusionXLPipeline

    from sweep import models

    source = "path" if model.get("path") else model["source"]
    if source == "tiny":
        pipe = models.build_tiny_pipeline()
        # Built in fp32; casting only when asked avoids diffusers' "keep in float32" warning.
        return pipe.to(device=device) if dtype == torch.float32 else pipe.to(device=device, dtype=dtype)
    if source == "sdxl_arch":
        return models.build_sdxl_arch_pipeline(device=device, dtype=dtype)
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    try:
        if source == "hub":
            if dtype == torch.float16 and model.get("variant"):
                kwargs["variant"] = model["variant"]
            pipe = StableDiffusionXLPipeline.from_pretrained(model["id"], use_safetensors=True, **kwargs)
        else:
            path = Path(os.path.expanduser(str(model["path"])))
            if path.is_file():
                if model.get("config"):
                    kwargs["config"] = model["config"]
                pipe = StableDiffusionXLPipeline.from_single_file(str(path), **kwargs)
            else:
                pipe = StableDiffusionXLPipeline.from_pretrained(
                    str(path), use_safetensors=not model.get("allow_pickle"), local_files_only=True, **kwargs
                )
    except Exception as exc:  # diffusers raises OSError/ValueError/EnvironmentError with pages of text
        what = model.get("path") or model.get("id")
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if source == "hub":
            why = ("it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if offline
                   else f"the hub could not be reached or the files are missing ({why})")
        raise SweepError(f"model: could not load '{what}': {why}; {FIX_HINT}") from None
    if not model.get("cpu_offload"):
        pipe = pipe.to(device)
    return pipe


def options_label(model: Mapping[str, Any]) -> str:
    """The GPU options that are on, joined by '+' in a fixed order ('none' when none): a column of results.csv."""
    return "+".join(name for name in GPU_OPTIONS if model.get(name)) or "none"


def _configure(pipe: Any, model: Mapping[str, Any], device: str) -> None:
    """Apply the GPU options; each is a plain diffusers/torch call."""
    if model.get("channels_last"):
        pipe.unet.to(memory_format=torch.channels_last)
    if model.get("attention_slicing"):
        pipe.enable_attention_slicing()
    if model.get("vae_slicing"):
        pipe.vae.enable_slicing()
    if model.get("vae_tiling"):
        pipe.vae.enable_tiling()
    if model.get("cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    if model.get("compile"):
        import torch._dynamo.config as dynamo_config

        # dynamic=False: one specialised graph per UNet input shape (resolution x CFG x batch); the runner orders
        # cells so each shape compiles once. Past dynamo's recompile limit (8) a new shape would silently run
        # eager, and a sweep over resolutions with a partial last batch passes 8 easily: allow more.
        limit = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"  # torch<2.6
        setattr(dynamo_config, limit, max(getattr(dynamo_config, limit), 64))
        # Autotuning pays off on CUDA only; CUDA graphs stay off (batch shapes vary, each graph pins memory).
        mode = "max-autotune-no-cudagraphs" if device.startswith("cuda") else None
        pipe.unet = torch.compile(pipe.unet, mode=mode, dynamic=False)


def fork(pipe: Any, scheduler: Any = None) -> Any:
    """A pipeline object for one call: the same models, its own scheduler (the model's own, or one built from
    its config for a sampler axis: no reload, and no state shared between calls that run at the same time).

    A diffusers pipeline keeps per-call state on itself (guidance scale, ...) and in its scheduler (timesteps,
    step index), so two calls at once need two of these; the weights are shared, read-only.
    """
    shell = copy.copy(pipe)  # a new __dict__: per-call attributes stay apart
    # Set through __dict__, bypassing __setattr__: the shared pipeline's config stays as it was.
    shell.__dict__["scheduler"] = (copy.deepcopy(pipe.scheduler) if scheduler is None
                                   else build_scheduler(scheduler, pipe.scheduler.config))
    return shell


def build_scheduler(spec: Any, config: Any) -> Any:
    """The scheduler a `sweep.axes.SchedulerSpec` names, from the loaded scheduler's config (`from_config`)."""
    import diffusers

    return getattr(diffusers, spec.cls).from_config(config, **dict(spec.options))


class PromptCache:
    """Each distinct set of text-encoder inputs goes through the two text encoders once per sweep."""

    def __init__(self, pipe: Any, device: str) -> None:
        self.pipe = pipe
        self.device = device
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._lock = threading.Lock()  # concurrent CPU calls (runner._run_parallel) share one cache

    def embeds(self, encode_args: Mapping[str, Any], count: int) -> dict[str, torch.Tensor]:
        """Pipeline kwargs for `count` images (CFG inputs included; unused when CFG is off). `encode_args` are
        `encode_prompt`'s own arguments: prompt, prompt_2, negative_prompt, negative_prompt_2, clip_skip."""
        key = tuple(sorted(encode_args.items()))
        with self._lock:
            if key not in self._cache:
                with torch.no_grad():
                    self._cache[key] = self.pipe.encode_prompt(
                        **encode_args, device=self.device, num_images_per_prompt=1,
                        do_classifier_free_guidance=True,
                    )
            embeds, negative, pooled, negative_pooled = self._cache[key]
        return {
            "prompt_embeds": embeds.repeat(count, 1, 1),
            "negative_prompt_embeds": negative.repeat(count, 1, 1),
            "pooled_prompt_embeds": pooled.repeat(count, 1),
            "negative_pooled_prompt_embeds": negative_pooled.repeat(count, 1),
        }
