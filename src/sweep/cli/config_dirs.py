"""Folders given to Hydra's `--config-dir`, noted by the entry point for the sweep search-path plugin.

Hydra adds `--config-dir DIR` to the search path only after search-path plugins ran, and loads a plugin
module afresh (not the one in sys.modules), so the entry point notes the folders here, in a module both see.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

CONFIG_DIRS: list[str] = []


def add_config_dirs(argv: Sequence[str]) -> None:
    """Note the folders of `--config-dir DIR`, `--config-dir=DIR`, `-cd DIR` and `-cd=DIR` in argv."""
    for i, arg in enumerate(argv):
        flag, sep, value = arg.partition("=")
        if flag not in ("--config-dir", "-cd"):
            continue
        folder = value if sep else (argv[i + 1] if i + 1 < len(argv) else "")
        if folder:
            CONFIG_DIRS.append(os.path.abspath(folder))
