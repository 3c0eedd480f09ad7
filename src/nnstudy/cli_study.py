"""The study commands of ``nnstudy``: ``run`` (and resume), ``worker``, ``status``, ``results`` and
``report``, registered on the app of ``_cli.py`` when ``cli.py`` imports this module. Thin, as
``cli.py`` is: each parses, calls ``nnstudy.study`` or ``nnstudy.report``, prints; a user's mistake is
an ``NnstudyError`` that ``cli.main`` prints as one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from nnstudy._cli import DATA_DIR_HELP, app, console, err_console, frame_table, print_table, write_report
from nnstudy.spec import parse_override

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
