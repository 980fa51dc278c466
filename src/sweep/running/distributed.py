"""Several processes on one machine (accelerate launch / torchrun): who does which cells, and waiting.

Each rank runs the same Hydra app; accelerate's PartialState reads the launcher's environment (RANK,
WORLD_SIZE, ...). Cells are dealt out by the runner; everything else (repairing the table, the manifest, the
report) is done once, by the main process.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sweep.planning.schema import RunConfig

T = TypeVar("T")


def scheduler_job() -> dict[str, str]:
    """The SLURM job this process runs in, as squeue, sacct and submitit name it (`7_1` for task 1 of array
    job 7), for status files and jobs.csv; empty outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return {"slurm_job": job} if job else {}


@dataclass
class Ranks:
    index: int = 0
    count: int = 1
    state: Any = None  # accelerate.PartialState when count > 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @classmethod
    def from_env(cls, device: str) -> Ranks:
        """A single process unless a launcher started several (WORLD_SIZE > 1)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        # Without cpu=True on a CPU-only machine every process believes it is rank 0 of 1.
        state = PartialState(cpu=device == "cpu")
        return cls(index=state.process_index, count=state.num_processes, state=state)

    def device(self, device: str) -> str:
        """Each rank on its own GPU: cuda -> cuda:LOCAL_RANK."""
        if self.count > 1 and device == "cuda" and self.state is not None:
            return str(self.state.device)
        return device

    def wait(self) -> None:
        if self.count > 1:
            self.state.wait_for_everyone()

    def share(self, value: T) -> T:
        """The main process's value, on every rank."""
        if self.count == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def mine(self, items: list[T]) -> list[T]:
        """Round-robin share of the items: shape groups stay balanced across ranks."""
        return items[self.index :: self.count]


def ranks_for(settings: RunConfig) -> Ranks:
    """This process's place among the launcher's processes (one process unless WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()  # one process: no need to import torch before the config is checked
    from sweep.models.devices import resolve_device

    return Ranks.from_env(resolve_device(str(settings.model.get("device", "auto"))))


def shared_run_dir(ranks: Ranks, run_dir: Path) -> Path:
    """The main rank's run directory, on every rank.

    Each process of `torchrun`/`accelerate launch` runs its own Hydra, which stamps its run dir with its own
    start time (`${now:...}`): ranks that start a second apart would write to different folders. All use the
    main rank's; the folder another rank's Hydra made is removed when it holds nothing but Hydra's files.
    """
    if ranks.count == 1:
        return run_dir
    shared = Path(ranks.share(str(Path(run_dir).resolve())))
    if shared != Path(run_dir).resolve():
        _follow_file_logs(Path(run_dir).resolve(), shared)
        remove_hydra_only_dir(Path(run_dir))
    return shared


def _follow_file_logs(old: Path, new: Path) -> None:
    """Hydra's job log file handler points into `old`: reopen it (append mode) at the same name in `new`."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == old:
            handler.close()  # a closed FileHandler in append mode reopens its (new) file on the next record
            handler.baseFilename = str(new / Path(handler.baseFilename).name)


def remove_hydra_only_dir(run_dir: Path) -> bool:
    """Remove a run dir that holds only what Hydra puts in every run dir (.hydra/, *.log), and its parent if
    that is left empty. Anything else in it (results, images, a user's file) keeps the folder untouched."""
    if not run_dir.is_dir() or any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
        return False
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for log_file in run_dir.glob("*.log"):
        log_file.unlink(missing_ok=True)
    # The run dir, then parents Hydra made for it (outputs/<sweep>/, outputs/) while they are empty, never
    # above the current directory: rmdir removes only empty folders, never anything else.
    cwd = Path.cwd().resolve()
    for folder in (run_dir, *run_dir.resolve().parents[:2]):
        if folder.resolve() == cwd or cwd.is_relative_to(folder.resolve()):
            break
        try:
            folder.rmdir()
        except OSError:
            break
    return True
