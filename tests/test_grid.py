"""Axis values, ranges and cell order: what a sweep file's grid turns into."""

from __future__ import annotations

import tracemalloc

import pytest

from sweep import axes
from sweep.errors import SweepError
from sweep.planning import grid
from sweep.planning.plan import base_values

FACTS = axes.Facts()


def values(spec, axis="num_inference_steps", limit=1000, **kwargs):
    return axes.grid_values(axis, spec, FACTS, limit, **kwargs).values


def test_inclusive_range_gives_10_to_90():
    assert values("10..90 step 10") == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_exclusive_range_stops_before_end():
    assert values("10..<90 step 10") == [10, 20, 30, 40, 50, 60, 70, 80]
    assert values("10..<91 step 10") == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_float_range_has_no_rounding_noise():
    assert values("2..3 step 0.25", "guidance_scale") == [2.0, 2.25, 2.5, 2.75, 3.0]
    assert values("0..0.3 step 0.1", "guidance_scale") == [0.0, 0.1, 0.2, 0.3]


def test_lists_and_scalars():
    assert values([5, 1, 3]) == [5, 1, 3]
    assert values(7) == [7]


def test_sizes_are_width_by_height():
    assert values(["1216x832", {"width": 640, "height": 1536}, 256], "resolution") == [
        (1216, 832), (640, 1536), (256, 256)]


def test_a_bare_pair_is_refused_with_how_to_write_it():
    with pytest.raises(SweepError) as info:
        values([[64, 128]], "resolution")
    assert "write '64x128' (width 64 first) or {width: W, height: H}" in str(info.value)


def test_random_seeds_drawn_once_and_reused_when_recorded():
    drawn = values("random 3", "seed")
    assert len(drawn) == 3 and len(set(drawn)) == 3
    assert all(0 <= s < 2**32 for s in drawn)
    assert values("random 3", "seed", recorded_seeds=drawn) == drawn


def test_repeat_axis():
    assert values(3, "repeat") == [0, 1, 2]


def test_a_prompt_with_dots_is_not_a_range():
    assert values("a cat... on mars", "prompt") == ["a cat... on mars"]


@pytest.mark.parametrize(
    ("axis", "spec"),
    [("num_inference_steps", "1..1e12 step 1"), ("seed", "random 100000000000"), ("repeat", 100000000000),
     ("seed", "0..18446744073709551615")],
)
def test_huge_grids_are_counted_not_expanded(axis, spec):
    values(2 if axis == "repeat" else "1..2", axis)  # imports and caches first: only the refusal is measured
    tracemalloc.start()
    try:
        with pytest.raises(SweepError) as info:
            values(spec, axis)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "max_images=1000" in str(info.value)
    # Refused by counting: memory, not time (a timed assertion fails whenever the machine is busy). Expanding
    # even the first 10 million values would take hundreds of MB.
    assert peak < 10 * 2**20, peak


@pytest.mark.parametrize(
    ("axis", "spec", "needle"),
    [
        ("num_inference_steps", "10..90 stp 10", "START..END step S"),
        ("num_inference_steps", [0, 10], "an integer from 1 to 1000"),
        ("num_inference_steps", [1001], "the scheduler's num_train_timesteps"),
        ("num_inference_steps", "90..10 step 10", "END is not below"),
        ("num_inference_steps", "1..9 step 0", "step > 0"),
        ("guidance_scale", [-1], "a number from 0 to 100"),
        ("guidance_scale", [1e308], "a number from 0 to 100"),
        ("resolution", ["500x512"], "multiple of 8"),
        ("resolution", ["big"], "WIDTHxHEIGHT"),
        ("seed", [-5], "integer in [0"),
        ("seed", [1, 1], "use sweep.grid.repeat"),
        ("guidance_scale", [5.0, 5], "each value once"),
        ("guidance_scale", "random 3", "only on the seed axis"),
        ("seed", [], "at least one value"),
        ("prompt", [""], "non-empty prompt"),
        ("prompt", ["caf\ud800"], "no lone surrogates"),
        ("scheduler", ["DPM++ 3X"], "an A1111 sampler name"),
    ],
)
def test_bad_axis_values_name_the_key_value_and_allowed(axis, spec, needle):
    with pytest.raises(SweepError) as info:
        values(spec, axis)
    message = str(info.value)
    assert message.startswith(f"sweep.grid.{axis}: got ")
    assert needle in message
    assert "\n" not in message


def test_unknown_axis_lists_what_is_allowed():
    with pytest.raises(SweepError) as info:
        values([1, 2], "num_inference_step")
    assert "did you mean num_inference_steps?" in str(info.value)


BASE = base_values({"prompt": "p"}, FACTS)


def expand(**swept):
    return grid.expand(BASE, [axes.grid_values(k, v, FACTS, 1000) for k, v in swept.items()])


def test_expand_is_the_cartesian_product_and_axes_replace_base_values():
    cells = expand(seed=[1, 2], num_inference_steps=[10, 20, 30])
    assert len(cells) == 6
    assert {(c.seed, c.num_inference_steps) for c in cells} == {(s, n) for s in (1, 2) for n in (10, 20, 30)}
    assert all(c.guidance_scale == 5.0 for c in cells)
    assert len({c.cell_id for c in cells}) == 6


def test_close_values_get_distinct_file_names():
    cells = expand(guidance_scale=[5.0, 5.0000001])
    assert len({c.cell_id for c in cells}) == 2
    grid.check_unique_ids(cells)


def test_shape_order_groups_resolution_then_cfg_whatever_the_layout_order():
    cells = expand(resolution=["64x64", "32x32"], guidance_scale=[1.0, 5.0, 0.0], seed=[1, 2])
    ordered = grid.shape_order(cells)
    shapes = [(c.height, c.width, c.cfg) for c in ordered]
    changes = sum(1 for a, b in zip(shapes, shapes[1:], strict=False) if a != b)
    assert changes == 3  # 2 resolutions x (CFG on, CFG off)
    assert ordered[0].height == 32


def test_batches_only_join_cells_that_differ_by_seed():
    cells = grid.shape_order(expand(seed=[1, 2, 3, 4, 5], num_inference_steps=[10, 20]))
    units = grid.batches(cells, 2)
    assert [len(u) for u in units] == [2, 2, 1, 2, 2, 1]
    for unit in units:
        assert len({c.batch_key() for c in unit}) == 1


def test_a_sampler_splits_calls():
    cells = grid.shape_order(expand(seed=[1, 2], scheduler=["Euler", "DPM++ 2M Karras"]))
    assert [len(u) for u in grid.batches(cells, 8)] == [2, 2]


def test_cell_ids_are_safe_file_names_for_hostile_prompts():
    prompt = '../../etc/passwd "quoted" \u00e9\u00e8 ' + "x" * 500
    (cell,) = expand(prompt=[prompt])
    assert "/" not in cell.cell_id and ".." not in cell.cell_id and '"' not in cell.cell_id
    assert len(cell.cell_id) < 120
    assert cell.cell_id.isascii()
