"""The axis registry: what every sweepable setting is, declared once.

Each `Axis` entry says, in one place: its name (diffusers' own argument name where there is one), how a value
is parsed and checked (one-line error: key, value, what is allowed), how it enters the pipeline call (`enters`:
a call argument, the text encoders, the image size, the scheduler, the generator, a prompt transform), whether
cells that differ on it may share one call, its results.csv column(s), its label in sheets and plots, its part
of the cell id / file name, and its A1111 infotext key. Grid expansion, the runner, resume identity, PNG
metadata, the report, the multirun merge and the config schema all read this table; adding an axis is one
entry here (A1111's `AxisOption` list and Infinity Grid's `GridSettingMode` are the field's precedent).

Import cost matters (bad input must be refused in well under a second): nothing here imports torch or
diffusers except the rare paths that validate a scheduler class's options.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sweep.errors import SweepError, bad_value, suggest
from sweep.naming import slug

DEFAULT_PROMPT = "a photo of an astronaut riding a horse on mars"  # the diffusers SDXL tutorial's
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts [0, 2**64)
# ComfyUI's KSampler bound for cfg: far beyond any useful guidance, and well below where fp16/fp32 overflow
# turns every image black (guidance_scale=1e308 did exactly that).
MAX_GUIDANCE = 100.0
RANGE_HELP = ("a list, a single value, or a range 'START..END step S' (END included) or 'START..<END step S' "
              "(END excluded)")
_RANGE = re.compile(
    r"^\s*(?P<start>[-+0-9.eE]+)\s*\.\.(?P<excl><)?\s*(?P<stop>[-+0-9.eE]+)\s*(?:step\s+(?P<step>[-+0-9.eE]+))?\s*$"
)
_RANDOM = re.compile(r"^\s*random\s+(?P<n>\S+)\s*$")
_SIZE = re.compile(r"^\s*(?P<w>\d+)\s*[xX×]\s*(?P<h>\d+)\s*$")


@dataclass(frozen=True)
class Facts:
    """What the checks need to know about the model, read from its config files before any weight loads."""

    native_size: tuple[int, int] | None = None  # (width, height) diffusers uses when none is given
    num_train_timesteps: int = 1000
    text_layers: int | None = None  # hidden layers of the shallower text encoder (bounds clip_skip)
    scheduler: SchedulerSpec | None = None  # the model's own scheduler
    refiner_switch: float | None = None  # the hand-over fraction used when a refiner is loaded and none is given
    vae: str | None = None  # A1111's `VAE` name of model.vae, what an unset `vae` axis means (None: the model's own)
    timestep_spacing: str | None = None  # the model's scheduler config (what Automatic means for a schedule type)
    steps_offset: int | None = None
    # Feature widths at full resolution in the VAE decoder and first width of the UNet (the memory bound,
    # sweep.memory); SDXL's where the configs are not read.
    vae_channels: int = 128
    unet_channels: int = 320


class PerModel(dict):
    """Facts of each model a sweep loads (a `checkpoint` / `vae` axis), keyed by `model_key(cell)`."""


def model_key(cell: Any) -> tuple[tuple[str, Any], ...]:
    """What a cell loads: its values of the axes that enter as "model" (checkpoint, VAE)."""
    return tuple((n, v) for n, v in cell.params if get(n).enters == "model")


def facts_for(facts: Facts | PerModel | None, cell: Any) -> Facts | None:
    """The facts of the model a cell is made with."""
    return facts[model_key(cell)] if isinstance(facts, PerModel) else facts


# --- value checks ----------------------------------------------------------------------------------------


def _int(value: Any, key: str, allowed: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise bad_value(key, value, allowed)
    return value


def _float(value: Any, key: str, allowed: str, minimum: float, maximum: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool):
        raise bad_value(key, value, allowed)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise bad_value(key, value, allowed) from None
    low_ok = number > minimum if open_low else number >= minimum
    if not (low_ok and number <= maximum) or math.isnan(number):
        raise bad_value(key, value, allowed)
    return number


def check_text(value: Any, key: str, *, optional: bool) -> str | None:
    """Prompt-like text: a string that is valid Unicode (a lone surrogate such as '\\ud800' cannot be written to
    a PNG or a CSV); empty or null means none where that is allowed."""
    if value is None or (optional and isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise bad_value(key, value, "a non-empty prompt")
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise bad_value(key, value, "a non-empty prompt" if not optional else "text, or null/'' for none")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # repr() shows the surrogate escaped ('caf\\ud800'), so the message itself can be printed.
        raise bad_value(key, value, "text that is valid Unicode (no lone surrogates such as \\ud800)") from None
    return value


def check_side(value: Any, key: str) -> int:
    side = _int(value, key, "a positive multiple of 8", 8)
    if side % 8:
        raise bad_value(key, value, "a positive multiple of 8")
    return side


SIZE_HELP = "'WIDTHxHEIGHT' like '1216x832', {width: W, height: H}, or one number for a square"


def check_size(value: Any, key: str) -> tuple[int, int]:
    """'1216x832' / {width: 1216, height: 832} / 512 -> (width, height). Sizes are WIDTHxHEIGHT, as A1111's
    `Size`, ComfyUI and civitai write them; a bare [a, b] pair is refused because readers disagree on its order."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise bad_value(key, value, SIZE_HELP)
        return check_side(match["w"], key), check_side(match["h"], key)
    if isinstance(value, Mapping):
        if set(value) != {"width", "height"}:
            raise bad_value(key, dict(value), SIZE_HELP)
        return check_side(value["width"], key), check_side(value["height"], key)
    if isinstance(value, Sequence):
        pair = list(value)
        shown = f"{pair[0]}x{pair[1]}" if len(pair) == 2 else "WxH"
        raise bad_value(key, pair, f"{SIZE_HELP}: write '{shown}' (width {pair[0] if len(pair) == 2 else 'W'} "
                        "first) or {width: W, height: H}")
    side = check_side(value, key)
    return side, side


def number_text(value: float | int) -> str:
    """Shortest exact text of a number: 5.0 -> '5', 7.5 -> '7.5', 5.0000001 -> '5.0000001' (file names, labels)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _digest(text: str, n: int = 6) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def text_id(prefix: str, text: str, limit: int) -> str:
    """A readable, unique file-name fragment for any text: ASCII slug plus a short hash of the exact text."""
    head = slug(text, limit)
    return "-".join(p for p in (prefix, head, _digest(text)) if p)


# --- schedulers (samplers) ------------------------------------------------------------------------------

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
    import math

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
    import math

    import diffusers

    from sweep.model_configs import SDXL_SCHEDULER_CONFIG

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


# --- the registry ----------------------------------------------------------------------------------------

Parse = Callable[[Any, str, Facts], Any]


@dataclass(frozen=True)
class Axis:
    """One sweepable setting. `None` as a value means "not set": the pipeline's own default."""

    name: str
    parse: Parse
    # How the value enters generation: "call" (a pipeline keyword argument), "encode" (an argument of the text
    # encoders, so it is part of the prompt cache key), "size" (height and width), "scheduler" (a scheduler
    # built per call), "seed" (the per-image generator), "repeat" (nothing: the same cell again), "transform"
    # (rewrites the prompt texts), "state" (set on the shared pipeline: LoRA strengths), "model" (what is loaded:
    # checkpoint, VAE), "pass" (a second pass or an image-to-image input: Hires. fix, init image, strength),
    # "noise" (the starting noise, made per image from the seed: A1111's variation seeds, sweep.variations).
    enters: str
    base_type: Any = None  # type of the top-level config key; None: a grid-only axis
    base_default: Any = None
    columns: tuple[str, ...] = ()  # results.csv columns; default (name,)
    numeric: bool = False  # ordered as numbers, plotted as lines (categorical: sweep order, bars)
    ranges: bool = False  # accepts 'START..END step S'
    splits_calls: bool = True  # cells differing on it cannot share one pipeline call (all but the seed)
    id: Callable[[Any], str] = str  # cell-id / file-name fragment of a (non-None) value
    infotext: Callable[[Any], list[tuple[str, Any]]] | None = None  # A1111 `parameters` fields
    info_rank: int = 100  # position among the A1111 fields (Steps 10, Sampler 20, CFG 30, Seed 40, Size 50, ...)
    record: Callable[[Any], dict[str, Any]] | None = None  # value -> results.csv cells (default {name: value})
    none_label: str = "default"  # how "not set" reads in sheets and the viewer
    short: str = ""  # short name in file names ('steps'); default: the name
    aliases: tuple[str, ...] = ()  # other names a report layout accepts ('steps', 'cfg', 'sampler')
    help: str = ""  # what the axis is, in a few words (plot axis labels)
    title: str = ""  # how people name it (A1111's words: 'CFG scale', 'Sampler'); default: the name
    sort_values: bool | None = None  # order values ascending in sheets (default: when numeric; seeds keep theirs)
    allowed: str = ""
    # What "not set" turns out to be for a given model, for the record (the model's own scheduler); the cell id
    # still leaves it out, so naming it explicitly is a different cell with the same pixels.
    resolve: Callable[[Facts], Any] | None = None
    derives: tuple[str, ...] = ()  # columns whose values this axis rewrites (Prompt S/R: the prompt texts)
    model_bound: bool = False  # its allowed values depend on the model (checked again once its config is read)
    requires: str = ""  # a model setting it needs (`refiner` for the refiner switch)
    # What changing it costs: cells are made in order of the costliest axes first (A1111's AxisOption `cost`:
    # a checkpoint loads once and stays while every cell that uses it is made).
    cost: float = 0.0
    # A setting of the pass another axis turns on (`hires_scale`, `init_image`): refused without it, and `fill`
    # (A1111's default) where that pass is on and it is unset.
    part_of: str = ""
    fill: Any = None
    # One value as users say it with its axis ("CFG 7", "30 steps"); default "TITLE VALUE".
    phrase: Callable[[str], str] | None = None
    # Its infotext fields are written only where this axis of the cell is set and non-zero (A1111 writes
    # `Variation seed` only when `Variation seed strength` is above 0).
    only_with: str = ""
    # Calls with a non-zero value change the shared UNet while they run (PAG swaps its attention processors):
    # they run one at a time, never beside another call.
    solo: bool = False
    # How it moves an image's seconds (the report's timing model): None: it does not (seed, prompt); "linear":
    # a fixed cost plus a cost per unit (steps); else a function naming a value's cost class (each size its
    # own; guidance: CFG on or off, which halves the UNet batch).
    timing: Callable[[str], str] | str | None = None

    @property
    def cols(self) -> tuple[str, ...]:
        return self.columns or (self.name,)

    @property
    def heading(self) -> str:
        return self.title or self.name

    def says(self, text: str) -> str:
        """A results.csv value as users say it with its axis: 'CFG 7', '30 steps', 'DPM++ 2M Karras'."""
        shown = label(self.name, text)
        return self.phrase(shown) if self.phrase and text != "" else f"{self.heading} {shown}"

    @property
    def token(self) -> str:
        return self.short or self.name

    @property
    def sorted(self) -> bool:
        return self.numeric if self.sort_values is None else self.sort_values

    def to_record(self, value: Any, facts: Facts | None = None) -> dict[str, Any]:
        if value is None and self.resolve is not None and facts is not None:
            value = self.resolve(facts)
        if self.record is not None:
            return self.record(value)
        return {self.name: value}


def _number_or(text: str, default: float) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def _steps(value: Any, key: str, facts: Facts) -> int:
    limit = facts.num_train_timesteps
    return _int(value, key, f"an integer from 1 to {limit} (the scheduler's num_train_timesteps)", 1, limit)


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


def _guidance(value: Any, key: str, facts: Facts) -> float:
    return _float(value, key, f"a number from 0 to {MAX_GUIDANCE:g} (<= 1 turns classifier-free guidance off)",
                  0.0, MAX_GUIDANCE)


def _seed(value: Any, key: str, facts: Facts) -> int:
    return _int(value, key, f"an integer in [0, {MAX_SEED}]", 0, MAX_SEED)


def _clip_skip(value: Any, key: str, facts: Facts) -> int | None:
    if value is None:
        return None
    top = (facts.text_layers - 1) if facts.text_layers else 10
    # diffusers' clip_skip=1 uses the layer before the penultimate one (A1111's "Clip skip: 2").
    return _int(value, key, f"an integer from 0 to {top} (layers skipped; A1111's 'Clip skip' minus 1), or null",
                0, top)


def _optional_float(low: float, high: float, what: str, open_low: bool = False) -> Parse:
    def parse(value: Any, key: str, facts: Facts) -> float | None:
        return None if value is None else _float(value, key, f"{what}, or null for the pipeline's default",
                                                 low, high, open_low=open_low)
    return parse


def _switch(value: Any, key: str, facts: Facts) -> float | None:
    if value is None:
        return None
    allowed = ("a fraction strictly between 0 and 1 (of the steps the base runs before the refiner takes over), "
               "e.g. 0.8, or null for 0.8")
    switch = _float(value, key, allowed, 0.0, 1.0, open_low=True)
    if switch == 1.0:  # the refiner would get no step at all
        raise bad_value(key, value, allowed)
    return switch


def _text(optional: bool) -> Parse:
    return lambda value, key, facts: check_text(value, key, optional=optional)


def _size(value: Any, key: str, facts: Facts) -> tuple[int, int] | None:
    return None if value is None else check_size(value, key)


def _scheduler(value: Any, key: str, facts: Facts) -> SchedulerSpec | None:
    return check_scheduler(value, key)


def _schedule_type(value: Any, key: str, facts: Facts) -> str | None:
    return check_schedule_type(value, key)


def _prompt_syntax(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.prompt_syntax import syntax_of

    return syntax_of(value, key)


def _syntax_infotext(value: str) -> list[tuple[str, Any]]:
    """A1111 writes `Emphasis: None` when its attention syntax is off; compel's syntax is not A1111's."""
    return [("Emphasis", "None")] if value == "none" else [("Prompt syntax", value)]


def _replacement(value: Any, key: str, facts: Facts) -> str:
    text = check_text(value, key, optional=True)
    return text if text is not None else ""


def _size_record(value: tuple[int, int] | None) -> dict[str, Any]:
    width, height = value if value else (None, None)
    return {"height": height, "width": width}


def _scheduler_record(value: SchedulerSpec | None) -> dict[str, Any]:
    return {"scheduler": value.name if value else None, "scheduler_class": value.class_text if value else None}


def _scheduler_id(value: SchedulerSpec) -> str:
    """'DPM-2M-Karras' for A1111 names (all distinct as slugs); a class with options gets a hash of them."""
    return slug(value.name, 40) if value.name in SAMPLERS else text_id("", value.name, 24)


def _sr_record(value: tuple[str, str] | None) -> dict[str, Any]:
    return {"prompt_sr": value[1] if value else None}


# --- model files, second passes and image-to-image ------------------------------------------------------

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth", ".sft")
# Checkpoints built in code, by name (no file): `model=NAME` and `sweep.grid.checkpoint: [tiny, tiny-alt]`.
BUILT_IN_CHECKPOINTS = ("tiny", "tiny-alt", "sdxl_arch")


def file_label(value: str, *, keep_suffix: bool = False) -> str:
    """A model file's name as sheets show it: the file stem (`juggernautXL_v9`), a folder's or hub model's name.
    A1111 names a VAE by its file name, suffix included (`keep_suffix`)."""
    name = str(value).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if not keep_suffix:
        for suffix in MODEL_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    return name


def _model_ref(what: str) -> Parse:
    """A model file given by path or name; only the text is checked here (the file is checked with the model
    config in sweep.plan, before anything loads: it needs model.models_dir)."""
    def parse(value: Any, key: str, facts: Facts) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise bad_value(key, value, what)
        return value.strip()
    return parse


HIRES_LATENT = {  # A1111's latent upscale modes: (torch interpolate mode, antialias)
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
HIRES_PIXEL = ("Lanczos", "Nearest")  # A1111's built-in pixel upscalers (PIL resampling; nothing to download)
_UPSCALERS = {_squash(name): name for name in (*HIRES_LATENT, *HIRES_PIXEL)}
MAX_HIRES_SCALE = 4.0


def _upscaler(value: Any, key: str, facts: Facts) -> str | None:
    if value is None:
        return None
    found = _UPSCALERS.get(_squash(value)) if isinstance(value, str) else None
    if found is None:
        raise bad_value(key, value, "an upscaler: " + ", ".join((*HIRES_LATENT, *HIRES_PIXEL)))
    return found


def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The second pass's (width, height): A1111's `int(side * scale)`, down to a multiple of 8 (the VAE's)."""
    return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8


def output_size(record: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, height) of a cell's image from its results row: the first pass's size, or Hires. fix's."""
    try:
        width, height = int(record["width"]), int(record["height"])
    except (KeyError, TypeError, ValueError):
        return None
    scale = record.get("hires_scale")
    if scale not in (None, ""):
        return hires_size(width, height, float(scale))
    return width, height


_IMAGE_HASHES: dict[tuple[str, int, int], str] = {}


def image_hash(path: str) -> str:
    """The first 10 hex digits of an image file's SHA-256 (A1111's short hash length), kept per size and mtime."""
    import os

    stat = os.stat(os.path.expanduser(path))
    key = (os.path.abspath(os.path.expanduser(path)), stat.st_size, stat.st_mtime_ns)
    if key not in _IMAGE_HASHES:
        with open(key[0], "rb") as handle:
            _IMAGE_HASHES[key] = hashlib.file_digest(handle, "sha256").hexdigest()[:10]
    return _IMAGE_HASHES[key]


def _init_image(value: Any, key: str, facts: Facts) -> str | None:
    """An image file for image-to-image: a regular file, of a bounded size, that decodes in full
    (sweep.init_images)."""
    from sweep.init_images import ALLOWED, check

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise bad_value(key, value, ALLOWED)
    check(value.strip(), key)
    return value.strip()


def _init_record(value: str | None) -> dict[str, Any]:
    return {"init_image": value, "init_image_hash": image_hash(value) if value else None}


def _control_image(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.controlnet import check_image

    return check_image(value, key)


def _control_record(value: str | None) -> dict[str, Any]:
    from sweep.controlnet import image_hash as control_hash

    return {"control_image": value, "control_image_hash": control_hash(value)}


MAX_CONTROL_SCALE = 5.0  # sd-webui-controlnet's Weight slider stops at 2; diffusers has no bound


# --- variation seeds, FreeU and PAG (sweep.variations, sweep.unet_tweaks) ----------------------------------

MAX_FREEU = 10.0  # ComfyUI's FreeU node bounds each of b1, b2, s1, s2 to [0, 10]
MAX_PAG_SCALE = 100.0  # ComfyUI's PerturbedAttentionGuidance node bounds its scale to [0, 100]
FREEU_HELP = (f"off (or false/null) or 'b1,b2,s1,s2': four numbers from 0 to {MAX_FREEU:g} (diffusers' "
              "enable_freeu; SDXL's suggested values are '1.3,1.4,0.9,0.2')")
FREEU_KEYS = ("b1", "b2", "s1", "s2")


def _subseed(value: Any, key: str, facts: Facts) -> int | None:
    return None if value is None else _int(value, key, f"an integer in [0, {MAX_SEED}] (A1111's Variation seed), "
                                           "or null for none", 0, MAX_SEED)


def _freeu(value: Any, key: str, facts: Facts) -> tuple[float, float, float, float] | None:
    """off -> None; 'b1,b2,s1,s2' (or {b1: .., b2: .., s1: .., s2: ..}) -> four floats in [0, MAX_FREEU]."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none",
                                                                                              "null", "")):
        return None  # YAML reads a bare `off` as false
    if isinstance(value, Mapping) and set(value) == set(FREEU_KEYS):
        parts: list[Any] = [value[k] for k in FREEU_KEYS]
    elif isinstance(value, str) and value.count(",") == 3:
        parts = [p.strip() for p in value.split(",")]
    else:
        raise bad_value(key, value, FREEU_HELP)
    numbers = []
    for part in parts:
        if isinstance(part, bool):
            raise bad_value(key, value, FREEU_HELP)
        try:
            number = float(part)
        except (TypeError, ValueError, OverflowError):
            raise bad_value(key, value, FREEU_HELP) from None
        if math.isnan(number) or not 0.0 <= number <= MAX_FREEU:
            raise bad_value(key, value, FREEU_HELP)
        numbers.append(number)
    return tuple(numbers)  # type: ignore[return-value]


MAX_SEED_RESIZE = 16384  # ComfyUI's MAX_RESOLUTION: the noise of a larger size is never useful
SEED_RESIZE_HELP = (f"'WIDTHxHEIGHT' (multiples of 8, at most {MAX_SEED_RESIZE}) the seed's noise is made at, "
                    "or null for the image's own size")


def _seed_resize(value: Any, key: str, facts: Facts) -> tuple[int, int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null", "off")):
        return None
    if not isinstance(value, (str, Mapping)):
        raise bad_value(key, value, SEED_RESIZE_HELP)
    size = check_size(value, key)
    if max(size) > MAX_SEED_RESIZE:
        raise bad_value(key, value, SEED_RESIZE_HELP)
    return size


def freeu_text(value: tuple[float, ...]) -> str:
    """'1.3,1.4,0.9,0.2': the value as users type it (results.csv, labels)."""
    return ",".join(number_text(v) for v in value)


def _freeu_infotext(value: tuple[float, ...]) -> list[tuple[str, Any]]:
    # No A1111 key for diffusers' FreeU: the sd-webui-freeu extension writes its own stage-by-stage settings
    # (backbone windows, cutoffs, a step schedule) that diffusers' four numbers do not fill in. A clear key.
    return [("FreeU", ", ".join(f"{k}={number_text(v)}" for k, v in zip(FREEU_KEYS, value, strict=True)))]
def _ip_image(value: Any, key: str, facts: Facts) -> str | None:
    from sweep.controlnet import check_image

    return check_image(value, key, "to take the look of")


def _ip_record(value: str | None) -> dict[str, Any]:
    from sweep.controlnet import image_hash as control_hash

    return {"ip_adapter_image": value, "ip_adapter_image_hash": control_hash(value)}


AXES: tuple[Axis, ...] = (
    Axis("prompt", _text(False), "encode",
         title="Prompt", base_type=str, base_default=DEFAULT_PROMPT, aliases=("prompts",),
         id=lambda v: text_id("", v, 24), none_label="(none)", allowed="non-empty prompt text"),
    Axis("negative_prompt", _text(True), "encode",
         title="Negative prompt", base_type=str | None, none_label="(none)", short="neg",
         aliases=("negative", "neg"), id=lambda v: text_id("neg", v, 12), allowed="text, or null/'' for none"),
    Axis("prompt_2", _text(True), "encode", base_type=str | None, none_label="same as prompt",
         id=lambda v: text_id("ptwo", v, 12), infotext=lambda v: [("Prompt 2", v)], info_rank=90,
         allowed="text for the second text encoder, or null for the prompt"),
    Axis("negative_prompt_2", _text(True), "encode", base_type=str | None, none_label="same as negative_prompt",
         id=lambda v: text_id("negtwo", v, 12), infotext=lambda v: [("Negative prompt 2", v)], info_rank=91,
         allowed="text for the second text encoder, or null for the negative prompt"),
    # A1111's Prompt S/R: the first value is the text to find; each value replaces it in every prompt text.
    Axis("prompt_sr", _replacement, "transform", record=_sr_record, short="sr", aliases=("sr", "prompt s/r"),
         derives=("prompt", "negative_prompt", "prompt_2", "negative_prompt_2"),
         id=lambda v: text_id("sr", v[1], 16), none_label="(original)",
         allowed="a list whose first value is text found in the prompt"),
    Axis("seed", _seed, "seed",
         title="Seed", base_type=int, base_default=1234, numeric=True, ranges=True, splits_calls=False,
         sort_values=False, aliases=("seeds",), id=lambda v: f"seed{v}", infotext=lambda v: [("Seed", v)],
         info_rank=40,
         phrase=lambda v: f"seed {v}"),
    Axis("num_inference_steps", _steps, "call",
         title="Steps", base_type=int, base_default=50, numeric=True, ranges=True,
         model_bound=True, short="steps", aliases=("steps", "step"), help="denoising steps", id=lambda v: f"steps{v}",
         infotext=lambda v: [("Steps", v)], info_rank=10,
         phrase=lambda v: f"{v} steps", timing="linear"),
    Axis("guidance_scale", _guidance, "call",
         title="CFG scale", base_type=float, base_default=5.0, numeric=True, ranges=True,
         short="cfg", aliases=("cfg", "guidance", "cfg_scale", "cfg scale"), help="CFG scale; <= 1 turns CFG off",
         id=lambda v: f"cfg{number_text(v)}", infotext=lambda v: [("CFG scale", v)], info_rank=30,
         phrase=lambda v: f"CFG {v}", timing=lambda v: "CFG off" if _number_or(v, 2.0) <= 1 else "CFG on"),
    Axis("resolution", _size, "size",
         title="Size", columns=("height", "width"), record=_size_record, numeric=True,
         id=lambda v: f"{v[0]}x{v[1]}", infotext=lambda v: [("Size", f"{v[0]}x{v[1]}")], info_rank=50,
         none_label="native", aliases=("size", "res", "wxh"), help="megapixels; labels WIDTHxHEIGHT",
         allowed=SIZE_HELP,
         phrase=str, timing=str),
    Axis("scheduler", _scheduler, "scheduler",
         title="Sampler", base_type=Any, columns=("scheduler", "scheduler_class"),
         record=_scheduler_record, id=_scheduler_id, infotext=lambda v: v.a1111(), info_rank=20,
         resolve=lambda facts: facts.scheduler, aliases=("sampler", "samplers", "schedulers"), help="sampler",
         allowed=SCHEDULER_HELP,
         phrase=str, timing=str),
    # A1111 1.9+'s "Schedule type", crossed with the sampler; null/Automatic = what the sampler does by itself.
    Axis("schedule_type", _schedule_type, "scheduler",
         title="Schedule type", base_type=str | None, id=lambda v: slug(v, 20),
         infotext=lambda v: [("Schedule type", v)], info_rank=21, none_label="Automatic",
         aliases=("schedule", "schedule type", "schedule_types"), help="noise schedule", allowed=SCHEDULE_HELP,
         timing=str),
    # How prompt text becomes embeddings (sweep.prompt_syntax); null = a1111. Part of the prompt cache key.
    Axis("prompt_syntax", _prompt_syntax, "encode", base_type=Any, id=lambda v: f"syntax-{v}",
         infotext=_syntax_infotext, info_rank=80, none_label="a1111", allowed="a1111, compel or none"),
    Axis("guidance_rescale", _optional_float(0.0, 1.0, "a number from 0 to 1"), "call", base_type=float | None,
         numeric=True, ranges=True, id=lambda v: f"rescale{number_text(v)}",
         infotext=lambda v: [("Guidance rescale", v)], info_rank=75),
    Axis("clip_skip", _clip_skip, "encode",
         title="Clip skip", base_type=int | None, numeric=True, ranges=True, model_bound=True,
         id=lambda v: f"clipskip{v}", infotext=lambda v: [("Clip skip", v + 1)], info_rank=70),
    Axis("eta", _optional_float(0.0, 1.0, "a number from 0 to 1 (DDIM and ancestral noise)"), "call",
         base_type=float | None, numeric=True, ranges=True, id=lambda v: f"eta{number_text(v)}",
         infotext=lambda v: [("Eta", v)], info_rank=76),
    Axis("denoising_end", _optional_float(0.0, 1.0, "a fraction in (0, 1]", open_low=True), "call",
         base_type=float | None, numeric=True, ranges=True, id=lambda v: f"dend{number_text(v)}",
         infotext=lambda v: [("Denoising end", v)], info_rank=77,
         timing=str),
    # SDXL's base + refiner "ensemble of experts": the base runs denoising_end=F, the refiner denoising_start=F.
    Axis("refiner_switch", _switch, "refiner", base_type=float | None, numeric=True, ranges=True, requires="refiner",
         short="switch", aliases=("switch", "refiner switch at", "high_noise_frac"),
         help="fraction of the steps the base runs before the refiner", id=lambda v: f"refsw{number_text(v)}",
         infotext=lambda v: [("Refiner switch at", v)], info_rank=65, resolve=lambda facts: facts.refiner_switch,
         none_label="no refiner",
         timing=str),
    Axis("repeat", lambda v, k, f: v, "repeat", numeric=True, id=lambda v: f"r{v}",
         allowed="an integer >= 1 (how many times each cell is made)"),
    # What is loaded. A1111's `Model`, `Model hash`, `VAE` and `VAE hash` come from the loaded files (results
    # row), so these entries write no infotext of their own.
    Axis("checkpoint", _model_ref("a checkpoint: a .safetensors file, a diffusers folder, a name under "
                                  "model.models_dir, or a built-in model (" + ", ".join(BUILT_IN_CHECKPOINTS) + ")"),
         "model", record=lambda v: {"checkpoint": file_label(v) if v else None}, derives=("model",),
         id=lambda v: f"ckpt-{slug(file_label(v), 40)}", none_label="model config", cost=1.0,
         aliases=("checkpoints", "checkpoint name", "model_path"), help="checkpoint",
         timing=str),
    Axis("vae", _model_ref("a VAE: a .safetensors file, a diffusers VAE folder, a hub id or a name under "
                           "model.models_dir"),
         "model", record=lambda v: {"vae": file_label(v, keep_suffix=True) if v else None},
         resolve=lambda facts: facts.vae, id=lambda v: f"vae-{slug(file_label(v), 40)}", none_label="model's own",
         cost=0.7, aliases=("vaes", "sd_vae"), help="VAE",
         timing=str),
    # Hires. fix as A1111 does it: first pass at the cell's size, upscale, second pass at hires_denoise.
    Axis("hires_scale", _optional_float(1.0, MAX_HIRES_SCALE, f"a factor from 1 to {MAX_HIRES_SCALE:g} (null: no "
                                        "Hires. fix)"), "pass", base_type=float | None, numeric=True, ranges=True,
         id=lambda v: f"hires{number_text(v)}", infotext=lambda v: [("Hires upscale", v)], info_rank=67,
         none_label="no hires", aliases=("hires", "hr_scale", "hires upscale"), help="Hires. fix upscale factor",
         timing=str),
    Axis("hires_steps", lambda v, k, f: None if v is None else _int(v, k, "an integer >= 1, or null for the "
                                                                     "first pass's steps", 1, 10000),
         "pass", base_type=int | None, numeric=True, ranges=True, part_of="hires_scale",
         id=lambda v: f"hsteps{v}", infotext=lambda v: [("Hires steps", v)], info_rank=68,
         none_label="as first pass", aliases=("hr_steps",), help="Hires. fix steps",
         timing=str),
    Axis("hires_denoise", _optional_float(0.0, 1.0, "a denoising strength from 0 to 1 (0: the upscaled first "
                                          "pass as is)"), "pass", base_type=float | None, numeric=True,
         ranges=True, part_of="hires_scale", fill=0.7, id=lambda v: f"hden{number_text(v)}",
         infotext=lambda v: [("Denoising strength", v)], info_rank=66,
         aliases=("denoising", "denoising strength", "hr_denoise"), help="Hires. fix denoising strength",
         timing=str),
    Axis("hires_upscaler", _upscaler, "pass", base_type=str | None, part_of="hires_scale", fill="Latent",
         id=lambda v: f"hup-{slug(v, 24)}", infotext=lambda v: [("Hires upscaler", v)], info_rank=69,
         aliases=("hr_upscaler", "hires upscaler", "upscaler"), help="Hires. fix upscaler",
         allowed="an upscaler: " + ", ".join((*HIRES_LATENT, *HIRES_PIXEL)),
         timing=str),
    # Image-to-image: the first pass starts from this image (resized to the cell's size) at `strength`.
    Axis("init_image", _init_image, "pass", base_type=str | None, columns=("init_image", "init_image_hash"),
         record=_init_record, id=lambda v: text_id("init", file_label(v, keep_suffix=True), 16),
         none_label="(text to image)", aliases=("init_images",), help="init image",
         timing=str),
    Axis("strength", _optional_float(0.0, 1.0, "a denoising strength in (0, 1]", open_low=True), "pass",
         base_type=float | None, numeric=True, ranges=True, part_of="init_image", fill=0.3,
         id=lambda v: f"str{number_text(v)}", infotext=lambda v: [("Denoising strength", v)], info_rank=66,
         aliases=("img2img strength",), help="image-to-image strength",
         timing=str),
    # ControlNet (sweep.controlnet): the control image and diffusers' three ControlNet arguments. sd-webui-controlnet's
    # `ControlNet N` text is written from the row's ControlNets and these values (sweep.metadata), not per entry.
    Axis("control_image", _control_image, "control", base_type=str | None, requires="controlnet",
         columns=("control_image", "control_image_hash"), record=_control_record,
         id=lambda v: text_id("ctl", file_label(v, keep_suffix=True), 16), none_label="(none)",
         aliases=("control image", "control_images"), help="ControlNet input image", title="Control image",
         allowed="an image file, or builtin:rings", timing=str),
    Axis("controlnet_conditioning_scale", _optional_float(0.0, MAX_CONTROL_SCALE, f"a ControlNet weight from 0 to "
                                                          f"{MAX_CONTROL_SCALE:g} (0: no control)"), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet weight",
         short="cnw", aliases=("controlnet weight", "control weight", "cn weight", "controlnet_scale"),
         id=lambda v: f"cnw{number_text(v)}", none_label="1 (default)", help="ControlNet conditioning scale"),
    Axis("control_guidance_start", _optional_float(0.0, 1.0, "a fraction of the steps from 0 to 1 (below "
                                                   "control_guidance_end)"), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet start",
         short="cns", aliases=("guidance start", "controlnet start", "start percent"),
         id=lambda v: f"cns{number_text(v)}", none_label="0 (default)", help="ControlNet guidance start"),
    Axis("control_guidance_end", _optional_float(0.0, 1.0, "a fraction of the steps in (0, 1] (above "
                                                 "control_guidance_start)", open_low=True), "call",
         base_type=float | None, numeric=True, ranges=True, requires="controlnet", title="ControlNet end",
         short="cne", aliases=("guidance end", "controlnet end", "end percent"),
         id=lambda v: f"cne{number_text(v)}", none_label="1 (default)", help="ControlNet guidance end"),
    # A1111's variation seeds: the starting noise slerped from the seed's toward the subseed's (sweep.variations).
    # Made per image, so cells that differ only here share a pipeline call, as seeds do.
    Axis("subseed", _subseed, "noise", title="Var. seed", base_type=int | None, numeric=True, ranges=True,
         splits_calls=False, sort_values=False, id=lambda v: f"vseed{v}",
         infotext=lambda v: [("Variation seed", v)], info_rank=64, only_with="subseed_strength",
         none_label="none", aliases=("var. seed", "variation seed", "subseeds", "var_seed"),
         help="variation seed", phrase=lambda v: f"var. seed {v}"),
    Axis("subseed_strength", _optional_float(0.0, 1.0, "a variation strength from 0 (the seed's image) to 1 (the "
                                             "subseed's)"), "noise", title="Var. strength",
         base_type=float | None, numeric=True, ranges=True, splits_calls=False,
         id=lambda v: f"vstr{number_text(v)}", infotext=lambda v: [("Variation seed strength", v)], info_rank=64,
         only_with="subseed_strength", none_label="0", aliases=("var. strength", "variation strength",
                                                                "variation seed strength"),
         help="variation strength", phrase=lambda v: f"var. strength {v}"),
    # A1111's `Seed resize from`: the seed's (and subseed's) noise made at this size, centred in the image's.
    Axis("seed_resize_from", _seed_resize, "noise", title="Seed resize from", base_type=Any, splits_calls=False,
         record=lambda v: {"seed_resize_from": f"{v[0]}x{v[1]}" if v else None}, id=lambda v: f"sfrom{v[0]}x{v[1]}",
         infotext=lambda v: [("Seed resize from", f"{v[0]}x{v[1]}")], info_rank=64, none_label="(image size)",
         aliases=("seed resize from", "seed_resize"), help="size the seed's noise is made at",
         allowed=SEED_RESIZE_HELP, phrase=lambda v: f"seed resized from {v}"),
    # FreeU (diffusers' enable_freeu) set on the shared UNet between calls, like LoRA strengths (sweep.unet_tweaks).
    Axis("freeu", _freeu, "state", title="FreeU", base_type=Any, record=lambda v: {"freeu": freeu_text(v) if v
                                                                                  else None},
         id=lambda v: "freeu-" + "-".join(number_text(x) for x in v), infotext=_freeu_infotext, info_rank=79,
         none_label="off", help="FreeU b1,b2,s1,s2", allowed=FREEU_HELP,
         phrase=lambda v: f"FreeU {v}"),
    # Perturbed-Attention Guidance: diffusers' StableDiffusionXLPAGPipeline over the same components
    # (sweep.unet_tweaks); null or 0 = the plain pipeline. Its calls swap the shared UNet's attention processors.
    Axis("pag_scale", _optional_float(0.0, MAX_PAG_SCALE, f"a PAG scale from 0 (off) to {MAX_PAG_SCALE:g}"),
         "state", title="PAG scale", base_type=float | None, numeric=True, ranges=True, solo=True,
         id=lambda v: f"pag{number_text(v)}", infotext=lambda v: [("PAG scale", v)] if v else [], info_rank=79,
         none_label="off", aliases=("pag", "pag scale"), help="Perturbed-Attention Guidance scale",
         phrase=lambda v: f"PAG {v}", timing=lambda v: "PAG off" if _number_or(v, 0.0) == 0 else "PAG on"),
    # IP-Adapter (sweep.ip_adapter): its reference image, and its scale, state of the shared UNet's attention
    # processors (set between calls, as LoRA strengths are). Written as a `ControlNet N` unit (sweep.metadata).
    Axis("ip_adapter_image", _ip_image, "control", base_type=str | None, requires="ip_adapter",
         columns=("ip_adapter_image", "ip_adapter_image_hash"), record=_ip_record,
         id=lambda v: text_id("ipa", file_label(v, keep_suffix=True), 16), none_label="(none)",
         aliases=("ip adapter image", "ip_adapter_images"), help="IP-Adapter image", title="IP-Adapter image",
         allowed="an image file, or builtin:rings", timing=str),
    Axis("ip_adapter_scale", _optional_float(0.0, MAX_CONTROL_SCALE, f"an IP-Adapter scale from 0 to "
                                             f"{MAX_CONTROL_SCALE:g} (0: no effect)"), "state",
         base_type=float | None, numeric=True, ranges=True, requires="ip_adapter", title="IP-Adapter scale",
         short="ipw", aliases=("ip adapter scale", "ip_scale", "ip-adapter weight"),
         id=lambda v: f"ipw{number_text(v)}", none_label="1 (default)", help="IP-Adapter scale"),
)
BY_NAME = {axis.name: axis for axis in AXES}
# Keyword arguments of StableDiffusionXLPipeline.__call__ the runner sets itself, or that are not scalars.
NOT_AXES = frozenset({
    "self", "kwargs", "height", "width", "generator", "latents", "prompt_embeds", "negative_prompt_embeds",
    "pooled_prompt_embeds", "negative_pooled_prompt_embeds", "ip_adapter_image", "ip_adapter_image_embeds",
    "output_type", "return_dict", "cross_attention_kwargs", "callback_on_step_end",
    "callback_on_step_end_tensor_inputs", "num_images_per_prompt", "timesteps", "sigmas", "original_size",
    "crops_coords_top_left", "target_size", "negative_original_size", "negative_crops_coords_top_left",
    "negative_target_size",
})
TEXT_AXES = tuple(a.name for a in AXES if a.enters == "encode" and a.base_type in (str, str | None))


LORA = "lora"  # grid family: `lora: {NAME: [0, 0.5, 1]}` sweeps the strength of the LoRA called NAME
MAX_LORA_STRENGTH = 10.0


def lora_axis(name: str) -> Axis:
    """The strength of one LoRA of model.lora (adapter NAME), set per call with set_adapters. Pipeline-global
    state ("state"): calls with different strengths never run at the same time."""

    def parse(value: Any, key: str, facts: Facts) -> float:
        return _float(value, key, f"a strength from -{MAX_LORA_STRENGTH:g} to {MAX_LORA_STRENGTH:g} (0 = off, 1 = as "
                      "trained)", -MAX_LORA_STRENGTH, MAX_LORA_STRENGTH)

    return Axis(f"{LORA}.{name}", parse, "state", numeric=True, ranges=True, short=f"lora-{name}",
                id=lambda v: f"lora-{slug(name, 20)}-{number_text(v)}", help=f"strength of LoRA {name}",
                allowed="a LoRA strength")


def grid_entries(key: str, raw: Any) -> list[tuple[str, Any]]:
    """A grid key and its value as axes: the `lora` family's mapping gives one axis per LoRA."""
    if key != LORA:
        return [(key, raw)]
    if not isinstance(raw, Mapping) or not raw:
        raise bad_value(f"sweep.grid.{LORA}", raw, "a mapping of LoRA names (from model.lora) to strengths, e.g. "
                        "{detail: [0, 0.5, 1]}")
    return [(f"{LORA}.{name}", values) for name, values in raw.items()]


def get(name: str, key: str | None = None) -> Axis:
    """The axis called `name`; an unknown name exits 2 listing what is allowed."""
    if name.startswith(f"{LORA}."):
        return lora_axis(name.split(".", 1)[1])
    axis = BY_NAME.get(name) or _pipeline_argument(name)
    if axis is None:
        allowed = ", ".join(BY_NAME)
        raise bad_value(key or f"sweep.grid.{name}", name, f"an axis: {allowed}, or a scalar argument of "
                        f"StableDiffusionXLPipeline.__call__{suggest(name, BY_NAME)}")
    return axis


def argument_kind(annotation: str) -> str | None:
    """bool, int, float or str for a scalar argument's annotation text; None for anything else."""
    kind = next((t for t in ("bool", "int", "float", "str") if re.search(rf"\b{t}\b", annotation)), None)
    if kind is None or any(w in annotation for w in ("list", "tuple", "Tensor", "dict", "Callable")):
        return None
    return kind


@functools.cache
def _call_annotations() -> dict[str, str]:
    """StableDiffusionXLPipeline.__call__'s arguments -> their annotations as text, read from the installed
    diffusers' source file: importing diffusers takes seconds (torch with it), and a misspelt axis is refused
    before anything heavy is imported. Falls back to the import where the file is not where diffusers keeps it."""
    import ast

    folder = _diffusers_folder()
    tree = _parsed(folder / "pipelines" / "stable_diffusion_xl" / "pipeline_stable_diffusion_xl.py") if folder else None
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ClassDef) and node.name == "StableDiffusionXLPipeline":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__call__":
                    arguments = item.args
                    found = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             *(a for a in (arguments.vararg, arguments.kwarg) if a)]
                    return {a.arg: ast.unparse(a.annotation) if a.annotation else "" for a in found}
    import inspect

    from diffusers import StableDiffusionXLPipeline

    parameters = inspect.signature(StableDiffusionXLPipeline.__call__).parameters
    return {k: "" if p.annotation is inspect.Parameter.empty else str(p.annotation) for k, p in parameters.items()}


def _pipeline_argument(name: str) -> Axis | None:
    """A scalar keyword argument of the installed diffusers' SDXL call that no entry above covers, typed from
    its annotation (so a newer diffusers' new argument is an axis too)."""
    if name in NOT_AXES or name.startswith("_"):
        return None
    text = _call_annotations().get(name)
    if text is None:
        return None
    kind = argument_kind(text)
    if kind is None:
        return None

    def parse(value: Any, key: str, facts: Facts) -> Any:
        if value is None:
            return None
        if kind == "bool":
            if not isinstance(value, bool):
                raise bad_value(key, value, "true or false")
            return value
        if kind == "int":
            return _int(value, key, "an integer", -(2**63), 2**63 - 1)
        if kind == "float":
            return _float(value, key, "a finite number", -math.inf, math.inf)
        return check_text(value, key, optional=True)

    numeric = kind in ("int", "float")
    return Axis(name, parse, "call", numeric=numeric, ranges=numeric, timing=str,  # unknown cost: its own class
                id=lambda v: f"{slug(name, 12)}{number_text(v) if numeric else text_id('', str(v), 12)}",
                infotext=lambda v: [(name, v)], info_rank=95)


def base_axes() -> list[Axis]:
    """Axes that are also top-level config keys (resolution's are `height`/`width`, diffusers' names)."""
    return [a for a in AXES if a.base_type is not None]


def aliases() -> dict[str, str]:
    """Other names of axes (lower case) -> the axis name."""
    return {alias: a.name for a in AXES for alias in a.aliases}


def dependent_columns() -> set[str]:
    """Columns that belong to an axis without being its name (height/width of resolution, scheduler_class)."""
    return {c for a in AXES for c in a.cols if c != a.name}


def columns(extra: Iterable[str] = ()) -> list[str]:
    """The parameter columns of results.csv, in registry order, plus any extra axes' columns."""
    found = [c for a in AXES for c in a.cols]
    for name in extra:
        found += [c for c in get(name).cols if c not in found]
    return found


def axis_of_column(column: str) -> Axis | None:
    """The axis a results.csv column belongs to ('height' -> resolution), or None."""
    if column.startswith(f"{LORA}."):
        return lora_axis(column.split(".", 1)[1])
    for axis in AXES:
        if column == axis.name or column in axis.cols:
            return axis
    return None


# --- grid values ------------------------------------------------------------------------------------------


@dataclass
class Values:
    """The checked values of one axis, in sweep order, plus how they were given."""

    axis: Axis
    values: list[Any]
    random: bool = False  # seeds drawn with 'random N'
    raw: Any = None


def _number(text: str, key: str, raw: Any) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise bad_value(key, raw, RANGE_HELP) from None
    if not value.is_finite():
        raise bad_value(key, raw, RANGE_HELP)
    return value


def range_values(text: str, key: str, limit: int) -> list[Decimal]:
    """'10..90 step 10' -> 10, 20, ..., 90 (end included); '..<' stops before the end. The count is computed
    first, so '1..1e12' is refused at once instead of filling memory."""
    match = _RANGE.match(text)
    if not match:
        raise bad_value(key, text, RANGE_HELP)
    start, stop = _number(match["start"], key, text), _number(match["stop"], key, text)
    step = _number(match["step"], key, text) if match["step"] else Decimal(1)
    if step <= 0:
        raise bad_value(key, text, "a range step > 0")
    if stop < start:
        raise bad_value(key, text, "a range whose END is not below its START")
    span = (stop - start) / step
    count = int(span) + 1 if not match["excl"] or span != span.to_integral_value() else int(span)
    if count < 1:
        raise bad_value(key, text, "a range with at least one value")
    if count > limit:
        raise bad_value(key, text, f"at most max_images={limit} values (raise it with max_images=N if you mean it)")
    # Decimal arithmetic so '2..3 step 0.1' gives 2.1, not 2.1000000000000001.
    return [start + i * step for i in range(count)]


def grid_values(name: str, raw: Any, facts: Facts, limit: int, recorded_seeds: list[int] | None = None) -> Values:
    """Checked values of one grid entry; raises SweepError naming `sweep.grid.NAME`."""
    key = f"sweep.grid.{name}"
    axis = get(name, key)
    if name == "repeat":
        count = _int(raw, key, f"an integer from 1 to max_images={limit} (how many times each cell is made)",
                     1, limit)
        return Values(axis, list(range(count)), raw=raw)
    if isinstance(raw, str) and _RANDOM.match(raw):
        if name != "seed":
            raise bad_value(key, raw, "'random N' only on the seed axis")
        count = _int(_RANDOM.match(raw)["n"], key, f"'random N' with N an integer from 1 to max_images={limit}",
                     1, limit)
        if recorded_seeds is not None and len(recorded_seeds) == count:
            return Values(axis, list(recorded_seeds), random=True, raw=raw)
        # Seeds A1111 and most tools show are 32-bit; stay in that range so they can be typed back in.
        return Values(axis, [secrets.randbelow(2**32) for _ in range(count)], random=True, raw=raw)
    if isinstance(raw, str) and ".." in raw and axis.ranges:
        items: list[Any] = list(range_values(raw, key, limit))
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        items = list(raw)
        if not items:
            raise bad_value(key, [], "at least one value (leave the axis out, or null, to not sweep it)")
    else:
        items = [raw]  # one value (text may contain '..': it is never a range)
    if len(items) > limit:
        raise bad_value(key, f"{len(items)} values", f"at most max_images={limit}")
    if name == "prompt_sr":
        return _prompt_sr(axis, items, key, raw)
    values = [axis.parse(item, key, facts) for item in items]
    return Values(axis, _unique(values, key), raw=raw)


def _prompt_sr(axis: Axis, items: list[Any], key: str, raw: Any) -> Values:
    texts = [axis.parse(item, key, Facts()) for item in items]
    if not texts[0]:
        raise bad_value(key, items[0], "a first value that is the (non-empty) text to find in the prompt")
    search = texts[0]
    return Values(axis, _unique([(search, t) for t in texts], key), raw=raw)


def _unique(values: list[Any], key: str) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            shown = value[1] if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str) else value
            raise bad_value(key, shown, "each value once (to generate the same cell several times use "
                            "sweep.grid.repeat: N)")
        seen.add(value)
    return values


def label(axis_name: str, text: str) -> str:
    """How a results.csv value reads in sheets and the viewer: an empty value reads as the axis's default."""
    if text != "":
        return text
    axis = BY_NAME.get(axis_name)
    return axis.none_label if axis else "(none)"


def known(name: str) -> Axis | None:
    """The registry entry of a results.csv axis column (a LoRA's strength included), or None (model, job)."""
    if name.startswith(f"{LORA}."):
        return lora_axis(name.split(".", 1)[1])
    return BY_NAME.get(name)


def title(name: str) -> str:
    """How users name an axis: 'CFG scale', 'Sampler'; a column outside the registry by its own name."""
    axis = known(name)
    return axis.heading if axis else name


def says(name: str, text: str) -> str:
    """One value with its axis as users say it: 'CFG 7', '30 steps', 'DPM++ 2M Karras', 'model tiny'."""
    axis = known(name)
    return axis.says(text) if axis else f"{name} {label(name, text)}"


__all__ = ["AXES", "Axis", "Facts", "SchedulerSpec", "SweepError", "Values", "get", "grid_values", "label"]
