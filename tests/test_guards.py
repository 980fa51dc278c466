"""Issue 31 items 3-5: what the guards missed. Every model file of every cell is under the identity guard; files,
init images and scheduler options are checked before the first model loads; each case that was a traceback or a
misleading line is one true line (key, value, what is allowed). Tiny models and files are built in the test."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_cfg, quiet, snapshot
from model_files import write_single_file
from sweep.errors import SweepError
from sweep.models import pipeline
from sweep.models.builtin import build_tiny_layout_pipeline

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {"PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"}
ONE = ("sweep=seed_fixed", "sweep.grid.repeat=null", "sweep.layout.cols=null", "sweep.grid.seed=[7]",
       "height=64", "width=64", "num_inference_steps=2")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """alpha: a diffusers folder (configs for the single files); a, b: two differently seeded single files."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_layout_pipeline(seed=11).save_pretrained(root / "alpha")
    write_single_file(build_tiny_layout_pipeline(seed=11), root / "a.safetensors")
    write_single_file(build_tiny_layout_pipeline(seed=22), root / "b.safetensors")
    return root


def refused(*overrides: str, run_dir: Path) -> str:
    """The one-line refusal of a run; nothing is written into a new run dir."""
    with pytest.raises(SweepError) as info:
        quiet(make_cfg(*overrides), run_dir)
    line = str(info.value)
    assert "\n" not in line and "Traceback" not in line, line
    return line


# --- identity: every model file of every cell ------------------------------------------------------------


def test_checkpoint_axis_file_replaced_then_grown_is_refused(models, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(models, root)
    grid = (*ONE, f"model.models_dir={root}", f"model.config={root / 'alpha'}", "sweep.grid.checkpoint=[a,b]")
    run_dir = tmp_path / "run"
    assert quiet(make_cfg(*grid), run_dir).made == 2
    weights = json.loads((run_dir / "sweep.json").read_text())["weights"]
    assert set(weights) == {"sweep.grid.checkpoint.a", "sweep.grid.checkpoint.b"}
    shutil.copy2(root / "b.safetensors", root / "a.safetensors")  # cp -p: same size, same mtime
    before = snapshot(run_dir)
    line = refused(*grid[:3], "sweep.grid.seed=[7,8]", *grid[4:], run_dir=run_dir)
    assert "the weights of sweep.grid.checkpoint.a changed" in line, line
    assert snapshot(run_dir) == before


# --- model files: headers, folders, tensors -----------------------------------------------------------------


def _raw_safetensors(path: Path, header: str) -> Path:
    data = header.encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * 8)
    return path


@pytest.mark.parametrize("offsets, why", [('[0, "abc"]', 'data_offsets [0, "abc"], not two byte offsets'),
                                          ("[0, null]", "data_offsets [0, null], not two byte offsets"),
                                          ("[0, Infinity]", "its header is not JSON"),
                                          ("[0, 8]", None)])
def test_safetensors_header_offsets_are_one_line(tmp_path, offsets, why):
    path = _raw_safetensors(tmp_path / "x.safetensors",
                            '{"x": {"dtype": "F32", "shape": [2], "data_offsets": ' + offsets + "}}")
    line = refused(*ONE, f"model.path={path}", run_dir=tmp_path / "run")
    assert line.startswith(f"model.path: got '{path}' (") and "allowed: " in line, line
    if why:
        assert why in line, line
    assert not (tmp_path / "run").exists()


def test_deeply_nested_safetensors_header_is_one_line(tmp_path):
    path = _raw_safetensors(tmp_path / "deep.safetensors", '{"x": ' + "[" * 100000 + "]" * 100000 + "}")
    line = refused(*ONE, f"model.path={path}", run_dir=tmp_path / "run")
    assert "nested too deeply" in line, line


def test_checkpoint_axis_folder_without_weights_is_refused_before_any_load(models, tmp_path):
    empty = Path(shutil.copytree(models / "alpha", tmp_path / "empty"))
    for file in (empty / "unet").glob("*.safetensors"):
        file.unlink()
    loads = pipeline.LOADS
    line = refused(*ONE, f"sweep.grid.checkpoint=[{models / 'alpha'},{empty}]", run_dir=tmp_path / "run")
    assert line.startswith(f"sweep.grid.checkpoint: got '{empty}' (unet/ holds no weights file"), line
    assert pipeline.LOADS == loads and not (tmp_path / "run").exists()


def test_single_file_missing_tensors_of_its_config_is_one_line(models, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(models / "b.safetensors"))
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in state.items() if "embedders.1.model.ln_final" not in k}, str(partial))
    line = refused(*ONE, f"model.path={partial}", f"model.config={models / 'alpha'}", run_dir=tmp_path / "run")
    assert "text_encoder_2 weight text_model.final_layer_norm.weight and 1 more missing" in line, line
    assert "meta" not in line


# --- init images ------------------------------------------------------------------------------------------


def _gradient() -> np.ndarray:
    return (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)


def test_16_bit_init_image_gives_the_image_of_its_8_bit_copy(tmp_path):
    eight, sixteen = tmp_path / "g8.png", tmp_path / "g16.png"
    Image.fromarray(_gradient(), "L").save(eight)
    Image.fromarray(_gradient().astype(np.uint16) * 257).save(sixteen)
    assert Image.open(sixteen).mode == "I;16"
    made = []
    for path in (eight, sixteen):
        run_dir = tmp_path / path.stem
        quiet(make_cfg(*ONE, f"init_image={path}", "strength=0.5"), run_dir)
        made.append(np.asarray(Image.open(next((run_dir / "images").glob("*.png"))).convert("RGB"), float))
    assert np.abs(made[0] - made[1]).mean() < 2
    assert (made[1] >= 250).mean() < 0.5  # not white


@pytest.mark.parametrize("mode", ["CMYK", "LA", "P", "RGBA", "I", "1"])
def test_init_image_modes_convert_as_a1111_does(tmp_path, mode):
    from sweep.files.images import to_rgb

    gray = _gradient()
    rgb = Image.fromarray(np.stack([gray] * 3, -1))
    if mode == "LA":
        image = Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), "LA")
    elif mode == "RGBA":
        image = rgb.convert("RGBA")
    elif mode == "P":
        image = rgb.convert("P", palette=Image.ADAPTIVE)
    elif mode == "I":
        image = Image.fromarray(gray.astype(np.int32) * 257, "I")
    else:
        image = rgb.convert(mode)
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (64, 64)
    if mode != "1":
        assert np.abs(np.asarray(out, float) - np.asarray(rgb, float)).mean() < 2, mode


def test_transparent_init_image_is_flattened_onto_white(tmp_path):
    from sweep.files.images import to_rgb

    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert np.asarray(to_rgb(clear)).min() == 255


def test_init_image_problems_are_one_true_line_before_the_load(tmp_path):
    png = tmp_path / "ok.png"
    Image.fromarray(_gradient(), "L").save(png)
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = {truncated: "cannot be decoded", fifo: "a FIFO (named pipe), not a file", folder: "a folder, not a file",
             Path("/dev/zero"): "a device, not a file", tmp_path / "nope.png": "no such file"}
    loads = pipeline.LOADS
    for path, why in cases.items():
        line = refused(*ONE, f"init_image={path}", "strength=0.5", run_dir=tmp_path / "run")
        assert line.startswith(f"init_image: got '{path}' ({why}") and "allowed: an image file" in line, line
    assert pipeline.LOADS == loads and not (tmp_path / "run").exists()


def test_huge_init_image_is_refused_from_its_header(tmp_path):
    import zlib

    # A 20000x20000 PNG header with one compressed (truncated) row: the size alone must refuse it, no decoding.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 20001)) + chunk(b"IEND", b""))
    line = refused(*ONE, f"init_image={huge}", "strength=0.5", run_dir=tmp_path / "run")
    assert "(20000x20000, 400 megapixels)" in line and "of at most 100 megapixels" in line, line


# --- scheduler options ------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, why", [
    ("timestep_spacing: evil", "got \"EulerDiscreteScheduler(timestep_spacing='evil')\"; allowed: options "
     "EulerDiscreteScheduler can run with (diffusers: evil is not supported"),
    ("beta_start: .nan", "sweep.grid.scheduler.beta_start: got '.nan'; allowed: a finite number"),
    ("beta_end: [1,2]", "sweep.grid.scheduler.beta_end: got [1, 2]; allowed: one value"),
    ("beta_start: 0.5", "allowed: options that give finite noise levels"),
    ("use_karras_sigmas: 1", "sweep.grid.scheduler.use_karras_sigmas: got 1; allowed: true or false"),
])
def test_scheduler_options_are_checked_before_any_model_loads(models, tmp_path, option, why):
    loads = pipeline.LOADS
    line = refused(*ONE, f"model.config={models / 'alpha'}",
                   f"sweep.grid.checkpoint=[{models / 'a.safetensors'},{models / 'b.safetensors'}]",
                   f"sweep.grid.scheduler=[Euler,{{class: EulerDiscreteScheduler, {option}}}]", run_dir=tmp_path / "r")
    assert why in line, line
    assert pipeline.LOADS == loads and not (tmp_path / "r").exists()


# --- tables the tool did not write; refused runs change nothing ---------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    quiet(make_cfg(*ONE, "sweep.grid.seed=[1,2]", "sweep.grid.num_inference_steps=[1,2]"), run_dir)
    return run_dir


def _edit(path: Path, case: str) -> None:
    if case == "renamed column":
        text = path.read_bytes().decode()
        path.write_bytes(text.replace("num_inference_steps", "steps", 1).encode())
    elif case == "edited seed":
        # The row of seed 1, wherever it landed (rows are written in the order images finish), its seed field
        # only: the rest of the file keeps its bytes.
        lines = path.read_bytes().decode().split("\r\n")
        seed = lines[0].split(",").index("seed")
        row = next(i for i, line in enumerate(lines[1:], 1) if line and line.split(",")[seed] == "1")
        fields = lines[row].split(",")
        fields[seed] = "999"
        lines[row] = ",".join(fields)
        path.write_bytes("\r\n".join(lines).encode())
        assert b",999," in path.read_bytes()
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("case, why", [("renamed column", "column 'steps' is not one sdxl-sweep writes"),
                                       ("edited seed", "has seed '999', but that cell's seed is '1'"),
                                       ("0 bytes", "an empty file (0 bytes)")])
def test_report_and_compare_refuse_a_table_the_tool_did_not_write(finished, tmp_path, case, why):
    import subprocess
    import sys

    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    _edit(run_dir / "results.csv", case)
    before = snapshot(run_dir)
    for args in (("-m", "sweep.report", str(run_dir)), ("-m", "sweep.compare", str(finished), str(run_dir))):
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, **ENV}, timeout=300)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith(f"error: {run_dir / 'results.csv'}: line ") and why in lines[0], lines[0]
        assert "SAME" not in done.stdout
        assert snapshot(run_dir) == before  # metrics.csv, convergence.csv, plots: all still there, untouched


def test_refused_multirun_rerun_changes_no_file(tmp_path):
    from conftest import run_cli

    sweep_dir = tmp_path / "multi"
    args = ("-m", "model=tiny", *ONE, "guidance_scale=3,5", f"hydra.sweep.dir={sweep_dir}")
    assert run_cli(*args, cwd=tmp_path, env=ENV).returncode == 0
    before = snapshot(sweep_dir)
    done = run_cli(*args, "prompt=other", cwd=tmp_path, env=ENV)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("holds another experiment") == 2 and "Traceback" not in done.stderr
    assert snapshot(sweep_dir) == before
    # Grown by a job while the others are refused: one jobs.csv row per job, the refusals as their status.
    run_cli(*args[:-2], "guidance_scale=3,5,7", f"hydra.sweep.dir={sweep_dir}", "prompt=other", cwd=tmp_path, env=ENV)
    jobs = (sweep_dir / "jobs.csv").read_text().splitlines()[1:]
    assert [row.split(",")[:2] for row in jobs] == [["0", "error"], ["1", "error"], ["2", "ok"]]


# --- tracebacks and misleading lines that are one true line now --------------------------------------------


def _cli_line(tmp_path: Path, *args: str) -> str:
    from conftest import run_cli

    done = run_cli(*args, cwd=tmp_path, env=ENV)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return lines[0]


def test_deep_nesting_is_one_line_not_a_recursion_traceback_nor_a_recursive_alias(tmp_path):
    line = _cli_line(tmp_path, "model=tiny", "prompt=" + "[" * 3000 + "x" + "]" * 3000, f"hydra.run.dir={tmp_path}/a")
    assert line == ("error: prompt: got a value nested 3,000 levels deep, deeper than Python's recursion limit lets "
                    "Hydra parse; allowed: lists, mappings and brackets nested at most 50 levels")
    deep = tmp_path / "deep.yaml"
    deep.write_text("grid:\n  seed: " + "[" * 10000 + "1" + "]" * 10000 + "\n")
    line = _cli_line(tmp_path, "model=tiny", f"sweep={deep}", f"hydra.run.dir={tmp_path}/b")
    assert "nested 10,000 levels deep" in line and "recursive alias" not in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_launcher_key_of_the_wrong_type_names_the_type(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    line = _cli_line(tmp_path, "-m", "model=tiny", "hydra/launcher=submitit_local", "hydra.launcher.mem_gb=abc",
                     "seed=1,2", f"hydra.sweep.dir={tmp_path}/m")
    assert line == "error: hydra.launcher.mem_gb: got 'abc'; allowed: an integer"


def test_a_title_for_an_axis_with_one_value_is_refused_not_dropped(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("grid:\n  seed: [1, 2]\n  guidance_scale: [5]\ntitles:\n  guidance_scale: CFG!\n")
    line = refused(*ONE[4:], f"sweep={path}", run_dir=tmp_path / "run")
    assert line.startswith("sweep.titles.guidance_scale: got 'guidance_scale'; allowed: an axis this sweep varies "
                           "(guidance_scale has one value, 5.0, shown nowhere by its title): seed"), line


def test_foreign_thumbs_index_is_a_stale_cache(finished, tmp_path):
    from sweep.report import build_report

    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    (run_dir / "thumbs" / "index.json").write_text('{"thumbs": 5}')
    build_report(run_dir)
    assert len(json.loads((run_dir / "thumbs" / "index.json").read_text())["thumbs"]) == 4


@pytest.mark.parametrize("char", ["\u2029", "\u2028", "\u0085", "\u000b", "\u200e", "\u202e", "\u0007"])
def test_unicode_separators_and_controls_in_labels_draw(tmp_path, char):
    from sweep.report import text

    f = text.font(14)
    assert text.width(f"a cat{char}on a mat", f) > 0
    lines = text.wrap(f"a cat{char}on a mat", f, 400)
    image = Image.new("RGB", (400, 100), "white")
    from PIL import ImageDraw

    text.draw_block(ImageDraw.Draw(image), lines, f, (0, 0, 400, 100), "black")
    assert np.asarray(image).min() < 128  # something was drawn


def test_prompt_with_a_paragraph_separator_gets_its_sheet_and_viewer(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text('name: u\nprompt: "a cat\\u2029on a mat"\ngrid:\n  seed: [1, 2]\n')
    summary = quiet(make_cfg(*ONE[4:], f"sweep={path}"), tmp_path / "run")
    assert summary.ok and summary.sheets, summary.lines()
    assert (tmp_path / "run" / "index.html").is_file()


def test_no_pairs_compared_is_said_instead_of_made_no_difference(tmp_path):
    run_dir = tmp_path / "run"
    summary = quiet(make_cfg(*ONE[:3], "sweep.grid.seed=[1,2]", "height=64", "width=64", "num_inference_steps=2",
                             "sweep.grid.hires_scale=[1.5,2]", "sweep.grid.hires_upscaler=[Latent,Lanczos]",
                             "hires_denoise=0.5"), run_dir)
    said = "\n".join(summary.lines())
    assert "made no difference" not in said, said
    assert "hires_scale: no pairs compared (every other image has another size than its reference image" in said, said


def test_overflowing_prompt_weight_is_named_as_the_cause_of_nan(tmp_path):
    summary = quiet(make_cfg(*ONE, f"prompt='a (cat:{'9' * 40}) on a mat'"), tmp_path / "run")
    assert summary.failed == 1
    import csv

    (row,) = csv.DictReader((tmp_path / "run" / "results.csv").open())
    assert row["error"].startswith("the prompt embedding came out NaN or infinite before denoising (its largest "
                                   "(text:weight) weight, 1e+40, overflows float32)"), row["error"]
    assert "guidance" not in row["error"] and "eta" not in row["error"]


# --- model files that do not fit one checkpoint -------------------------------------------------------------


@pytest.fixture(scope="module")
def fit_files(models):
    from model_files import write_lora, write_vae_file

    write_vae_file(build_tiny_layout_pipeline(seed=33).vae, models / "VAE" / "gamma.safetensors")
    write_lora(build_tiny_layout_pipeline(seed=5).unet, models / "Lora" / "detail.safetensors")
    return models


def test_vae_that_does_not_fit_one_checkpoint_is_refused_before_any_load(fit_files, tmp_path):
    loads = pipeline.LOADS
    line = refused(*ONE, f"sweep.grid.checkpoint=[{fit_files / 'alpha'},tiny]",
                   f"model.vae={fit_files / 'VAE' / 'gamma.safetensors'}", run_dir=tmp_path / "run")
    assert line.startswith(f"model.vae: got '{fit_files / 'VAE' / 'gamma.safetensors'}' (its layers have other "
                           "widths than the VAE of checkpoint tiny: levels 8/16/16/16, 4 latent channels where the "
                           "checkpoint has levels 8/8/16/16, 4 latent channels); allowed: a VAE made for"), line
    assert pipeline.LOADS == loads and not (tmp_path / "run").exists()


def test_lora_that_does_not_fit_one_checkpoint_fails_only_its_cells(fit_files, tmp_path):
    import csv

    run_dir = tmp_path / "run"
    summary = quiet(make_cfg(*ONE, "sweep.grid.seed=[1,2]", f"sweep.grid.checkpoint=[tiny,{fit_files / 'alpha'}]",
                             f"model.lora={fit_files / 'Lora' / 'detail.safetensors'}"), run_dir)
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    by = {(r["checkpoint"], r["status"]) for r in rows}
    assert by == {("tiny", "failed"), ("alpha", "ok")} and len(rows) == 4, rows
    error = next(r["error"] for r in rows if r["status"] == "failed")
    assert error.startswith("model.lora: could not load") and error.endswith("(loading checkpoint tiny)"), error
    assert "\n" not in error
    assert summary.failed == 2 and summary.made == 2 and summary.sheets  # the report is still written
    assert (run_dir / "index.html").is_file()


def test_a_vae_named_without_its_suffix_is_not_taken_for_a_hand_edit(fit_files, tmp_path):
    # The row records the VAE's file name (A1111's `VAE: gamma.safetensors`), the cell the name as typed: the same
    # VAE, so the report reads the table and the grid grows (both refused it as "edited by hand" before).
    grid = (*ONE, f"model.path={fit_files / 'alpha'}", f"model.models_dir={fit_files}", "sweep.grid.vae=[null,gamma]")
    run_dir = tmp_path / "run"
    first = quiet(make_cfg(*grid), run_dir)
    assert first.ok, first.lines()
    grown = quiet(make_cfg(*grid[:3], "sweep.grid.seed=[7,8]", *grid[4:]), run_dir)
    assert grown.ok and grown.made == 2 and grown.skipped == 2, grown.lines()
