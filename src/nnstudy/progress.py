"""Progress for work that takes a while: one run's training, a report being written.

``TrainProgress`` is what ``nnstudy train`` and ``nnstudy.train()`` show: a bar over all steps of the
run (with its ETA) and one line per finished epoch. It is rich's progress display, which draws in a
terminal and, in Jupyter, as a live notebook output (through ipywidgets, where installed: ``pip
install ipywidgets``; without them rich prints the lines alone). ``quiet=True`` shows nothing.

``stage(console, text)`` shows a spinner with the elapsed time while a step without steps of its own
runs (computing a report's statistics, drawing its figures), on a terminal or in Jupyter; where the
output is a pipe or a file it shows nothing (a command's output there is its results alone, and an
error its one line).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TrainProgress", "stage"]

Callback = Callable[[str, dict[str, Any]], None]


class TrainProgress:
    """Progress of one run. Use as a context manager and pass ``chain(callback)`` as the trainer's
    callback: it updates the display and then calls ``callback`` (the user's own), if any."""

    def __init__(self, spec: Any, *, quiet: bool = False, console: Any = None):
        self.spec, self.quiet = spec, quiet
        self.console = console
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> TrainProgress:
        if not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.console = self.console or Console()
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("steps"), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
            self.progress = None

    def chain(self, callback: Callback | None = None) -> Callback:
        """The trainer's callback: this display first, then ``callback``."""
        if callback is None:
            return self.callback

        def both(event: str, info: dict[str, Any]) -> None:
            self.callback(event, info)
            callback(event, info)

        return both

    def callback(self, event: str, info: dict[str, Any]) -> None:
        """``("step", {epoch, step, steps})`` moves the bar; ``("epoch", row)`` prints the epoch's line."""
        if self.progress is None:
            return
        epochs = self.spec.epochs
        if event == "step":
            if self.task is None:
                self.task = self.progress.add_task("training", total=info["steps"] * epochs)
            done = (info["epoch"] - 1) * info["steps"] + info["step"]
            self.progress.update(self.task, completed=done, description=f"epoch {info['epoch']}/{epochs}")
        elif event == "epoch":
            r = info
            val = "" if r["val_loss"] != r["val_loss"] else f"  val {r['val_loss']:.4f} {100 * r['val_accuracy']:.2f}%"
            self.progress.console.print(
                f"epoch {r['epoch']}/{epochs}  train {r['train_loss']:.4f} {100 * r['train_accuracy']:.2f}%"
                f"{val}  lr {r['lr']:.3g}  {r['seconds']:.1f}s", soft_wrap=True, highlight=False, markup=False,
            )


@contextlib.contextmanager
def stage(console: Any, text: str, quiet: bool = False) -> Iterator[None]:
    """A spinner with elapsed time on a terminal (or in Jupyter) while the body runs; nothing elsewhere."""
    if quiet or not (console.is_terminal or console.is_jupyter):
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        progress.add_task(text, total=None)
        yield
