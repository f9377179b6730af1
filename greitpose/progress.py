"""One progress bar style for every long job: label, bar, count, a free text field, time left.
Shown only on a terminal, so logs and pipes stay clean."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """Use as `with progress_bar(c) as p: task = p.add_task(label, total=n, info="")`."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                    disable=not (enabled and console.is_terminal))
