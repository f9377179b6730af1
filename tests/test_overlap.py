"""Reading ahead: same items in order, bounded, errors passed on, clean-up on early stops."""

from __future__ import annotations

import threading
import time

import pytest

from greitpose.overlap import WriteBehind, prefetch


def _source(n: int, log: list[str], fail_at: int | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broken at {i}")
            log.append(f"made {i}")
            yield i
    finally:
        log.append("closed")


def test_items_come_in_order_and_at_most_depth_ahead() -> None:
    log: list[str] = []
    got = []
    for item in prefetch(_source(20, log), depth=3):
        time.sleep(0.01)
        made = sum(entry.startswith("made") for entry in log)
        assert made <= item + 1 + 3 + 1  # the one yielded, the queue, one in hand
        got.append(item)
    assert got == list(range(20)) and log[-1] == "closed"


def test_an_early_stop_closes_the_source_and_ends_the_thread() -> None:
    log: list[str] = []
    before = threading.active_count()
    items = prefetch(_source(10_000, log), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert log[-1] == "closed" and len(log) < 20
    assert threading.active_count() == before


def test_errors_while_reading_reach_the_consumer() -> None:
    log: list[str] = []
    with pytest.raises(ValueError, match="broken at 5"):
        list(prefetch(_source(10, log, fail_at=5)))
    assert log[-1] == "closed"


def test_write_behind_consumes_everything_in_order_in_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    with WriteBehind(lambda i: seen.append((i, threading.current_thread().name)), depth=2) as writer:
        for i in range(50):
            writer.put(i)
    assert [i for i, _ in seen] == list(range(50))  # all of them, by the time the block ends
    assert {name for _, name in seen} == {"greitpose-writer"}


def test_write_behind_errors_reach_the_producer_and_an_error_exit_stops_at_once() -> None:
    def consume(i: int) -> None:
        if i == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with WriteBehind(consume, depth=1) as writer:
            for i in range(1000):
                writer.put(i)
    done: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(lambda i: (time.sleep(0.01), done.append(i)), depth=4) as writer:
            for i in range(100):
                writer.put(i)
            raise KeyboardInterrupt
    assert len(done) < 100  # the backlog is dropped, not written after the interruption
