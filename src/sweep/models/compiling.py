"""`model.compile=true`: torch.compile of the UNet (and optionally the VAE decode), set up to pay off.

- Mode `default` unless `model.compile_mode` says otherwise: inductor's fused kernels without autotuning, so the
  first image comes after tens of seconds, not minutes (`max-autotune-no-cudagraphs` was still compiling SDXL's
  UNet after 170 s on an H200). `reduce-overhead` adds CUDA graphs (one per shape, each pinning its memory).
- `fullgraph=True`: the UNet traces as one graph (a graph break would be a silent slowdown; it is an error).
- `dynamic=False`: one specialised graph per input shape; the runner groups cells by shape so each compiles once.
- Inductor's caches (FX graphs, AOT autograd, autotuning, Triton kernels) live on disk under
  ~/.cache/sdxl-sweep/inductor (or $TORCHINDUCTOR_CACHE_DIR when set), so the next process reuses the work.
- A stop (Ctrl-C, SIGTERM) during a compiled run ends it at once (sweep.running.signals), and the compile worker
  processes go with it (`stop_workers`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweep.errors import bad_value

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
RECOMPILE_LIMIT = 64


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise bad_value("model.compile_mode", mode, ", ".join(MODES))


def cache_dir() -> Path:
    """Where inductor keeps its caches: $TORCHINDUCTOR_CACHE_DIR, else ~/.cache/sdxl-sweep/inductor."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sdxl-sweep" / "inductor"


def use_disk_caches() -> Path:
    """Point inductor at the persistent cache dir and turn its caches on (before anything compiles)."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(folder)  # read by inductor when it first needs the dir; Triton's lives inside
    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    try:
        import torch._functorch.config as functorch_config

        functorch_config.enable_autograd_cache = True
    except (ImportError, AttributeError):  # torch < 2.5
        pass
    # Past dynamo's recompile limit (8) a new shape would silently run eager, and a sweep over resolutions with
    # a partial last batch passes 8 easily: allow more.
    limit = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"  # torch<2.6
    setattr(dynamo_config, limit, max(getattr(dynamo_config, limit), RECOMPILE_LIMIT))
    return folder


def compile_pipeline(pipe: Any, model: Mapping[str, Any]) -> None:
    """Compile the UNet (and with `model.compile_vae` the VAE's decode) in place, as `model.compile_mode` says."""
    import torch

    mode = str(model.get("compile_mode") or "default")
    check_mode(mode)
    use_disk_caches()
    options = {"mode": None if mode == "default" else mode, "dynamic": False, "fullgraph": True}
    pipe.unet = torch.compile(pipe.unet, **options)
    if model.get("compile_vae"):
        pipe.vae.decode = torch.compile(pipe.vae.decode, **options)


def stop_workers() -> None:
    """End inductor's compile worker processes (a stop mid-compile must not leave them running)."""
    module = sys.modules.get("torch._inductor.async_compile")
    if module is None:
        return
    try:
        module.shutdown_compile_workers()
    except Exception:  # best effort on the way out; the process exits next
        pass
