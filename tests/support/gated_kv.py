"""A memory store whose writes wait for the test to open a gate (on the committer's writer
thread), so a test can act while a batch is being written."""

from __future__ import annotations

import threading

from codeq.kv.api import Ops
from codeq.kv.memory import MemoryKV


class GatedKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []  # each written batch's op count
        self.fail = False  # the next writes fail as a full disk does

    def write(self, ops: Ops, *, sync: bool) -> None:
        self.entered.set()
        self.gate.wait(5)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(len(ops))
        super().write(ops, sync=sync)
