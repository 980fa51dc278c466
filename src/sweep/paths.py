"""Where the shipped `conf/` and `sweeps/` folders are, in a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """`conf` or `sweeps`: inside the wheel (sweep/_data/NAME) or at the top of the source checkout."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the '{name}' folder of sdxl-sweep near {_PACKAGE}")


CONF_DIR = shipped_dir("conf")
