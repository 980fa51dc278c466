"""Bad input, as users type it, gives one line `KEY: got VALUE; allowed: ...` (with 'did you mean' for a typo),
exit code 2, nothing written; and the CLI habits: console script, --version, shell completion, --config-dir,
sweep=PATH.yaml. Most cases are checked in-process (the same functions the CLI calls); a few end to end."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf

from conftest import make_cfg, run_cli
from report_fixtures import grid, make_run
from sweep.cli import config_dirs
from sweep.cli.compose_errors import one_line
from sweep.errors import SweepError
from sweep.planning import config_checks
from sweep.planning.schema import Config

SCRIPT = Path(sys.executable).with_name("sdxl-sweep")


def compose_error(*overrides: str, argv: list[str] | None = None) -> str:
    """The line the CLI prints for overrides that fail while Hydra composes the config."""
    with pytest.raises((HydraException, yaml.YAMLError)) as info:
        make_cfg(*overrides)
    return one_line(info.value, argv=list(overrides) if argv is None else argv)


def is_one_line(text: str) -> bool:
    return "\n" not in text and "Traceback" not in text and len(text) < 600


# --- sweep files -------------------------------------------------------------------------------------------

BAD_FILES = [
    ("grid:\n  seed: [1, 2\n", ", line 3: got invalid YAML (expected ',' or ']'"),
    ("grid:\n  seed: [1]\n  seed: [2]\n", ", line 3: got the key 'seed' twice in one mapping"),
    ("grid:\n\tseed: [1]\n", ", line 2: got a tab character; allowed: spaces"),
    (b"prompt: caf\xe9\ngrid:\n  seed: [1]\n", ", line 1: got the byte 0xe9, which is not UTF-8; allowed: UTF-8"),
    ("a: &x [*x]\ngrid:\n  seed: [1]\n", ": got a recursive alias"),
    # Nested anchors (issue 21, case 14): 9^8 values from 80 written ones, refused before they are built.
    ("a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 8)) + "grid:\n  seed: [1]\n",
     ": got anchors and aliases that expand to more than 100,000 values; allowed: a sweep file of at most"),
    ("- 1\n- 2\n", ": got a list at the top; allowed: a mapping"),
    # One value for the whole file (issue 21, case 25: "got OSError: Invalid loaded object type: int").
    ("5\n", ": got '5', a single value where keys are expected; allowed: a YAML mapping"),
    ("true\n", ": got 'true', a single value where keys are expected; allowed: a YAML mapping"),
    ("just text\n", ": got 'just text', a single value where keys are expected; allowed: a YAML mapping"),
    ("grid: null\n", ": grid: got null; allowed: a mapping with the keys "),
    ("grid: [1, 2]\n", ": grid: got [1, 2]; allowed: a mapping with the keys "),
    ("grid:\n  seed: [1]\nlayout: seed\n", ": layout: got 'seed'; allowed: a mapping with the keys rows, cols, sheets"),
    ("grid:\n  seed: [1]\nseed: abc\n", ": seed: got 'abc'; allowed: an integer"),
    ("grdi:\n  seed: [1]\n", ": grdi: unknown key (got {'seed': [1]}); allowed: name, description, grid, layout, "),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES)
def test_a_bad_sweep_file_is_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = compose_error("sweep=bad", f"hydra.searchpath=[sweepdir://{tmp_path}]")
    assert line.startswith(f"sweep file {path}{expected}"), line
    assert is_one_line(line), line
    if "grdi" in expected:
        assert line.endswith("(did you mean grid?)")
    if expected.endswith("with the keys "):  # 40 axes: the first ones and the page that lists them all
        assert line.endswith(": docs/axes.md)"), line


def test_bad_yaml_in_any_config_file_is_one_line(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: mine\n\tsource: tiny\n")
    line = compose_error("sweep=seed_fixed", "model=mine", f"hydra.searchpath=[file://{tmp_path}]")
    assert line == (f"config file {tmp_path / 'model' / 'mine.yaml'}, line 2: got a tab character; "
                    "allowed: spaces (YAML does not allow tabs for indentation)")


def test_a_config_file_of_one_number_is_one_line(tmp_path):
    """A primary config of the user's (--config-dir/--config-name) that holds one number: OmegaConf raises an
    OSError naming no file; the CLI names the file (run as a user does, the traceback was Hydra's)."""
    (tmp_path / "mine.yaml").write_text("5\n")
    result = run_cli("--config-dir", str(tmp_path), "--config-name", "mine", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"error: config file {tmp_path / 'mine.yaml'}: got '5', a single value where keys "
                             "are expected; allowed: a YAML mapping (see sweeps/steps_10_to_90.yaml)\n")


# --- command-line overrides --------------------------------------------------------------------------------


def test_override_errors_say_key_value_and_what_is_allowed():
    assert compose_error("seed=null") == "seed: got null; allowed: an integer"
    assert compose_error("guidance_scale=abc") == "guidance_scale: got 'abc'; allowed: a number"
    assert compose_error("height=big") == "height: got 'big'; allowed: an integer or null"
    assert compose_error("restart=maybe") == "restart: got 'maybe'; allowed: true or false"
    typo = compose_error("sweep.grid.sed=[1]")
    assert typo.startswith("sweep.grid.sed: unknown key (got [1]); allowed: the keys of sweep.grid: ")
    assert typo.endswith("(did you mean seed?)")
    assert compose_error("num_inference_step=30").endswith("(did you mean num_inference_steps?)")
    assert compose_error("sweep=stpes_10_to_90").endswith("(did you mean steps_10_to_90?)")


def test_unquoted_values_get_told_how_to_quote():
    # The shell split `prompt=a red fox` into three arguments; Hydra sees `red` without '='.
    argv = ["sweep=seed_fixed", "prompt=a", "red", "fox"]
    assert compose_error(*argv, argv=argv) == (
        "prompt: got 'a red fox' as 3 shell words; allowed: one quoted argument, "
        "'prompt=a red fox' or prompt='\"a red fox\"'")
    assert compose_error("prompt=a~b") == (
        "prompt: got 'a~b', which Hydra cannot read unquoted; allowed: a quoted value, prompt='\"a~b\"'")
    # ...and the suggested spellings do parse, to the value the user meant.
    assert make_cfg("prompt=a red fox").prompt == "a red fox"
    assert make_cfg('prompt="a~b"').prompt == "a~b"


def test_plus_keys_the_schema_lacks_are_refused_with_the_nearest_key():
    with pytest.raises(SweepError) as info:
        config_checks.check_config(make_cfg("sweep=seed_fixed", "+guidanc_scale=9"))
    assert str(info.value).startswith("guidanc_scale: unknown key (got 9); allowed: the keys prompt, ")
    assert str(info.value).endswith("(did you mean guidance_scale?)")
    with pytest.raises(SweepError, match=r"^model\.allow_pickel: unknown key \(got true\).*"
                                         r"\(did you mean allow_pickle\?\)$"):
        config_checks.check_config(make_cfg("sweep=seed_fixed", "+model.allow_pickel=true"))
    # Open (Any-typed) values are not walked: an axis value may be a mapping.
    config_checks.check_config(make_cfg("sweep=seed_fixed", "++sweep.grid.resolution={width: 64, height: 32}"))
    # The grid says it is open to `+` keys (any pipeline argument is an axis): the registry checks those.
    config_checks.check_config(make_cfg("sweep=seed_fixed", "+sweep.grid.eta=[0.0]"))


@dataclasses.dataclass
class _Inner:
    alpha: int = 1


@dataclasses.dataclass
class _Open:
    OPEN_KEYS = True  # not a field: no annotation
    known: int = 0


@dataclasses.dataclass
class _Schema:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    free: dict = dataclasses.field(default_factory=dict)
    beta: float = 0.5
    grid: _Open = dataclasses.field(default_factory=lambda: _Open())


def test_unknown_keys_are_read_from_whatever_schema_is_in_force(monkeypatch):
    monkeypatch.setattr(config_checks, "schema", lambda: OmegaConf.structured(_Schema))
    cfg = OmegaConf.create({"inner": {"alpha": 2, "alpah": 3}, "free": {"anything": 1}, "beta": 1.0,
                            "hydra": {"run": 1}, "grid": {"known": 1, "extra": 2}})
    assert config_checks.find_unknown(cfg) == [("inner.alpah", 3)]
    assert str(config_checks.unknown_key("bta", 2)).endswith(
        "allowed: the keys inner, free, beta, grid (did you mean beta?)")
    with pytest.raises(SweepError, match=r"^grid\.extra: unknown key"):  # a file gets only the fields
        config_checks.check_mapping({"grid": {"extra": 2}})


def test_schema_keys_are_the_dataclass_fields():
    assert config_checks.keys_of("") == [f.name for f in dataclasses.fields(Config)]


def test_an_unset_environment_variable_is_one_line():
    os.environ.pop("SDXL_SWEEP_UNSET", None)
    with pytest.raises(SweepError) as info:
        config_checks.check_config(make_cfg("sweep=seed_fixed", "prompt=${oc.env:SDXL_SWEEP_UNSET}"))
    assert str(info.value) == ("prompt: got '${oc.env:SDXL_SWEEP_UNSET}'; allowed: a set environment variable "
                               "(export SDXL_SWEEP_UNSET=...), or a default: ${oc.env:SDXL_SWEEP_UNSET,DEFAULT}")


# --- where sweep files come from ---------------------------------------------------------------------------

SWEEP = "prompt: a red bicycle\nnum_inference_steps: 4\ngrid:\n  seed: [1, 2]\nlayout:\n  cols: seed\n"


def assert_mine(cfg, name: str = "mine") -> None:
    assert cfg.sweep.name == name and cfg.prompt == "a red bicycle" and cfg.num_inference_steps == 4
    assert list(cfg.sweep.grid.seed) == [1, 2] and cfg.sweep.layout.cols == "seed"


def test_sweep_by_relative_or_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text(SWEEP)
    monkeypatch.chdir(tmp_path)
    assert_mine(make_cfg("sweep=sub/mine.yaml"))
    assert_mine(make_cfg(f"sweep={tmp_path / 'sub' / 'mine.yaml'}"))
    monkeypatch.chdir(tmp_path / "sub")
    assert_mine(make_cfg("sweep=mine.yaml"))
    missing = compose_error("sweep=nope/none.yaml")
    assert missing.startswith(f"sweep: got 'nope/none.yaml'; allowed: an existing sweep file (no file "
                              f"{tmp_path / 'sub' / 'nope' / 'none.yaml'})")


def test_config_dir_sweep_folder_behaves_like_sweeps(tmp_path, monkeypatch):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "mine.yaml").write_text(SWEEP)
    monkeypatch.setattr(config_dirs, "CONFIG_DIRS", [])
    config_dirs.add_config_dirs(["--config-dir", str(tmp_path), "sweep=mine"])
    assert config_dirs.CONFIG_DIRS == [str(tmp_path)]
    config_dirs.add_config_dirs(["-cd=rel", "--config-dir=/x"])
    assert config_dirs.CONFIG_DIRS[1:] == [os.path.abspath("rel"), "/x"]
    assert_mine(make_cfg("sweep=mine"))


@pytest.mark.parametrize(("argv", "flags", "overrides"), [
    ("sweep=steps_10_to_90 model=tiny -m guidance_scale=3,7", {"multirun": True},
     ["sweep=steps_10_to_90", "model=tiny", "guidance_scale=3,7"]),
    ("a=1 --multirun b=2 --cfg job c=3", {"multirun": True, "cfg": "job"}, ["a=1", "b=2", "c=3"]),
    ("a=1 -cd conf b=2 -cn=config c=3 -p hydra.run d=4", {"config_dir": "conf", "config_name": "config",
                                                          "package": "hydra.run"}, ["a=1", "b=2", "c=3", "d=4"]),
    ("a=1 --info config b=2 -c=hydra", {"info": "config", "cfg": "hydra"}, ["a=1", "b=2"]),
    ("a=1 --info b=2", {"info": "all"}, ["a=1", "b=2"]),  # --info alone: its value is optional
    ("-m a=1 b=2", {"multirun": True}, ["a=1", "b=2"]),
    ("a=1 -cn=x b=2 -i", {"config_name": "x", "info": "all"}, ["a=1", "b=2"]),
    ("a=-m prompt=--cfg", {"multirun": False, "cfg": None}, ["a=-m", "prompt=--cfg"]),  # values, not flags
])
def test_hydra_flags_anywhere_on_the_command_line(argv, flags, overrides):
    """`-m` and Hydra's other flags after or between overrides, as Hydra users type them: the entry point moves
    them (with their values) first, and Hydra's own parser then reads what was meant."""
    from hydra._internal.utils import get_args_parser

    from sweep.cli.hydra_flags import flags_first

    parsed = get_args_parser().parse_args(flags_first(argv.split()))
    assert parsed.overrides == overrides
    for name, value in flags.items():
        assert getattr(parsed, name) == value, name


def test_two_of_hydras_modes_in_one_command_are_one_line(tmp_path):
    """`-m ... --cfg job`: Hydra raises a ValueError with a traceback before its own error handling."""
    result = run_cli("model=tiny", "-m", "guidance_scale=3,7", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --multirun and --cfg: got both; allowed: one of --run, --multirun, --cfg")
    assert result.stderr.count("\n") == 1 and not list(tmp_path.iterdir())
    single = run_cli("model=tiny", "--cfg", "job", cwd=tmp_path)  # one mode: Hydra prints the config
    assert single.returncode == 0 and "prompt: a photo of an astronaut" in single.stdout


# --- the report CLI ----------------------------------------------------------------------------------------


def test_report_sheets_none_makes_one_sheet(tmp_path):
    from sweep.report import ReportError, build_report

    cells = grid(guidance_scale=[3.0, 7.0], seed=[1, 2], num_inference_steps=[10, 20])
    run = make_run(tmp_path / "run", cells, expected=cells, layout={"rows": "seed", "cols": "num_inference_steps",
                                                                    "sheets": "guidance_scale"})
    assert len(build_report(run).sheets) == 2
    one = build_report(run, sheets="none")
    assert len(one.sheets) == 1 and one.layouts[0].sheets == ()
    assert one.layouts[0].rows == ("seed", "guidance_scale")  # the left axis joins the open slot
    assert sorted(one.pages[0].boxes) == sorted(c["cell_id"] for c in cells)
    # rows and cols given: what still varies joins the rows after them, still one sheet (issue 23).
    both = build_report(run, rows="seed", cols="num_inference_steps", sheets="none")
    assert len(both.sheets) == 1 and both.layouts[0].rows == ("seed", "guidance_scale")
    assert both.layouts[0].cols == ("num_inference_steps",)
    assert sorted(both.pages[0].boxes) == sorted(c["cell_id"] for c in cells)
    with pytest.raises(ReportError, match=r"^rows: got 'sede'"):
        build_report(run, rows="sede", sheets="none")


def test_report_cli_passes_every_option_and_suggests(tmp_path, monkeypatch, capsys):
    import sweep.report
    from sweep.report import __main__ as report_cli
    from sweep.report.scores import ScoreOptions

    seen = {}
    monkeypatch.setattr(sweep.report, "build_report", lambda run_dir, **kw: seen.update(kw) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report_cli.main([str(tmp_path), "rows=seed", "cols=steps", "sheets=none", "cell_max=256", "max_cells=9",
                         "captions=false", "reference=steps:10", "report.scores=[clip_score,aesthetic]",
                         "clip_model=my/clip", "report.pickscore_model=my/pick", "pickscore_processor=my/proc",
                         "report.aesthetic_model=head.safetensors", "score_batch=3"])
    scores = seen.pop("scores")
    assert seen == {"rows": "seed", "cols": "steps", "sheets": "none", "cell_max": "256", "max_cells": "9",
                    "captions": False, "reference": "steps:10"}
    assert set(seen) == set(report_cli.OPTIONS)
    # The score options reach the report as one ScoreOptions, each value as typed.
    assert scores == ScoreOptions(("clip_score", "aesthetic"), "my/clip", "my/pick", "my/proc", "head.safetensors", 3)
    assert {f.name for f in dataclasses.fields(ScoreOptions)} - {"names", "device"} == {
        o for o in report_cli.SCORE_OPTIONS if o != "scores"}
    assert report_cli.main([str(tmp_path), "sheet=seed"]) == 2
    assert capsys.readouterr().err.strip().endswith("(did you mean sheets?)")
    assert report_cli.main([str(tmp_path), "report.score_bach=2"]) == 2
    assert capsys.readouterr().err.strip().endswith("(did you mean score_batch?)")


# --- end to end: the real command -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_one_line_and_leaves_no_run_dir(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n\tseed: [1]\n")
    os.environ.pop("SDXL_SWEEP_UNSET", None)
    for args, start in (
        (["sweep=seed_fixed", "+guidanc_scale=9"], "error: guidanc_scale: unknown key (got 9)"),
        (["sweep=seed_fixed", "prompt=${oc.env:SDXL_SWEEP_UNSET}"], "error: prompt: got '${oc.env:SDXL_SWEEP_UNSET}'"),
        ([f"sweep={bad}"], f"error: sweep file {bad}, line 2: got a tab character"),
        (["sweep=seed_fixed", "prompt=a", "red", "fox"], "error: prompt: got 'a red fox' as 3 shell words"),
    ):
        result = run_cli(*args, "model=tiny", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(start) and result.stderr.count("\n") == 1, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], args  # not even outputs/


@pytest.mark.slow
def test_console_script_version_and_shell_completion(tmp_path):
    assert SCRIPT.is_file(), "pip install -e . installs the sdxl-sweep console script"
    for command in ([str(SCRIPT)], [sys.executable, "-m", "sweep"]):
        version = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
        assert version.stdout.strip() == "sdxl-sweep 0.1.0"
    # `python -m sweep -sc install=bash` prints the script for the console script, which bash can complete.
    env = {**os.environ, "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ['PATH']}"}
    script = subprocess.run([sys.executable, "-m", "sweep", "-sc", "install=bash"], capture_output=True,
                            text=True, check=True, env=env).stdout
    assert script.rstrip().endswith("-F hydra_bash_completion sdxl-sweep")
    completed = {}
    for line in ("sdxl-sweep sweep=seeds_", "sdxl-sweep model.allow_"):
        words = line.split()
        probe = (f'eval "$(sdxl-sweep -sc install=bash)"; COMP_LINE="{line}"; COMP_POINT={len(line)}; '
                 f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; hydra_bash_completion; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        run = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
        completed[line] = run.stdout.split()
    assert completed["sdxl-sweep sweep=seeds_"] == ["sweep=seeds_steps_guidance"]
    assert completed["sdxl-sweep model.allow_"] == ["model.allow_pickle="]
    help_text = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert 'tab completion: eval "$(sdxl-sweep -sc install=bash)"' in help_text


@pytest.mark.slow
def test_config_dir_and_sweep_path_run_end_to_end(tmp_path):
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    (tmp_path / "conf" / "sweep" / "mine.yaml").write_text(
        "prompt: a red bicycle\ngrid:\n  seed: [1, 2]\nlayout:\n  cols: seed\n")
    out = tmp_path / "run"
    result = subprocess.run([str(SCRIPT), "--config-dir", "conf", "sweep=mine", "model=tiny", "height=64",
                             "width=64", "num_inference_steps=1", f"hydra.run.dir={out}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "mine: 2 made" in result.stdout and len(list((out / "images").glob("*.png"))) == 2
    printed = run_cli("sweep=conf/sweep/mine.yaml", "--cfg", "job", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "prompt: a red bicycle" in printed.stdout and "name: mine" in printed.stdout
