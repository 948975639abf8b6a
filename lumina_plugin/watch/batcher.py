"""Debounced batches of catalog operations: N files, or S seconds after the last one.

What the watcher decided is a list of operations (import this path, remove that one,
move one path to another) in the order they happened. The batcher holds them until a
batch is worth its cost: every import pays a catalog-wide regroup, so a burst of
10,000 photos must become a stream of full batches, not 10,000 single imports, while
one photo dropped on its own should still be tagged within a second.

A batch closes when it holds ``batch_size`` operations, or ``max_wait`` seconds after
the last operation joined it, or ``max_age`` seconds after the first one did (so that
a steady trickle, one photo every few tenths of a second, is imported while it flows).

Operations on one path are folded as they arrive so that a batch can be applied as
"removes and moves in order, then imports": a repeated import is dropped, and an
import is dropped when a later remove or move touches its path (the move brings its
own import of the new path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

IMPORT, REMOVE, MOVE = "import", "remove", "move"
KINDS = (IMPORT, REMOVE, MOVE)


@dataclass(frozen=True)
class Op:
    """One catalog operation; ``seq`` is its row in the durable queue (its order)."""

    kind: str
    path: str
    dest: str | None = None
    seq: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown operation {self.kind!r}")
        if (self.kind == MOVE) != (self.dest is not None):
            raise ValueError("a move needs a destination, and only a move has one")


class Batcher:
    """Pending operations in order, closed into batches by count and time.

    ``clock`` is injectable so the timing rules can be tested without sleeping.
    """

    def __init__(self, batch_size: int, max_wait: float, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.max_wait = max(0.0, max_wait)
        self.max_age = max(self.max_wait, max_age)
        self.clock = clock
        self._ops: dict[int, tuple[Op, float]] = {}  # seq -> (op, added at); insertion order
        self._imports: dict[str, int] = {}  # path -> seq of its pending import
        self._hold_until = float("-inf")

    def __len__(self) -> int:
        return len(self._ops)

    def pending_import(self, path: str) -> bool:
        return path in self._imports

    def ops(self) -> list[Op]:
        return [op for op, _ in self._ops.values()]

    # -- adding -------------------------------------------------------------------------
    def add(self, op: Op, at: float | None = None) -> list[Op]:
        """Queue ``op``; returns the operations it made pointless (``op`` itself when it
        repeats a pending import), which the caller drops from the durable queue."""
        at = self.clock() if at is None else at
        if op.seq in self._ops:
            raise ValueError(f"operation {op.seq} is already queued")
        dropped: list[Op] = []
        if op.kind == IMPORT:
            if op.path in self._imports:
                return [op]
            self._imports[op.path] = op.seq
        else:
            touched = (op.path, op.dest) if op.kind == MOVE else (op.path,)
            for path in touched:
                seq = self._imports.pop(path, None) if path is not None else None
                if seq is not None:
                    dropped.append(self._ops.pop(seq)[0])
        self._ops[op.seq] = (op, at)
        return dropped

    def add_all(self, ops: Iterable[Op], at: float | None = None) -> list[Op]:
        dropped: list[Op] = []
        for op in ops:
            dropped += self.add(op, at)
        return dropped

    def cancel(self, path: str) -> Op | None:
        """Withdraw the pending import of ``path`` (its file went away); returns it."""
        seq = self._imports.pop(path, None)
        return None if seq is None else self._ops.pop(seq)[0]

    # -- closing ------------------------------------------------------------------------
    def deadline(self) -> float | None:
        """Our clock time at which the next batch closes (None when nothing is pending)."""
        if not self._ops:
            return None
        if len(self._ops) >= self.batch_size:
            return self._hold_until
        first = next(iter(self._ops.values()))[1]
        last = next(reversed(self._ops.values()))[1]
        return max(self._hold_until, min(last + self.max_wait, first + self.max_age))

    def due(self) -> bool:
        deadline = self.deadline()
        return deadline is not None and deadline <= self.clock()

    def take(self) -> list[Op]:
        """The next batch (at most ``batch_size`` operations, oldest first), removed."""
        batch = [op for op, _ in islice(self._ops.values(), self.batch_size)]
        for op in batch:
            del self._ops[op.seq]
            if op.kind == IMPORT:
                self._imports.pop(op.path, None)
        return batch

    def put_back(self, batch: list[Op], retry_at: float) -> None:
        """A batch that failed goes back in front, not to be tried before ``retry_at``."""
        rest = list(self._ops.items())
        self._ops.clear()
        self._imports.clear()
        long_ago = float("-inf")
        for op in batch:
            self._ops[op.seq] = (op, long_ago)
            if op.kind == IMPORT:
                self._imports[op.path] = op.seq
        for seq, (op, at) in rest:  # folded against the batch when they were added
            self._ops[seq] = (op, at)
            if op.kind == IMPORT:
                self._imports.setdefault(op.path, seq)
        self._hold_until = retry_at

    def release_hold(self) -> None:
        self._hold_until = float("-inf")


def phases(batch: Iterable[Op]) -> list[tuple[str, list[Op]]]:
    """How a folded batch is applied: removes and moves in their order (consecutive ones
    of a kind together), then every import. Folding makes this order-equivalent."""
    out: list[tuple[str, list[Op]]] = []
    imports: list[Op] = []
    for op in batch:
        if op.kind == IMPORT:
            imports.append(op)
        elif out and out[-1][0] == op.kind:
            out[-1][1].append(op)
        else:
            out.append((op.kind, [op]))
    if imports:
        out.append((IMPORT, imports))
    return out


class OpList:
    """The operations one pass of the watcher's loop produced, in order, with their
    imports indexed so that a file gone again before it was queued is simply withdrawn."""

    def __init__(self) -> None:
        self.items: list[Op | None] = []
        self.imports: dict[str, int] = {}

    def add(self, op: Op) -> None:
        if op.kind == IMPORT:
            if op.path in self.imports:
                return
            self.imports[op.path] = len(self.items)
        else:  # the same folding as the batcher's
            self.cancel_import(op.path)
            if op.dest is not None:
                self.cancel_import(op.dest)
        self.items.append(op)

    def cancel_import(self, path: str) -> bool:
        index = self.imports.pop(path, None)
        if index is None:
            return False
        self.items[index] = None
        return True

    def ops(self) -> list[Op]:
        return [op for op in self.items if op is not None]
