"""FreeU and Perturbed-Attention Guidance: two changes to how the loaded UNet runs, with no new weights.

FreeU (`freeu` axis; `sweep.models.pipeline.set_freeu`): diffusers' `enable_freeu(s1, s2, b1, b2)` sets four factors
on the shared UNet's first two up blocks (the backbone's first half of channels times b, the skip connection's
lowest frequencies times s); `disable_freeu()` clears them, which is the plain UNet exactly. Set between calls,
like LoRA strengths. This is ComfyUI's `FreeU` node (constant factors per stage), not `FreeU_V2` (factors
scaled by each pixel's mean activation): the metadata names `FreeU`.

PAG (`pag_scale` axis): diffusers' `StableDiffusionXLPAGPipeline`, made once from the loaded pipeline's components
(`from_pipe`: nothing reloads), with its default `pag_applied_layers="mid"` (every self-attention of the UNet's
mid block, as ComfyUI's PerturbedAttentionGuidance node patches the middle block). A scale of 0 or null runs
the plain pipeline. During a PAG call diffusers replaces the shared UNet's attention processors, so PAG calls run
alone (the registry's `solo`), and the processors are put back even when a call fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sweep.errors import bad_value


def uses_pag(cell: Any) -> bool:
    return bool(cell.get("pag_scale"))


def pag_pipeline(loaded: Any) -> Any:
    """The PAG pipeline over `loaded.pipe`'s components (made once per loaded checkpoint)."""
    return loaded.sibling("pag", "StableDiffusionXLPAGPipeline")


@contextmanager
def attention_kept(pipe: Any) -> Iterator[None]:
    """The UNet's attention processors as they were before the call, whatever happens in it (diffusers' PAG
    call restores them only when it ends normally)."""
    saved = pipe.unet.attn_processors
    try:
        yield
    finally:
        pipe.unet.set_attn_processor(saved)


def check(cells: Sequence[Any], swept: Sequence[str], model: Mapping[str, Any]) -> None:
    """Before anything loads: PAG runs on plain text-to-image calls; FreeU needs nothing more."""
    def key(name: str) -> str:
        return f"sweep.grid.{name}" if name in swept else name

    for cell in cells:
        if not uses_pag(cell):
            continue
        from sweep.prompts.syntax import edits_itself

        if edits_itself(cell.texts(), cell.get("prompt_syntax")):
            raise bad_value(key("pag_scale"), cell["pag_scale"], "0 or null with prompt editing or alternation "
                            "([a:b:when], [a|b]): the conditioning switch is not wired to PAG's three-part batch")
        if model.get("controlnet"):
            raise bad_value(key("pag_scale"), cell["pag_scale"], "0 or null with model.controlnet set (diffusers' "
                            "ControlNet PAG pipeline is not wired here)")
        for other, what in (("hires_scale", "Hires. fix"), ("init_image", "image-to-image")):
            if cell.get(other) is not None:
                raise bad_value(key("pag_scale"), cell["pag_scale"], f"0 or null with {other} set (diffusers' SDXL "
                                f"PAG pipeline runs text-to-image; {what} is not wired to its PAG variant here)")
