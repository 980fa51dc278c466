"""python -m sweep.report DIR [rows=AXIS] [cols=AXIS] [sheets=AXIS] [cell_max=N] [max_cells=N] [captions=B]
    [reference=R] [report.scores=[clip_score,pickscore,aesthetic]] [report.clip_model=M] [report.pickscore_model=M]
    [report.pickscore_processor=M] [report.aesthetic_model=FILE] [report.score_batch=N]

Rebuilds sheets, summary.csv, plots, metrics.csv and the viewer (index.html) from a finished or partial run;
generates nothing. reference=AXIS:VALUE (R) compares every image with the one at that value (default: the most
steps when steps vary; none: no metrics). report.scores scores the images not scored yet into scores.csv and
ranks each axis's values (ranking.csv); images are read, never rewritten. Every option may be written with or
without `report.`. Bad input prints one line (key, value, what is allowed) to stderr and exits 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sweep.errors import suggest
from sweep.report.result import LISTED_SHEETS, ReportError

USAGE = " ".join(__doc__.strip().split("\n\n")[0].split())
OPTIONS = ("rows", "cols", "sheets", "cell_max", "max_cells", "captions", "reference")
SCORE_OPTIONS = ("scores", "clip_model", "pickscore_model", "pickscore_processor", "aesthetic_model", "score_batch")
ALL_OPTIONS = (*OPTIONS, *SCORE_OPTIONS)
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """DIR and key=value options; a directory whose name contains '=' is still a directory."""
    run_dir: str | None = None
    options: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        bare = key.strip().removeprefix("report.").lstrip("+")
        if sep and bare in SCORE_OPTIONS:
            scoring[bare] = value
        elif sep and bare in OPTIONS:
            key = bare
            if key == "captions":
                if value.strip().lower() not in TRUE + FALSE:
                    raise ReportError("captions", value, "true or false")
                options[key] = value.strip().lower() in TRUE
            else:
                options[key] = value
        elif sep and not os.path.exists(arg) and "/" not in arg:
            raise ReportError(key, value, "DIR and the options " + ", ".join(f"{o}=" for o in ALL_OPTIONS)
                              + suggest(bare, ALL_OPTIONS))
        elif run_dir is None:
            run_dir = arg
        else:
            raise ReportError("DIR", arg, f"one run directory (already got {run_dir!r})")
    if run_dir is None:
        raise ReportError("DIR", "", "a run directory; usage: " + USAGE)
    from sweep.report.scores import ScoreOptions

    options["scores"] = ScoreOptions.from_mapping(scoring)
    return run_dir, options


def main(argv: list[str] | None = None) -> int:
    from sweep.cli.commands import run_command

    return run_command(argv, __doc__, _report, hint="the images and results.csv are untouched: run the same "
                       "command again to rebuild the report")


def _say(text: str) -> None:
    """One printed line, its control characters escaped (sweep.safe_log)."""
    from sweep.safe_log import escape_controls

    sys.stdout.write(escape_controls(text) + "\n")


def _report(args: list[str]) -> int:
    run_dir, options = parse(args)
    from sweep.report import build_report

    result = build_report(run_dir, **options)
    root = Path(run_dir)
    # Every line escaped: axis values, notes and sentences come from the run dir (docs/security.md).
    _say(f"{len(result.sheets)} sheet{'s' if len(result.sheets) != 1 else ''} in {root / 'sheets'} "
         f"({'; '.join(layout.describe() for layout in result.layouts)})")
    if len(result.sheets) <= LISTED_SHEETS:
        for path in result.sheets:
            _say(f"  {path}")
    if result.sheet_note:
        _say(f"  ({result.sheet_note}; every image in the viewer)")
    _say(f"summary: {result.summary}")
    _say(f"viewer:  {result.viewer}")
    for path in result.plots:
        _say(f"plot: {path}")
    for path in result.metrics:
        _say(f"metrics: {path}")
    for line in result.insights:
        _say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
