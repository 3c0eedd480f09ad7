"""Training planned runs, in the runner's process or in a worker process; never touches the store.

``execute(task)`` trains one run alone, or several same-shape runs as one pack (``train_packed``),
catches what a run can raise (recorded as a failed run with its error), applies each run's pruner,
writes final weights to the study folder, and returns one plain dict of ``Record`` fields per run
(``_outcome``: the one place that turns a ``RunResult`` or an exception into those fields).
``worker_main`` is a worker process: it loads each dataset once (``_splits``) and runs tasks from its
pipe until told to stop, reporting epochs back for the progress display.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnstudy.errors import PathError, os_error
from nnstudy.spec import DataSpec, RunSpec

__all__ = ["execute", "worker_main", "remember_splits"]

# A few datasets at most (an arm per subset size, say); full MNIST as float32 is about 200 MB each.
_CACHE_SIZE = 3
_SPLITS: OrderedDict[DataSpec, Any] = OrderedDict()


def remember_splits(spec: DataSpec, splits: Any) -> None:
    """Keep ``splits`` for runs of ``spec`` in this process (the runner preloads while validating)."""
    _SPLITS[spec] = splits
    _SPLITS.move_to_end(spec)
    while len(_SPLITS) > _CACHE_SIZE:
        _SPLITS.popitem(last=False)


def _splits(spec: DataSpec, data_dir: str | None) -> Any:
    if spec not in _SPLITS:
        from nnstudy.data import load

        remember_splits(spec, load(spec, data_dir=data_dir))
    _SPLITS.move_to_end(spec)
    return _SPLITS[spec]


class _Pruned(Exception):
    """Raised from the epoch callback to stop a tuning run its pruner gave up on."""


class _Pruner:
    """Optuna's pruner on this run's epochs, against the finished trials of the earlier rounds (the
    ``prune`` context of the planned run): the same decisions however many workers run."""

    def __init__(self, ctx: dict[str, Any]):
        import optuna

        from nnstudy.study._optuna import quiet_optuna, study_direction

        pruner = {"median": optuna.pruners.MedianPruner, "asha": optuna.pruners.SuccessiveHalvingPruner}[ctx["pruner"]]
        self.metric = ctx["metric"]
        with quiet_optuna():
            self.study = optuna.create_study(direction=study_direction(ctx["maximize"]),
                                             pruner=pruner(), sampler=optuna.samplers.RandomSampler(seed=0))
            self.study.add_trials(ctx["trials"])
            self.trial = self.study.ask()

    def epoch(self, row: dict[str, float]) -> None:
        from nnstudy.study._optuna import quiet_optuna

        value = row.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        with quiet_optuna():
            self.trial.report(value, int(row["epoch"]))
            if self.trial.should_prune():
                raise _Pruned

    def system_attrs(self) -> dict[str, Any]:
        frozen = self.study._storage.get_trial(self.trial._trial_id)
        return {k: v for k, v in frozen.system_attrs.items() if k.startswith("completed_rung")}


def execute(task: dict[str, Any], progress: Callable[[int, dict[str, Any]], None] | None = None
            ) -> list[dict[str, Any]]:
    """Train the runs of ``task`` and return the ``Record`` fields each produced, in order.

    ``task``: ``runs`` (a list of ``{"spec": RunSpec, "weights": a path for a final run's weights or
    None, "prune": a pruning context or None}``) and ``data_dir``. One run is trained alone
    (``train``); several, which must share a ``pack_key``, as one pack (``train_packed``): the same
    numbers either way. ``progress(i, info)`` gets run ``i``'s epochs.
    Exceptions of a run become ``status = "failed"`` with the error; an exception of the pack as a
    whole fails every run in it; KeyboardInterrupt passes.
    """
    from nnstudy.train import packed, train

    runs = task["runs"]
    t0 = time.perf_counter()
    states = [_RunState(i, r, progress) for i, r in enumerate(runs)]
    data = None
    results: list[Any]
    try:
        data = _splits(runs[0]["spec"].data, task.get("data_dir"))
        if len(runs) == 1:
            try:
                results = [train(states[0].spec, data, callback=states[0].callback)]
            except Exception as e:  # the run's own error (or its pruner's stop), kept as its outcome
                results = [e]
        else:
            results = list(packed.train_packed([s.spec for s in states], data, engine="auto",
                                               callbacks=[s.callback for s in states]))
    except Exception as e:  # the data, or the pack as a whole: every run in it failed with this error
        results = [e] * len(runs)
    seconds = (time.perf_counter() - t0) / len(runs)  # a packed run's share of the pack's wall time
    return [_outcome(s, r, data, seconds, len(runs)) for s, r in zip(states, results, strict=True)]


class _RunState:
    """One run of a task: its epoch rows (kept for a run that stops), progress and pruner."""

    def __init__(self, index: int, run: dict[str, Any], progress: Callable[[int, dict[str, Any]], None] | None):
        self.index, self.weights = index, run.get("weights")
        self.spec: RunSpec = run["spec"]
        self.rows: list[dict[str, float]] = []
        self.progress = progress
        self.pruner = _Pruner(run["prune"]) if run.get("prune") else None

    def callback(self, event: str, info: dict[str, Any]) -> None:
        if event != "epoch":
            return
        self.rows.append(dict(info))
        if self.progress is not None:
            self.progress(self.index, {"epoch": info["epoch"], "epochs": self.spec.epochs})
        if self.pruner is not None:
            self.pruner.epoch(info)


def _outcome(run: _RunState, result: Any, data: Any, seconds: float, packed: int) -> dict[str, Any]:
    """The ``Record`` fields of one run from what training gave for it: a ``RunResult``, or the
    exception that ended it (``_Pruned``: stopped by its pruner; anything else: failed)."""
    from nnstudy.train import RunResult

    rows = run.rows
    out: dict[str, Any] = {"status": "failed", "history": rows}
    if data is not None:
        out.update(input_shape=list(data.input_shape), num_classes=data.num_classes)
    if isinstance(result, _Pruned):
        last = rows[-1]
        out.update(status="pruned", epochs_run=len(rows), best_epoch=len(rows),
                   metrics={k: last[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")})
    elif isinstance(result, RunResult):
        out.update(
            status=result.status, history=result.history, metrics=dict(result.metrics),
            epochs_run=len(result.history), best_epoch=result.best_epoch, early_stopped=result.early_stopped,
            n_params=result.params, train_seconds=result.train_seconds, environment=result.environment,
        )
        if run.weights and result.state_dict is not None:
            try:
                out["weights"] = _save_weights(result.state_dict, Path(run.weights))
            except PathError as e:  # the runner stops with this line; the run, not stored, trains again on resume
                return {"fatal": str(e)}
    else:  # a run that raises is a failed run; the study goes on
        out.update(error=f"{type(result).__name__}: {result}".splitlines()[0],
                   traceback="".join(traceback.format_exception(type(result), result, result.__traceback__)),
                   epochs_run=len(rows))
    if packed > 1:  # where it ran, also for a run that did not finish
        out["environment"] = {**(out.get("environment") or {}), "packed": packed}
    out["seconds"] = seconds
    if run.pruner is not None:
        out["system_attrs"] = run.pruner.system_attrs()
    return out


def _save_weights(state: dict[str, Any], path: Path) -> str:
    """Write atomically (a killed process leaves no half file under the final name); returns the name."""
    import torch

    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch reports a failed write (a full disk) as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise os_error(path, e, "cannot write the run's weights") from None
        full = shutil.disk_usage(path.parent).free < 1 << 20 if path.parent.is_dir() else False
        reason = "the disk is full" if full else "the write failed"
        raise PathError(f"{path}: cannot write the run's weights: {reason} ({str(e).splitlines()[0]})") from None
    return path.name


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when its parent dies, so no orphan keeps training a
    run the resumed study will train again. The parent is the forkserver, which exits as soon as the
    runner does (kill -9 included)."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def worker_main(conn: Any, threads: int, data_dir: str | None) -> None:
    """A worker process: receive tasks, send ``("epoch", i, info)`` events and ``("done", i, outcome)``
    for run ``i`` of the task, every run's outcome the moment its task (a pack: all of it) returns.

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the runner decides what stops.
    """
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    torch.set_num_threads(threads)
    while True:
        task = conn.recv()
        if task is None:
            return
        outs = execute(task, progress=lambda i, info: conn.send(("epoch", i, info)))
        for i, out in enumerate(outs):
            conn.send(("done", i, out))
