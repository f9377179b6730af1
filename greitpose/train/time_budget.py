"""Training to a wall-clock budget (`train --minutes M`): the learning-rate schedule is fitted
to the steps that fit in the time, as measured while the run goes, so that a run given a fixed
slot of machine time (a lent GPU, a working session) still ends its cosine decay, instead of
being stopped part-way at a high learning rate or finishing early."""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeBudget:
    """Steps that fit in `minutes` from the budget's start, at the rate measured since the
    first `settle` steps (start-up, loader spin-up and kernel tuning are slower than the rest)."""

    def __init__(self, minutes: float, settle: int = 20, clock: Callable[[], float] | None = None) -> None:
        self.seconds, self.settle, self.clock = minutes * 60.0, settle, clock or time.monotonic
        self.started = self.clock()
        self.first_step: int | None = None
        self.mark: tuple[int, float] | None = None  # (step, time) the rate is measured from

    def total_steps(self, step: int, planned: int) -> int:
        """The step the schedule should end at, seen at `step`: `planned` (the epochs' steps)
        until the rate is known, then the steps the rest of the budget holds, at most `planned`."""
        now = self.clock()
        if self.first_step is None:
            self.first_step = step
        if self.mark is None:
            if step - self.first_step >= self.settle:
                self.mark = (step, now)
            return planned
        done, elapsed = step - self.mark[0], now - self.mark[1]
        if done <= 0 or elapsed <= 0:
            return planned
        left = max(0.0, self.seconds - (now - self.started))
        return min(planned, step + int(left * done / elapsed))

    def expired(self) -> bool:
        return self.clock() - self.started >= self.seconds
