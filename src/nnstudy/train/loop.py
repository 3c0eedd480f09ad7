"""``train(spec, data) -> RunResult``: the only place a single model is trained.

What the numbers mean (DESIGN.md section 6):

* An epoch is one pass over the training split in a fresh random order, drawn from a generator
  seeded by the run's seed; model initialization and dropout draw from torch's RNG seeded by the
  same seed inside ``fork_rng``, so the caller's random state is untouched and the same RunSpec
  gives the same numbers on the same machine.
* ``train_loss``/``train_accuracy``: with ``train_eval="running"``, the mean over the epoch's
  batches, weighted by batch size (Keras's convention; dropout and batch-norm in training mode);
  with ``"full"``, the whole training split evaluated in eval mode after the epoch (the notebooks').
* ``val_*``: always the whole validation split in eval mode after the epoch.
* Divergence: a NaN/inf training loss, or one above ``max_loss``, stops the run as "diverged".

Speed: the split lives on the device as one float tensor; each epoch permutes it once (one gather)
and then takes batches as contiguous slices, so there is no per-sample Python and no DataLoader.
Losses and counts accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nnstudy.errors import SpecError
from nnstudy.spec import RunSpec
from nnstudy.train.optim import LRSchedule, build_optimizer
from nnstudy.train.result import RunResult

__all__ = ["train", "evaluate", "resolve_device", "Callback"]

#: ``callback(event, info)``: event "epoch" with the epoch's row, or "step" with
#: ``{"epoch", "step", "steps"}`` about every 2% of an epoch (for progress bars).
Callback = Callable[[str, dict[str, Any]], None]

EVAL_BATCH = 8192  # large: evaluation has no backward pass, and fewer calls mean less overhead


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device = 'cuda': no CUDA device is available here; use 'auto' or 'cpu'")
    return torch.device(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, autocast: Any = None
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy (fraction) and predictions (int64, shape (N,)) of ``model`` on (x, y),
    in eval mode, in large batches. Empty inputs give NaN metrics."""
    if len(y) == 0:
        return math.nan, math.nan, torch.empty(0, dtype=torch.long)
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    preds = []
    for i in range(0, len(y), EVAL_BATCH):
        xb, yb = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
        with autocast or contextlib.nullcontext():
            out = model(xb)
        loss += F.cross_entropy(out.float(), yb, reduction="sum")
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    model.train(was_training)
    acc = (pred == y).double().mean().item()
    return loss.item() / len(y), acc, pred.cpu()


def train(
    spec: RunSpec,
    data: Any = None,
    *,
    data_dir: str | None = None,
    callback: Callback | None = None,
) -> RunResult:
    """Train one model as ``spec`` says and return its ``RunResult``.

    Args:
        spec: the run.
        data: a ``nnstudy.data.Splits`` for ``spec.data``; loaded (and cached per process) when None.
            Passing it lets a study load the data once for many runs.
        data_dir: where the dataset files are, when ``data`` is None (else the usual source chain).
        callback: progress events, see ``Callback``.

    Raises:
        DataError: the dataset cannot be found or is corrupt. SpecError: an impossible request
        (a model that does not fit the input, CUDA asked for where there is none).
    """
    from nnstudy.data import load
    from nnstudy.models import build_model, train_flops

    t_start = time.perf_counter()
    device = resolve_device(spec.device)
    if data is None:
        data = load(spec.data, data_dir=data_dir)
    elif getattr(data, "spec", spec.data) != spec.data:
        raise SpecError(f"train: the data given were loaded for {data.spec!r}, but the run asks for {spec.data!r}")
    threads_before = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(spec.seed)
            model = build_model(spec.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
            model.to(device)
            result = _fit(spec, model, data, device, callback)
    finally:
        torch.set_num_threads(threads_before)
    result.params = sum(p.numel() for p in model.parameters())
    per_sample = train_flops(spec.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    result.train_flops = float(per_sample) * len(data.train_y) * len(result.history)
    result.seconds = time.perf_counter() - t_start
    result.environment = _environment(device, spec.threads or threads_before)
    return result


def _fit(spec: RunSpec, model: torch.nn.Module, data: Any, device: torch.device, callback: Callback | None):
    x, y = data.train_x.to(device), data.train_y.to(device)
    vx, vy = data.val_x.to(device), data.val_y.to(device)
    n = len(y)
    bs = n if spec.batch_size == "full" else min(spec.batch_size, n)
    steps = math.ceil(n / bs)
    opt = build_optimizer(spec.optimizer, model.parameters())
    sched = LRSchedule(spec.schedule, spec.optimizer.lr, steps, spec.epochs)
    order = torch.Generator().manual_seed(spec.seed)  # data order: its own stream, on the CPU
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if spec.precision == "bf16" else None
    stopper = _EarlyStopper(spec) if spec.early_stopping else None
    report_every = max(1, steps // 50)

    history: list[dict[str, float]] = []
    status, train_seconds, step = "complete", 0.0, 0
    for epoch in range(1, spec.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        # one gather per epoch, then contiguous slices; a single full batch needs no reordering
        xs, ys = (x, y) if steps == 1 else (x[perm], y[perm])
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i in range(steps):
            if not sched.is_constant:
                lr = sched.rate(step)
                for g in opt.param_groups:
                    g["lr"] = lr
            xb, yb = xs[i * bs : (i + 1) * bs], ys[i * bs : (i + 1) * bs]
            with amp or contextlib.nullcontext():
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.detach() * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            if callback is not None and (i + 1) % report_every == 0:
                callback("step", {"epoch": epoch, "step": i + 1, "steps": steps})
        train_seconds += time.perf_counter() - t0

        running_loss = loss_sum.item() / n
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
        if spec.train_eval == "full":
            row["train_loss"], row["train_accuracy"], _ = evaluate(model, x, y, autocast=amp)
        else:
            row["train_loss"], row["train_accuracy"] = running_loss, correct.item() / n
        row["val_loss"], row["val_accuracy"], _ = evaluate(model, vx, vy, autocast=amp)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if callback is not None:
            callback("epoch", dict(row))
        if not math.isfinite(running_loss) or running_loss > spec.max_loss:
            status = "diverged"
            break
        sched.end_epoch(row["val_loss"])
        if stopper is not None and stopper.update(epoch, row, model):
            break

    best_epoch = len(history)
    early_stopped = False
    if stopper is not None and status == "complete":
        early_stopped = len(history) < spec.epochs
        if spec.early_stopping.restore_best and stopper.best_state is not None:
            model.load_state_dict(stopper.best_state)
            best_epoch = stopper.best_epoch
    final = dict(history[best_epoch - 1])
    metrics = {k: final[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}

    confusion: dict[str, np.ndarray] = {}
    val_pred = test_pred = None
    if status == "complete":
        _, _, vp = evaluate(model, vx, vy, autocast=amp)
        val_pred = vp.numpy()
        confusion["val"] = _confusion(vy.cpu().numpy(), val_pred, data.num_classes)
        if spec.test:
            tx, ty = data.test_x.to(device), data.test_y.to(device)
            metrics["test_loss"], metrics["test_accuracy"], tp = evaluate(model, tx, ty, autocast=amp)
            test_pred = tp.numpy()
            confusion["test"] = _confusion(ty.cpu().numpy(), test_pred, data.num_classes)
    state = None
    if spec.save_weights:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return RunResult(
        spec=spec,
        history=history,
        metrics=metrics,
        status=status,
        early_stopped=early_stopped,
        best_epoch=best_epoch,
        train_seconds=train_seconds,
        confusion=confusion,
        val_pred=val_pred,
        test_pred=test_pred,
        state_dict=state,
    )


class _EarlyStopper:
    """Watches one validation metric; keeps a copy of the best weights when asked to restore them."""

    def __init__(self, spec: RunSpec):
        es = spec.early_stopping
        self.metric, self.patience, self.min_delta = es.metric, es.patience, es.min_delta
        self.sign = -1.0 if es.metric.endswith("loss") else 1.0  # maximize sign × value
        self.keep = es.restore_best
        self.best = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad = 0

    def update(self, epoch: int, row: dict[str, float], model: torch.nn.Module) -> bool:
        """Record this epoch; True when training should stop."""
        score = self.sign * row[self.metric]
        if score > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad = score, epoch, 0
            if self.keep:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience


def _confusion(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows are the true class, columns the predicted one."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def _environment(device: torch.device, threads: int) -> dict[str, Any]:
    import nnstudy

    env = {
        "device": str(device),
        "threads": threads,
        "torch": torch.__version__,
        "nnstudy": nnstudy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
