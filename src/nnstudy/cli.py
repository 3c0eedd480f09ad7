"""The ``nnstudy`` command. Thin: parses, calls the library, prints.

Every user mistake surfaces as an ``NnstudyError`` and leaves as one line on stderr with exit
code 2; so does a usage error (an unknown option, a missing argument: ``main``). Anything else is
our bug and keeps its traceback.

``train`` and ``summary`` take their run flags from one table, ``nnstudy.flags.SHORTCUTS``, which the
Python API (``nnstudy.train(lr=0.1)``) reads too: a new RunSpec field gets a flag by adding a row.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from nnstudy._cli import DATA_DIR_HELP, app, console, data_app, err_console, flag_help, print_table, results_table
from nnstudy.errors import NnstudyError
from nnstudy.flags import SHORTCUTS
from nnstudy.spec import RunSpec, make_run_spec, parse_override

# Start-up: nothing above imports torch, pandas, optuna or matplotlib (tests/test_startup.py); each
# command imports what it needs, so that --help answers at once (benchmarks/startup.py).

def _print_version(value: bool) -> None:
    if value:
        from nnstudy import __version__

        console.print(f"nnstudy {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print nnstudy's version and exit"),
) -> None:
    """Options of ``nnstudy`` itself (the group's help text is the app's)."""


#: Shortcuts that are switches (``--test`` / ``--no-test``) rather than values.
SWITCHES = {"batchnorm", "nesterov", "test", "test_curve", "save_weights", "save_predictions"}
SET_HELP = "set any RunSpec key, e.g. --set optimizer.beta2=0.99 (repeatable)"
CONFIG_HELP = "a run config: TOML whose top-level keys are RunSpec fields"


def parse_value(text: str) -> Any:
    """A flag's text as a value: TOML scalars, and comma-separated lists (``50,50`` → [50, 50])."""
    if "," in text:
        return [parse_override(f"v={part}")[1] for part in text.split(",") if part.strip()]
    return parse_override(f"v={text}")[1]


def with_shortcuts(names: list[str]):
    """Give a command one ``--flag`` per shortcut name (each defaults to None: unset), by extending
    its signature, which is what typer reads. The command receives them in ``**flags``."""

    def wrap(f):
        sig = inspect.signature(f)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extra = []
        for name in names:
            key, help_text = SHORTCUTS[name]
            flag = "--" + name.replace("_", "-")
            decls = [f"{flag}/--no-{flag[2:]}"] if name in SWITCHES else [flag]
            metavar, text = flag_help(key, help_text)
            option = typer.Option(None, *decls, help=text, rich_help_panel="Run",
                                  **({} if name in SWITCHES else {"metavar": metavar}))
            annotation = Optional[bool] if name in SWITCHES else Optional[str]  # noqa: UP045 (typer reads it)
            extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                           annotation=annotation))
        f.__signature__ = sig.replace(parameters=own + extra)
        return f

    return wrap


def spec_from_flags(config: Path | None, sets: list[str] | None, flags: dict[str, Any]) -> RunSpec:
    """The RunSpec a command's flags describe: config file, then short flags, then ``--set``."""
    shortcuts = {k: (v if k in SWITCHES or v is None else parse_value(v)) for k, v in flags.items()}
    overrides = dict(parse_override(s) for s in sets or [])
    source = str(config) if config else "arguments"
    return make_run_spec(config, shortcuts, overrides, source=source)


# ------------------------------------------------------------------------------------------ train

MODEL_SHORTCUTS = [k for k, (key, _) in SHORTCUTS.items() if key.startswith("model.")]


@app.command("train")
@with_shortcuts(list(SHORTCUTS))
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),  # noqa: UP045
    sets: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),  # noqa: UP045
    out: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--out", file_okay=False, help="run folder to write (default: runs/train/<run id>)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),  # noqa: UP045
    quiet: bool = typer.Option(False, "--quiet", help="no per-epoch lines or progress bar"),
    **flags: Any,
):
    """Train one model and write its run folder (spec, per-epoch CSV, summary.json, figures).

    Example: nnstudy train --model mlp --hidden 300 --optimizer adam --lr 1e-3 --batch-size 64
    --epochs 10 --test --out runs/mlp300
    """
    from nnstudy._paths import check_folder

    spec = spec_from_flags(config, sets, flags)  # a mistake in the flags: said before torch is imported
    out = out or Path("runs") / "train" / spec.identity()
    check_folder(out, "--out")  # a file there, or no permission: said now, not after training
    from nnstudy.data.sources import locate

    locate(spec.data.dataset, str(data_dir) if data_dir else None)  # missing data: said before torch loads
    from nnstudy.data import load
    from nnstudy.errors import path_errors
    from nnstudy.progress import TrainProgress
    from nnstudy.report.run import write_run_folder
    from nnstudy.train import train

    data = load(spec.data, data_dir=str(data_dir) if data_dir else None)  # fails before anything is written
    with TrainProgress(spec, quiet=quiet, console=console) as progress:
        result = train(spec, data, callback=progress.chain())
    with path_errors(out):
        write_run_folder(result, data, out)
    console.print(results_table(result))
    if result.diverged:
        console.print(f"[bold red]diverged[/] at epoch {len(result.history)} (loss above {spec.max_loss:g} or NaN)")
    console.print(f"run folder: {out}")


# ---------------------------------------------------------------------------------------- summary


@app.command("summary")
@with_shortcuts(MODEL_SHORTCUTS)
def summary_command(
    config: Optional[Path] = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),  # noqa: UP045
    sets: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),  # noqa: UP045
    **flags: Any,
):
    """Print a model's layers, output shapes and parameter counts (Keras-like), and its FLOPs.

    Example: nnstudy summary --model mlp --hidden 300
    """
    spec = spec_from_flags(config, sets, flags)  # a mistake in the flags: said before torch is imported
    from nnstudy.models import summary

    s = summary(spec.model)
    console.print(s.to_rich())


# ------------------------------------------------------------------------------------------- data


@data_app.command("fetch")
def data_fetch(
    dataset: str = typer.Argument("mnist", help="mnist, fashion-mnist or kmnist"),
    data_dir: Path = typer.Option(None, "--data-dir", help="put the files here instead of the cache"),
):
    """Find or download a dataset's four files and verify their checksums."""
    from nnstudy.data import fetch

    paths = fetch(dataset, data_dir=str(data_dir) if data_dir else None)
    for name, path in paths.items():
        console.print(f"{name:>13}: {path}")


@data_app.command("info")
def data_info(data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP)):
    """Where each dataset's files are found (without downloading)."""
    from nnstudy.data import info

    table = Table(title="datasets")
    rows = info(data_dir=str(data_dir) if data_dir else None)
    columns = list(rows[0]) if rows else []
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


# ---------------------------------------------------------------------------------------- studies
# nnstudy run / status / results: thin wrappers over nnstudy.study (load_study, run_study, open_study).

# ---------------------------------------------------------------------------------------- budgets
# nnstudy params / budget: a model's cost, and MLP widths for a parameter budget (docs/budgets.md).


@app.command("params")
@with_shortcuts(MODEL_SHORTCUTS)
def params_command(
    config: Optional[Path] = typer.Option(None, "--config", dir_okay=False, help=CONFIG_HELP),  # noqa: UP045
    sets: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),  # noqa: UP045
    **flags: Any,
):
    """Print a model's exact parameter count and its forward and training FLOPs per sample.

    Example: nnstudy params --model mlp --hidden 50,50,50
    """
    from nnstudy.models import format_shape, summary

    spec = spec_from_flags(config, sets, flags)
    s = summary(spec.model)
    console.print(f"{s.kind}, input {format_shape(s.input_shape)}, {s.num_classes} classes", highlight=False)
    table = Table()
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("parameters", f"{s.total_params:,}")
    table.add_row("forward FLOPs per sample", f"{s.forward_flops:,}")
    table.add_row("training FLOPs per sample", f"{s.train_flops:,}")
    console.print(table)


@app.command("budget")
def budget_command(
    params: int = typer.Option(..., "--params", help="the parameter budget P, e.g. 50000"),
    depth: str = typer.Option("1..10", "--depth", help="hidden layers k: N or A..B"),
    shape: str = typer.Option("uniform", "--shape", help="uniform, decreasing, increasing, bottleneck or diamond"),
    ratio: float = typer.Option(0.5, "--ratio", help="width of a layer over its wider neighbour's (not uniform)"),
    inputs: int = typer.Option(784, "--inputs", help="input features (784 for 28×28 images)"),
    classes: int = typer.Option(10, "--classes", help="output classes"),
    batchnorm: bool = typer.Option(False, "--batchnorm/--no-batchnorm", help="batch norm after each hidden layer"),
):
    """Print, per depth k, the MLP widths whose exact parameter count is nearest P (m_P(k) for uniform).

    Example: nnstudy budget --params 50000 --depth 1..6
    """
    from nnstudy.models import budget_table, depth_range, parse_depths

    frame = budget_table(params, parse_depths(depth), shape, ratio, inputs, classes, batchnorm)
    span = depth_range(params, inputs, classes, batchnorm)
    bn = ", batch norm" if batchnorm else ""
    ratio_text = "" if shape == "uniform" else f", ratio {ratio:g}"
    console.print(f"{shape} MLPs {inputs} → … → {classes}{bn}{ratio_text}, P = {params:,}", highlight=False)
    table = Table()
    table.add_column("k", justify="right")
    table.add_column("m_P(k)" if shape == "uniform" else "widths", justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("error", justify="right")
    notes = frame["note"].astype(bool).any()
    if notes:
        table.add_column("note")
    for row in frame.itertuples(index=False):
        widths = str(row.widths[0]) if shape == "uniform" else ", ".join(map(str, row.widths))
        cells = [str(row.depth), widths, f"{row.params:,}", f"{100 * row.error:+.2f}%"]
        table.add_row(*cells, *([row.note] if notes else []))
    print_table(console, table)
    console.print(f"depths 1 .. {span.k_max:,} fit P; {span.note}", highlight=False, soft_wrap=True)


# The study commands (run, worker, status, results, report) live in cli_study.py; importing it
# registers them on ``app``.
from nnstudy import cli_study  # noqa: E402, F401

#: The order ``nnstudy --help`` lists the commands in: one run, a study, a model's cost, the report.
ORDER = ("train", "summary", "run", "worker", "status", "results", "params", "budget", "report")
app.registered_commands.sort(key=lambda c: ORDER.index(c.name))


# ------------------------------------------------------------------------------------------- main


#: Click's usage error (an unknown option or command, a missing argument, a bad value), found from a
#: class typer exports: typer vendors click from 0.2x on and imported it before.
_USAGE_ERROR, _CLICK_ERROR = (next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
                               for name in ("UsageError", "ClickException"))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A user's mistake → one line, exit 2: ``NnstudyError``, and a
    usage error (``error: nnstudy report: No such option: --quiet ...; see nnstudy report -h``, not
    click's usage block and box); anything else is our bug and keeps its traceback. A command or group
    typed without what it needs still prints its help (exit 2, as before)."""
    try:
        code = app(args=argv, prog_name="nnstudy", standalone_mode=False)  # typer.Exit(n), Ctrl-C: n, 130
    except NnstudyError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except _USAGE_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `nnstudy`, `nnstudy data`: typer has printed the help
            sys.exit(e.exit_code)
        path = e.ctx.command_path if e.ctx is not None else "nnstudy"
        message = " ".join(e.format_message().split()).rstrip(".")  # one line, whatever click wrapped
        err_console.print(f"error: {path}: {message}; see {path} -h", markup=False, highlight=False,
                          soft_wrap=True)
        sys.exit(e.exit_code)
    except _CLICK_ERROR as e:  # click's other errors (a file it could not open): its message, one line
        err_console.print(f"error: {' '.join(e.format_message().split())}", markup=False, highlight=False,
                          soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:  # end of input at a prompt
        err_console.print("error: aborted", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)  # as typer's standalone mode: always SystemExit


if __name__ == "__main__":  # pragma: no cover
    main()
