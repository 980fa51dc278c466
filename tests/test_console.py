"""A quiet console: what diffusers, transformers and Python warnings say during a run goes to sweep.log once."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from conftest import make_cfg
from sweep.errors import SweepError
from sweep.models.library_output import to_log
from sweep.running.runner import run_sweep

CAST_WARNING = "There are modules in AutoencoderKL that should be kept in float32"


def test_library_warnings_go_once_to_sweep_log_not_the_terminal(tmp_path: Path, capfd) -> None:
    from sweep.models import pipeline

    # bfloat16 on the CPU: the tiny model is cast after it is built, which makes diffusers warn (a real path).
    # Built in this run: an earlier test of this process may have left it loaded (and cast) already.
    pipeline.release()
    summary = run_sweep(make_cfg("sweep=steps_10_to_90", "model.dtype=bfloat16", "height=64", "width=64",
                                 "sweep.grid.num_inference_steps=[1,2]", "sweep.layout.sheets=null"),
                        tmp_path / "run", echo=print)
    out, err = capfd.readouterr()
    assert summary.ok and summary.made == 2
    assert "steps_10_to_90: 2 images" in out  # the header still reaches the terminal
    assert "diffusers" not in out + err and "Warning" not in out + err and "kept in float32" not in out + err
    log = (tmp_path / "run" / "sweep.log").read_text()
    assert log.count(CAST_WARNING) == 1, log
    assert "[diffusers.models.modeling_utils][WARNING]" in log


def test_a_100k_character_prompt_keeps_the_terminal_quiet(tmp_path: Path, capfd) -> None:
    """Issue 21 case 25: a 100,000-character prompt printed 200 KB of tokenizer warnings; they go to sweep.log,
    each once, and the terminal has the tool's own lines (none of which repeats the prompt)."""
    summary = run_sweep(make_cfg("sweep=steps_10_to_90", "height=64", "width=64", "prompt=" + "a " * 50_000,
                                 "sweep.grid.num_inference_steps=[1,2]", "sweep.layout.sheets=null"),
                        tmp_path / "run", echo=print)
    out, err = capfd.readouterr()
    assert summary.ok and summary.made == 2
    assert len(out + err) < 3000 and "a a a a" not in out + err and "Token indices" not in out + err
    log = tmp_path / "run" / "sweep.log"  # written at the first library record (none: nothing to keep)
    assert not log.exists() or log.read_text().count("Token indices sequence length is longer") <= 1


def test_each_distinct_message_once_and_the_terminal_restored_after(tmp_path: Path, capfd) -> None:
    library = logging.getLogger("diffusers.loaders.peft")
    with to_log(tmp_path):
        warnings.simplefilter("always")  # Python alone would show a warning once per place: repeat it here
        for _ in range(3):
            library.warning("weights not used: %s", "x")
            warnings.warn("a deprecation", FutureWarning, stacklevel=1)
        library.warning("weights not used: %s", "y")
    out, err = capfd.readouterr()
    assert out + err == ""
    log = (tmp_path / "sweep.log").read_text()
    assert log.count("weights not used: x") == 1 and log.count("weights not used: y") == 1
    assert log.count("FutureWarning: a deprecation") == 1
    assert "always" not in [f[0] for f in warnings.filters[:1]]  # the filters are restored
    with pytest.warns(FutureWarning):  # Python's warnings are back to normal
        warnings.warn("after", FutureWarning, stacklevel=1)


def test_lora_for_another_model_is_one_complete_line_and_its_output_in_sweep_log(tmp_path: Path,
                                                                                 capfd) -> None:
    from model_files import write_lora
    from sweep.models.builtin import build_tiny_layout_pipeline

    lora = write_lora(build_tiny_layout_pipeline().unet, tmp_path / "other.safetensors")  # other widths
    with pytest.raises(SweepError) as failure:
        run_sweep(make_cfg("sweep=steps_10_to_90", f"model.lora={lora}", "height=64", "width=64"),
                  tmp_path / "run", echo=lambda _: None)
    message = str(failure.value)
    out, err = capfd.readouterr()
    assert "\n" not in message and not message.rstrip().endswith(":"), message
    assert message.startswith(f"model.lora: could not load '{lora}': its layers have other shapes"), message
    assert "size mismatch for" in message and "(and 7 more)" in message
    assert "unsuccessful" not in out + err
    assert "Loading other was unsuccessful" in (tmp_path / "run" / "sweep.log").read_text()
