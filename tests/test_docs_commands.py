"""Every `python -m sweep ...` / `sdxl-sweep ...` command in README.md and docs/*.md, checked as a user would
run it: the argv as the shell splits it, the entry point's own argv handling, the config composed by Hydra
as the CLI composes it, then the checks the CLI runs before any model loads (config_checks, plan_sweep).
A typo, a refused value or a quoting mistake in the docs fails here. A command shown with its `error:` line
must give that line. `python -m sweep.report` / `sweep.compare` lines are parsed by their own parsers.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig
from PIL import Image

import sweep.planning.schema  # noqa: F401  registers the schema, as the entry point does
from sweep.cli.compose_errors import one_line
from sweep.cli.hydra_flags import flags_first
from sweep.errors import SweepError
from sweep.paths import CONF_DIR, expand_home
from sweep.planning.config_checks import check_config
from sweep.planning.plan import plan_sweep
from sweep.running.runner import to_dict

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = ("", "bash", "console", "sh", "shell")
FENCE = re.compile(r"^\s*```(\S*)")
ENTRY = ("sweep", "sweep.report", "sweep.compare")

# Lines that cannot be checked offline, each with the reason. test_allow_list_is_current keeps it honest.
OFFLINE_ONLY = {
    "python -m sweep -m hydra/launcher=joblib hydra.launcher.n_jobs=2 sweep=steps_10_to_90 model=tiny "
    "guidance_scale=3,7": "needs hydra-joblib-launcher, which the docs install on the line before (not a "
    "dependency of this project)",
    "python -m sweep sweep=seeds_steps_guidance 'report.scores=[clip_score]'": "needs openai/clip-vit-large-patch14 in "
    "the Hugging Face cache (a download the first time, online); offline it stops before the first image",
    "python -m sweep.compare outputs/steps_10_to_90/before outputs/steps_10_to_90/after [out=DIR] [tolerance=N]":
    "a usage line: [out=DIR] marks optional words, not a command to paste",
}
# Overrides naming the user's own files (a checkpoint, a VAE, LoRAs, a photo): composed and checked as written
# (so a quoting mistake or a wrong key still fails), then planned with the tiny model in their place.
USERS_OWN_FILES = re.compile(r"^(model\.(path|config|vae|lora|models_dir|controlnet|ip_adapter|ip_adapter_encoder)|"
                             r"sweep\.grid\.(checkpoint|vae))="
                             r"(?!madebyollin/)")
# The docs' image-to-image inputs (`~/...`): made in the test's home, so those lines are checked in full.
PHOTOS = ("photos/sketch.png", "a.png", "b.png", "maps/edges.png", "maps/depth.png", "photos/style.png")
# A file the docs show an error for, made as the docs describe it (sparse: no 3 GB written).
TRUNCATED = ("models/half-downloaded.safetensors", 3_221_225_472, 6_938_078_334)


@dataclass(frozen=True)
class Command:
    """One command line of the docs: where it is, the words after `python -m`, and the error it shows."""

    where: str
    text: str
    module: str
    argv: tuple[str, ...]
    error: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def shell_blocks(path: Path) -> list[list[tuple[int, str]]]:
    """The numbered lines of each fenced block whose language is a shell (or none)."""
    found, block, lang = [], None, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if fence and block is None:
            block, lang = [], fence.group(1)
        elif fence:
            if lang in SHELL_BLOCKS:
                found.append(block)
            block = None
        elif block is not None:
            block.append((number, line))
    return found


def logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str, bool]]:
    """(line number, text, had a `$ ` prompt) with `\\` continuations joined."""
    out: list[tuple[int, str, bool]] = []
    pending: tuple[int, str, bool] | None = None
    for number, line in block:
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip(), pending[2])
        else:
            prompt = line.startswith("$ ")
            pending = (number, line.removeprefix("$ ").strip(), prompt)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip(), pending[2])
            continue
        out.append(pending)
        pending = None
    return out


def commands_in(words: list[str]) -> list[list[str]]:
    """The simple commands of a shell line (`a && b; c | d`), each as its words."""
    parts, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            parts.append(current)
            current = []
        else:
            current.append(word)
    return [*parts, current]


def sweep_argv(words: list[str]) -> tuple[str, list[str]] | None:
    """('sweep' | 'sweep.report' | 'sweep.compare', argv) for a command that runs the tool, else None.
    `accelerate launch ... -m sweep` and `torchrun ... -m sweep` run it too."""
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # `HF_HUB_OFFLINE=1 python -m sweep ...`
        words = words[1:]
    if words[:1] == ["sdxl-sweep"]:
        return "sweep", words[1:]
    for i, word in enumerate(words[:-1]):
        if word == "-m" and words[i + 1] in ENTRY and words[0] in ("python", "python3", "accelerate", "torchrun"):
            return words[i + 1], words[i + 2:]
    return None


def doc_commands() -> list[Command]:
    """Every command of the docs that runs the tool, with the `error:` line that follows it, if any."""
    found = []
    for path in DOC_FILES:
        for block in shell_blocks(path):
            lines = logical_lines(block)
            for index, (number, text, prompt) in enumerate(lines):
                if not re.search(r"-m sweep|sdxl-sweep", text):
                    continue
                try:
                    words = shlex.split(text, comments=True)
                except ValueError as exc:  # a quote left open: the shell would wait for more input
                    found.append(Command(f"{path.relative_to(REPO)}:{number}", text, f"unparsable ({exc})", ()))
                    continue
                following = lines[index + 1][1] if index + 1 < len(lines) else ""
                error = following.removeprefix("error: ") if prompt and following.startswith("error: ") else None
                for simple in commands_in(words):
                    runs = sweep_argv(simple)
                    if runs:
                        shown = text.split(" #")[0].strip()
                        found.append(Command(f"{path.relative_to(REPO)}:{number}", shown, runs[0],
                                             tuple(runs[1]), error))
    return found


COMMANDS = doc_commands()


def yaml_block(path: Path) -> str:
    """The text of the first ```yaml block of a doc."""
    text = path.read_text(encoding="utf-8")
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory like the user's: README's my_grid.yaml saved as the README asks."""
    (tmp_path / "my_grid.yaml").write_text(yaml_block(REPO / "README.md"), encoding="utf-8")
    for photo in PHOTOS:  # the docs' image-to-image inputs, at SDXL's own size
        (tmp_path / photo).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1024, 1024), (200, 120, 40)).save(tmp_path / photo)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of each job, as Hydra's basic sweeper splits a multirun (one list without -m)."""
    if not multirun:
        return [overrides]
    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line or f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]


def own_files_swapped(overrides: list[str]) -> list[str]:
    """The overrides with the user's own files replaced by the tiny model (unchanged when there are none)."""
    kept = [o for o in overrides if not USERS_OWN_FILES.match(o)]
    if len(kept) == len(overrides):
        return overrides
    for key in ("model.controlnet", "model.ip_adapter"):  # built in code for the tiny model, in place of the user's
        if any(o.startswith(f"{key}=") for o in overrides):
            kept.append(f"{key}=tiny")
    return ["model=tiny", *kept]


def composed(overrides: list[str]) -> DictConfig:
    """The config the CLI composes for these overrides (conf/ plus the sweep source plugins)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def check_sweep(argv: list[str], swap: bool = False) -> None:
    """What `python -m sweep ARGV` checks before it loads a model; raises what the CLI would report.
    swap: plan with the tiny model in place of the user's own files (composed and checked as written first)."""
    args = expand_home(flags_first(argv))  # the entry point's own argv handling, in its order
    multirun = any(a in ("-m", "--multirun") for a in args)
    flags = [a for a in args if a.startswith("-")]
    assert set(flags) <= {"-m", "--multirun"}, f"flags this test does not model: {flags}"
    overrides = [a for a in args if not a.startswith("-")]
    for job in jobs(overrides, multirun):
        cfg = composed(job)
        check_config(cfg)
        if swap and own_files_swapped(job) != job:
            cfg = composed(own_files_swapped(job))
            check_config(cfg)
        plan_sweep(to_dict(cfg), multirun=multirun)


def error_of(argv: list[str], swap: bool = False) -> str | None:
    """The one error line the CLI prints for ARGV before loading a model (None when it is accepted)."""
    try:
        check_sweep(argv, swap)
    except SweepError as exc:
        return str(exc)
    except Exception as exc:  # Hydra's composition errors: the CLI reports them through cli_errors.one_line
        return one_line(exc, argv)
    return None


def matches(shown: str, got: str) -> bool:
    """The docs' error line against the real one: `...` in the docs stands for any text, and so does /home/me
    (the user's home; a long path is shortened in the message)."""
    pattern = ".*?".join(re.escape(part) for part in shown.replace("/home/me", "...").split("..."))
    return re.fullmatch(pattern, got) is not None


SWEEP_COMMANDS = [c for c in COMMANDS if c.module == "sweep" and c.text not in OFFLINE_ONLY]


def test_the_docs_have_commands() -> None:
    """The extraction finds the docs' commands (an empty list would pass every test below)."""
    assert len(SWEEP_COMMANDS) >= 30
    assert sum(c.error is not None for c in COMMANDS) >= 5
    assert not [c for c in COMMANDS if c.module.startswith("unparsable")], "a command with an open quote"


@pytest.mark.parametrize("command", [c for c in SWEEP_COMMANDS if c.error is None], ids=str)
def test_sweep_command_is_accepted(command: Command, user_dir: Path) -> None:
    error = error_of(list(command.argv), swap=True)
    assert error is None, f"{command}\n  error: {error}"


@pytest.mark.parametrize("command", [c for c in SWEEP_COMMANDS if c.error is not None], ids=str)
def test_sweep_command_gives_the_error_shown(command: Command, user_dir: Path) -> None:
    if "sweep=my_grid.yaml" in command.argv:  # the docs' example: a tab on line 4 of README's my_grid.yaml
        lines = yaml_block(REPO / "README.md").splitlines(keepends=True)
        lines[3] = "\t" + lines[3].lstrip()
        (user_dir / "my_grid.yaml").write_text("".join(lines), encoding="utf-8")
    name, size, claimed = TRUNCATED  # a download cut short: the header promises more bytes than the file has
    header = json.dumps({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, claimed - 8 - 128]}}).ljust(128)
    (user_dir / name).parent.mkdir(parents=True, exist_ok=True)
    with open(user_dir / name, "wb") as handle:
        handle.write(struct.pack("<Q", 128) + header.encode())
        handle.truncate(size)
    got = error_of(list(command.argv))
    assert got is not None and matches(command.error, got), f"{command}\n  docs: {command.error}\n  got:  {got}"


def test_report_and_compare_commands_parse(user_dir: Path) -> None:
    """`python -m sweep.report` / `sweep.compare` lines: their options as the tool parses them, on a directory
    an earlier command of the same docs writes."""
    from sweep.compare import parse as parse_compare
    from sweep.report.__main__ import parse as parse_report

    written = {a.split("=", 1)[1] for c in SWEEP_COMMANDS for a in c.argv if a.startswith("hydra.run.dir=")}
    others = [c for c in COMMANDS if c.module in ("sweep.report", "sweep.compare") and c.text not in OFFLINE_ONLY]
    assert others
    for command in others:
        parse = parse_report if command.module == "sweep.report" else parse_compare
        dirs = parse(list(command.argv))
        assert dirs[0] in written, f"{command}: {dirs[0]} is not a run dir any command of the docs writes"


def test_allow_list_is_current() -> None:
    """Every line let off the checks is still in the docs, word for word."""
    texts = {c.text for c in COMMANDS}
    assert set(OFFLINE_ONLY) <= texts, set(OFFLINE_ONLY) - texts
