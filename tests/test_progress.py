"""Progress off a terminal: a long job logs where it stands, sparsely, instead of staying silent."""

import io

from rich.console import Console

from greitpose.progress import LogProgress, progress_bar


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def test_a_job_off_a_terminal_says_where_it_stands_once_a_minute():
    console, buffer = _console()
    now = [0.0]
    with LogProgress(console, every=60, get_time=lambda: now[0]) as progress:
        task = progress.add_task("teacher", total=100, info="")
        for i in range(100):
            now[0] += 2.0
            progress.update(task, advance=1, info=f"{i + 1} people")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3  # at 60, 120 and 180 s of a 200 s job
    assert lines[0] == "teacher: 30/100 (30.0%), 1:00 elapsed, about 2:20 left, 30 people"
    assert lines[2].startswith("teacher: 90/100 (90.0%), 3:00 elapsed, about 0:20 left")


def test_a_short_job_off_a_terminal_prints_nothing():
    console, buffer = _console()
    with progress_bar(console) as progress:
        task = progress.add_task("eval", total=5, info="")
        for _ in range(5):
            progress.advance(task)
    assert isinstance(progress, LogProgress) and buffer.getvalue() == ""


def test_a_disabled_bar_stays_quiet_and_a_terminal_gets_the_drawn_bar():
    console, _ = _console()
    assert not isinstance(progress_bar(console, enabled=False), LogProgress)
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not isinstance(progress_bar(terminal), LogProgress)
