"""Where the shipped `conf/` and `sweeps/` folders are, in a source checkout or an installed wheel."""

from __future__ import annotations

import os
import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """`conf` or `sweeps`: inside the wheel (sweep/_data/NAME) or at the top of the source checkout."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the '{name}' folder of sdxl-sweep near {_PACKAGE}")


CONF_DIR = shipped_dir("conf")

# A `~` that starts a path in an override's value: at its start, after `[` or `,`, or just inside a quote there.
_HOME = re.compile(r"""(^|[\[,]\s*)(["']?)~(?=/|["',\]]|$)""")


def expand_home(args: list[str]) -> list[str]:
    """`model.path=~/x`, `'model.lora=[~/x]'`, `hydra.run.dir='"~/x"'` as the shell would for a plain path:
    Hydra's grammar cannot read an unquoted `~`, and a quoted one would be a literal folder named `~`."""
    home = os.path.expanduser("~")
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and not key.startswith(("-", "~")) and "~" in value:
            arg = key + sep + _HOME.sub(lambda m: m.group(1) + m.group(2) + home, value)
        out.append(arg)
    return out
