"""Progress on stderr: a bar with count, rate and ETA on a terminal; nothing at all when stderr is
piped or redirected (warnings and failures are still printed, one line each)."""

from __future__ import annotations

import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from searcher.cli.common import err


class ProgressReporter:
    """Reporter for ingest and dups (start/advance/warn/failed), used as a context manager.

    Units are images (a video counts its sampled frames). `elapsed` and `done` feed the summary.
    """

    def __init__(self, unit: str = "images"):
        self.unit = unit
        self.progress = None
        if err.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
        self.task = None
        self.done = 0
        self.began = time.monotonic()

    def __enter__(self) -> ProgressReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def start(self, total: int, description: str = "extracting") -> None:
        self.done = 0
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(description, total=max(total, 1) if total else None, rate="")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None and self.task is not None:
            task = self.progress.tasks[-1]
            if task.total is not None and self.done > task.total:  # a video gave more frames than estimated
                self.progress.update(self.task, total=self.done)
            speed = task.speed
            self.progress.update(self.task, completed=self.done, rate=f"{speed:.1f} {self.unit}/s" if speed else "")

    def _print(self, line: str) -> None:
        (self.progress.console if self.progress is not None else err).print(line, markup=False, highlight=False)

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")

    def failed(self, path: str, reason: str) -> None:
        self._print(f"failed: {path}: {reason}")


def rate_text(count: int, seconds: float, unit: str = "images") -> str:
    """'12.3 s, 4.5 images/s' for a summary line ('0.4 s' when nothing was read)."""
    if count == 0:
        return f"{seconds:.1f} s"
    rate = count / seconds if seconds > 0 else 0.0
    return f"{seconds:.1f} s, {rate:.1f} {unit}/s"
