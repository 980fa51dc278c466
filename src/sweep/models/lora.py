"""LoRA files: named once, loaded once into the pipeline as peft adapters, their strengths set per call.

`model.lora` takes one path, a list of paths, or a mapping NAME: path::

    model.lora=/loras/detail.safetensors
    'model.lora=[/loras/detail.safetensors,/loras/pixel-art.safetensors]'
    'model.lora={detail:/loras/detail-v2.safetensors}'

A LoRA's name (its adapter name, its `<lora:NAME:W>` tag, its key in `Lora hashes`) is the file stem with every
character outside `A-Z a-z 0-9 _ -` turned into `_`, or the mapping's key. Every loaded LoRA starts at strength
1.0, A1111's default multiplier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.errors import bad_value
from sweep.files.checkpoints import check_lora, lora_hash

KEY = "model.lora"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_STRENGTH = 1.0
# Set on the (shared) UNet by set_lora_strengths: the strengths in force, so an unchanged call costs nothing.
_APPLIED = "_sweep_lora_strengths"


@dataclass(frozen=True)
class LoraFile:
    name: str  # adapter name = A1111 name
    path: Path
    hash: str  # A1111's short LoRA hash (12 hex digits)
    text_encoder: bool = False  # it also changes a text encoder: prompt embeddings then depend on the strength


def adapter_name(path: str | Path) -> str:
    """The adapter name for a LoRA file: its stem, made safe for peft and for file names and CSV columns."""
    return _UNSAFE.sub("_", Path(str(path)).stem) or "lora"


def parse(value: Any, *, allow_pickle: bool = False) -> list[tuple[str, Path]]:
    """(name, path) per LoRA of a `model.lora` value, every file checked; nothing is loaded."""
    if value is None or value == "" or value == [] or value == {}:
        return []
    if isinstance(value, str | Path):
        pairs = [(adapter_name(value), value)]
    elif isinstance(value, Mapping):
        pairs = []
        for name, path in value.items():
            if not _NAME.match(str(name)):
                raise bad_value(f"{KEY}.{name}", str(name), "a name of letters, digits, _ and - (it becomes the "
                                "adapter name and the <lora:NAME:W> tag)")
            pairs.append((str(name), path))
    elif isinstance(value, Sequence):
        pairs = [(adapter_name(path), path) for path in value]
    else:
        raise bad_value(KEY, value, "a LoRA file, a list of them, or a mapping name: file")
    seen: dict[str, Any] = {}
    for name, path in pairs:
        if not isinstance(path, str | Path) or not str(path):
            raise bad_value(f"{KEY}", path, "a path to a LoRA .safetensors file")
        if name in seen:
            raise bad_value(KEY, name, f"distinct LoRA names ({seen[name]} and {path} are both {name!r}; "
                            "name them with the mapping form {name: path})")
        seen[name] = path
    return [(name, check_lora(KEY, path, allow_pickle=allow_pickle)) for name, path in pairs]


def load_loras(pipe: Any, entries: Sequence[tuple[str, Path]]) -> tuple[LoraFile, ...]:
    """Load each LoRA once as a peft adapter (`load_lora_weights(path, adapter_name=NAME)`), all at strength 1."""
    if not entries:
        return ()
    with _trainable_flags_kept(pipe):
        for name, path in entries:
            pipe.load_lora_weights(str(path), adapter_name=name)
    in_text_encoders = {name for component, names in pipe.get_list_adapters().items()
                        if component.startswith("text_encoder") for name in names}
    loras = tuple(LoraFile(name, Path(path), lora_hash(Path(path)), name in in_text_encoders)
                  for name, path in entries)
    set_lora_strengths(pipe, {lora.name: DEFAULT_STRENGTH for lora in loras})
    return loras


def set_lora_strengths(pipe: Any, strengths: Mapping[str, float]) -> None:
    """Set each loaded LoRA's strength for the next pipeline calls (`set_adapters`; nothing is reloaded).

    `strengths` maps adapter names to weights; adapters it does not name run at 1.0. A LoRA at strength 0 is
    left out of the active adapters, and with every strength 0 the adapters are disabled: the call is then the
    base model's own call, the same pixels (a weight of 0 still runs the adapter and adds its output times 0,
    which is NaN where that output overflows, and not exactly 0 for a DoRA adapter).

    The strength is state of the shared model weights, not of one call: every pipeline object that shares this
    UNet (`pipeline.fork` copies share it) sees the new strengths at once. Calls with different strengths must
    therefore never run at the same time; run them one after another, or group concurrent calls by strength
    and set it between the groups. If a LoRA changes a text encoder (`LoraFile.text_encoder`), prompt
    embeddings depend on the strength too: a prompt cache must be keyed by the strengths as well.
    """
    loaded = sorted({name for names in pipe.get_list_adapters().values() for name in names})
    unknown = sorted(set(strengths) - set(loaded))
    if unknown:
        raise bad_value("lora", unknown[0], "a loaded LoRA: " + (", ".join(loaded) or "none is loaded (model.lora)"))
    weights = {name: float(strengths.get(name, DEFAULT_STRENGTH)) for name in loaded}
    if getattr(pipe.unet, _APPLIED, None) == weights:
        return
    active = {name: weight for name, weight in weights.items() if weight != 0}
    if active:
        pipe.enable_lora()
        pipe.set_adapters(list(active), adapter_weights=list(active.values()))
    else:
        pipe.disable_lora()
    setattr(pipe.unet, _APPLIED, weights)


@contextmanager
def _trainable_flags_kept(pipe: Any) -> Iterator[None]:
    """Each parameter's `requires_grad` as it was before peft loads an adapter.

    peft freezes the model it adds an adapter to (it prepares it for training). The flag changes which kernel
    torch's matmul picks for a 3-D input (it folds the batch into one mm only for a frozen weight), so a frozen
    base model differs from the user's own pipeline in the last bit of a float, and strength 0 from the base
    image by 1/255 in places.
    """
    import torch

    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    try:
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)


def prompt_tags(strengths: Mapping[str, float]) -> str:
    """A1111's prompt syntax for the LoRAs in use: `<lora:detail:0.5> <lora:pixel:1>`."""
    return " ".join(f"<lora:{name}:{_number(weight)}>" for name, weight in strengths.items())


def hashes_text(loras: Sequence[LoraFile]) -> str:
    """A1111's `Lora hashes` value: `detail: 0123456789ab, pixel: ba9876543210`."""
    return ", ".join(f"{lora.name}: {lora.hash}" for lora in loras)


def _number(value: float) -> str:
    return f"{float(value):g}"
