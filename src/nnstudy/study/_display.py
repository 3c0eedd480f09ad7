"""What a runner shows while it works: a progress bar on a terminal, one line per finished run otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from nnstudy.study.design import PlannedRun
from nnstudy.study.store import Record

__all__ = ["Display"]


class Display:
    """A rich progress bar (runs done / total, ETA, the run and epoch in progress) on a terminal;
    one line per finished run otherwise (or with ``lines``); nothing with ``quiet``."""

    def __init__(self, console: Console, quiet: bool, metric: str, total: int, done: int, lines: bool = False):
        self.console, self.quiet, self.metric, self.total, self.done = console, quiet, metric, total, done
        self.lines = lines
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> Display:
        if self.done and not self.quiet:  # a resumed study says so before its first new run
            self.console.print(f"resuming: {self.done} of {self.total} runs already stored, "
                               f"{max(0, self.total - self.done)} to train", highlight=False, soft_wrap=True)
        if self.console.is_terminal and not self.quiet and not self.lines:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.description}"), console=self.console, transient=True)
            self.progress.__enter__()
            self.task = self.progress.add_task("", total=self.total, completed=self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def epoch(self, run: PlannedRun, info: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{_describe(run)}, epoch {info['epoch']}/{info['epochs']}")

    def finished(self, run: PlannedRun, rec: Record, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=max(total, done))
            return
        if self.quiet:
            return
        value = rec.metrics.get(self.metric)
        shown = "" if value is None else f" {self.metric} {value:.4f}"
        error = f": {rec.error}" if rec.error else ""
        self.console.print(f"[{done}/{total}] {_describe(run)}: {rec.status}{shown}{error} ({rec.seconds:.1f} s)",
                           markup=False, highlight=False, soft_wrap=True)


    def note(self, run: PlannedRun, text: str) -> None:
        """A line about a run that is not its result (a retry, a result another worker stored)."""
        if not self.quiet:
            console = self.progress.console if self.progress is not None else self.console
            console.print(f"{_describe(run)}: {text}", markup=False, highlight=False, soft_wrap=True, style="yellow")


def _describe(run: PlannedRun) -> str:
    what = f"trial {run.slot}" if run.phase == "tune" else f"{run.phase} seed {run.spec.seed}"
    return f"{run.arm.name}: {what}"
