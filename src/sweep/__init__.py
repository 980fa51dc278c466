"""sdxl-sweep: parameter sweeps for Stable Diffusion XL on diffusers, with labelled contact sheets."""

__version__ = "0.1.0"


# Old module names (before the subpackages of 0.2) stay importable for one release: `sweep.runner` is
# `sweep.running.runner`, the same module object. Remove after the next release.
import importlib as _importlib  # noqa: E402
import importlib.abc as _abc  # noqa: E402
import importlib.util as _util  # noqa: E402
import sys as _sys  # noqa: E402

_MOVED = {
    "sweep.app": "sweep.cli.app",
    "sweep.cli_errors": "sweep.cli.compose_errors",
    "sweep.commands": "sweep.cli.commands",
    "sweep.config_dirs": "sweep.cli.config_dirs",
    "sweep.hydra_flags": "sweep.cli.hydra_flags",
    "sweep.yaml_errors": "sweep.cli.yaml_errors",
    "sweep.runner": "sweep.running.runner",
    "sweep.scheduling": "sweep.running.scheduling",
    "sweep.passes": "sweep.running.passes",
    "sweep.writer": "sweep.running.writer",
    "sweep.signals": "sweep.running.signals",
    "sweep.distributed": "sweep.running.distributed",
    "sweep.cpu_threads": "sweep.running.cpu_threads",
    "sweep.pixels": "sweep.running.pixels",
    "sweep.experiment": "sweep.running.experiment",
    "sweep.grid": "sweep.planning.grid",
    "sweep.plan": "sweep.planning.plan",
    "sweep.schema": "sweep.planning.schema",
    "sweep.config_checks": "sweep.planning.config_checks",
    "sweep.titles": "sweep.planning.titles",
    "sweep.shared_seeds": "sweep.planning.shared_seeds",
    "sweep.memory": "sweep.planning.memory",
    "sweep.model_axes": "sweep.models.checkpoint_axes",
    "sweep.model_checks": "sweep.models.checks",
    "sweep.model_configs": "sweep.files.configs",
    "sweep.model_facts": "sweep.models.facts",
    "sweep.checkpoints": "sweep.files.checkpoints",
    "sweep.init_images": "sweep.files.images",
    "sweep.model_fit": "sweep.models.fit",
    "sweep.pipeline": "sweep.models.pipeline",
    "sweep.lora": "sweep.models.lora",
    "sweep.refiner": "sweep.models.refiner",
    "sweep.compiling": "sweep.models.compiling",
    "sweep.devices": "sweep.models.devices",
    "sweep.library_output": "sweep.models.library_output",
    "sweep.calls": "sweep.planning.calls",
    "sweep.sweep_data": "sweep.planning.sweep_data",
    "sweep.controlnet": "sweep.models.controlnet",
    "sweep.ip_adapter": "sweep.models.ip_adapter",
    "sweep.hub": "sweep.models.hub",
    "sweep.unet_tweaks": "sweep.models.unet_tweaks",
    "sweep.variations": "sweep.models.variations",
    "sweep.prompt_syntax": "sweep.prompts.syntax",
    "sweep.prompt_cache": "sweep.prompts.cache",
    "sweep.prompt_language": "sweep.prompts.language",
    "sweep.prompt_schedule": "sweep.prompts.schedule",
    "sweep.results": "sweep.rundir.results",
    "sweep.metadata": "sweep.rundir.metadata",
}


class _Alias(_abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return _importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass  # the module ran when its new name was imported


class _MovedFinder(_abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        new = _MOVED.get(name)
        return None if new is None else _util.spec_from_loader(name, _Alias(new))


if not any(isinstance(f, _MovedFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedFinder())
