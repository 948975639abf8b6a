"""Batches of the watcher: N operations, or S seconds after the last, or A after the first;
folding of operations on one path; the order a batch is applied in.

The clock is a plain counter the test advances, so timing rules are checked exactly
and without sleeping.
"""

from __future__ import annotations

import pytest

from lumina_plugin.watch.batcher import IMPORT, MOVE, REMOVE, Batcher, Op, phases


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ops(kind: str, *paths: str, start: int = 1) -> list[Op]:
    return [Op(kind, p, seq=start + i) for i, p in enumerate(paths)]


def test_batch_closes_at_n_files() -> None:
    clock = Clock()
    b = Batcher(batch_size=3, max_wait=5.0, max_age=60.0, clock=clock)
    b.add_all(ops(IMPORT, "a", "b"))
    assert not b.due()
    b.add(Op(IMPORT, "c", seq=3))
    assert b.due()
    assert [o.path for o in b.take()] == ["a", "b", "c"]
    assert len(b) == 0 and b.deadline() is None


def test_batch_closes_s_seconds_after_the_last_new_file() -> None:
    clock = Clock()
    b = Batcher(batch_size=100, max_wait=0.5, max_age=60.0, clock=clock)
    b.add(Op(IMPORT, "a", seq=1))
    clock.now += 0.4
    b.add(Op(IMPORT, "b", seq=2))  # resets the quiet period
    clock.now += 0.4
    assert not b.due()
    assert b.deadline() == pytest.approx(clock.now + 0.1)
    clock.now += 0.1
    assert b.due()


def test_a_steady_trickle_is_cut_at_max_age() -> None:
    clock = Clock()
    b = Batcher(batch_size=100, max_wait=0.5, max_age=1.0, clock=clock)
    for seq in range(1, 5):  # one file every 0.3 s: never 0.5 s quiet
        b.add(Op(IMPORT, f"p{seq}", seq=seq))
        clock.now += 0.3
    assert b.due()  # 1.2 s after the first
    assert len(b.take()) == 4


def test_a_burst_becomes_full_batches() -> None:
    clock = Clock()
    b = Batcher(batch_size=256, max_wait=0.5, max_age=1.0, clock=clock)
    b.add_all(ops(IMPORT, *(f"f{i}" for i in range(10_000))))
    sizes = []
    while b.due():
        sizes.append(len(b.take()))
    assert sizes[:-1] == [256] * (len(sizes) - 1) and sum(sizes) == 256 * 39
    assert len(b) == 10_000 - 256 * 39  # the tail waits for its own deadline
    clock.now += 0.5
    assert b.due() and len(b.take()) == 16


def test_a_repeated_import_is_dropped() -> None:
    b = Batcher(10, 1, 1, clock=Clock())
    assert b.add(Op(IMPORT, "a", seq=1)) == []
    dup = Op(IMPORT, "a", seq=2)
    assert b.add(dup) == [dup]
    assert len(b) == 1


def test_remove_and_move_drop_the_imports_they_make_pointless() -> None:
    b = Batcher(10, 1, 1, clock=Clock())
    a, c = Op(IMPORT, "a", seq=1), Op(IMPORT, "c", seq=2)
    b.add_all([a, c])
    assert b.add(Op(REMOVE, "a", seq=3)) == [a]
    assert b.add(Op(MOVE, "x", "c", seq=4)) == [c]  # c is overwritten by x
    assert [o.kind for o in b.ops()] == [REMOVE, MOVE]
    b.add(Op(IMPORT, "a", seq=5))  # a new file at a: after the remove
    assert [(k, [o.seq for o in group]) for k, group in phases(b.take())] == \
        [(REMOVE, [3]), (MOVE, [4]), (IMPORT, [5])]


def test_cancel_withdraws_a_pending_import() -> None:
    b = Batcher(10, 1, 1, clock=Clock())
    op = Op(IMPORT, "a", seq=1)
    b.add(op)
    assert b.cancel("a") == op and b.cancel("a") is None and len(b) == 0


def test_phases_keep_removes_and_moves_in_order_then_imports() -> None:
    batch = [Op(IMPORT, "i1", seq=1), Op(REMOVE, "r1", seq=2), Op(REMOVE, "r2", seq=3),
             Op(MOVE, "m1", "m2", seq=4), Op(REMOVE, "r3", seq=5), Op(IMPORT, "i2", seq=6)]
    assert [(k, [o.seq for o in g]) for k, g in phases(batch)] == \
        [(REMOVE, [2, 3]), (MOVE, [4]), (REMOVE, [5]), (IMPORT, [1, 6])]


def test_a_failed_batch_goes_back_in_front_and_waits() -> None:
    clock = Clock()
    b = Batcher(2, 0.1, 1.0, clock=clock)
    b.add_all(ops(IMPORT, "a", "b", "c"))
    batch = b.take()
    b.put_back(batch, retry_at=clock.now + 5)
    assert not b.due()
    clock.now += 5
    assert [o.path for o in b.take()] == ["a", "b"]


def test_bad_operations_are_refused() -> None:
    with pytest.raises(ValueError):
        Op("copy", "a")
    with pytest.raises(ValueError):
        Op(MOVE, "a")
    with pytest.raises(ValueError):
        Batcher(0, 1, 1)
