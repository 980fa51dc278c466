"""Several processes on one machine (accelerate launch / torchrun): who does which cells, and waiting.

Each rank runs the same Hydra app; accelerate's PartialState reads the launcher's environment (RANK,
WORLD_SIZE, ...). Cells are dealt out by the runner; everything else (repairing the table, the manifest, the
report) is done once, by the main process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


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
