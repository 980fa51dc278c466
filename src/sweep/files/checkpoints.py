"""Model files before anything loads: is it there, readable, safetensors, complete, the right kind; and its hash.

Every check reads at most a file's safetensors header (a few kilobytes even for a 7 GB checkpoint), so a typo
in a path or a half-downloaded file fails in a second, with one line, before a model loads.

Hashes are A1111's, so an image's infotext finds its checkpoint again in A1111 and on civitai:

* checkpoint and VAE: the SHA-256 of the whole file, shown as its first 10 hex digits (`Model hash`, `VAE hash`);
* LoRA: kohya's "addnet" hash, the SHA-256 of the tensor data after the safetensors header (or the
  `sshs_model_hash` a trainer wrote into the header), shown as its first 12 hex digits (`Lora hashes`).

Hashing a 7 GB file takes a while, so each hash is computed once and kept in `hashes.json` in the user's cache
directory (`$XDG_CACHE_HOME/sdxl-sweep/`, default `~/.cache/sdxl-sweep/`), keyed by the file's absolute path and
checked against its size and modification time, as A1111's `cache.json` does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweep.atomic import atomic_write
from sweep.errors import SweepError

SAFETENSORS = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
MODEL_HASH_DIGITS = 10  # A1111's `Model hash` / `VAE hash` (sd_models.CheckpointInfo.shorthash)
LORA_HASH_DIGITS = 12  # A1111's `Lora hashes` (network.NetworkOnDisk.shorthash)
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the header size
_CHUNK = 1024 * 1024


# --- paths and one-line errors ---------------------------------------------------------------------------


def expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(str(path)))


def shown(path: str | os.PathLike[str]) -> str:
    """A path for an error line: the end (the file name) is what matters, so a long one loses its start."""
    text = str(path)
    return text if len(text) <= 76 else "..." + text[-73:]


def bad_file(key: str, path: str | os.PathLike[str], allowed: str, why: str = "") -> SweepError:
    """`key: got 'PATH' (why); allowed: ...`: the shape of errors.bad_value, with the file name kept whole."""
    reason = f" ({why})" if why else ""
    return SweepError(f"{key}: got '{shown(path)}'{reason}; allowed: {allowed}")


def looks_like_hub_id(value: str) -> bool:
    """owner/name, as on the Hugging Face hub (a path that does not exist locally and has this shape)."""
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "~")) and not expand(value).exists()


# --- safetensors header ----------------------------------------------------------------------------------


class HeaderError(ValueError):
    """Why a file is not a complete safetensors file."""


def read_header(path: Path) -> dict[str, Any]:
    """The tensor table of a safetensors file (metadata under `__metadata__`); checks that the file is complete."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise HeaderError(f"{size} bytes: too short for a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > _HEADER_LIMIT or length + 8 > size:
            raise HeaderError("not a safetensors file, or truncated inside its header")
        raw = handle.read(length)
    try:
        # Infinity / NaN are not JSON: safetensors refuses them, so must this reader
        header = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise HeaderError("not a safetensors file: its header is not JSON") from None
    except RecursionError:
        raise HeaderError("not a safetensors file: its header is nested too deeply") from None
    if not isinstance(header, dict):
        raise HeaderError("not a safetensors file: its header is not a table")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise HeaderError(f"not a safetensors file: tensor {name!r} has no data offsets")
        if not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]:
            raise HeaderError(f"not a safetensors file: tensor {name[:60]!r} has data_offsets "
                              f"{json.dumps(offsets)[:40]}, not two byte offsets, start <= end")
        end = max(end, offsets[1])
    expected = 8 + length + end
    if size < expected:
        raise HeaderError(f"truncated: {size:,} of {expected:,} bytes")
    return header


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def tensor_names(header: dict[str, Any]) -> list[str]:
    return [name for name in header if name != "__metadata__"]


# --- checks ----------------------------------------------------------------------------------------------


def check_file(key: str, value: Any, *, allow_pickle: bool, allowed: str) -> tuple[Path, dict[str, Any] | None]:
    """An existing, readable, complete model file: (path, safetensors header or None for an allowed pickle)."""
    path = expand(value)
    if not path.exists():
        raise bad_file(key, path, allowed, "no such file")
    if not path.is_file():
        raise bad_file(key, path, allowed, "not a file")
    if not os.access(path, os.R_OK):
        raise bad_file(key, path, allowed, "not readable")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise bad_file(key, path, f"{allowed}; pickle checkpoints run code when loaded, pass "
                           "model.allow_pickle=true only if you trust the file", "a pickle checkpoint")
        return path, None
    if suffix != SAFETENSORS:
        raise bad_file(key, path, allowed, f"not a {SAFETENSORS} file")
    try:
        return path, read_header(path)
    except HeaderError as exc:
        raise bad_file(key, path, allowed, str(exc)) from None
    except OSError as exc:
        raise bad_file(key, path, allowed, exc.strerror or type(exc).__name__) from None


def checkpoint_kind(names: Iterable[str]) -> str:
    """What a checkpoint holds, from its tensor names: sdxl, sdxl_refiner, sd, lora, vae, unet or unknown."""
    names = list(names)

    def has(prefix: str) -> bool:
        return any(n.startswith(prefix) for n in names)

    if any("lora" in n.lower() for n in names):  # kohya lora_unet_*, diffusers *.lora_A.* / *.lora.down.*
        return "lora"
    if has("conditioner.embedders.1.model.") and has("model.diffusion_model."):
        return "sdxl"
    if has("conditioner.embedders.0.model.") and has("model.diffusion_model."):
        return "sdxl_refiner"
    if has("cond_stage_model."):
        return "sd"
    if has("model.diffusion_model.") or has("down_blocks.") and has("conv_in."):
        return "unet"
    if any(n.startswith(("decoder.", "first_stage_model.decoder.", "vae.decoder.")) for n in names):
        return "vae"
    return "unknown"


KIND_WORDS = {
    "sdxl_refiner": "an SDXL refiner checkpoint (give it as model.refiner)",
    "sd": "a Stable Diffusion 1.x/2.x checkpoint",
    "lora": "a LoRA (give it as model.lora)",
    "vae": "a VAE (give it as model.vae)",
    "unet": "a UNet without text encoders and VAE",
    "unknown": "no Stable Diffusion weights found",
    "sdxl": "an SDXL checkpoint",
}
SDXL_FILE = "an SDXL base .safetensors checkpoint (original or A1111 layout) or a diffusers SDXL folder"


def check_sdxl_path(key: str, value: Any, *, allow_pickle: bool) -> Path:
    """model.path: an SDXL base single-file checkpoint or a diffusers SDXL pipeline folder."""
    path = expand(value)
    if path.is_dir():
        check_sdxl_folder(key, path)
        return path
    path, header = check_file(key, path, allow_pickle=allow_pickle, allowed=SDXL_FILE)
    if header is not None:
        kind = checkpoint_kind(tensor_names(header))
        if kind != "sdxl":
            raise bad_file(key, path, SDXL_FILE, KIND_WORDS[kind])
    return path


def check_sdxl_folder(key: str, path: Path, *, refiner: bool = False) -> dict[str, Any]:
    """A diffusers SDXL pipeline folder (base, or refiner: no first text encoder); its model_index.json."""
    what = "a diffusers SDXL refiner folder" if refiner else "a diffusers SDXL pipeline folder"
    allowed = f"{what} (it has model_index.json)"
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise bad_file(key, path, allowed, "no model_index.json")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise bad_file(key, path, allowed, "model_index.json is not readable JSON") from None
    cls = str(index.get("_class_name", ""))
    if not cls.startswith("StableDiffusionXL"):
        raise bad_file(key, path, allowed, f"a {cls or 'model'} folder, not SDXL")
    present = {name for name, spec in index.items()
               if isinstance(spec, list) and len(spec) == 2 and spec[0] is not None and (path / name).is_dir()}
    needed = {"unet", "vae", "text_encoder_2"} | (set() if refiner else {"text_encoder"})
    if not refiner and "text_encoder_2" in present and "text_encoder" not in present:
        raise bad_file(key, path, allowed, "an SDXL refiner folder (give it as model.refiner)")
    missing = sorted(needed - present)
    if missing:
        raise bad_file(key, path, allowed, "missing " + ", ".join(missing))
    for name in sorted(needed):
        _check_component(key, path, name, allowed)
    return index


def _check_component(key: str, path: Path, name: str, allowed: str) -> None:
    """A component subfolder holds weights, and each safetensors file among them is complete (headers only)."""
    try:
        files = sorted(f for f in (path / name).iterdir()
                       if f.name.endswith((SAFETENSORS, *PICKLE_SUFFIXES)) and not f.name.startswith("."))
    except OSError as exc:
        raise bad_file(key, path, allowed, f"{name}/: {exc.strerror or type(exc).__name__}") from None
    if not files:
        raise bad_file(key, path, allowed, f"{name}/ holds no weights file ({SAFETENSORS})")
    for file in files:
        if file.suffix != SAFETENSORS:
            continue
        try:
            read_header(file)
        except HeaderError as exc:
            raise bad_file(key, path, allowed, f"{name}/{file.name}: {exc}") from None
        except OSError as exc:
            raise bad_file(key, path, allowed, f"{name}/{file.name}: {exc.strerror or type(exc).__name__}") from None


def check_config(key: str, value: Any) -> None:
    """model.config: the component configs for a single file: a diffusers SDXL folder or a hub id."""
    path = expand(value)
    if path.exists() or not looks_like_hub_id(str(value)):
        if not path.is_dir():
            raise bad_file(key, path, "a diffusers SDXL folder or a hub id (configs for a single-file checkpoint)",
                           "no such folder")
        check_sdxl_folder(key, path)


def check_vae(key: str, value: Any, *, allow_pickle: bool) -> Path | str:
    """model.vae: a diffusers AutoencoderKL folder (config.json), a hub id, or a single VAE file."""
    allowed = "a diffusers VAE folder (config.json), a hub id such as madebyollin/sdxl-vae-fp16-fix, or a VAE file"
    path = expand(value)
    if not path.exists() and looks_like_hub_id(str(value)):
        return str(value)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise bad_file(key, path, allowed, "no config.json")
        try:
            cls = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
        except (OSError, ValueError):
            raise bad_file(key, path, allowed, "config.json is not readable JSON") from None
        if cls != "AutoencoderKL":
            raise bad_file(key, path, allowed, f"a {cls} folder")
        return path
    path, header = check_file(key, path, allow_pickle=allow_pickle, allowed=allowed)
    if header is not None:
        kind = checkpoint_kind(tensor_names(header))
        if kind not in ("vae", "sdxl"):
            raise bad_file(key, path, allowed, KIND_WORDS[kind])
    return path


def check_lora(key: str, value: Any, *, allow_pickle: bool) -> Path:
    """One model.lora entry: a diffusers or kohya LoRA .safetensors file."""
    allowed = "a LoRA .safetensors file (diffusers or kohya format)"
    path, header = check_file(key, value, allow_pickle=allow_pickle, allowed=allowed)
    if header is not None and checkpoint_kind(tensor_names(header)) != "lora":
        raise bad_file(key, path, allowed, KIND_WORDS[checkpoint_kind(tensor_names(header))])
    return path


# --- hashes ----------------------------------------------------------------------------------------------


def cache_file() -> Path:
    """Where computed hashes are kept: the user's cache dir, as A1111 keeps cache.json beside its models."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "sdxl-sweep" / "hashes.json"


@contextmanager
def _locked(path: Path):
    """Serialise read-modify-write of the cache between processes (torchrun ranks hash the same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or damaged: hashes are computed again


def _digest(path: Path, offset: int = 0) -> str:
    """SHA-256 of the file from `offset` on (read in 1 MiB chunks: memory stays flat for a 7 GB file)."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def sha256(path: Path, *, addnet: bool = False) -> str:
    """The file's SHA-256 (addnet: of the data after the safetensors header), cached by path, size and mtime."""
    path = expand(path).resolve()
    stat = path.stat()
    section = "addnet" if addnet else "sha256"
    key = str(path)
    # ctime too: `cp -p` of other weights keeps the size and the mtime, but the kernel sets the ctime.
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
    cache = cache_file()
    entry = _read_cache(cache).get(section, {}).get(key)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) and entry.get("sha256"):
        return str(entry["sha256"])
    offset = 0
    if addnet:
        with open(path, "rb") as handle:
            offset = 8 + struct.unpack("<Q", handle.read(8))[0]
    digest = _digest(path, offset)
    try:
        with _locked(cache):
            data = _read_cache(cache)  # again, under the lock: another process may have added entries
            data.setdefault(section, {})[key] = {**stamp, "sha256": digest}
            atomic_write(cache, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: the hash is still right, only computed again next time
    return digest


def model_hash(path: Path) -> str:
    """A1111's short hash of a checkpoint or VAE file: the first 10 hex digits of its SHA-256."""
    return sha256(path)[:MODEL_HASH_DIGITS]


def lora_hash(path: Path) -> str:
    """A1111's short hash of a LoRA file: the trainer's `sshs_model_hash`, else kohya's addnet hash; 12 digits."""
    path = expand(path)
    if path.suffix.lower() != SAFETENSORS:
        return sha256(path)[:LORA_HASH_DIGITS]  # A1111 uses the plain SHA-256 for non-safetensors files
    recorded = (read_header(path).get("__metadata__") or {}).get("sshs_model_hash")
    if isinstance(recorded, str) and len(recorded) >= LORA_HASH_DIGITS:
        return recorded[:LORA_HASH_DIGITS]
    return sha256(path, addnet=True)[:LORA_HASH_DIGITS]


def weights_digest(path: str | os.PathLike[str]) -> str:
    """What the weights at `path` are: a file's SHA-256, or for a folder (a diffusers pipeline, a VAE) the
    SHA-256 of every file's relative path and SHA-256, so other weights copied over either are another model.
    Each file's hash is cached as `sha256` caches it; dot-files (caches, locks) are skipped."""
    root = expand(path).resolve()
    if root.is_file():
        return sha256(root)
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    listing = "".join(f"{p.relative_to(root).as_posix()}\t{sha256(p)}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()
