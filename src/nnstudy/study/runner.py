"""``run_study``: train what a study's design asks for, or what is left of it, and store each result.

* Resume is the only mode: the design is replayed against the store (``design.plan_arms``), every run
  whose RunSpec identity is stored is reused, and only the rest is trained. A fresh study is a
  resume with an empty store.
* One writer: this process owns the store. Workers (``--workers N`` processes, each with
  ``study.threads`` torch threads) only train and send results back; each result is written the
  moment it arrives, so a kill -9 loses at most the runs in flight. Workers die with the runner.
* Packing: ready runs that only differ in what a pack lets differ (seed, learning rate, weight decay,
  dropout rates, ...; equal ``packed.pack_key``) are sent to one worker as one task and trained as one
  batched program (``train_packed``), which gives each run the numbers it gets alone, so the stored
  table does not depend on it. A group is split into as many packs as there are idle workers (at most
  ``packed.MAX_LANES`` runs each), so ``--workers 2`` keeps both busy. Runs with no fast path (CNNs,
  batch norm, other optimizers) go one by one. ``study.pack = false`` turns it off. Each run of a pack
  is stored on its own, with its own pruner, weights and error, the moment the pack returns.
* A run that raises is stored as failed with its error; so is a run whose worker process died (out
  of memory, say) - retrying it would likely die again; a pack that raises, or whose worker died, fails
  every run in it. The study goes on.
* Budget: ``max_runs`` (runs stored) and ``max_minutes`` (of this invocation) stop dispatching; runs in
  flight finish and are stored; rerun to continue. Ctrl-C stops at once: workers are terminated,
  their runs are not stored, the store stays consistent, and the same command resumes.
* Everything that can be wrong with the input (study file, data, models) is checked before the study
  folder is created.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_ready
from pathlib import Path
from typing import Any

from rich.console import Console

from nnstudy._paths import check_folder
from nnstudy.errors import PathError, SpecError, path_errors
from nnstudy.spec import DataSpec, dump_toml
from nnstudy.study import _worker
from nnstudy.study.design import ArmPlan, PlannedRun, intermediate_values, metric_value, optuna_params, plan_arms
from nnstudy.study.file import StudySpec
from nnstudy.study.results import planned_records, results_frame
from nnstudy.study.store import FolderLock, Record, Store, default_url

__all__ = ["RunSummary", "default_workers", "run_study"]


@dataclass
class RunSummary:
    """What one ``run_study`` call did. ``stopped``: None (the design is complete), or the budget
    that stopped it."""

    folder: Path
    trained: int
    failed: int
    done: int
    total: int
    stopped: str | None
    seconds: float


def default_workers(spec: StudySpec) -> int:
    """One process per ``study.threads`` cores on a CPU; one process on a GPU (they share it)."""
    import torch

    device = spec.base.get("device", "auto")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 1
    return max(1, len(os.sched_getaffinity(0)) // spec.study.threads)


def run_study(
    spec: StudySpec,
    folder: str | Path | None = None,
    *,
    workers: int | None = None,
    storage: str | None = None,
    data_dir: str | Path | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> RunSummary:
    """Run or resume ``spec`` (from ``load_study``) in ``folder`` (default ``runs/<name>``).

    Raises:
        DataError, SpecError: the data cannot be loaded (nothing is written).
        StoreError: the database cannot be used, or another runner holds the folder.
        KeyboardInterrupt: after stopping cleanly; the same call resumes.
    """
    t0 = time.monotonic()
    folder = Path(folder) if folder is not None else Path("runs") / spec.name
    console = console or Console()
    data_dir = str(data_dir) if data_dir else None
    if workers is not None and workers < 1:
        raise SpecError(f"--workers {workers}: must be at least 1")
    workers = workers or default_workers(spec)
    if workers > 1:
        _Pool.start_server()  # its imports overlap the data loading and the store replay below
    check_folder(folder, "the study folder")  # a file there, or no permission: one line, nothing written
    n_train = _preload(spec, data_dir)
    fresh = not folder.exists()
    with path_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        with path_errors(folder), FolderLock(folder):
            store = Store(storage or default_url(folder), create=True)
            store.save_study(spec, spec.text)
            fresh = False  # from here on the folder holds a study, even if interrupted
            _write_study_toml(spec, folder)
            for tmp in (folder / "runs").glob("*.tmp"):  # weights a killed worker was writing
                tmp.unlink()
            runner = _Runner(spec, folder, store, workers, data_dir, console, quiet, n_train)
            try:
                summary = runner.run(t0)
            except BaseException:
                with contextlib.suppress(OSError):  # the error under way says more than a second one
                    runner.write_results()
                raise
            runner.write_results()
            return summary
    except BaseException:
        if fresh:  # nothing of a study was written: leave no empty folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _preload(spec: StudySpec, data_dir: str | None) -> dict[DataSpec, Any]:
    """Load every dataset the arms use, here, now: a missing or corrupt dataset fails before anything
    is written; the runner's own process keeps them for in-process runs. Returns each one's
    ``packed.DataShape`` (training images, image shape, classes: what sizes a pack)."""
    from nnstudy.data import load

    first = {k: d.check_values()[0] for k, d in (spec.nuisance.params.items() if spec.nuisance else [])}
    from nnstudy.train.packed import DataShape

    shapes = {}
    for data in dict.fromkeys(spec.run_spec(arm, first, 0, True).data for arm in spec.arms()):
        splits = load(data, data_dir=data_dir)
        _worker.remember_splits(data, splits)
        shapes[data] = DataShape.of(splits)
    return shapes


def _write_study_toml(spec: StudySpec, folder: Path) -> None:
    """The study as run: the file's tables after ``--set``, reloadable with ``nnstudy run``."""
    head = (f"# nnstudy study, from {spec.source}\n"
            "# the study as last run in this folder; `nnstudy run` this file resumes it\n\n")
    (folder / "study.toml").write_text(head + dump_toml(spec.raw), encoding="utf-8")


class _Runner:
    """The scheduling loop: plans per arm, runs in flight, the store, the display."""

    def __init__(self, spec: StudySpec, folder: Path, store: Store, workers: int, data_dir: str | None,
                 console: Console, quiet: bool, n_train: dict[DataSpec, Any] | None = None):
        self.spec, self.folder, self.store, self.data_dir = spec, folder, store, data_dir
        self.n_train = n_train or {}  # each dataset's packed.DataShape
        self.by_id: dict[str, Record] = {r.run: r for r in store.records(spec.name)}
        self.plans: list[ArmPlan] = plan_arms(spec, self.by_id.get)
        self.display = _Display(console, quiet, spec.study.metric, self.total, self.done_count())
        self.pool: _InProcess | _Pool = (
            _InProcess(self.display) if workers == 1 else _Pool(workers, spec.study.threads, data_dir))
        self.trained = self.failed = 0

    @property
    def total(self) -> int:
        return sum(p.nominal for p in self.plans)

    def done_count(self) -> int:
        return len({r.identity for p in self.plans for r in p.planned if r.identity in self.by_id})

    def ready(self) -> list[PlannedRun]:
        runs = {r.identity: r for p in self.plans for r in p.advance(self.by_id.get)}
        return sorted((r for i, r in runs.items() if i not in self.pool.running), key=lambda r: r.order)

    def run(self, t0: float) -> RunSummary:
        budget = self.spec.study
        deadline = t0 + 60 * budget.max_minutes if budget.max_minutes else None
        stopped: str | None = None
        try:
            with self.display:
                while True:
                    queue = self.ready()
                    if queue and stopped is None:
                        stored = self.done_count() + len(self.pool.running)
                        if budget.max_runs is not None and stored >= budget.max_runs:
                            stopped = f"max_runs = {budget.max_runs}"
                        elif deadline is not None and time.monotonic() >= deadline:
                            stopped = f"max_minutes = {budget.max_minutes:g}"
                        elif budget.max_runs is not None:
                            queue = queue[: budget.max_runs - stored]
                    for pack in [] if stopped else self.packs(queue, self.pool.idle()):
                        self.pool.submit(pack, self._task(pack))
                    if not self.pool.running:
                        break
                    for kind, run, payload in self.pool.events(timeout=1.0):
                        if kind == "epoch":
                            self.display.epoch(run, payload)
                        else:
                            self._store(run, payload)
        except KeyboardInterrupt:
            self.pool.kill()
            # the interrupt may have landed between a write and its bookkeeping: the store is the truth
            self.by_id = {r.run: r for r in self.store.records(self.spec.name)}
            self.display.console.print(
                f"interrupted: {self.done_count()} of {self.total} runs stored in {self.folder}; "
                "run the same command again to resume", style="yellow", soft_wrap=True, highlight=False)
            raise
        except BaseException:
            self.pool.kill()
            raise
        self.pool.close()
        return RunSummary(self.folder, self.trained, self.failed, self.done_count(), self.total, stopped,
                          time.monotonic() - t0)

    def packs(self, queue: list[PlannedRun], idle: int) -> list[list[PlannedRun]]:
        """The tasks for ``idle`` free workers from the ready runs ``queue`` (in dispatch order): each
        trained as one pack, or alone (a list of one); ``packed.assign`` is the policy. With
        ``study.pack = false`` every run is a task of its own."""
        if not self.spec.study.pack:
            return [[r] for r in queue[:max(idle, 0)]]
        from nnstudy.train.packed import assign

        return assign(queue, lambda r: r.spec, idle, lambda s: self.n_train.get(s.data))

    def _task(self, pack: list[PlannedRun]) -> dict[str, Any]:
        runs = [{"spec": r.spec, "prune": r.prune,
                 "weights": str(self.folder / "runs" / f"{r.identity}.pt") if r.phase == "final" else None}
                for r in pack]
        return {"runs": runs, "data_dir": self.data_dir}

    def _store(self, run: PlannedRun, out: dict[str, Any]) -> None:
        """Write one result now, as the store will give it back (so a resumed replay sees the same)."""
        if out.get("fatal"):  # the machine, not the run, failed (a full disk): stop; the run is not stored
            raise PathError(out["fatal"])
        env = dict(out.pop("environment", None) or {})
        env.update(host=platform.node(), optuna=_optuna_version())
        rec = Record(run=run.identity, arm=run.arm.label, phase=run.phase, slot=run.slot, stage=run.stage,
                     seed=run.spec.seed, params=run.params, spec=run.spec.model_dump(mode="json"), environment=env,
                     finished_at=dt.datetime.now(dt.timezone.utc).isoformat(), **out)
        rec = Record(**json.loads(json.dumps(rec.to_attrs())), system_attrs=rec.system_attrs)
        study = self.spec.study
        params, dists = optuna_params(self.spec.nuisance, run.params)
        self.store.write(self.spec.name, rec, metric_value(rec, study.metric, study.maximize), params, dists,
                         intermediate_values(rec, study.metric), study.maximize)
        self.by_id[rec.run] = rec
        self.trained += 1
        self.failed += rec.status == "failed"
        self.display.finished(run, rec, self.done_count(), self.total)

    def write_results(self) -> None:
        """``results.csv``: one row per stored run, in design order."""
        frame = results_frame(self.spec, planned_records(self.plans, self.by_id))
        frame.to_csv(self.folder / "results.csv", index=False)


def _optuna_version() -> str:
    import optuna

    return optuna.__version__


# ---------------------------------------------------------------------------------------- executing


class _InProcess:
    """``--workers 1``: train in this process (no start-up cost; the preloaded data is reused)."""

    def __init__(self, display: _Display):
        self.display = display
        self.running: dict[str, PlannedRun] = {}
        self._runs: list[PlannedRun] = []
        self._task: dict[str, Any] = {}

    def idle(self) -> int:
        return 0 if self.running else 1

    def submit(self, runs: list[PlannedRun], task: dict[str, Any]) -> None:
        self._runs, self._task = runs, task
        self.running = {r.identity: r for r in runs}

    def events(self, timeout: float) -> Iterator[tuple[str, PlannedRun, Any]]:
        runs = self._runs
        outs = _worker.execute(self._task, progress=lambda i, info: self.display.epoch(runs[i], info))
        for run, out in zip(runs, outs, strict=True):
            del self.running[run.identity]
            yield "done", run, out

    def close(self) -> None:
        pass

    def kill(self) -> None:
        self.running.clear()


class _Slot:
    def __init__(self, process: Any, conn: Any):
        self.process, self.conn = process, conn
        self.runs: list[PlannedRun] = []  # the task in flight: one run, or a pack
        self.left: dict[int, PlannedRun] = {}  # its runs without a result yet, by index in the task


class _Pool:
    """``--workers N``: N worker processes, one task (a run or a pack) each at a time, over one pipe per
    process (so a dead worker's runs are known exactly, unlike a shared ProcessPoolExecutor queue)."""

    def __init__(self, n: int, threads: int, data_dir: str | None):
        self.ctx = self.start_server()
        self.n, self.threads, self.data_dir = n, threads, data_dir
        self.slots: list[_Slot] = []  # started on first use: a rerun with nothing to train starts none

    @staticmethod
    def start_server() -> Any:
        """The forkserver context, its server started (in the background: this returns at once).

        forkserver: one clean process imports torch and nnstudy once, and every worker is a fork of it
        (milliseconds, not an interpreter importing torch each). Not a fork of this process: it has run
        torch's OpenMP threads and holds database connections, which a fork would inherit broken.
        """
        import multiprocessing.forkserver

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["nnstudy.study._worker"])
        multiprocessing.forkserver.ensure_running()
        return ctx

    def _spawn(self) -> _Slot:
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker.worker_main, args=(child, self.threads, self.data_dir),
                             daemon=True, name="nnstudy-worker")
        p.start()
        child.close()
        return _Slot(p, parent)

    @property
    def running(self) -> dict[str, PlannedRun]:
        return {r.identity: r for s in self.slots for r in s.left.values()}

    def idle(self) -> int:
        return self.n - sum(bool(s.left) for s in self.slots)

    def submit(self, runs: list[PlannedRun], task: dict[str, Any]) -> None:
        i = next((i for i, s in enumerate(self.slots) if not s.left), None)
        if i is None:
            self.slots.append(self._spawn())
            i = len(self.slots) - 1
        try:
            self.slots[i].conn.send(task)
        except OSError:  # an idle worker died (killed from outside): replace it, nothing was lost
            self.slots[i] = self._spawn()
            self.slots[i].conn.send(task)
        self.slots[i].runs, self.slots[i].left = runs, dict(enumerate(runs))

    def events(self, timeout: float) -> Iterator[tuple[str, PlannedRun, Any]]:
        busy = [s for s in self.slots if s.left]
        ready = set(wait_ready([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout))
        for i, s in enumerate(self.slots):
            if not s.left or not ({s.conn, s.process.sentinel} & ready):
                continue
            try:
                while s.left and s.conn.poll():
                    kind, index, payload = s.conn.recv()
                    run = s.left.pop(index) if kind == "done" else s.runs[index]
                    yield kind, run, payload
            except (EOFError, OSError):
                pass
            if s.left and not s.process.is_alive():
                self.slots[i] = self._spawn()
                died = _death(s.process.exitcode)
                for run in list(s.left.values()):  # every run of its task still in flight
                    out: dict[str, Any] = {"status": "failed", "error": died, "history": []}
                    if len(s.runs) > 1:
                        out["environment"] = {"packed": len(s.runs)}
                    yield "done", run, out
                s.left.clear()

    def close(self) -> None:
        for s in self.slots:
            try:
                s.conn.send(None)
            except OSError:
                pass
        for s in self.slots:
            s.process.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        for s in self.slots:
            if s.process.is_alive():
                s.process.kill()
            s.process.join()
            s.left = {}


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        return f"WorkerDied: the worker process was killed by {signal.Signals(-code).name} (out of memory?)"
    return f"WorkerDied: the worker process exited with code {code}"


# ------------------------------------------------------------------------------------------ display


class _Display:
    """A rich progress bar (runs done / total, ETA, the run and epoch in progress) on a terminal;
    one line per finished run otherwise; nothing with ``quiet``."""

    def __init__(self, console: Console, quiet: bool, metric: str, total: int, done: int):
        self.console, self.quiet, self.metric, self.total, self.done = console, quiet, metric, total, done
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Display:
        if self.console.is_terminal and not self.quiet:
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


def _describe(run: PlannedRun) -> str:
    what = f"trial {run.slot}" if run.phase == "tune" else f"{run.phase} seed {run.spec.seed}"
    return f"{run.arm.label}: {what}"
