"""Training one planned run, in the runner's process or in a worker process; never touches the store.

``execute(task)`` trains, catches what a run can raise (recorded as a failed run with its error), applies
the pruner, writes final weights to the study folder, and returns a plain dict of ``Record`` fields.
``worker_main`` is a worker process: it loads each dataset once (``_splits``) and runs tasks from its
pipe until told to stop, reporting epochs back for the progress display.
"""

from __future__ import annotations

import math
import os
import signal
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

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

        from nnstudy.study._optuna import quiet_optuna

        pruner = {"median": optuna.pruners.MedianPruner, "asha": optuna.pruners.SuccessiveHalvingPruner}[ctx["pruner"]]
        self.metric = ctx["metric"]
        with quiet_optuna():
            self.study = optuna.create_study(direction="maximize" if ctx["maximize"] else "minimize",
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


def execute(task: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Train ``task["spec"]`` (a RunSpec) and return the ``Record`` fields it produced.

    ``task``: ``spec``, ``data_dir``, ``weights`` (a path for final runs' weights, else None),
    ``prune`` (a pruning context, or None). ``progress(info)`` gets each epoch's row.
    Exceptions of the run become ``status = "failed"`` with the error; KeyboardInterrupt passes.
    """
    from nnstudy.train import train

    spec: RunSpec = task["spec"]
    rows: list[dict[str, float]] = []
    pruner = _Pruner(task["prune"]) if task.get("prune") else None

    def callback(event: str, info: dict[str, Any]) -> None:
        if event != "epoch":
            return
        rows.append(dict(info))
        if progress is not None:
            progress({"epoch": info["epoch"], "epochs": spec.epochs})
        if pruner is not None:
            pruner.epoch(info)

    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": "failed", "history": rows}
    try:
        data = _splits(spec.data, task.get("data_dir"))
        out.update(input_shape=list(data.input_shape), num_classes=data.num_classes)
        result = train(spec, data, callback=callback)
    except _Pruned:
        last = rows[-1]
        out.update(status="pruned", epochs_run=len(rows), best_epoch=len(rows),
                   metrics={k: last[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")})
    except Exception as e:  # a run that raises is a failed run; the study goes on
        out.update(error=f"{type(e).__name__}: {e}".splitlines()[0], traceback=traceback.format_exc(),
                   epochs_run=len(rows))
    else:
        out.update(
            status=result.status, history=result.history, metrics=dict(result.metrics),
            epochs_run=len(result.history), best_epoch=result.best_epoch, early_stopped=result.early_stopped,
            n_params=result.params, train_seconds=result.train_seconds, environment=result.environment,
        )
        if task.get("weights") and result.state_dict is not None:
            out["weights"] = _save_weights(result.state_dict, Path(task["weights"]))
    out["seconds"] = time.perf_counter() - t0
    if pruner is not None:
        out["system_attrs"] = pruner.system_attrs()
    return out


def _save_weights(state: dict[str, Any], path: Path) -> str:
    """Write atomically (a killed process leaves no half file under the final name); returns the name."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
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
    """A worker process: receive tasks, send ``("epoch", info)`` events and ``("done", outcome)``.

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
        out = execute(task, progress=lambda info: conn.send(("epoch", info)))
        conn.send(("done", out))
