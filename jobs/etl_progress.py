"""A rich progress bar for ``xp jobs run etl`` on stderr, shown only once a run takes a few seconds."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["DelayedProgress"]


class DelayedProgress:
    """A :data:`jobs.etl.ProgressCallback` that starts a rich progress bar on ``stream`` (stderr) after
    ``delay_seconds``; short runs print nothing. Use as a context manager so the bar is stopped."""

    def __init__(self, description: str, *, delay_seconds: float = 2.0, stream: TextIO | None = None) -> None:
        self.description = description
        self.delay_seconds = delay_seconds
        self.stream = stream or sys.stderr
        self._started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if self._progress is None:
            if time.monotonic() - self._started < self.delay_seconds:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[label]}"),
                console=Console(file=self.stream),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total, label="")
        self._progress.update(self._task, completed=done, total=total, label=label)

    def __enter__(self) -> DelayedProgress:
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()
