"""The ``nnstudy`` command's plumbing: the app and its consoles, its help text, its tables, its report
step (``cli.py`` and ``cli_study.py`` are the commands). Imports nothing heavy: ``nnstudy --help`` loads
this module too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from nnstudy import metrics

__all__ = ["DATA_DIR_HELP", "App", "Command", "Group", "app", "console", "data_app", "err_console", "flag_help",
           "frame_table", "print_table", "results_table", "write_report"]


class _Help:
    """Help text as a user reads it: a switch shows no ``<bool>`` type, and a command's usage line
    names its arguments the usual way (``nnstudy run [OPTIONS] STUDY``, not ``{study}``)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False):
                p.display_type_rich = lambda ctx: None
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, typer.core.TyperArgument):
                name = (p.metavar or p.name or "").upper() + ("..." if p.nargs != 1 else "")
                pieces.append(name if p.required else f"[{name}]")
            else:
                pieces.extend(p.get_usage_pieces(ctx))
        return pieces


class Command(_Help, typer.core.TyperCommand):
    pass


class Group(_Help, typer.core.TyperGroup):
    def collect_usage_pieces(self, ctx) -> list[str]:
        return [*([self.options_metavar] if self.options_metavar else []), "COMMAND [ARGS]..."]


class App(typer.Typer):
    """typer.Typer whose commands use ``Command``."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


#: The command and its ``data`` group (``cli.py`` and ``cli_study.py`` register their commands on them),
#: and where they print.
console = Console()
err_console = Console(stderr=True)


app = App(
    name="nnstudy",
    cls=Group,
    help="Neural-network studies on MNIST-family data: train runs, run studies, read their reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = App(cls=Group, help="Datasets: fetch them, see where they are.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DATA_DIR_HELP = "folder with the dataset files (default: $NNSTUDY_DATA, the cache, then download)"


def print_table(console: Console, table: Table) -> None:
    """On a terminal, its width; in a pipe or a file, wide enough not to cut columns."""
    (console if console.is_terminal else Console(width=240)).print(table)


def frame_table(frame, title: str) -> Table:
    """A DataFrame as a rich table: accuracies in %, other floats to 4 significant digits."""
    import math

    table = Table(title=title, title_justify="left")
    for c in frame.columns:
        table.add_column(str(c), justify="right" if frame[c].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(frame.columns, row, strict=True):
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{100 * v:.2f}%" if metrics.is_accuracy(str(c)) else f"{v:.4g}"
            cells.append("" if v is None else str(v))
        table.add_row(*cells)
    return table


def results_table(result) -> Table:
    from nnstudy.analysis.formatting import duration

    table = Table(title=f"run {result.spec.identity()} ({result.status})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    no_validation = not result.spec.data.validation
    for k, v in result.metrics.items():
        if no_validation and k.startswith("val_"):
            shown = "none (no validation split)"  # not a NaN: there was nothing to measure
        else:
            shown = f"{100 * v:.2f}%" if metrics.is_accuracy(k) else f"{v:.4f}"
        table.add_row(k, shown)
    table.add_row("epochs", f"{len(result.history)}" + (" (early stop)" if result.early_stopped else ""))
    table.add_row("parameters", f"{result.params:,}")
    table.add_row("wall time", duration(result.seconds))
    table.add_row("step time", f"{duration(result.train_seconds)} (in optimizer steps)")
    table.add_row("throughput", f"{result.achieved_flops_per_second() / 1e9:.1f} GFLOP/s")
    return table


def flag_help(key: str, help_text: str) -> tuple[str, str]:
    """(metavar, help) of the ``train`` flag for RunSpec ``key``: its type as the field takes it
    (``<int>``, ``<float>``, ``<int|full>``, ``<int,...>``) and its default beside the key, from the
    RunSpec models themselves, so that what --help says is what a run without the flag uses."""
    import typing

    from pydantic import BaseModel

    from nnstudy.spec import DEFAULT_LR, CNNSpec, LinearSpec, MLPSpec, RunSpec, VGG11Spec

    if key == "optimizer.lr":
        per = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        return "<float>", f"{help_text} ({key}; default per optimizer: {per})"
    head, _, rest = key.partition(".")
    owner: Any = RunSpec
    note = ""
    if head == "model":
        owner = next(m for m in (MLPSpec, CNNSpec, VGG11Spec, LinearSpec) if rest in m.model_fields)
        note = "" if owner is MLPSpec else f" for {owner.model_fields['kind'].default}"
    elif rest:
        owner = next(m for m in _models(RunSpec.model_fields[head].annotation))
    field = owner.model_fields[rest or head]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        default = None
    shown = "" if default is None else f"; default {_flag_text(default)}{note}"
    return f"<{_type_text(field.annotation, typing)}>", f"{help_text} ({key}{shown})"


def _models(annotation: Any) -> list[Any]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def _type_text(annotation: Any, typing: Any) -> str:
    """``int``, ``float``, ``int|full``, ``int,...`` for a field's annotation (Annotated and None dropped)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0], typing)
    if origin is typing.Literal:  # the help text lists the choices
        return "text"
    if origin in (list, tuple):
        return _type_text(args[0], typing) + ",..."
    if args:  # a union: a literal beside a number is shown as itself (``int|full``)
        parts = [("|".join(map(str, typing.get_args(a))) if typing.get_origin(a) is typing.Literal else
                  _type_text(a, typing)) for a in args if a is not type(None)]
        return "|".join(dict.fromkeys(parts))
    names = {bool: "bool", int: "int", float: "float", str: "text"}
    return names.get(annotation, getattr(annotation, "__name__", "value"))


def _flag_text(value: Any) -> str:
    """A default as the flag is typed: ``0.01``, ``50,50``, ``true``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(_flag_text, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_report(console: Console, study: Any, folder: Path | None, *, data_dir: Path | None, force: bool,
                 quiet: bool = False) -> tuple[Any, Path]:
    """Compute and write ``study``'s report, each step shown on ``console`` (stderr: stdout keeps the
    command's results) while it runs (``nnstudy.progress.stage``): statistics and findings, figures,
    files. Returns (the StudyReport, the path of report.html)."""
    from nnstudy.progress import stage
    from nnstudy.report import StudyReport

    with stage(console, "report: computing its statistics and findings", quiet):
        report = StudyReport(study, data_dir=data_dir)
    with stage(console, "report: drawing its figures", quiet):
        report.figures  # noqa: B018 (drawn on first use)
    with stage(console, "report: writing report.html, report.md and figures/", quiet):
        path = report.write(folder, force=force)
    return report, path
