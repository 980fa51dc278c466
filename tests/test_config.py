"""Composition: the schema rejects typos and wrong types; sweep files, precedence and user folders."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from conftest import SWEEPS, make_cfg
from sweep.planning.config_checks import ConfigFileError


def test_defaults_are_the_sdxl_tutorial_ones():
    cfg = make_cfg("sweep=steps_10_to_90", "model=sdxl_base")
    assert cfg.prompt == "a photo of an astronaut riding a horse on mars"
    assert cfg.negative_prompt is None
    assert (cfg.seed, cfg.num_inference_steps, cfg.guidance_scale) == (1234, 50, 5.0)
    assert cfg.height is None and cfg.width is None
    assert cfg.model.id == "stabilityai/stable-diffusion-xl-base-1.0"
    assert (cfg.model.device, cfg.model.dtype) == ("auto", "auto")


def test_every_tutorial_experiment_ships():
    assert {"steps_10_to_90", "guidance_2_to_10", "seed_fixed", "seed_random", "resolution_512_1024",
            "seeds_steps_guidance"} <= set(SWEEPS)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_composes_with_its_name(name):
    cfg = make_cfg(f"sweep={name}")
    assert cfg.sweep.name == name
    assert any(v is not None for v in cfg.sweep.grid.values())


def test_sweep_file_overrides_config_and_command_line_overrides_both():
    assert make_cfg("sweep=steps_10_to_90", "seed=99").seed == 99
    assert make_cfg("sweep=steps_10_to_90").seed == 1234
    cfg = make_cfg("sweep=steps_10_to_90", "sweep.grid.seed=[1,2,3]", "guidance_scale=7.5")
    assert list(cfg.sweep.grid.seed) == [1, 2, 3]
    assert cfg.sweep.grid.num_inference_steps == "10..90 step 10"
    assert cfg.guidance_scale == 7.5


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sweep.grid.sed=[1]", "sweep.grid.sed"),
        ("num_inference_step=30", "num_inference_step"),
        ("seed=abc", "abc"),
        ("num_inference_steps=1.5", "1.5"),
        ("model.dtyp=fp16", "model.dtyp"),
        ("sweep.layout.row=seed", "sweep.layout.row"),
    ],
)
def test_typos_and_wrong_types_fail_at_compose_time(override, needle):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("sweep=steps_10_to_90", override)
    assert needle in str(info.value) + str(info.value.__cause__)


def test_unknown_sweep_name_fails_naming_it():
    with pytest.raises(Exception) as info:
        make_cfg("sweep=no_such_sweep")
    assert "no_such_sweep" in str(info.value)


def test_a_users_own_folder_of_sweep_files(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "prompt: a red bicycle\nnum_inference_steps: 4\ngrid:\n  seed: [1, 2]\nlayout:\n  cols: seed\n"
    )
    cfg = make_cfg("sweep=mine", f"hydra.searchpath=[sweepdir://{tmp_path}]")
    assert cfg.sweep.name == "mine"  # taken from the file name when the file has none
    assert cfg.prompt == "a red bicycle" and cfg.num_inference_steps == 4
    assert list(cfg.sweep.grid.seed) == [1, 2]


def test_a_typo_inside_a_sweep_file_fails(tmp_path):
    (tmp_path / "bad.yaml").write_text("grid:\n  sed: [1, 2]\n")
    with pytest.raises(ConfigFileError) as info:
        make_cfg("sweep=bad", f"hydra.searchpath=[sweepdir://{tmp_path}]")
    # The axes listed come from the schema, whatever it holds; the file, the key and the nearest axis are named.
    text = str(info.value)
    assert text.startswith(f"sweep file {tmp_path / 'bad.yaml'}: grid.sed: unknown key (got [1, 2]); "
                           "allowed: the keys of sweep.grid: ")
    assert ", seed, " in text and text.endswith(" (did you mean seed?)") and "\n" not in text


def test_the_checked_config_is_read_as_one_typed_read_only_object():
    """Below the edge the config is schema.RunConfig: the same plan as from the composed config, and no code
    below can change a setting for the code after it."""
    import dataclasses

    from sweep.planning.plan import plan_sweep
    from sweep.planning.schema import RunConfig, typed

    cfg = make_cfg("sweep=steps_10_to_90", "seed=99", "max_images=50", "report.cell_max=256",
                   "sweep.layout.cols=num_inference_steps")
    settings = typed(cfg)
    assert isinstance(settings, RunConfig) and typed(settings) is settings
    assert (settings.values["seed"], settings.max_images, settings.report.cell_max) == (99, 50, 256)
    assert settings.sweep.layout.cols == "num_inference_steps" and settings.model["source"] == "tiny"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.restart = True  # type: ignore[misc]
    typed_plan, composed_plan = plan_sweep(settings), plan_sweep(cfg)
    assert [c.cell_id for c in typed_plan.cells] == [c.cell_id for c in composed_plan.cells]
    assert typed_plan.layout == composed_plan.layout and typed_plan.max_images == 50
