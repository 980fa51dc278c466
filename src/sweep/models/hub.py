"""Hugging Face hub ids where a model file or folder is expected (`model.path=RunDiffusion/Juggernaut-XL-v9`),
as diffusers' `from_pretrained` and A1111 users expect; the weights variant the repository really has.

Decided from the local cache (HF_HUB_CACHE, laid out as the hub's `models--org--name/snapshots/<hash>/`) before
anything loads: offline, a repository not in the cache is one line, not pages of diffusers' text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweep.errors import SweepError

DEFAULT_NAME = "sdxl_base"  # the model config a run gets without model=...
# A missing `models/x.safetensors` is a mistyped file, not a repository called x.safetensors.
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth", ".gguf", ".sft")


def is_hub_id(value: str) -> bool:
    """owner/name that is no local path and no weights file name."""
    from sweep.files import checkpoints

    return checkpoints.looks_like_hub_id(value) and not value.lower().endswith(WEIGHT_SUFFIXES)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def hub_cache() -> Path:
    """The hub cache as huggingface_hub finds it, read now (a changed HF_HUB_CACHE/HF_HOME counts)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str) -> Path | None:
    """The folder of the cached snapshot of `repo_id` (its `main` ref, else the newest), or None."""
    folder = hub_cache() / ("models--" + repo_id.replace("/", "--"))
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = folder / "refs" / "main"
    if ref.is_file():
        chosen = snapshots / ref.read_text(encoding="utf-8").strip()
        if (chosen / "model_index.json").is_file():
            return chosen
    found = [p for p in snapshots.iterdir() if (p / "model_index.json").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def repo_files(repo_id: str) -> list[str] | None:
    """The repository's file names: from the cache, else (online) from the hub; None when not known."""
    snapshot = cached_snapshot(repo_id)
    if snapshot is not None:
        return [str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()]
    if offline():
        return None
    try:
        from huggingface_hub import HfApi

        return list(HfApi().list_repo_files(repo_id))
    except Exception:  # unreachable or unknown: the load says so in its own words
        return None


def has_variant(files: list[str], variant: str) -> bool:
    """Weights files of that variant (`unet/diffusion_pytorch_model.fp16.safetensors`) are in the repository."""
    return any(f".{variant}." in Path(name).name for name in files)


def require_cached(key: str, repo_id: str) -> None:
    """Offline, a repository that is not in the cache is refused in one line, before anything loads."""
    if offline() and cached_snapshot(repo_id) is None:
        from sweep.models.checks import FIX_HINT

        raise SweepError(f"{key}: could not load '{repo_id}': it is not in the local Hugging Face cache "
                         f"({hub_cache()}) and HF_HUB_OFFLINE is set (download it once online, or unset "
                         f"HF_HUB_OFFLINE); {FIX_HINT}")


def _config_id(name: str) -> str | None:
    """The hub id conf/model/NAME.yaml names (None for a config without one)."""
    import yaml

    from sweep.paths import CONF_DIR

    path = Path(CONF_DIR) / "model" / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("id") if isinstance(data, dict) else None


def resolve(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model config with a hub id in model.path read as model.id, its name the id (unless set apart from
    the default's), and the variant only where the repository has those files. Local paths are kept."""
    out = dict(model)
    path = out.get("path")
    if path and is_hub_id(str(path)):
        out.update(source="hub", id=str(path), path=None, config=None)
        if out.get("name") in (None, DEFAULT_NAME, "local"):
            out["name"] = str(path)
    elif out.get("path") or out.get("source") != "hub" or not out.get("id"):
        return out
    elif out.get("name") and _config_id(str(out["name"])) not in (None, out["id"]):
        out["name"] = str(out["id"])  # model.id=X on top of sdxl_base: the run is X's, not sdxl_base's
    repo = str(out["id"])
    require_cached("model", repo)
    variant = out.get("variant")
    files = repo_files(repo) if variant else None
    if variant and files is not None and not has_variant(files, str(variant)):
        out["variant"] = None  # e.g. a fine-tune that ships only full-precision files
    return out
