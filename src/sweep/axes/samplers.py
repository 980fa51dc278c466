"""Samplers and Schedule types: A1111's names, their diffusers classes and options, and the step bounds per
sampler."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.axes.values import (
    Facts,
)
from sweep.errors import bad_value, suggest

# A1111 sampler names -> diffusers class and the options that define them (diffusers' scheduler overview page).
# Options name every setting that tells samplers of one class apart, so a model whose own scheduler config has
# e.g. use_karras_sigmas=true still gets plain "DPM++ 2M" when that is asked for.
_DPM = "DPMSolverMultistepScheduler"


_DPM1 = "DPMSolverSinglestepScheduler"


_PP = {"algorithm_type": "dpmsolver++", "solver_order": 2}


_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}


SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "Euler Karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {"use_karras_sigmas": False}),
    "Heun Karras": ("HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    "LMS": ("LMSDiscreteScheduler", {"use_karras_sigmas": False}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": False}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": False}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": (_DPM, {**_PP, "use_karras_sigmas": False}),
    "DPM++ 2M Karras": (_DPM, {**_PP, "use_karras_sigmas": True}),
    "DPM++ 2M SDE": (_DPM, {**_SDE, "use_karras_sigmas": False}),
    "DPM++ 2M SDE Karras": (_DPM, {**_SDE, "use_karras_sigmas": True}),
    # diffusers' multistep DPM-Solver++ has a third-order SDE update (k-diffusion's sample_dpmpp_3m_sde).
    "DPM++ 3M SDE": (_DPM, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_karras_sigmas": False}),
    "DPM++ 3M SDE Karras": (_DPM, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3,
                                   "use_karras_sigmas": True}),
    "DPM++ SDE": (_DPM1, {**_PP, "use_karras_sigmas": False}),
    "DPM++ SDE Karras": (_DPM1, {**_PP, "use_karras_sigmas": True}),
    # DPM-Solver++(2S) with noise added at each step: diffusers' singlestep solver in its SDE form, the nearest to
    # k-diffusion's ancestral 2S that diffusers builds (its docs: "very similar to DPMSolverSinglestepScheduler").
    "DPM++ 2S a": (_DPM1, {**_SDE, "use_karras_sigmas": False}),
    "DPM++ 2S a Karras": (_DPM1, {**_SDE, "use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": ("UniPCMultistepScheduler", {"use_karras_sigmas": False}),
    "DEIS": ("DEISMultistepScheduler", {"use_karras_sigmas": False}),
}


# A1111 samplers diffusers has no equivalent for: refused with this reason instead of "unknown".
NO_EQUIVALENT = {
    "Restart": "diffusers has no Restart sampler",
    "DPM fast": "diffusers has no DPM fast sampler", "DPM adaptive": "diffusers has no adaptive-step DPM sampler",
    "DPM++ 2M SDE Heun": "diffusers' DPM++ SDE has no Heun variant", "DDIM CFG++": "diffusers has no CFG++ sampler",
    "LCM": "LCM needs an LCM-distilled model or LoRA (use LCMScheduler via {class: ...} at your own risk)",
}


# ComfyUI's KSampler sampler_name for each (A1111 base name); samplers without one get no ComfyUI graph.
COMFY_SAMPLERS = {
    "Euler": "euler", "Euler a": "euler_ancestral", "Heun": "heun", "LMS": "lms", "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral", "DPM++ 2M": "dpmpp_2m", "DPM++ 2M SDE": "dpmpp_2m_sde", "DPM++ 3M SDE":
    "dpmpp_3m_sde", "DPM++ SDE": "dpmpp_sde", "DPM++ 2S a": "dpmpp_2s_ancestral", "DDIM": "ddim",
    "UniPC": "uni_pc", "DEIS": "deis",
}


# A1111 1.9+ "Schedule type" -> the diffusers scheduler options that build it. Spacings are timesteps the
# UNet sees; sigma types replace the noise levels. A1111's "DDIM" type is diffusers' "leading" spacing with
# steps_offset=1 (SDXL's own config), which is what "Automatic" means for most SDXL models.
SCHEDULE_TYPES: dict[str, dict[str, Any]] = {
    "Uniform": {"timestep_spacing": "linspace"},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
    "DDIM": {"timestep_spacing": "leading", "steps_offset": 1},
    "Beta": {"use_beta_sigmas": True},
}


SCHEDULE_NOT_BUILT = ("Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal")


COMFY_SCHEDULERS = {"Uniform": "normal", "Karras": "karras", "Exponential": "exponential",
                    "SGM Uniform": "sgm_uniform", "DDIM": "ddim_uniform", "Beta": "beta"}


_SIGMA_OPTIONS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


SCHEDULE_HELP = ("Automatic (the sampler's own), " + ", ".join(SCHEDULE_TYPES)
                 + " (A1111's names; ComfyUI's such as sgm_uniform too)")


# diffusers' KarrasDiffusionSchedulers: the classes an SDXL pipeline accepts (a test keeps this in step).
SCHEDULER_CLASSES = (
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "DPMSolverSDEScheduler", "EDMEulerScheduler",
)


SCHEDULER_HELP = ("an A1111 sampler name (" + ", ".join(SAMPLERS) + "), a diffusers scheduler class name, or "
                  "{class: CLASS, OPTION: VALUE, ...}; null = the model's own scheduler")


def _squash(text: str) -> str:
    """Case- and space-insensitive, as A1111 and Infinity Grid read sampler names ('dpm++2mkarras')."""
    return re.sub(r"[\s_]+", "", str(text)).lower()


_BY_SQUASHED = {_squash(name): name for name in SAMPLERS}


_CLASS_BY_SQUASHED = {_squash(name): name for name in SCHEDULER_CLASSES}


@dataclass(frozen=True)
class SchedulerSpec:
    """A scheduler to build from the loaded one's config: class plus the options that differ."""

    cls: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """A1111's name where one matches (e.g. 'DPM++ 2M Karras'), else the class with its options."""
        opts = dict(self.options)
        candidates = [(name, defining) for name, (cls, defining) in SAMPLERS.items() if cls == self.cls]
        for name, defining in candidates:
            if opts == defining:
                return name
        if candidates and set(opts) <= {k for _, d in candidates for k in d}:
            # A class given with fewer options: what it is with the class's own defaults for the rest.
            defaults = _class_defaults(self.cls)
            for name, defining in candidates:
                if all(opts.get(k, defaults.get(k)) == v for k, v in defining.items()):
                    return name
        return self.class_text

    @property
    def class_text(self) -> str:
        """Class plus options differing from its defaults: `DPMSolverMultistepScheduler(use_karras_sigmas=True)`."""
        defaults = _class_defaults(self.cls)
        shown = [f"{k}={v!r}" for k, v in self.options if defaults.get(k, object()) != v]
        return f"{self.cls}({', '.join(shown)})" if shown else self.cls

    @property
    def base_name(self) -> str:
        """A1111's sampler name without a schedule suffix ('DPM++ 2M' for 'DPM++ 2M Karras')."""
        name = self.name
        return name.removesuffix(" Karras") if name in SAMPLERS else name

    @property
    def named_schedule(self) -> str | None:
        """The schedule an old-style name carries ('Karras' for 'DPM++ 2M Karras'), or None."""
        name = self.name
        return "Karras" if name in SAMPLERS and name.endswith(" Karras") else None

    def a1111(self) -> list[tuple[str, str]]:
        """`Sampler: DPM++ 2M, Schedule type: Karras`, as A1111 1.9+ writes it. A class with options reads
        `DPMSolverMultistepScheduler(solver_order=3; ...)`: no comma or colon, so no reader needs quotes."""
        sampler = self.base_name if self.name in SAMPLERS else re.sub(r"[,:]", ";", self.class_text)
        return [("Sampler", sampler.replace(";;", ";"))]


def check_schedule_type(value: Any, key: str) -> str | None:
    """A1111's Schedule type name (or ComfyUI's, e.g. sgm_uniform) -> its A1111 name; None = Automatic."""
    if value is None or (isinstance(value, str) and _squash(value) in ("", "automatic", "auto", "default", "null",
                                                                       "none")):
        return None
    squashed = _squash(str(value))
    for name in SCHEDULE_TYPES:
        if squashed in (_squash(name), _squash(COMFY_SCHEDULERS[name])):
            return name
    if any(squashed == _squash(n) for n in SCHEDULE_NOT_BUILT):
        raise bad_value(key, value, f"a schedule type diffusers builds: {SCHEDULE_HELP}")
    raise bad_value(key, value, SCHEDULE_HELP + suggest(str(value), ["Automatic", *SCHEDULE_TYPES]))


# Classes with no timestep_spacing option whose own spacing is one of A1111's types (DPM-Solver singlestep
# spaces linspace(0, T-1, n+1) without its last point: SGM Uniform).
NATIVE_SPACING = {"DPMSolverSinglestepScheduler": "SGM Uniform"}


SIGMA_DONOR = "EulerDiscreteScheduler"  # builds Karras/Exponential/Beta noise levels for Euler a


def schedule_build(cls: str, schedule: str) -> tuple[str, dict[str, Any]]:
    """How diffusers builds `schedule` for scheduler class `cls`: ("options", init options), ("native", {}) (the
    class's own spacing is that type), ("timesteps", spacing options: set_timesteps gets the timesteps diffusers'
    Euler spaces that way) or ("sigmas", sigma options: Euler's noise levels, for a class that steps on its
    `sigmas` like Euler); raises ValueError with the reason where none applies."""
    import inspect

    import diffusers

    options = SCHEDULE_TYPES[schedule]
    init = _class_defaults(cls)
    if all(k in init for k in options):
        return "options", {**{k: False for k in _SIGMA_OPTIONS if k in init}, **options}
    if NATIVE_SPACING.get(cls) == schedule:
        return "native", {}
    spacing = "timestep_spacing" in options
    takes = inspect.signature(getattr(diffusers, cls).set_timesteps).parameters
    if spacing and "timesteps" in takes:
        return "timesteps", options
    if not spacing and cls == "EulerAncestralDiscreteScheduler":
        return "sigmas", options
    raise ValueError(f"{cls} takes neither {' nor '.join(options)} nor custom "
                     f"{'timesteps' if spacing else 'noise levels'}")


def check_schedule_pair(spec: SchedulerSpec | None, schedule: str | None, key: str) -> None:
    """A schedule type a sampler cannot take is refused in one line (before anything loads where the sampler
    is known; else once the model's own scheduler is)."""
    if schedule is None or spec is None:
        return
    if spec.named_schedule or any(dict(spec.options).get(k) for k in (*_SIGMA_OPTIONS, "timestep_spacing")):
        raise bad_value(key, schedule, f"Automatic with scheduler {spec.name!r}, which sets its own schedule "
                        f"(or scheduler {spec.base_name!r} with schedule_type {schedule!r})")
    try:
        schedule_build(spec.cls, schedule)
    except ValueError as exc:
        allowed = [n for n in SCHEDULE_TYPES if _builds(spec.cls, n)]
        raise bad_value(key, schedule, f"a schedule type {spec.name} can take: Automatic, {', '.join(allowed)} "
                        f"({exc})") from None


def _builds(cls: str, schedule: str) -> bool:
    try:
        schedule_build(cls, schedule)
    except ValueError:
        return False
    return True


def automatic_schedule(spec: SchedulerSpec | None, facts: Facts) -> str | None:
    """A1111's name for the schedule a sampler uses when none is asked for (so A1111 reading `Automatic` does not
    pick its own default, Karras for DPM++ 2M): the sigma option set, else the spacing; None when unknown."""
    if spec is None:
        return None
    options = dict(spec.options)
    for flag, name in (("use_karras_sigmas", "Karras"), ("use_exponential_sigmas", "Exponential"),
                       ("use_beta_sigmas", "Beta")):
        if options.get(flag):
            return name
    if spec.cls in NATIVE_SPACING:
        return NATIVE_SPACING[spec.cls]
    init = _class_defaults(spec.cls)
    if "timestep_spacing" not in init:
        return None
    spacing = options.get("timestep_spacing") or facts.timestep_spacing or init["timestep_spacing"]
    if spacing == "leading":
        return "DDIM" if (facts.steps_offset if facts.steps_offset is not None else init.get("steps_offset")) == 1 \
            else None
    return {"linspace": "Uniform", "trailing": "SGM Uniform"}.get(spacing)


@functools.cache
def _class_defaults(cls: str) -> dict[str, Any]:
    """__init__ defaults of a scheduler class, read from the installed diffusers' source where they are plain
    values (a run dir's records name samplers before anything heavy is imported), else from the class."""
    found = _source_defaults(cls)
    if found is not None:
        return found
    import inspect

    import diffusers

    init = getattr(diffusers, cls).__init__
    return {k: p.default for k, p in inspect.signature(init).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _source_defaults(cls: str) -> dict[str, Any] | None:
    """`cls.__init__`'s defaults from diffusers/schedulers/*.py, or None (not found, or a default that is not a
    literal)."""
    import ast

    folder = _diffusers_folder()
    if folder is None or not re.fullmatch(r"\w+", cls):
        return None
    for path in sorted((folder / "schedulers").glob("scheduling_*.py")):
        tree = _parsed(path, rf"^class {cls}\(")
        if tree is None:
            continue
        node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
        if node is None:
            return None
        init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is None:
            return None
        positional = [*init.args.posonlyargs, *init.args.args]
        pairs = [*zip(positional[len(positional) - len(init.args.defaults):], init.args.defaults, strict=True),
                 *((a, d) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True) if d is not None)]
        try:
            return {a.arg: _literal(d) for a, d in pairs}
        except (ValueError, TypeError):  # an expression default: the class itself says what it is
            return None
    return None


def _diffusers_folder() -> Path | None:
    """Where the installed diffusers package is, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("diffusers")
    return Path(spec.origin).parent if spec and spec.origin else None


def _parsed(path: Path, must_match: str | None = None) -> Any:
    """A diffusers source file as an ast.Module (None: unreadable, or without `must_match`)."""
    import ast

    try:
        text = path.read_text(encoding="utf-8")
        return ast.parse(text) if must_match is None or re.search(must_match, text, re.M) else None
    except (OSError, SyntaxError, ValueError):
        return None


def call_annotations(source: str, class_name: str) -> dict[str, str] | None:
    """`class_name.__call__`'s arguments -> their annotations as text, read from diffusers' source file `source`
    (relative to the installed package) without importing diffusers; None where the file or class is not found."""
    import ast

    folder = _diffusers_folder()
    tree = _parsed(folder / source) if folder else None
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__call__":
                    arguments = item.args
                    found = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             *(a for a in (arguments.vararg, arguments.kwarg) if a)]
                    return {a.arg: ast.unparse(a.annotation) if a.annotation else "" for a in found}
    return None


def _literal(node: Any) -> Any:
    """A plain default value, with `float("inf")` (and its negative) as diffusers writes infinities."""
    import ast

    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and not node.keywords):
        return float(node.args[0].value)
    return ast.literal_eval(node)


def spec_from_config(cls: str, config: Mapping[str, Any]) -> SchedulerSpec:
    """The spec that names a loaded scheduler: its class plus the defining options of the A1111 names."""
    keys = sorted({k for c, opts in SAMPLERS.values() if c == cls for k in opts})
    return SchedulerSpec(cls, tuple((k, config[k]) for k in keys if k in config))


def check_scheduler(value: Any, key: str) -> SchedulerSpec | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "default", "null", "none")):
        return None
    if isinstance(value, str):
        name = _BY_SQUASHED.get(_squash(value))
        missing = next((n for n in NO_EQUIVALENT if _squash(n) == _squash(value)), None)
        if missing:
            raise bad_value(key, value, f"a sampler diffusers builds ({NO_EQUIVALENT[missing]}): "
                            + ", ".join(SAMPLERS))
        if name:
            cls, options = SAMPLERS[name]
            return SchedulerSpec(cls, tuple(sorted(options.items())))
        cls = _CLASS_BY_SQUASHED.get(_squash(value))
        if cls:
            return SchedulerSpec(cls, ())
        raise bad_value(key, value, SCHEDULER_HELP + suggest(value, [*SAMPLERS, *SCHEDULER_CLASSES]))
    if isinstance(value, Mapping):
        options = dict(value)
        raw_cls = options.pop("class", None)
        cls = _CLASS_BY_SQUASHED.get(_squash(raw_cls)) if isinstance(raw_cls, str) else None
        if cls is None:
            raise bad_value(f"{key}.class", raw_cls, "a diffusers scheduler class: " + ", ".join(SCHEDULER_CLASSES))
        known = _class_defaults(cls)
        for option, setting in options.items():
            if option not in known:
                raise bad_value(f"{key}.{option}", setting, f"an option of {cls}: " + ", ".join(sorted(known))
                                + suggest(option, known))
            _check_option(f"{key}.{option}", setting, known[option])
        spec = SchedulerSpec(cls, tuple(sorted(options.items())))
        _try_build(spec, key)
        return spec
    raise bad_value(key, value, SCHEDULER_HELP)


def _check_option(key: str, value: Any, default: Any) -> None:
    """A scheduler option: one value of its default's type (a bool for a flag, a finite number for a number,
    text for text); a list or a mapping is refused (the options key the prompt cache and the cell id)."""

    if isinstance(value, (list, tuple, dict, Mapping)):
        raise bad_value(key, value, f"one value (like its default, {default!r}), not a list or a mapping")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad_value(key, value, "true or false")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad_value(key, value, f"a finite number (default {default!r})")
        if isinstance(default, int) and not isinstance(value, int):
            raise bad_value(key, value, f"a whole number (default {default!r})")
        if default >= 0 and value < 0:
            raise bad_value(key, value, f"a number >= 0 (default {default!r})")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise bad_value(key, value, f"text (default {default!r})")
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise bad_value(key, value, "one value: a number, true/false, text or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_value(key, value, "a finite number")


def _try_build(spec: SchedulerSpec, key: str) -> None:
    """A class with options is built on SDXL's scheduler config and asked for steps before any model loads:
    diffusers checks some values only then (timestep_spacing 'evil': every cell would fail)."""

    import diffusers

    from sweep.files.configs import SDXL_SCHEDULER_CONFIG

    try:
        scheduler = getattr(diffusers, spec.cls).from_config(SDXL_SCHEDULER_CONFIG, **dict(spec.options))
        scheduler.set_timesteps(10)
        values = [float(v) for v in getattr(scheduler, "sigmas", scheduler.timesteps).flatten().tolist()]
    except Exception as exc:  # diffusers' ValueError / TypeError / AttributeError: one line naming the options
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        shown = ", ".join(f"{k}={v!r}" for k, v in spec.options)
        raise bad_value(key, f"{spec.cls}({shown})", f"options {spec.cls} can run with (diffusers: {why})") from None
    if not all(math.isfinite(v) for v in values):
        shown = ", ".join(f"{k}={v!r}" for k, v in spec.options)
        raise bad_value(key, f"{spec.cls}({shown})", "options that give finite noise levels (these give NaN or inf)")


# Schedulers that look their tables up by timestep (alphas_cumprod[t], or t's index in a table of T + 1 sigmas):
# with timestep_spacing "leading" and steps_offset k, N steps end at timestep (N - 1) * (T // N) + k, past the
# table when N is near T (DDIM and PLMS at 1000 steps: IndexError in every cell). The sigma-interpolating ones
# (Euler, Heun, LMS, DPM2, DPM++ SDE) take any N up to T. Measured on diffusers 0.3x with SDXL's config.
TIMESTEP_INDEXED = frozenset({"DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler",
                              "DEISMultistepScheduler", "UniPCMultistepScheduler"})


SIGMA_SCHEDULES = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


def max_steps(spec: SchedulerSpec | None, facts: Facts) -> int:
    """The most denoising steps this scheduler (None: the model's own) can take with the model's config."""
    total = facts.num_train_timesteps
    spec = spec or facts.scheduler
    if spec is None or spec.cls not in TIMESTEP_INDEXED:
        return total
    options = dict(spec.options)
    spacing = options.get("timestep_spacing", facts.timestep_spacing)
    offset = int(options.get("steps_offset", facts.steps_offset) or 0)
    if spacing != "leading" or offset <= 0 or any(options.get(k) for k in SIGMA_SCHEDULES):
        return total  # Karras (or other) sigmas: timesteps come from interpolated sigmas, never past the table
    steps = total
    while steps > 1 and (steps - 1) * (total // steps) + offset > total - 1:
        steps -= 1
    return steps
