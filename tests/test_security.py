"""docs/security.md, promise by promise: a sweep file is data, nothing is written outside the run directory,
log lines stay one line, and what held before (viewer, pickles, model code, YAML tags, traversal) stays held.

Tests of the same promises that live elsewhere (not repeated here):
- anchors and aliases that expand past 100,000 values:
  tests/test_cli_inputs.py::test_a_bad_sweep_file_is_one_line_naming_the_file
- a pickle checkpoint / VAE given on the command line: tests/test_model_files.py (the `.ckpt` cases of its refusal
  table) and tests/test_reliability.py::test_pickle_checkpoint_needs_explicit_opt_in
- a name with `../..` on the command line: tests/test_cli.py::test_hostile_sweep_name_stays_inside_outputs
- image paths in a table that leave images/:
  tests/test_safety.py::test_hand_edited_paths_outside_the_run_dir_are_not_followed
- a table the tool did not write: tests/test_tampering.py (renamed column, random bytes)
- a prompt full of markup in the viewer: tests/test_viewer.py::test_hostile_prompt_renders_as_text
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException

from conftest import make_cfg, quiet, run_cli, snapshot
from sweep.cli.compose_errors import one_line
from sweep.errors import SweepError
from sweep.safe_log import RunLogHandler, escape_controls
from test_viewer import browser  # noqa: F401  the viewer tests' module-scoped Chromium (skips without one)

TINY = ("model=tiny", "height=64", "width=64", "num_inference_steps=1")
SECRET = "hunter2-s3cr3t-value"


def sweep_file(folder: Path, content: str | dict, name: str = "shared.yaml") -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, allow_unicode=True),
                    encoding="utf-8")
    return path


def compose_line(path: Path) -> str:
    """The line the CLI prints when composing `sweep=PATH` fails (in-process: Hydra composes, nothing runs)."""
    with pytest.raises((HydraException, yaml.YAMLError)) as info:
        make_cfg(f"sweep={path}")
    return one_line(info.value, argv=[f"sweep={path}"])


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- a sweep file is data: Hydra's keys, instantiate's keys, resolvers ---------------------------------------

def _callbacks(marker: Path) -> dict:
    # The reproduction of issue 32: a callback that writes a file at job start.
    return {"a": {"_target_": "pathlib.Path.write_text",
                  "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "x"]}}


HOSTILE_FILES = {
    "callbacks": lambda m: {"name": "innocent", "grid": {"seed": [1]}, "hydra": {"callbacks": _callbacks(m)}},
    "job_logging": lambda m: {"grid": {"seed": [1]}, "hydra": {"job_logging": {
        "version": 1, "handlers": {"f": {"()": "logging.FileHandler", "filename": str(m)}},
        "root": {"handlers": ["f"]}}}},
    "launcher_setup": lambda m: {"grid": {"seed": [1]}, "hydra": {"launcher": {"setup": [f"touch {m}"]}}},
    "defaults": lambda m: {"grid": {"seed": [1]}, "defaults": [{"override /hydra/job_logging": "default"}]},
    "target_in_grid": lambda m: {"grid": {"seed": [1], "prompt": [{"_target_": "pathlib.Path.touch",
                                                                   "self": str(m)}]}},
    "factory_in_titles": lambda m: {"grid": {"seed": [1]}, "titles": {"seed": {"()": "os.getcwd"}}},
    "package_header": lambda m: "# @package hydra\ngrid: {seed: [1]}\ncallbacks:\n  a: {_target_: os.getcwd}\n",
    "global_header": lambda m: "# @package _global_\ngrid: {seed: [1]}\nhydra: {job: {chdir: true}}\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_a_sweep_file_with_hydras_keys_runs_nothing_and_is_one_line(tmp_path, case):
    marker = tmp_path / "PWN"
    path = sweep_file(tmp_path, HOSTILE_FILES[case](marker))
    result = run_cli(f"sweep={path.name}", *TINY, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: sweep file {path}: "), line
    assert "allowed: a sweep file holds data only" in line
    assert not marker.exists() and not (tmp_path / "run").exists() and result.stdout == ""


def test_the_issue_reproduction_line(tmp_path):
    """The file of issue 32, written as its text shows it, given by path, by name in a --config-dir and in a
    sweepdir:// folder."""
    marker = tmp_path / "PWN"
    text = ("{name: innocent, grid: {seed: [1]}, hydra: {callbacks: {a: {_target_: pathlib.Path.write_text, "
            f'_args_: [{{_target_: pathlib.Path, _args_: [{marker}]}}, "x"]}}}}}}}}\n')
    (tmp_path / "mine" / "sweep").mkdir(parents=True)
    sweep_file(tmp_path / "mine" / "sweep", text, "pwn.yaml")
    folder = f"hydra.searchpath=[sweepdir://{tmp_path / 'mine' / 'sweep'}]"
    for how in (["sweep=mine/sweep/pwn.yaml"], ["--config-dir", "mine", "sweep=pwn"], [folder, "sweep=pwn"]):
        result = run_cli(*how, *TINY, cwd=tmp_path)
        assert result.returncode == 2 and not marker.exists(), result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: sweep file {tmp_path / 'mine' / 'sweep' / 'pwn.yaml'}: hydra: got a "
                               "Hydra setting ({'callbacks': "), line
        assert not (tmp_path / "outputs").exists()


def test_a_secret_from_the_environment_reaches_no_file(tmp_path):
    path = sweep_file(tmp_path, "name: leak\ngrid: {seed: [1]}\nprompt: 'a cat ${oc.env:MY_SECRET_TOKEN}'\n")
    result = run_cli(f"sweep={path.name}", *TINY, cwd=tmp_path, env={"MY_SECRET_TOKEN": SECRET})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"error: sweep file {path}: prompt: got 'a cat ${{oc.env:MY_SECRET_TOKEN}}', which calls the "
                    "resolver oc.env; allowed: ${KEY} of a key of this sweep file; a sweep file reads no environment "
                    "variable, file or other config (resolvers such as ${oc.env:...} belong on the command line or "
                    "in conf/)")
    assert SECRET not in result.stdout + result.stderr
    assert files_under(tmp_path) == {"shared.yaml"}  # no run dir, no log


@pytest.mark.parametrize(("value", "resolver"), [
    ("${oc.env:HOME}", "oc.env"),
    ("${oc.decode:'{a: 1}'}", "oc.decode"),
    ("${oc.create:{a: 1}}", "oc.create"),
    ("${oc.select:model.path,x}", "oc.select"),
    ("${now:%Y}", "now"),  # Hydra's own resolver
    ("${safe:x}", "safe"),  # the tool's own resolver
    ("x ${grid.${oc.env:HOME}}", "oc.env"),  # nested inside a node interpolation
])
def test_every_resolver_call_in_a_sweep_file_is_refused(tmp_path, value, resolver):
    path = sweep_file(tmp_path, {"grid": {"seed": [1]}, "negative_prompt": value})
    line = compose_line(path)
    assert line.startswith(f"sweep file {path}: negative_prompt: got "), line
    assert f"which calls the resolver {resolver}; allowed: ${{KEY}} of a key of this sweep file" in line


def test_interpolations_resolve_within_the_file_only(tmp_path):
    path = sweep_file(tmp_path, "name: mine\ndescription: '${name}: two seeds'\nprompt: a red cat\n"
                                "negative_prompt: not ${prompt}\ngrid: {seed: [1, 2], prompt: ['${prompt}', "
                                "'literal \\${oc.env:HOME}']}\n")
    cfg = make_cfg(f"sweep={path}", "prompt=overridden")
    assert cfg.sweep.description == "mine: two seeds"
    assert cfg.negative_prompt == "not a red cat"  # the file's own prompt, not the command line's
    assert list(cfg.sweep.grid.prompt) == ["a red cat", "literal ${oc.env:HOME}"]  # \${ is text, never resolved
    outside = sweep_file(tmp_path, "grid: {seed: [1]}\nprompt: '${model.path}'\n", "outside.yaml")
    line = compose_line(outside)
    assert line.startswith(f"sweep file {outside}: prompt: got '${{model.path}}' "), line
    assert "allowed: ${KEY} of a key of this sweep file" in line


def test_the_command_line_keeps_all_of_hydra(tmp_path):
    """Trusted: resolvers and hydra.* on the command line still work (docs/security.md)."""
    path = sweep_file(tmp_path, {"grid": {"seed": [1]}})
    cfg = make_cfg(f"sweep={path}", "prompt=${oc.env:SWEEP_TEST_PROMPT,from the command line}")
    assert cfg.prompt == "from the command line"


def test_yaml_python_tags_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "TAG"
    path = sweep_file(tmp_path, f"grid: {{seed: [1]}}\nprompt: !!python/object/apply:os.system ['touch {marker}']\n")
    line = compose_line(path)
    assert line.startswith(f"sweep file {path}"), line
    assert "\n" not in line and not marker.exists()


def test_a_traversing_name_in_a_sweep_file_stays_in_outputs(tmp_path):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    path = sweep_file(cwd, {"name": "../../../escape me", "grid": {"seed": [1]}})
    result = run_cli(f"sweep={path.name}", *TINY, cwd=cwd)
    assert result.returncode == 0, result.stderr
    (made,) = (cwd / "outputs").iterdir()
    assert ".." not in made.name and "/" not in made.name
    assert list(tmp_path.iterdir()) == [tmp_path / "a"] and list((tmp_path / "a").iterdir()) == [cwd]


# --- nothing written outside the run directory --------------------------------------------------------------

@pytest.fixture
def finished(tmp_path):
    """A finished 2-image run in tmp_path/run, and a folder outside it."""
    run_dir = tmp_path / "run"
    quiet(make_cfg("sweep=seed_fixed", *TINY[1:], "sweep.grid.seed=[1,2]", "sweep.grid.repeat=1"), run_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    return run_dir, outside


def _link_out(run_dir: Path, outside: Path, name: str) -> Path:
    """Move run_dir/name to outside/name and leave a link in its place (what a hostile zip can hold)."""
    target = outside / name
    if (run_dir / name).exists():
        os.replace(run_dir / name, target)
    elif "." in name:
        target.write_text("")
    else:
        target.mkdir()
    (run_dir / name).symlink_to(target)
    return target


def test_a_resume_and_a_report_write_nothing_through_linked_images_and_sheets(tmp_path, finished):
    run_dir, outside = finished
    _link_out(run_dir, outside, "images")
    _link_out(run_dir, outside, "sheets")
    before = snapshot(outside)
    resume = run_cli("sweep=seed_fixed", *TINY, "sweep.grid.seed=[1,2,3]", "sweep.grid.repeat=1", "grow=true",
                     f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resume.returncode == 2
    (line,) = resume.stderr.strip().splitlines()
    assert line == (f"error: hydra.run.dir: '{run_dir}' holds links (images -> {outside / 'images'}, sheets -> "
                    f"{outside / 'sheets'}); allowed: real folders and files only: sdxl-sweep writes only inside "
                    "its run directory and never through a link (move the link out of the run directory, or copy "
                    "what it points to in its place)")
    report = subprocess_report(run_dir, tmp_path)
    assert report.returncode == 2 and report.stderr.startswith(f"error: DIR: '{run_dir}' holds links (images -> ")
    assert snapshot(outside) == before


def subprocess_report(run_dir: Path, cwd: Path):
    return subprocess.run([sys.executable, "-m", "sweep.report", str(run_dir)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("name", ["images", "previous", "sheets", "plots", "thumbs", "sweep.log", "results.csv",
                                  "index.html", "metrics.csv", "sweep.json", ".hydra", ".sweep.lock"])
def test_a_link_where_the_tool_writes_is_refused_by_run_and_report(finished, name):
    from sweep.report import build_report

    run_dir, outside = finished
    _link_out(run_dir, outside, name)
    before = snapshot(outside)
    cfg = make_cfg("sweep=seed_fixed", *TINY[1:], "sweep.grid.seed=[1,2]", "sweep.grid.repeat=1", "restart=true")
    with pytest.raises(SweepError, match=rf"^hydra.run.dir: '{re.escape(str(run_dir))}' holds a link \({name} -> "):
        quiet(cfg, run_dir)
    with pytest.raises(SweepError, match=rf"^DIR: '{re.escape(str(run_dir))}' holds a link \({name} -> "):
        build_report(run_dir)
    assert snapshot(outside) == before


def test_a_multirun_sweep_dir_with_a_linked_job_dir_is_refused_before_any_job(tmp_path):
    sweep = ("-m", "sweep=seed_fixed", *TINY, "sweep.grid.repeat=1", "hydra.sweep.dir=multi")
    assert run_cli(*sweep, "seed=1,2", cwd=tmp_path).returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    os.replace(tmp_path / "multi" / "1", outside / "1")
    (tmp_path / "multi" / "1").symlink_to(outside / "1")
    before, hydra_record = snapshot(outside), (tmp_path / "multi" / "multirun.yaml").read_bytes()
    result = run_cli(*sweep, "seed=1,2,3", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: hydra.sweep.dir: 'multi' holds a link (1 -> {outside / '1'}); allowed: "), line
    merge = subprocess.run([sys.executable, "-m", "sweep.cli.multirun", "multi"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)  # the merge on its own
    assert merge.returncode == 2 and merge.stderr.startswith("error: SWEEP_DIR: 'multi' holds a link (1 -> ")
    assert snapshot(outside) == before and (tmp_path / "multi" / "multirun.yaml").read_bytes() == hydra_record


def test_compare_writes_nothing_through_a_link_in_the_second_run(tmp_path, finished):
    from sweep.compare import compare

    run_dir, outside = finished
    other = tmp_path / "other"
    quiet(make_cfg("sweep=seed_fixed", *TINY[1:], "sweep.grid.seed=[1,2]", "sweep.grid.repeat=1"), other)
    (other / "compare_run").symlink_to(outside)
    with pytest.raises(SweepError, match=rf"^DIR_B: '{re.escape(str(other))}' holds a link \(compare_run -> "):
        compare(run_dir, other)
    assert files_under(outside) == set()


def test_the_run_log_is_never_written_through_a_link(tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("theirs\n")
    (tmp_path / "sweep.log").symlink_to(outside)
    handler = RunLogHandler(tmp_path / "sweep.log", delay=True, encoding="utf-8")
    handler.emit(logging.LogRecord("sweep", logging.INFO, __file__, 1, "a line", None, None))
    handler.close()
    assert outside.read_text() == "theirs\n" and (tmp_path / "sweep.log").is_symlink()


# --- log lines: one record, one line ------------------------------------------------------------------------

def test_a_name_with_a_newline_puts_no_line_of_its_own_in_the_log_or_terminal(tmp_path):
    path = sweep_file(tmp_path, {"name": "nl\nrm -rf ~ # injected\x1b[2J", "grid": {"seed": [1]}})
    result = run_cli(f"sweep={path.name}", *TINY, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "run" / "sweep.log").read_text(encoding="utf-8")
    for text in (log, result.stdout, result.stderr):
        assert not any(line.startswith("rm -rf") for line in text.splitlines()), text
        assert "\x1b[2J" not in text
    assert "nl\\nrm -rf ~ # injected\\x1b[2J: 1 images" in result.stdout
    assert all(line.startswith("[") for line in log.splitlines()), log  # every line is a record's own


def test_escape_controls_writes_each_control_as_its_escape():
    assert escape_controls("a\nb\rc\td\x1be\x85f\u2028g\u202eh é 中文 😀") == \
        "a\\nb\\rc\\td\\x1be\\x85f\\u2028g\\u202eh é 中文 😀"


# --- model files: pickles, .bin folders, custom code --------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(("key", "suffix"), [("model.path", ".ckpt"), ("model.vae", ".pt"),
                                             ("model.lora", ".bin"), ("model.path", ".pth")])
def test_a_pickle_that_runs_code_when_loaded_is_refused_unloaded(tmp_path, key, suffix):
    marker = tmp_path / "PICKLE_RAN"
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(SweepError, match=rf"^{key}: got '.*pickle checkpoints run code when loaded, pass "
                                         "model.allow_pickle=true only if you trust the file"):
        quiet(make_cfg("sweep=seed_fixed", *TINY[1:], f"{key}={path}"), tmp_path / "run")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    from sweep.models.builtin import build_tiny_pipeline

    root = tmp_path_factory.mktemp("models")
    build_tiny_pipeline().save_pretrained(root / "bin", safe_serialization=False)
    build_tiny_pipeline().save_pretrained(root / "code")
    return root


def test_a_diffusers_folder_of_bin_weights_is_refused(tmp_path, saved_tiny):
    with pytest.raises(SweepError, match="no file named diffusion_pytorch_model.safetensors"):
        quiet(make_cfg("sweep=seed_fixed", *TINY[1:], f"model.path={saved_tiny / 'bin'}"), tmp_path / "run")


def test_custom_code_in_a_model_folder_is_never_run(tmp_path, saved_tiny):
    import json
    import shutil

    folder = tmp_path / "code"
    shutil.copytree(saved_tiny / "code", folder)
    marker = tmp_path / "CODE_RAN"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nfrom diffusers import UNet2DConditionModel as X\n"
    (folder / "unet" / "evil.py").write_text(code)
    (folder / "evil.py").write_text(code)
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["evil", "X"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(SweepError, match="contains custom code in evil.py"):
        quiet(make_cfg("sweep=seed_fixed", *TINY[1:], f"model.path={folder}"), tmp_path / "run")
    assert not marker.exists()


# --- the viewer: hostile text in every place a sweep file can put it ----------------------------------------

PAYLOAD = "<img src=x onerror=\"alert(1);window.__pwned=1\"><script>alert(2);window.__pwned=2</script>\"'&"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("xss")
    path = sweep_file(root, {
        "name": f"n{PAYLOAD}", "description": f"d{PAYLOAD}",
        "grid": {"prompt": [f"p{PAYLOAD}", "plain"], "guidance_scale": [3, 7]},
        "titles": {"guidance_scale": {"title": f"t{PAYLOAD}", "values": {3: f"v{PAYLOAD}"}}},
        "descriptions": {"guidance_scale": f"g{PAYLOAD}", "prompt": {"values": {"plain": f"w{PAYLOAD}"}}},
    })
    run_dir = root / "run"
    quiet(make_cfg(f"sweep={path}", *TINY[1:]), run_dir)
    return run_dir


def test_hostile_text_in_the_viewer_runs_nothing(browser, hostile_run):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    hash_ = "#x=" + PAYLOAD.replace(" ", "%20") + "&y=guidance_scale&<svg/onload=alert(3)>"
    page.goto((hostile_run / "index.html").as_uri() + hash_)
    page.wait_for_selector("html[data-ready]")
    page.click("#cells img >> nth=0")  # the large view: prompt, parameters, descriptions
    page.keyboard.press("Escape")
    page.evaluate("location.hash = '#x=<img src=x onerror=alert(4)>'")
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x], [onerror], svg[onload]").count() == 0
    written = (hostile_run / "index.html").read_text(encoding="utf-8").count("<script")
    assert page.locator("script").count() == written  # no script element added by the data
    text = page.evaluate("document.body.innerText")
    assert "onerror=" in text  # shown as text
    context.close()
