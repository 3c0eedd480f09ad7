"""``run_study``: train what a study's design asks for, or what is left of it, and store each result.

* Resume is the only mode: the design is replayed against the store (``design.plan_arms``), every run
  whose RunSpec identity is stored is reused, and only the rest is trained. A fresh study is a
  resume with an empty store.
* Claims: every run is claimed in the store before it trains (``_claims.py``), and its result is
  stored by the transaction that closes the claim, so any number of runners, on one machine or many,
  share one store (``--storage postgresql://...``; ``nnstudy worker``) with no run trained by two at
  once and none stored twice. Local workers (``--workers N`` processes, each with ``study.threads``
  torch threads) only train and send results back; each result is written the moment it arrives, so
  a kill -9 loses at most the runs in flight, whose claims the next runner takes over. Workers die
  with the runner.
* Packing: ready runs that only differ in what a pack lets differ (seed, learning rate, weight decay,
  dropout rates, ...; equal ``packed.pack_key``) are sent to one worker as one task and trained as one
  batched program (``train_packed``), which gives each run the numbers it gets alone, so the stored
  table does not depend on it. A group is split into as many packs as there are idle workers (at most
  ``packed.MAX_LANES`` runs each), so ``--workers 2`` keeps both busy. Runs with no fast path (CNNs,
  batch norm, other optimizers) go one by one. ``study.pack = false`` turns it off. Each run of a pack
  is stored on its own, with its own pruner, weights and error, the moment the pack returns.
* A run that raises is stored as failed with its error (a pack that raises fails every run in it),
  and the study goes on; ``retry_failed`` (``--retry-failed``) runs them again. A run whose worker
  process died (killed, out of memory), or whose runner stopped beating, is released and retried, up
  to ``study.retries`` times, then stored as failed with the reason.
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
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from nnstudy._paths import check_folder
from nnstudy.errors import PathError, SpecError, path_errors
from nnstudy.spec import DataSpec
from nnstudy.study._claims import Claims
from nnstudy.study._display import Display
from nnstudy.study._inputs import check_joined, locate, preload, write_study_toml
from nnstudy.study._pool import InProcess, Pool
from nnstudy.study.design import ArmPlan, PlannedRun, intermediate_values, metric_value, optuna_params, plan_arms
from nnstudy.study.file import StudySpec
from nnstudy.study.results import planned_records, results_frame, write_csv
from nnstudy.study.store import STORE_FILE, FolderLock, Record, Store, default_url, without_password

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
    store_seconds: float = 0.0  # of ``seconds``, waiting for the store (claims, results, reading others')
    claims_seconds: float = 0.0  # of ``store_seconds``, claiming runs and reading who holds what


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
    retry_failed: bool = False,
    lines: bool = False,
) -> RunSummary:
    """Run or resume ``spec`` (from ``load_study``) in ``folder`` (default ``runs/<name>``), with
    its store in the folder (SQLite) or at ``storage`` (a URL: several runners on as many machines
    may share it; each trains the runs it claims). ``retry_failed``: runs stored as failed are run
    again. ``lines``: one line per finished run even on a terminal (``nnstudy worker``).

    Raises:
        DataError, SpecError: the data cannot be loaded (nothing is written, but for Optuna's empty
            tables in a database server that answered).
        StoreError: the database cannot be used (nothing is created), another runner holds the
            folder of a SQLite study, or workers are running the study with a different file.
        KeyboardInterrupt: after stopping cleanly; the same call resumes.
    """
    t0 = time.monotonic()
    folder = Path(folder) if folder is not None else Path("runs") / spec.name
    console = console or Console()
    data_dir = str(data_dir) if data_dir else None
    if workers is not None and workers < 1:
        raise SpecError(f"--workers {workers}: must be at least 1")
    check_folder(folder, "the study folder")  # a file there, or no permission: one line, nothing written
    url = storage or default_url(folder)
    shared = not url.startswith("sqlite")
    # a database server answers first (a wrong URL or password is said in a second, before torch and
    # the data load), and before any folder is created; a SQLite file is created only once the data loads
    store = Store(url, create=True) if shared else None
    locate(spec, data_dir)  # missing or corrupt files: said now, before torch is imported
    workers = workers or default_workers(spec)
    if workers > 1 and (shared or not (folder / "study.db").exists()):
        # a new study trains: the worker server's imports overlap the data loading and the store replay
        # below; a study resumed from its folder may have nothing left to train, and starts it on first use
        Pool.start_server()
    n_train = preload(spec, data_dir)
    created, had_db = not folder.exists(), (folder / "study.db").exists()
    with path_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(folder).__enter__()  # held: the folder is another runner's, and nothing is removed
    try:
        fresh = not (folder / "study.toml").is_file()  # decided under the lock: two fresh runners, one study
        try:
            store = store or Store(url, create=True)
            check_joined(store, spec)
            store.save_study(spec, spec.text)
            with path_errors(folder):
                write_study_toml(spec, folder)
                (folder / STORE_FILE).unlink(missing_ok=True)
                if storage:  # status, results and report find the store from the folder (without a password)
                    (folder / STORE_FILE).write_text(without_password(storage) + "\n", encoding="utf-8")
        except BaseException:
            if fresh:  # nothing of a study was written: leave nothing behind
                if created:
                    shutil.rmtree(folder, ignore_errors=True)
                elif not had_db:
                    (folder / "study.db").unlink(missing_ok=True)
            raise
        if shared:  # the store's claims keep runners apart; the lock was for setting up the folder
            lock.__exit__()
        else:
            for tmp in (folder / "runs").glob("*.tmp"):  # weights a killed worker was writing
                tmp.unlink()
        runner = _Runner(spec, folder, store, workers, data_dir, console, quiet, n_train, retry_failed, lines)
        try:
            summary = runner.run(t0)
        except BaseException:
            runner.claims.leave()
            with contextlib.suppress(OSError):  # the error under way says more than a second one
                runner.write_results()
            raise
        runner.claims.leave()
        with path_errors(folder):
            runner.write_results()
        return summary
    finally:
        lock.__exit__()


class _Runner:
    """The scheduling loop: plans per arm, claims, runs in flight, the store, the display.

    With other workers on the store, results they store reach this one's design on ``refresh`` (at
    most every ``REFRESH`` seconds while busy; each idle turn): the design is the same everywhere, so
    any number of workers trains the same runs as one.
    """

    REFRESH = 5.0

    def __init__(self, spec: StudySpec, folder: Path, store: Store, workers: int, data_dir: str | None,
                 console: Console, quiet: bool, n_train: dict[DataSpec, Any] | None = None,
                 retry_failed: bool = False, lines: bool = False):
        self.spec, self.folder, self.store, self.data_dir = spec, folder, store, data_dir
        self.n_train = n_train or {}  # each dataset's packed.DataShape
        study = spec.study
        self.claims: Claims = store.run(lambda: Claims(
            store.engine, spec.name, study.heartbeat, study.retries,
            timeout=store.timeout if store.server else None, on_timeout=lambda: _frozen(store)))
        self.by_id: dict[str, Record] = {}
        self.skip: dict[str, str] = {}  # --retry-failed: run → the failed record's time, ignored from now on
        self.refresh()
        if retry_failed:
            self.skip = {i: r.finished_at for i, r in self.by_id.items() if r.status == "failed"}
            store.run(lambda: self.claims.reopen(self.skip))
            self.by_id = {i: r for i, r in self.by_id.items() if i not in self.skip}
        store.run(self.claims.join)
        self.plans: list[ArmPlan] = plan_arms(spec, self.by_id.get)
        self.display = Display(console, quiet, spec.study.metric, self.total, self.done_count(), lines)
        self.pool: InProcess | Pool = (
            InProcess(self.display) if workers == 1 else Pool(workers, spec.study.threads, data_dir))
        self.trained = self.failed = 0
        self.packed: dict[str, int] = {}  # runs lost with their worker here: the size of their pack

    def refresh(self) -> None:
        """Take in every result in the store (other workers' too); the newest per run wins."""
        for r in self.store.records(self.spec.name):
            if r.run not in self.skip or r.finished_at > self.skip[r.run]:
                self.by_id[r.run] = r
        self.refreshed = time.monotonic()

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
                    if time.monotonic() - self.refreshed > self.REFRESH:
                        self.refresh()
                    queue, elsewhere = self.ready(), 0
                    if queue and self.pool.idle() and stopped is None:
                        busy = self.store.run(self.claims.busy)
                        dead = self.store.run(self.claims.dead) if busy else set()
                        elsewhere = sum(w != self.claims.me for w in busy.values())
                        queue = [r for r in queue if busy.get(r.identity, self.claims.me) in dead | {self.claims.me}]
                        stored = self.done_count() + len(busy)
                        if budget.max_runs is not None and stored >= budget.max_runs:
                            stopped = f"max_runs = {budget.max_runs}"
                        elif deadline is not None and time.monotonic() >= deadline:
                            stopped = f"max_minutes = {budget.max_minutes:g}"
                        elif budget.max_runs is not None:
                            queue = queue[: budget.max_runs - stored]
                    for pack in [] if stopped else self.packs(queue, self.pool.idle()):
                        self._claim(pack)
                    if not self.pool.running:
                        if stopped:
                            break
                        if not queue and not elsewhere:  # nothing to claim and nobody else at work
                            self.refresh()
                            if not self.ready() and not self.store.run(self.claims.busy):
                                break
                        # runs other workers hold (or held: released once they are dead) come back
                        # as results or as claims to take; wait for either, reading the store
                        time.sleep(min(1.0, self.spec.study.heartbeat / 2))
                        self.refresh()
                        continue
                    for kind, run, payload in self.pool.events(timeout=1.0):
                        if kind == "epoch":
                            self.display.epoch(run, payload)
                        elif kind == "lost":
                            self.packed[run.identity] = int(payload.get("packed", 1))
                            self.store.run(lambda r=run, p=payload: self.claims.release(r.identity, p["error"]))
                            self.display.note(run, f"{payload['error']}; released for a retry")
                        else:
                            self._store(run, payload)
        except KeyboardInterrupt:
            self.pool.kill()
            # the interrupt may have landed between a write and its bookkeeping: the store is the truth
            self.refresh()
            self.display.console.print(
                f"interrupted: {self.done_count()} of {self.total} runs stored in {self.folder}; "
                "run the same command again to resume", style="yellow", soft_wrap=True, highlight=False)
            raise
        except BaseException:
            self.pool.kill()
            raise
        self.pool.close()
        return RunSummary(self.folder, self.trained, self.failed, self.done_count(), self.total, stopped,
                          time.monotonic() - t0, self.store.seconds, self.store.claims_seconds)

    def _claim(self, pack: list[PlannedRun]) -> None:
        """Claim ``pack`` in the store, as a whole (one transaction), and train what was won. A run
        whose previous attempts all died with their workers (``1 + study.retries`` of them) is
        recorded failed with the last reason instead."""
        won = self.store.run(lambda: self.claims.claim(r.identity for r in pack))
        runs = [r for r in pack if r.identity in won]
        limit = 1 + self.spec.study.retries
        for r in [r for r in runs if won[r.identity][0] > limit]:
            reason = won[r.identity][1] or "WorkerDied: its worker stopped"
            out: dict[str, Any] = {"status": "failed", "history": [],
                                   "error": f"{reason} (started {limit} times; study.retries = {limit - 1})"}
            if self.packed.get(r.identity, 1) > 1:
                out["environment"] = {"packed": self.packed[r.identity]}
            self._store(r, out)
            runs.remove(r)
        for r in runs:
            if won[r.identity][0] > 1:
                self.display.note(r, f"retrying (attempt {won[r.identity][0]} of {limit}): {won[r.identity][1]}")
        if runs:
            self.pool.submit(runs, self._task(runs))

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
        if not self.store.write(self.spec.name, rec, metric_value(rec, study.metric, study.maximize), params,
                                dists, intermediate_values(rec, study.metric), study.maximize, claims=self.claims):
            self.display.note(run, "finished here too, but another worker holds its claim now: not stored twice")
            return
        self.by_id[rec.run] = rec
        self.trained += 1
        self.failed += rec.status == "failed"
        self.display.finished(run, rec, self.done_count(), self.total)

    def write_results(self) -> None:
        """``results.csv``: one row per stored run, in design order (atomically: workers may share a folder)."""
        frame = results_frame(self.spec, planned_records(self.plans, self.by_id))
        tmp = self.folder / f".results.{os.getpid()}.tmp"
        write_csv(frame, tmp)
        os.replace(tmp, self.folder / "results.csv")


def _frozen(store: Store) -> None:
    """The watchdog's end for a worker whose database server stopped answering mid-call."""
    sys.stderr.write(f"error: {store.where}: the study database did not answer for {store.timeout:g} s "
                     "(NNSTUDY_DB_TIMEOUT); stopping: this worker's runs in flight go back to the study\n")
    sys.stderr.flush()
    os._exit(2)


def _optuna_version() -> str:
    import optuna

    return optuna.__version__
