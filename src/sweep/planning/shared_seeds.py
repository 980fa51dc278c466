"""Random seeds drawn once per multirun: every job of `-m sweep=seed_random 'prompt="a","b"'` uses the same
seeds, so the merged sheet compares the prompts on one seed instead of showing a diagonal of holes.

Kept in the multirun's sweep dir as `random_seeds.json` ({seed spec: seeds}), read and written under a lock
because launchers such as submitit or joblib start jobs at the same time.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweep.atomic import atomic_write

FILE = "random_seeds.json"


def _key(grid: Mapping[str, Any]) -> str:
    return " ".join(str(grid.get("seed", "")).split()).lower()


def _read(path: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_seeds(sweep_dir: Path, grid: Mapping[str, Any]) -> list[int] | None:
    seeds = _read(sweep_dir / FILE).get(_key(grid))
    return [int(s) for s in seeds] if isinstance(seeds, list) else None


def keep_seeds(sweep_dir: Path, grid: Mapping[str, Any], seeds: list[int]) -> list[int]:
    """Record `seeds` for this seed spec unless another job did first; returns the seeds every job uses."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock_path = sweep_dir / ".random_seeds.lock"
    with open(lock_path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _read(sweep_dir / FILE)
        key = _key(grid)
        if isinstance(found.get(key), list):
            return [int(s) for s in found[key]]
        found[key] = list(seeds)
        atomic_write(sweep_dir / FILE, json.dumps(found, indent=2) + "\n")
        return list(seeds)
