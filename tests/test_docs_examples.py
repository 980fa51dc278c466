"""The docs say what is true: each example makes the number of images it claims, the shipped-sweeps table lists
the sweeps/ folder, and the results.csv column list is the columns a run writes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sweep.cli.hydra_flags import flags_first
from sweep.paths import expand_home
from sweep.planning.config_checks import check_config
from sweep.planning.plan import plan_sweep
from sweep.running.runner import to_dict
from test_docs_commands import (
    DOC_FILES,
    REPO,
    commands_in,
    composed,
    jobs,
    logical_lines,
    own_files_swapped,
    shell_blocks,
    sweep_argv,
    user_dir,  # noqa: F401  (fixture)
)

# `# 16 images, two sheets`: the count an example claims, in its comment (on its line or the line above).
CLAIM = re.compile(r"#[^#]*?\b(\d[\d,]*) images?\b")


def claimed_examples() -> list[tuple[str, list[str], int]]:
    """(where, argv after `python -m sweep`, images claimed) for every example that states a count."""
    found = []
    for path in DOC_FILES:
        for block in shell_blocks(path):
            above = None
            for number, text, _ in logical_lines(block):
                if text.startswith("#"):
                    above = CLAIM.search(text)
                    continue
                claim = CLAIM.search(text) or above
                above = None
                if claim is None or not re.search(r"-m sweep|sdxl-sweep", text):
                    continue
                for simple in commands_in(shlex.split(text, comments=True)):
                    runs = sweep_argv(simple)
                    if runs and runs[0] == "sweep":
                        found.append((f"{path.relative_to(REPO)}:{number}", runs[1],
                                      int(claim.group(1).replace(",", ""))))
    return found


EXAMPLES = claimed_examples()


def images_made(argv: list[str]) -> int:
    """How many images the command makes (every job of a multirun), as the CLI plans them before the load."""
    args = expand_home(flags_first(argv))
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    total = 0
    for job in jobs(overrides, multirun):
        cfg = composed(own_files_swapped(job))
        check_config(cfg)
        total += len(plan_sweep(to_dict(cfg), multirun=multirun).cells)
    return total


def test_the_docs_claim_counts():
    assert len(EXAMPLES) >= 5 and any("sweep=samplers" in argv for _, argv, _ in EXAMPLES)


@pytest.mark.parametrize(("where", "argv", "claimed"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_each_example_makes_the_images_it_claims(where, argv, claimed, user_dir):  # noqa: F811
    assert images_made(list(argv)) == claimed, f"{where}: {' '.join(argv)}"


def _section(path: Path, start: str, end: str) -> str:
    text = path.read_text(encoding="utf-8")
    begin = text.index(start)
    return text[begin:text.index(end, begin + len(start))]


def test_the_shipped_sweeps_table_lists_the_sweeps_folder():
    table = _section(REPO / "docs" / "configuration.md", "| sweep | grid |", "\n\n")
    listed = set(re.findall(r"^\| `([\w-]+)` \|", table, re.M))
    shipped = {p.stem for p in (REPO / "sweeps").glob("*.yaml")}
    assert listed == shipped, f"not in the table: {sorted(shipped - listed)}; no such sweep: {sorted(listed - shipped)}"


def test_the_results_csv_column_list_is_what_a_run_writes(tmp_path):
    from conftest import make_cfg, quiet

    run_dir = tmp_path / "run"
    quiet(make_cfg("sweep=seed_fixed", "height=64", "width=64", "num_inference_steps=1"), run_dir)
    written = (run_dir / "results.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    text = _section(REPO / "docs" / "reports.md", "- `results.csv`: one row per image", "\n- `")
    spans = re.findall(r"`([^`]+)`", text.replace("\n  ", " "))
    listed = [word for span in spans if "," in span for word in (w.strip() for w in span.split(","))]
    assert listed == written, (f"missing from docs/reports.md: {[c for c in written if c not in listed]}; "
                               f"not written: {[c for c in listed if c not in written]}")
