"""One progress bar style for every long job: label, bar, count, a free text field, time left.
The bar is drawn only on a terminal; off one (nohup, CI, a pipe) a job says where it stands in
one plain line at most once a minute, so logs stay short and a long run is not silent."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

LOG_EVERY_S = 60.0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_line(task: Task, elapsed: float) -> str:
    """`label: 4,100/12,947 (31.7%), 12:40 elapsed, about 27:10 left, info`: the time left from
    the job's mean rate so far, steadier than a recent-window speed between sparse lines."""
    done, total = task.completed, task.total
    parts = [f"{int(done):,}/{int(total):,} ({100 * done / total:.1f}%)" if total else f"{int(done):,}",
             f"{_clock(elapsed)} elapsed"]
    if total and done > 0:
        parts.append(f"about {_clock(elapsed * (total - done) / done)} left")
    info = str(task.fields.get("info", "")).strip()
    return f"{task.description}: " + ", ".join(parts + ([info] if info else []))


class LogProgress(Progress):
    """A Progress that draws nothing and prints `status_line` for a started task whenever
    `every` seconds have passed since its last line (or its start)."""

    def __init__(self, console: Console, every: float = LOG_EVERY_S,
                 get_time: Callable[[], float] | None = None) -> None:
        super().__init__(console=console, disable=True, get_time=get_time)
        self.every = every
        self._last: dict[TaskID, float] = {}

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._report(task_id)

    def _report(self, task_id: TaskID) -> None:
        task, now = self._tasks[task_id], self.get_time()
        if task.start_time is None or now - self._last.get(task_id, task.start_time) < self.every:
            return
        self._last[task_id] = now
        self.console.print(status_line(task, now - task.start_time), highlight=False, markup=False, soft_wrap=True)


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """Use as `with progress_bar(c) as p: task = p.add_task(label, total=n, info="")`."""
    if enabled and not console.is_terminal:
        return LogProgress(console)
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, disable=not enabled)
