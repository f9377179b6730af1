"""Reading ahead in a background thread: the next frames decode while the current ones go
through the networks (OpenCV releases the GIL while it decodes), never more than `depth`
frames ahead, so memory stays flat on long videos."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield `items` in order, produced by a background thread. Stopping early (break, an
    error, an interruption) stops the thread and closes the source, so its own clean-up
    (releasing a capture) runs; an error raised while producing is raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
        except BaseException as err:  # handed over to the consuming thread
            failure.append(err)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            put(_END)

    thread = threading.Thread(target=produce, name="greitpose-reader", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _END:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join(timeout=10)
