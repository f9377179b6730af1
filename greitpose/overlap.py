"""Stages of a video job that overlap in background threads: reading (and detecting) ahead,
writing behind. OpenCV, ONNX Runtime and PyTorch release the GIL while they work, so the next
frames decode and the last ones are drawn and encoded while the current ones go through the
networks. Queues are bounded (`depth` items), so memory stays flat on long videos."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

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


class WriteBehind(Generic[T]):
    """`consume` applied to every item put, in order, in a background thread (or at once when
    `threaded` is False, e.g. for windows that must be drawn by the main thread). Used as a
    context manager: a normal exit waits for every item to be consumed; an exit by an error
    stops at once. An error while consuming is raised by the next `put` or by the exit."""

    def __init__(self, consume: Callable[[T], None], depth: int = 8, threaded: bool = True) -> None:
        self.consume = consume
        self.failure: list[BaseException] = []
        self.stop = threading.Event()
        self.buffer: queue.Queue = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="greitpose-writer", daemon=True) if threaded else None

    def _run(self) -> None:
        while (item := self.buffer.get()) is not _END:
            if self.stop.is_set():
                continue  # drain without work, so a blocked put returns
            try:
                self.consume(item)
            except BaseException as err:  # handed over to the producing thread
                self.failure.append(err)
                self.stop.set()

    def _raise(self) -> None:
        if self.failure:
            raise self.failure[0]

    def put(self, item: T) -> None:
        self._raise()
        if self.thread is None:
            self.consume(item)
            return
        while True:
            try:
                self.buffer.put(item, timeout=0.05)
                return
            except queue.Full:
                self._raise()

    def __enter__(self) -> WriteBehind[T]:
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.thread is None:
            return
        if kind is not None:
            self.stop.set()
        self.buffer.put(_END)  # the thread drains everything before it, so this never blocks long
        self.thread.join()
        if kind is None:
            self._raise()
