"""The epoch driver: what training a run means, written once for every engine and any number of lanes.

What the numbers mean (DESIGN.md section 6):

* Initial weights: ``build_model`` under ``torch.manual_seed(spec.seed)``, inside ``fork_rng`` so the
  caller's random state is untouched; then a dropout seed is drawn from the same stream (a lane's
  masks depend on its seed only).
* An epoch is one pass over the training split in the order ``spec.shuffle`` gives (``_order``):
  by default a fresh random order, drawn from the run's own ``torch.Generator().manual_seed(spec.seed)``,
  one ``randperm`` per epoch; ``once`` keeps the first, ``none`` is file order. Batch i of a lane is rows
  ``perm[i·B:(i+1)·B]`` (the last batch may be shorter).
* The learning rate of every step is the run's schedule (``LRSchedule.rate``; ``plateau`` included)
  and the epoch row records the last step's.
* ``train_loss``/``train_accuracy``: with ``train_eval="running"``, the mean over the epoch's
  batches, weighted by batch size (Keras's convention; dropout and batch norm in training mode);
  with ``"full"``, the whole training split evaluated in eval mode after the epoch (the notebooks').
* ``val_*``: always the whole validation split in eval mode after the epoch; ``test_*`` too, for a
  run with ``spec.test_curve`` (a study's final runs with ``study.test_curves``: their configuration
  is fixed, so the curve chooses nothing).
* Divergence: a NaN/inf training loss, or one above ``max_loss``, stops the run as "diverged".
* Early stopping watches one validation metric and, where asked, restores the best epoch's weights;
  the final validation (and test) predictions are those of the weights the run ends with.

A lane that stops (diverged, early stopped, a callback that raised, or done with fewer epochs than
the others) leaves, and the others go on without it. Cost: a lane's ``train_seconds`` and per-epoch
``seconds`` are its share of the program's time (divided by the lanes trained in it), so that they
add up to the wall time of a study.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from nnstudy import metrics
from nnstudy.spec import RunSpec
from nnstudy.train._env import Callback
from nnstudy.train._order import EpochOrder
from nnstudy.train.engine import Engine, hyper_of
from nnstudy.train.optim import LRSchedule
from nnstudy.train.result import RunResult

__all__ = ["EarlyStopper", "fit", "finish_run"]


def fit(specs: Sequence[RunSpec], data: Any, engine: type, device: torch.device,
        callbacks: Sequence[Callback | None]) -> list[RunResult | Exception]:
    """Train ``specs`` as lanes of one ``engine`` program on ``device``; one result (or the exception
    its callback raised) per spec. ``seconds`` and ``environment`` are left to the caller."""
    from nnstudy.models import build_model

    models, dropout_seeds = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for s in specs:
            torch.manual_seed(s.seed)
            models.append(build_model(s.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes))
            dropout_seeds.append(int(torch.randint(0, 2**62, ())))
        return _Driver(list(specs), models, engine(list(specs), models, dropout_seeds, data, device),
                       data, device, list(callbacks)).run()


class EarlyStopper:
    """Watches one validation metric; keeps a copy of the best weights when asked to restore them."""

    def __init__(self, spec: RunSpec):
        es = spec.early_stopping
        self.metric, self.patience, self.min_delta = es.metric, es.patience, es.min_delta
        self.sign = 1.0 if metrics.maximize(es.metric) else -1.0  # maximize sign × value
        self.keep = es.restore_best
        self.best = -math.inf
        self.best_epoch = 0
        self.best_state: Any = None
        self.bad = 0

    def update(self, epoch: int, row: dict[str, float], snapshot: Callable[[], Any]) -> bool:
        """Record this epoch; True when training should stop. ``snapshot()`` gives a copy of the
        current weights, taken only when they are the best so far and are to be restored."""
        score = self.sign * row[self.metric]
        if score > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            if self.keep:
                self.best_state = snapshot()
            return False
        self.bad += 1
        return self.bad >= self.patience

    @property
    def restores(self) -> bool:
        """Whether the run ends on the best epoch's weights rather than the last."""
        return self.keep and self.best_state is not None


class _Lane:
    """Bookkeeping of one run: its spec, schedule, data order, history and stopping state."""

    def __init__(self, index: int, spec: RunSpec, model: torch.nn.Module, steps: int, callback: Callback | None):
        self.index, self.spec, self.model, self.callback = index, spec, model, callback
        self.sched = LRSchedule(spec.schedule, spec.optimizer.lr, steps, spec.epochs)
        self.order = EpochOrder(spec)  # data order: its own stream, on the CPU
        self.stopper = EarlyStopper(spec) if spec.early_stopping else None
        self.history: list[dict[str, float]] = []
        self.status = "complete"
        self.train_seconds = 0.0
        self.error: Exception | None = None
        self.hyper = hyper_of(spec)

    def notify(self, event: str, info: dict[str, Any]) -> bool:
        """Send an event to the run's callback; False (and the error kept) when it raised."""
        if self.callback is None:
            return True
        try:
            self.callback(event, info)
        except Exception as e:  # a pruner stopping the run: the run leaves, the others go on
            self.error = e
            return False
        return True

    @property
    def restores(self) -> bool:
        return self.error is None and self.status == "complete" and self.stopper is not None \
            and self.stopper.restores


class _Driver:
    """The epoch loop over an engine's lanes."""

    def __init__(self, specs: list[RunSpec], models: list[torch.nn.Module], engine: Engine, data: Any,
                 device: torch.device, callbacks: list[Callback | None]):
        self.engine, self.data, self.device = engine, data, device
        self.n = len(data.train_y)
        bs = specs[0].batch_size
        self.bs = self.n if bs == "full" else min(bs, self.n)
        self.steps = math.ceil(self.n / self.bs)
        self.lanes = [_Lane(i, s, m, self.steps, cb)
                      for i, (s, m, cb) in enumerate(zip(specs, models, callbacks, strict=True))]
        self.results: list[RunResult | Exception | None] = [None] * len(specs)

    def run(self) -> list[RunResult | Exception]:
        active = list(self.lanes)  # engine lane i trains run active[i]
        any_report = any(r.callback is not None for r in active)
        report_every = max(1, self.steps // 50)
        step = epoch = 0
        while active:
            epoch += 1
            t0 = time.perf_counter()
            R = len(active)
            perms = torch.stack([r.order.next(self.n) for r in active]).to(self.device)
            full = self.steps * self.bs == self.n
            # (steps, R·bs) index rows, one contiguous row per step (the last may be shorter)
            body = perms[:, : (self.steps if full else self.steps - 1) * self.bs]
            rows = body.view(R, -1, self.bs).transpose(0, 1).reshape(-1, R * self.bs)
            tail = None if full else perms[:, (self.steps - 1) * self.bs :].reshape(-1)
            constant = all(r.sched.is_constant for r in active)
            hyper = [r.hyper for r in active]
            self.engine.start_epoch(self.steps, self.bs)
            for i in range(self.steps):
                if not constant:
                    hyper = [{**r.hyper, "lr": r.sched.rate(step)} for r in active]
                idx = rows[i] if i < len(rows) else tail
                self.engine.step(i, idx, len(idx) // R, hyper)
                step += 1
                if any_report and (i + 1) % report_every == 0:
                    for r in active:
                        r.notify("step", {"epoch": epoch, "step": i + 1, "steps": self.steps})
            loss_sum, correct = self.engine.end_epoch()
            train_time = (time.perf_counter() - t0) / R
            active = self._end_epoch(active, epoch, hyper, loss_sum, correct, t0, train_time)
        return self.results  # type: ignore[return-value]

    def _end_epoch(self, active: list[_Lane], epoch: int, hyper: list[dict[str, Any]], loss_sum: np.ndarray,
                   correct: np.ndarray, t0: float, train_time: float) -> list[_Lane]:
        """The epoch's row of every lane, then retire the lanes that stop; returns those left."""
        R = len(active)
        running, acc = loss_sum / self.n, correct / self.n
        last_val = self.engine.predict("val", range(R))
        full = [lane for lane, r in enumerate(active) if r.spec.train_eval == "full"]
        train_full = self.engine.predict("train", full) if full else None
        curve = [lane for lane, r in enumerate(active) if r.spec.test_curve]
        test_now = self.engine.predict("test", curve) if curve else None
        seconds = (time.perf_counter() - t0) / R
        keep, leaving = [], []
        for lane, r in enumerate(active):
            r.train_seconds += train_time
            row = {"epoch": epoch, "lr": hyper[lane]["lr"]}
            if train_full is not None and lane in full:
                k = full.index(lane)
                row["train_loss"], row["train_accuracy"] = float(train_full[0][k]), float(train_full[1][k])
            else:
                row["train_loss"], row["train_accuracy"] = float(running[lane]), float(acc[lane])
            row["val_loss"], row["val_accuracy"] = float(last_val[0][lane]), float(last_val[1][lane])
            row["seconds"] = seconds
            if test_now is not None and lane in curve:
                k = curve.index(lane)
                row["test_loss"], row["test_accuracy"] = float(test_now[0][k]), float(test_now[1][k])
            r.history.append(row)
            stop = not r.notify("epoch", dict(row))
            if not stop and (not math.isfinite(running[lane]) or running[lane] > r.spec.max_loss):
                r.status, stop = "diverged", True
            if not stop:
                r.sched.end_epoch(row["val_loss"])
                if r.stopper is not None and r.stopper.update(epoch, row, partial(self.engine.snapshot, lane)):
                    stop = True
            stop = stop or epoch == r.spec.epochs
            (leaving if stop else keep).append(lane)
        if leaving:
            self._finish(active, leaving, last_val)
        if leaving and keep:
            self.engine.select(keep)
        return [active[i] for i in keep]

    def _finish(self, active: list[_Lane], leaving: list[int],
                last_val: tuple[np.ndarray, np.ndarray, torch.Tensor]) -> None:
        """Results of the runs in lanes ``leaving``: restore best weights where asked, final val/test
        predictions (one pass for those lanes; this epoch's validation pass, ``last_val``, serves the
        lanes whose weights did not change since), weights, parameters and FLOPs."""
        from nnstudy.models import train_flops

        restored = [lane for lane in leaving if active[lane].restores]
        for lane in restored:
            self.engine.restore(lane, active[lane].stopper.best_state)  # type: ignore[union-attr]
        done = [lane for lane in leaving if active[lane].error is None and active[lane].status == "complete"]
        val_of = {lane: (last_val[0][lane], last_val[1][lane], last_val[2][lane]) for lane in done}
        if restored:
            fresh = self.engine.predict("val", restored)
            val_of.update({lane: (fresh[0][j], fresh[1][j], fresh[2][j]) for j, lane in enumerate(restored)})
        tested = [lane for lane in done if active[lane].spec.test]
        test = self.engine.predict("test", tested) if tested else None
        for lane in leaving:
            r = active[lane]
            if r.error is not None:
                self.results[r.index] = r.error
                continue
            evals: dict[str, tuple[float, float, torch.Tensor]] = {}
            if lane in done:
                loss, acc, pred = val_of[lane]
                evals["val"] = (float(loss), float(acc), pred)
                if test is not None and lane in tested:
                    k = tested.index(lane)
                    evals["test"] = (float(test[0][k]), float(test[1][k]), test[2][k])
            state = self.engine.state_dict(lane) if r.spec.save_weights else None
            result = finish_run(r.spec, r.history, r.status, r.stopper, evals, state, self.data, r.train_seconds)
            result.params = sum(p.numel() for p in r.model.parameters())
            per_sample = train_flops(r.spec.model, input_shape=tuple(self.data.input_shape),
                                     num_classes=self.data.num_classes)
            result.train_flops = float(per_sample) * self.n * len(r.history)
            self.results[r.index] = result


def finish_run(
    spec: RunSpec,
    history: list[dict[str, float]],
    status: str,
    stopper: EarlyStopper | None,
    evals: dict[str, tuple[float, float, torch.Tensor]],
    state: dict[str, torch.Tensor] | None,
    data: Any,
    train_seconds: float,
) -> RunResult:
    """The ``RunResult`` of a finished run, from its history and its final evaluations.

    ``evals``: ``{"val": (loss, accuracy, predictions (N,)), "test": ...}`` of the final weights (the
    best epoch's when early stopping restored them); empty for a diverged run.
    """
    best_epoch = len(history)
    early_stopped = False
    if stopper is not None and status == "complete":
        early_stopped = len(history) < spec.epochs
        if stopper.restores:
            best_epoch = stopper.best_epoch
    final = dict(history[best_epoch - 1])
    metrics = {k: final[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    confusion: dict[str, np.ndarray] = {}
    preds: dict[str, np.ndarray] = {}
    for split, (loss, acc, pred) in evals.items():
        preds[split] = pred.cpu().numpy()
        confusion[split] = _confusion(getattr(data, f"{split}_y").cpu().numpy(), preds[split], data.num_classes)
        if split == "test":
            metrics["test_loss"], metrics["test_accuracy"] = loss, acc
    return RunResult(
        spec=spec,
        history=history,
        metrics=metrics,
        status=status,  # type: ignore[arg-type]
        early_stopped=early_stopped,
        best_epoch=best_epoch,
        train_seconds=train_seconds,
        confusion=confusion,
        val_pred=preds.get("val"),
        test_pred=preds.get("test"),
        state_dict=state,
    )


def _confusion(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows are the true class, columns the predicted one."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
