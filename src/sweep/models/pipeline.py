"""Load the SDXL pipeline once per process and share it: every cell and every Hydra job in the process.

What is loaded with it, once: a VAE override (`model.vae`), LoRA adapters (`model.lora`, see sweep.models.lora) and a
refiner (`model.refiner`, see models.refiner). Every file is checked first (files.checkpoints); the A1111 names and
hashes of the files are on `Loaded`.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sweep.errors import SweepError
from sweep.files import checkpoints
from sweep.models import checks as model_checks
from sweep.models.checks import FIX_HINT
from sweep.models.devices import resolve_device, resolve_dtype
from sweep.models.library_output import quiet_loading  # noqa: F401 - used here and by earlier importers

if TYPE_CHECKING:
    from sweep.models.lora import LoraFile
    from sweep.models.refiner import Refiner

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = checkpoints.PICKLE_SUFFIXES
GPU_OPTIONS = ("compile", "compile_vae", "fuse_qkv_projections", "channels_last", "attention_slicing", "vae_slicing",
               "vae_tiling", "cpu_offload")
SINGLE_FILE_HINT = ("a single-file checkpoint needs its component configs: offline, pass model.config=<a diffusers "
                    "SDXL folder> (e.g. a snapshot of stabilityai/stable-diffusion-xl-base-1.0)")

HALF = (torch.float16, torch.bfloat16)  # the hub's `fp16` variant files serve both

# How many times a pipeline was built or loaded in this process: multirun jobs must share one.
LOADS = 0
_CACHE: dict[str, Loaded] = {}
_SIBLING_LOCK = threading.Lock()


@dataclass
class Loaded:
    pipe: Any
    device: str
    dtype: str
    native_size: tuple[int, int]
    label: str  # A1111's `Model:` name: the config name (tiny, sdxl_base), or the checkpoint's file stem / folder
    options: str = "none"  # GPU options applied, as recorded in results.csv (e.g. "compile+channels_last")
    model_hash: str = ""  # A1111's `Model hash` of a single-file checkpoint; "" for folders, hub and built models
    vae: str = ""  # `VAE:` name of a model.vae override (file name or folder name); "" = the model's own VAE
    vae_hash: str = ""  # `VAE hash` of a single-file VAE
    loras: tuple[LoraFile, ...] = ()  # one per model.lora entry, loaded as adapters at strength 1
    refiner: Refiner | None = None
    vae_source: str | None = None  # the model.vae the pipeline has now (None: the checkpoint's own VAE)
    own_vae: Any = None  # the checkpoint's own VAE, kept once another replaced it (a `vae` axis may come back)
    second_pass: Any = None  # StableDiffusionXLImg2ImgPipeline sharing `pipe`'s components (sweep.running.passes)
    controlnet: Any = None  # ControlNetModel / MultiControlNetModel of model.controlnet (sweep.models.controlnet)
    controlnet_labels: tuple[str, ...] = ()  # sd-webui-controlnet's `NAME [hash]` of each
    control_pipe: Any = None  # StableDiffusionXLControlNetPipeline sharing `pipe`'s components
    pag: Any = None  # StableDiffusionXLPAGPipeline sharing `pipe`'s components (sweep.models.unet_tweaks)
    ip_adapter: str = ""  # sd-webui-controlnet's `NAME [hash]` of model.ip_adapter ("" = none)

    def sibling(self, attr: str, cls_name: str, **extra: Any) -> Any:
        """A pipeline of another diffusers class over `pipe`'s components (img2img for second passes, PAG,
        ControlNet), made once per loaded checkpoint and kept in `attr`; calls run side by side on the CPU, so
        the first one makes it under a lock."""
        with _SIBLING_LOCK:
            if getattr(self, attr) is None:
                import diffusers

                # from_pipe casts every shared module to float32 unless told the dtype: a bf16 / fp16 UNet would
                # double in memory, and a VAE swapped in later (in the model's dtype) would no longer match it.
                with quiet_loading():
                    made = getattr(diffusers, cls_name).from_pipe(
                        self.pipe, torch_dtype=resolve_dtype(self.dtype, self.device), **extra)
                made.set_progress_bar_config(disable=True)
                setattr(self, attr, made)
            return getattr(self, attr)

    def record(self) -> dict[str, Any]:
        """The results.csv fields that name the model files (the same for every image of a run; LoRA strengths
        and the refiner switch are axes of the cells)."""
        from sweep.models.lora import hashes_text

        return {
            "model_hash": self.model_hash,
            "vae": self.vae,
            "vae_hash": self.vae_hash,
            "lora_hashes": hashes_text(self.loras),
            "refiner": self.refiner.label if self.refiner else "",
            "controlnet": "; ".join(self.controlnet_labels),
            "ip_adapter": self.ip_adapter,
        }


def model_label(model: Mapping[str, Any]) -> str:
    """A1111's `Model:` name: a checkpoint file's stem or a folder's name; else the config's name (tiny, ...)."""
    if model.get("path"):
        path = checkpoints.expand(str(model["path"])).resolve()
        return path.stem if path.is_file() else path.name
    return str(model.get("name") or model.get("id"))


def load(model: Mapping[str, Any]) -> Loaded:
    """The pipeline for this model config, built or loaded once per process.

    One pipeline is kept: loading another model (a multirun over checkpoints) first releases the previous one,
    so two models are never in memory at once.
    """
    global LOADS
    device = resolve_device(str(model.get("device", "auto")))
    dtype = resolve_dtype(str(model.get("dtype", "auto")), device)
    # Keyed by the resolved device/dtype: "auto" and "cpu" on a CPU machine are one pipeline. Not by the VAE: a
    # `vae` axis swaps the VAE of the loaded checkpoint (A1111 does the same) instead of loading it again.
    key = json.dumps({**dict(model), "vae": None, "device": device, "dtype": str(dtype)}, sort_keys=True,
                     default=str)
    if key in _CACHE and _swap_vae(_CACHE[key], model):
        return _CACHE[key]
    model_checks.check(model)
    release()
    with quiet_loading():
        pipe = _build(model, device, dtype)
        loaded = _complete(pipe, model, device, dtype)
    LOADS += 1
    _CACHE[key] = loaded
    return loaded


def _swap_vae(loaded: Loaded, model: Mapping[str, Any]) -> bool:
    """Give the loaded pipeline model.vae (or back its own VAE); False when that needs a new load (its own
    VAE was replaced at load time and not kept)."""
    want = model.get("vae") or None
    if want == loaded.vae_source:
        return True
    if loaded.vae_source is None:
        loaded.own_vae = loaded.pipe.vae  # kept: a later cell of the `vae` axis may want it back
    if want is None:
        if loaded.own_vae is None:
            return False
        vae, name, vae_hash = loaded.own_vae, "", ""
    else:
        with quiet_loading():
            dtype = resolve_dtype(loaded.dtype, loaded.device)
            vae, name, vae_hash = _load_vae(model, loaded.pipe, loaded.device, dtype)
        if model.get("vae_slicing") or (loaded.device == "cpu" and hasattr(vae, "enable_slicing")):
            vae.enable_slicing()  # as _configure does for the model's own
        if model.get("vae_tiling"):
            vae.enable_tiling()
    for pipe in (loaded.pipe, loaded.refiner.pipe if loaded.refiner else None, loaded.second_pass,
                 loaded.control_pipe, loaded.pag):
        if pipe is not None:
            pipe.register_modules(vae=vae)
    loaded.vae, loaded.vae_hash, loaded.vae_source = name, vae_hash, want
    gc.collect()  # the replaced VAE goes now, before this one decodes
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return True


def release() -> None:
    """Drop the cached pipeline and give its memory back (before the next model loads, not after)."""
    if not _CACHE:
        return  # nothing to give back (the first load): a full collection costs ~0.1 s with torch imported
    _CACHE.clear()
    gc.collect()  # diffusers/peft modules hold reference cycles: collect them now, not at some later point
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _complete(pipe: Any, model: Mapping[str, Any], device: str, dtype: torch.dtype) -> Loaded:
    """VAE override, LoRAs, refiner, GPU options and the A1111 names and hashes of the model files."""
    from sweep.models import lora, refiner

    vae_name, vae_hash = "", ""
    if model.get("vae"):
        pipe.vae, vae_name, vae_hash = _load_vae(model, pipe, device, dtype)
    loras = _loading("model.lora", model.get("lora"),
                     lambda: lora.load_loras(pipe, lora.parse(model.get("lora"),
                                                              allow_pickle=bool(model.get("allow_pickle")))),
                     hint=LORA_MISMATCH)
    loaded_refiner = None
    if model.get("refiner"):
        loaded_refiner = _loading("model.refiner", model["refiner"], lambda: refiner.load_refiner(
            str(model["refiner"]), pipe, device=device, dtype=dtype, variant=model.get("variant")))
    control, control_labels = None, ()
    if model.get("controlnet"):
        from sweep.models import controlnet

        control, control_labels = _loading("model.controlnet", model["controlnet"],
                                           lambda: controlnet.load(model, pipe, device, dtype))
    # After the ControlNets: they are built from the UNet's config, which the IP-Adapter changes.
    ip_label = ""
    if model.get("ip_adapter"):
        from sweep.models import ip_adapter

        ip_label = _loading("model.ip_adapter", model["ip_adapter"],
                            lambda: ip_adapter.load(model, pipe, device, dtype))
    _configure(pipe, model, device)
    pipe.set_progress_bar_config(disable=True)  # one bar for the whole sweep instead
    native = pipe.default_sample_size * pipe.vae_scale_factor
    path = checkpoints.expand(str(model["path"])) if model.get("path") else None
    return Loaded(pipe, device, str(dtype).removeprefix("torch."), (native, native), model_label(model),
                  options_label(model), model_hash=checkpoints.model_hash(path) if path and path.is_file() else "",
                  vae=vae_name, vae_hash=vae_hash, loras=loras, refiner=loaded_refiner,
                  vae_source=model.get("vae") or None, controlnet=control, controlnet_labels=control_labels,
                  ip_adapter=ip_label)


def _load_vae(model: Mapping[str, Any], pipe: Any, device: str, dtype: torch.dtype) -> tuple[Any, str, str]:
    """(AutoencoderKL, A1111 VAE name, VAE hash) for model.vae: a folder, a hub id or a single file."""
    import tempfile

    from diffusers import AutoencoderKL

    target = checkpoints.check_vae("model.vae", model["vae"], allow_pickle=bool(model.get("allow_pickle")))

    def load_it() -> Any:
        if isinstance(target, str):  # hub id
            return AutoencoderKL.from_pretrained(target, torch_dtype=dtype)
        if target.is_dir():
            return AutoencoderKL.from_pretrained(str(target), torch_dtype=dtype, local_files_only=True)
        # A VAE file carries no config: it has the architecture of the model's own VAE (all SDXL VAEs share it).
        with tempfile.TemporaryDirectory() as config_dir:
            pipe.vae.save_config(config_dir)
            return AutoencoderKL.from_single_file(str(target), config=config_dir, torch_dtype=dtype)

    vae = _loading("model.vae", model["vae"], load_it)
    if not model.get("cpu_offload"):
        vae = vae.to(device)
    if isinstance(target, str):
        return vae, target.rstrip("/").split("/")[-1], ""
    target = target.resolve()
    if target.is_dir():
        return vae, target.name, ""
    return vae, target.name, checkpoints.model_hash(target)  # A1111 names a VAE by its file name, suffix included


def _loading(key: str, value: Any, load_it: Any, hint: str = "") -> Any:
    """Run one component load; any failure becomes one line naming the key and the value."""
    try:
        return load_it()
    except SweepError:
        raise
    except Exception as exc:
        why = _reason(exc)
        if hint and "size mismatch" in str(exc):
            why = f"{hint} ({why})"
        raise SweepError(f"{key}: could not load {str(value)!r}: {why}") from None


LORA_MISMATCH = "its layers have other shapes than this model's: a LoRA made for another base model?"


def _reason(exc: BaseException) -> str:
    """An exception's message as one complete line: its first line, and when that ends in a colon (diffusers'
    "Error(s) in loading state_dict for UNet2DConditionModel:") the first line of what follows, with a count of
    the rest; shortened at a word boundary (never mid-word)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text, rest = lines[0], lines[1:]
    while text.endswith(":") and rest:
        text = f"{text} {rest.pop(0)}"
    if rest and lines[0].endswith(":"):
        text += f" (and {len(rest)} more)"
    return shorten(text.rstrip(":"), 300)


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:.(")
    return cut + "..."


def resolved_dtype_name(model: Mapping[str, Any]) -> str:
    """'float32' etc.: what model.dtype=auto means on this machine (known before the load)."""
    device = resolve_device(str(model.get("device", "auto")))
    return str(resolve_dtype(str(model.get("dtype", "auto")), device)).removeprefix("torch.")


def _build(model: Mapping[str, Any], device: str, dtype: torch.dtype) -> Any:
    # transformers warns at import about image processors SDXL does not use; a user's own setting wins.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from diffusers import StableDiffusionXLPipeline

    from sweep.models import builtin as models

    source = "path" if model.get("path") else model["source"]
    if source in ("tiny", "tiny-alt"):
        pipe = models.build_tiny_pipeline(models.TINY_SEED if source == "tiny" else models.TINY_ALT_SEED)
        # Built in fp32; casting only when asked avoids diffusers' "keep in float32" warning.
        return pipe.to(device=device) if dtype == torch.float32 else pipe.to(device=device, dtype=dtype)
    if source == "sdxl_arch":
        return models.build_sdxl_arch_pipeline(device=device, dtype=dtype)
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    path = checkpoints.expand(str(model["path"])) if source == "path" else None
    try:
        if source == "hub":
            from sweep.models import hub

            model = hub.resolve(model)  # a checkpoint axis's hub id: the variant its repository has
            if dtype in HALF and model.get("variant"):  # bf16 loads the fp16 files and casts them
                kwargs["variant"] = model["variant"]
            pipe = StableDiffusionXLPipeline.from_pretrained(model["id"], use_safetensors=True,
                                                             cache_dir=str(hub.hub_cache()), **kwargs)
        elif path.is_file():
            if model.get("config"):
                config = checkpoints.expand(str(model["config"]))
                kwargs["config"] = str(config) if config.exists() else str(model["config"])
            pipe = StableDiffusionXLPipeline.from_single_file(str(path), **kwargs)
        else:
            pipe = StableDiffusionXLPipeline.from_pretrained(
                str(path), use_safetensors=not model.get("allow_pickle"), local_files_only=True, **kwargs
            )
    except Exception as exc:  # diffusers raises OSError/ValueError/EnvironmentError with pages of text
        what = model.get("path") or model.get("id")
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = _reason(exc)
        if source == "hub":
            why = ("it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if offline
                   else f"the hub could not be reached or the files are missing ({why})")
        elif "meta tensor" in str(exc):  # a tensor the config needs is not in the file (left on torch's meta device)
            why = "the file does not hold every weight its config needs (a tensor was left without data)"
        elif path.is_file() and not model.get("config"):
            why = f"{SINGLE_FILE_HINT} ({why})"
        raise SweepError(f"model: could not load '{what}': {why}; {FIX_HINT}") from None
    missing = _missing_weights(pipe)
    if missing:  # diffusers leaves what a file lacks on the meta device: torch's .to() fails on it with a traceback
        raise SweepError(f"model: got '{model.get('path') or model.get('id')}' ({missing}); allowed: a checkpoint "
                         "holding every weight of its config (a complete SDXL file, or model.config for its layout)")
    if not model.get("cpu_offload"):
        pipe = pipe.to(device)
    return pipe


def _missing_weights(pipe: Any) -> str:
    """'the text_encoder_2 weight X and 3 more are missing' for the tensors a load left without data; '' if none."""
    for name, module in getattr(pipe, "components", {}).items():
        if not isinstance(module, torch.nn.Module):
            continue
        empty = [key for key, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta]
        if empty:
            more = f" and {len(empty) - 1} more" if len(empty) > 1 else ""
            return f"the {name} weight {empty[0]}{more} missing from the file"
    return ""


def options_label(model: Mapping[str, Any]) -> str:
    """The GPU options that are on, joined by '+' in a fixed order ('none' when none): a column of results.csv."""
    names = [name for name in GPU_OPTIONS if model.get(name) and (name == "compile" or not name.startswith("compile")
                                                                  or model.get("compile"))]
    mode = str(model.get("compile_mode") or "default")
    return "+".join(f"compile={mode}" if name == "compile" and mode != "default" else name
                    for name in names) or "none"


def _configure(pipe: Any, model: Mapping[str, Any], device: str) -> None:
    """Apply the GPU options; each is a plain diffusers/torch call."""
    if model.get("channels_last"):
        pipe.unet.to(memory_format=torch.channels_last)
    if model.get("attention_slicing"):
        pipe.enable_attention_slicing()
    if model.get("vae_slicing") or (device == "cpu" and hasattr(pipe.vae, "enable_slicing")):
        # On a CPU, decoding a batch one image at a time costs no time, and the batch's full-resolution VAE
        # activations were most of a batched call's memory (2 calls of 4 at 256x256: +180 MB -> +105 MB). A
        # single image decodes as before (diffusers slices only batches), so batch_size=1 stays the plain call.
        pipe.vae.enable_slicing()
    if model.get("vae_tiling"):
        pipe.vae.enable_tiling()
    if model.get("cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    if model.get("fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
    if model.get("compile"):
        from sweep.models.compiling import compile_pipeline

        compile_pipeline(pipe, model)


def apply_state(loaded: Loaded, state: tuple[tuple[str, Any], ...]) -> None:
    """Set what a cell changes on the shared pipeline (LoRA strengths, `lora.NAME` axes; FreeU) before its call."""
    from sweep.axes import LORA
    from sweep.models import lora

    strengths = {name.split(".", 1)[1]: value for name, value in state if name.startswith(f"{LORA}.")}
    if strengths:
        lora.set_lora_strengths(loaded.pipe, strengths)
    settings = dict(state)
    if "freeu" in settings:
        set_freeu(loaded.pipe, settings["freeu"])
    if loaded.ip_adapter:
        from sweep.models.ip_adapter import apply_scale

        apply_scale(loaded.pipe, settings.get("ip_adapter_scale"))


def set_freeu(pipe: Any, value: tuple[float, float, float, float] | None) -> None:
    """FreeU on the shared UNet (None: off, the plain UNet exactly); see sweep.models.unet_tweaks."""
    if value is None:
        pipe.disable_freeu()
        return
    b1, b2, s1, s2 = value
    pipe.enable_freeu(s1=s1, s2=s2, b1=b1, b2=b2)


def fork(pipe: Any, scheduler: Any = None, schedule_type: str | None = None) -> Any:
    """A pipeline object for one call: the same models, its own scheduler (the model's own, or one built from
    its config for a sampler or schedule type axis: no reload, and no state shared between calls that run at
    the same time).

    A diffusers pipeline keeps per-call state on itself (guidance scale, ...) and in its scheduler (timesteps,
    step index), so two calls at once need two of these; the weights are shared, read-only.
    """
    from sweep.axes import SchedulerSpec

    shell = copy.copy(pipe)  # a new __dict__: per-call attributes stay apart
    if scheduler is None and schedule_type is not None:
        scheduler = SchedulerSpec(type(pipe.scheduler).__name__, ())
    # Set through __dict__, bypassing __setattr__: the shared pipeline's config stays as it was.
    shell.__dict__["scheduler"] = (copy.deepcopy(pipe.scheduler) if scheduler is None
                                   else build_scheduler(scheduler, pipe.scheduler.config, schedule_type))
    return shell


def build_scheduler(spec: Any, config: Any, schedule_type: str | None = None) -> Any:
    """The scheduler a `sweep.axes.SchedulerSpec` names, from the loaded scheduler's config (`from_config`),
    with an A1111 schedule type as `sweep.axes.schedule_build` says diffusers builds it."""
    import diffusers

    from sweep.axes import SIGMA_DONOR, schedule_build

    cls = getattr(diffusers, spec.cls)
    options = dict(spec.options)
    if schedule_type is None:
        return cls.from_config(config, **options)
    mode, extra = schedule_build(spec.cls, schedule_type)
    if mode == "options":
        return cls.from_config(config, **{**options, **extra})
    scheduler = cls.from_config(config, **options)
    if mode == "native":
        return scheduler
    # Timesteps or noise levels as diffusers' Euler builds them for this schedule, handed to a class that has
    # no option for it: the same numbers the option gives Euler.
    donor = getattr(diffusers, SIGMA_DONOR).from_config(config, **extra)
    original = scheduler.set_timesteps

    def set_timesteps(num_inference_steps: int | None = None, device: Any = None, **kwargs: Any) -> None:
        donor.set_timesteps(num_inference_steps, device=device)
        if mode == "timesteps":
            original(device=device, timesteps=[int(t) for t in donor.timesteps.round().tolist()])
        else:
            original(num_inference_steps, device=device)
            scheduler.sigmas = donor.sigmas.clone()
            scheduler.timesteps = donor.timesteps.clone()

    scheduler.set_timesteps = set_timesteps
    return scheduler

