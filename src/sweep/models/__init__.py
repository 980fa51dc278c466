"""Models: files, loading, the shared pipeline and what sits on it.

Owns the model part of a config and its checks before anything loads (`checks`, `facts`, `fit`: does a VAE,
LoRA or ControlNet fit each checkpoint; `hub`: Hugging Face ids), the checkpoint and VAE axes (`checkpoint_axes`),
the built-in offline models (`builtin`), the pipeline loaded once per process (`pipeline`), what sits on it
(`lora`, `refiner`, `controlnet`, `ip_adapter`, `unet_tweaks`: FreeU and PAG), the starting noise (`variations`:
A1111's variation seeds), torch.compile (`compiling`), device and dtype (`devices`) and what the libraries print
(`library_output`).

May import: axes, files, prompts and the leaves (errors, paths, atomic, naming). Never planning, running, rundir
or the report. Names of the former module `sweep.models` (the built-in models, now `sweep.models.builtin`) are
served from here for one release.
"""


def __getattr__(name: str):
    # `from sweep.models import X` named the module that is now sweep.models.builtin. A submodule's own name must
    # stay unknown here, so that the import system imports it.
    import importlib
    import importlib.util

    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)
    return getattr(importlib.import_module("sweep.models.builtin"), name)
