"""Axis values, ranges and cell order: what a sweep file's grid turns into."""

from __future__ import annotations

import pytest

from sweep import grid
from sweep.errors import SweepError
from sweep.grid import Base, Cell


def values(spec, axis="num_inference_steps"):
    return grid.axis_values({axis: spec})[axis]


def test_inclusive_range_gives_10_to_90():
    assert values("10..90 step 10") == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_exclusive_range_stops_before_end():
    assert values("10..<90 step 10") == [10, 20, 30, 40, 50, 60, 70, 80]


def test_float_range_has_no_rounding_noise():
    assert values("2..3 step 0.25", "guidance_scale") == [2.0, 2.25, 2.5, 2.75, 3.0]
    assert values("0..0.3 step 0.1", "guidance_scale") == [0.0, 0.1, 0.2, 0.3]


def test_lists_and_scalars():
    assert values([5, 1, 3]) == [5, 1, 3]
    assert values(7) == [7]


def test_resolution_forms_are_height_by_width():
    assert values(["512x768", [1024, 512], 256], "resolution") == [(512, 768), (1024, 512), (256, 256)]


def test_random_seeds_drawn_once_and_reused_when_recorded():
    drawn = values("random 3", "seed")
    assert len(drawn) == 3 and len(set(drawn)) == 3
    assert all(0 <= s < 2**32 for s in drawn)
    assert grid.axis_values({"seed": "random 3"}, recorded_seeds=drawn)["seed"] == drawn


def test_repeat_axis():
    assert values(3, "repeat") == [0, 1, 2]


def test_a_prompt_with_dots_is_not_a_range():
    assert values("a cat... on mars", "prompt") == ["a cat... on mars"]


@pytest.mark.parametrize(
    ("axis", "spec", "needle"),
    [
        ("num_inference_steps", "10..90 stp 10", "START..END step S"),
        ("num_inference_steps", [0, 10], "integer >= 1"),
        ("num_inference_steps", "90..10 step 10", "END is not below"),
        ("num_inference_steps", "1..9 step 0", "step > 0"),
        ("guidance_scale", [-1], "number >= 0"),
        ("resolution", ["500x512"], "multiple of 8"),
        ("resolution", ["big"], "HEIGHTxWIDTH"),
        ("seed", [-5], "integer in [0"),
        ("seed", [1, 1], "use sweep.grid.repeat"),
        ("guidance_scale", "random 3", "only on the seed axis"),
        ("seed", [], "at least one value"),
        ("prompt", [""], "non-empty prompt"),
    ],
)
def test_bad_axis_values_name_the_key_value_and_allowed(axis, spec, needle):
    with pytest.raises(SweepError) as info:
        grid.axis_values({axis: spec})
    message = str(info.value)
    assert message.startswith(f"sweep.grid.{axis}: got ")
    assert needle in message
    assert "\n" not in message


def test_empty_grid_is_refused():
    with pytest.raises(SweepError, match="sweep.grid: got 'no axis'"):
        grid.axis_values({})


BASE = Base("p", None, 1234, 50, 5.0, None, None)


def test_expand_is_the_cartesian_product_and_axes_replace_base_values():
    cells = grid.expand(BASE, {"seed": [1, 2], "num_inference_steps": [10, 20, 30]})
    assert len(cells) == 6
    assert {(c.seed, c.num_inference_steps) for c in cells} == {(s, n) for s in (1, 2) for n in (10, 20, 30)}
    assert all(c.guidance_scale == 5.0 for c in cells)
    assert len({c.cell_id for c in cells}) == 6


def test_shape_order_groups_resolution_then_cfg_whatever_the_layout_order():
    cells = grid.expand(BASE, {"resolution": [(64, 64), (32, 32)], "guidance_scale": [1.0, 5.0, 0.0],
                               "seed": [1, 2]})
    ordered = grid.shape_order(cells)
    shapes = [(c.height, c.width, c.cfg) for c in ordered]
    changes = sum(1 for a, b in zip(shapes, shapes[1:], strict=False) if a != b)
    assert changes == 3  # 2 resolutions x (CFG on, CFG off)
    assert ordered[0].height == 32


def test_batches_only_join_cells_that_differ_by_seed():
    cells = grid.shape_order(grid.expand(BASE, {"seed": [1, 2, 3, 4, 5], "num_inference_steps": [10, 20]}))
    units = grid.batches(cells, 2)
    assert [len(u) for u in units] == [2, 2, 1, 2, 2, 1]
    for unit in units:
        assert len({c.batch_key() for c in unit}) == 1


def test_cell_ids_are_safe_file_names_for_hostile_prompts():
    prompt = '../../etc/passwd "quoted" \u00e9\u00e8 ' + "x" * 500
    cell = Cell(prompt, None, 1, 10, 5.0, 64, 64)
    assert "/" not in cell.cell_id and ".." not in cell.cell_id and '"' not in cell.cell_id
    assert len(cell.cell_id) < 120
    assert cell.cell_id.isascii()
