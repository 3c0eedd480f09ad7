"""The ``nnstudy`` command. Thin: parses, calls the library, prints.

Every user mistake surfaces as an ``NnstudyError`` and leaves as one line on stderr with exit
code 2 (typer's own usage errors also exit 2). Anything else is our bug and keeps its traceback.

``train`` and ``summary`` take their run flags from one table, ``nnstudy.flags.SHORTCUTS``, which the
Python API (``nnstudy.train(lr=0.1)``) reads too: a new RunSpec field gets a flag by adding a row.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from nnstudy._cli import App, Group, flag_help, frame_table, print_table, results_table, write_report
from nnstudy.errors import NnstudyError
from nnstudy.flags import SHORTCUTS
from nnstudy.spec import RunSpec, make_run_spec, parse_override

# Start-up: nothing above imports torch, pandas, optuna or matplotlib (tests/test_startup.py); each
# command imports what it needs, so that --help answers at once (benchmarks/startup.py).

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
DATA_DIR_HELP = "folder with the dataset files (default: $NNSTUDY_DATA, the cache, then download)"
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
    from nnstudy.data import load
    from nnstudy.errors import path_errors
    from nnstudy.progress import TrainProgress
    from nnstudy.report.run import write_run_folder
    from nnstudy.train import train

    spec = spec_from_flags(config, sets, flags)
    out = out or Path("runs") / "train" / spec.identity()
    check_folder(out, "--out")  # a file there, or no permission: said now, not after training
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
    from nnstudy.models import summary

    spec = spec_from_flags(config, sets, flags)
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

FORCE_HELP = "replace a report.html, report.md or figure of the same name that the report did not write"
STORAGE_HELP = "an Optuna storage URL, e.g. postgresql://user@host/db (default: STUDY_DIR/study.db)"


@app.command("run")
def study_run(
    studies: list[Path] = typer.Argument(..., help="the study file (TOML), see docs/studies.md; several run in turn"),
    folder: Optional[Path] = typer.Option(None, "--dir", help="study folder (default: runs/<name>)"),  # noqa: UP045
    workers: Optional[int] = typer.Option(  # noqa: UP045
        None, "--workers", help="processes training at once (default: cores / study.threads; 1 on a GPU)"),
    sets: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--set", metavar="KEY=VALUE", help="override a study key, e.g. --set base.epochs=2 (repeatable)"),
    storage: Optional[str] = typer.Option(None, "--storage", help=STORAGE_HELP),  # noqa: UP045
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),  # noqa: UP045
    quiet: bool = typer.Option(False, "--quiet", help="no progress display; only the results table"),
    report: bool = typer.Option(True, "--report/--no-report", help="write report.html, report.md and figures/"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run again the runs stored as failed"),
):
    """Run a study, or resume it: only runs not yet in its store are trained. Prints one row per arm.
    Several study files run one after the other (each validated before any trains), with one summary
    line per study at the end.

    With --storage postgresql://..., the same command on several machines shares the study: each
    trains the runs it claims (see docs/distributed.md).

    Example: nnstudy run studies/quickstart.toml --workers 2; nnstudy run studies/notebooks/*.toml
    """
    from nnstudy.errors import SpecError
    from nnstudy.study import load_study

    overrides = [parse_override(s) for s in sets or []]
    specs = [load_study(s, overrides) for s in studies]
    if folder is not None and len(specs) > 1:
        raise SpecError(f"--dir {folder}: names one study's folder; {len(specs)} study files each go to runs/<name>")
    names = [s.name for s in specs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise SpecError(f"study.name = {twice!r}: in two of the study files; each study needs its own folder")
    folders = [folder if folder is not None else Path("runs") / s.name for s in specs]
    if report:  # a user's file in the report's way is refused now, not after the study has trained
        from nnstudy.report import check_report_folder

        for f in folders:
            check_report_folder(f, force=force)
    pairs = zip(specs, folders, strict=True)
    lines = [_run_one(spec, f, workers, storage, data_dir, quiet, report, force, retry_failed) for spec, f in pairs]
    if len(lines) > 1:
        console.print(f"\n{len(lines)} studies:", highlight=False)
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def _run_one(spec: Any, folder: Path, workers: int | None, storage: str | None, data_dir: Path | None,
             quiet: bool, report: bool, force: bool, retry_failed: bool = False) -> str:
    """Run one study as ``nnstudy run`` does; returns its summary line."""
    from nnstudy.study import Study, run_study

    try:
        summary = run_study(spec, folder, workers=workers, storage=storage, data_dir=data_dir,
                            console=console, quiet=quiet, retry_failed=retry_failed)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    from nnstudy.analysis.formatting import duration

    handle = Study(spec, summary.folder, storage)
    print_table(console, frame_table(handle.summary(), f"{spec.name}: {spec.study.question}".rstrip(": ")))
    times = handle.times()  # the report's definitions: compute = sum of the runs' wall times
    line = (f"{summary.done} of {summary.total} runs stored in {summary.folder} "
            f"({summary.trained} trained now, {summary.failed} failed); compute {duration(times['compute'])} "
            f"(sum of the runs' wall times), wall time {duration(times['wall'])} (first run's start to last run's end)")
    console.print(line, highlight=False, soft_wrap=True)
    if report:
        written, path = write_report(err_console, handle, None, data_dir=data_dir, force=force, quiet=quiet)
        for note in written.write_notes:
            console.print(note, markup=False, highlight=False, soft_wrap=True)
        console.print(f"report: {path}", highlight=False, soft_wrap=True)
    if summary.stopped:
        hint = "raise it (--set study.max_runs=N) and rerun" if "max_runs" in summary.stopped else "rerun"
        console.print(f"stopped by budget ({summary.stopped}): {hint} to continue", style="yellow", soft_wrap=True)
    stopped = f", stopped by budget ({summary.stopped})" if summary.stopped else ""
    return (f"{spec.name}: {summary.done} of {summary.total} runs stored ({summary.trained} trained now, "
            f"{summary.failed} failed; compute {duration(times['compute'])}){stopped} in {summary.folder}")


@app.command("worker")
def study_worker(
    storage: str = typer.Option(..., "--storage", help="the study's store, e.g. postgresql://user@host/db"),
    name: str = typer.Option(..., "--study", help="the study's name, as in its study file"),
    folder: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--dir", help="where final runs' weights go (default: runs/<name>)"),
    workers: Optional[int] = typer.Option(  # noqa: UP045
        None, "--workers", help="processes training at once (default: cores / study.threads; 1 on a GPU)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),  # noqa: UP045
):
    """Join a study in a shared store from any machine and train its runs until it is done.

    The study file is read from the store. Prints one line per finished run.
    Example: nnstudy worker --storage postgresql://me@db-host/studies --study batch-size --workers 4
    """
    from nnstudy.study import run_study, stored_study

    spec = stored_study(storage, name)
    try:
        summary = run_study(spec, folder, workers=workers, storage=storage, data_dir=data_dir, console=console,
                            lines=True)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    console.print(f"{summary.done} of {summary.total} runs stored ({summary.trained} trained by this worker, "
                  f"{summary.failed} failed; {summary.seconds:.1f} s, {summary.store_seconds:.2f} s of it in the "
                  f"store, {summary.claims_seconds:.2f} s of that for claims)", highlight=False, soft_wrap=True)


@app.command("status")
def study_status(
    study: Optional[Path] = typer.Argument(None, help="a study folder, or its study file"),  # noqa: UP045
    storage: Optional[str] = typer.Option(None, "--storage", help=STORAGE_HELP),  # noqa: UP045
    name: Optional[str] = typer.Option(None, "--study", help="with --storage and no folder: the study's name"),  # noqa: UP045
):
    """Runs per arm and phase (planned, complete, diverged, pruned, failed, still to run), the workers
    on the study (host, pid, last beat, runs in flight), runs per minute and the time left."""
    from nnstudy.study import open_study

    handle = open_study(study, storage, name)
    print_table(console, frame_table(handle.status(), f"{handle.spec.name} ({handle.store.where})"))
    workers = handle.workers()
    if len(workers):
        alive = int(workers["alive"].sum())
        print_table(console, frame_table(workers, f"workers: {alive} alive of {len(workers)} registered"))
    p = handle.progress()
    line = f"{p['done']} of {p['total']} runs stored"
    if p["rate"] is not None and p["done"] < p["total"]:
        line += (f"; {p['rate']:.3g} runs/minute over the last {p['window_minutes']:g} minutes, "
                 f"about {p['eta_minutes']:.1f} minutes to go at that rate")
    console.print(line, highlight=False, soft_wrap=True)


@app.command("results")
def study_results(
    study: Path = typer.Argument(..., help="a study folder, or its study file"),
    fmt: str = typer.Option("table", "--format", help="table or csv"),
    phase: str = typer.Option("all", "--phase", help="final, tune, slice (untuned, at the base values) or all"),
    storage: Optional[str] = typer.Option(None, "--storage", help=STORAGE_HELP),  # noqa: UP045
):
    """One row per run: its status, hyperparameters and final metrics (csv: every column)."""
    from nnstudy.errors import SpecError
    from nnstudy.study import open_study

    phases = ("final", "tune", "slice", "all")  # the phases results() has, and all of them
    if fmt not in ("table", "csv") or phase not in phases:
        bad = f"--format {fmt!r}: allowed: table, csv" if fmt not in ("table", "csv") else (
            f"--phase {phase!r}: allowed: {', '.join(phases)}")
        raise SpecError(bad)
    frame = open_study(study, storage).results()
    if phase != "all":
        frame = frame[frame["phase"] == phase]
    if fmt == "csv":
        from nnstudy.study.results import write_csv

        write_csv(frame, sys.stdout)
        return
    hidden = ["best_epoch", "best_val_epoch", "early_stopped", "train_seconds", "seconds", "params"]
    print_table(console, frame_table(frame.drop(columns=hidden), f"{len(frame)} runs"))


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


# ----------------------------------------------------------------------------------------- report
# nnstudy report: a study's report.html, report.md and figures/ (nnstudy.report, docs/reports.md).


@app.command("report")
def report_command(
    study: Optional[Path] = typer.Argument(None, help="a study folder, or its study file"),  # noqa: UP045
    all_in: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--all", file_okay=False, help="every study folder under this folder: each report, and index.html"),
    out: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--out", file_okay=False, help="folder to write the report into (default: the study folder)"),
    storage: Optional[str] = typer.Option(None, "--storage", help=STORAGE_HELP),  # noqa: UP045
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),  # noqa: UP045
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Write a study's report: report.html (self-contained), report.md and figures/*.png, *.svg.

    Prints the findings. Example: nnstudy report runs/batch-size; nnstudy report --all runs
    """
    from nnstudy.errors import SpecError
    from nnstudy.report import check_report_folder
    from nnstudy.study import open_study

    if (study is None) == (all_in is None):
        raise SpecError("nnstudy report: give a study folder (or file), or --all DIR, not both or neither")
    if all_in is not None:
        if out is not None or storage is not None:
            raise SpecError("--all DIR: writes each report into its own study folder, from its own study.db; "
                            "--out and --storage are for one study")
        from nnstudy.report.index import write_all

        index, lines = write_all(all_in, data_dir=data_dir, force=force)
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(f"index: {index}", markup=False, highlight=False, soft_wrap=True)
        return

    handle = open_study(study, storage)
    check_report_folder(out if out is not None else handle.folder, force=force)  # before the work of computing it
    report, path = write_report(err_console, handle, out, data_dir=data_dir, force=force)
    for f in report.findings:
        console.print(f"{f.rank}. {f.sentence}", markup=False, highlight=False, soft_wrap=True)
    for note in report.write_notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {path} (and {path.with_suffix('.md').name}, figures/)", markup=False,
                  highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A user's mistake (``NnstudyError``) → one line, exit 2; usage
    errors are typer's (also exit 2); anything else is our bug and keeps its traceback."""
    try:
        app(args=argv, prog_name="nnstudy")
    except NnstudyError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
