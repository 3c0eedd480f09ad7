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

Two paths, one set of semantics. Linear and MLP models without batch norm, trained with SGD, Adam or
AdamW (``packed.fast_path_reason``), take the stacked fast path of ``packed.py``: forward and backward
written out over preallocated buffers and one optimizer update for all lanes, the same code that
trains many runs as one pack. Everything else takes the module path here: autograd over the ``nn.Sequential``.
They agree within float tolerance (tests/train/test_packed.py). Dropout masks differ between them:
the fast path draws each run's masks from a generator of its own (so that a packed run sees the
masks it would see alone); the module path draws from torch's RNG.

Speed (docs/performance.md has the measurements): the split lives on the device as one float tensor;
the module path permutes it once per epoch (one gather) and takes batches as contiguous slices, so
there is no per-sample Python and no DataLoader; convolutional models run channels-last, with a ReLU
that directly precedes a max-pool applied after it (``execution_order``: the same numbers, bit for
bit, on a quarter of the elements); SGD, Adam and AdamW use torch's fused kernels; evaluation runs in
large batches (smaller for wide activations); losses and counts accumulate on the device and are read
once per epoch. With ``threads`` unset, a run whose optimizer step is small uses one thread
(``run_threads``).
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
#: ... but not so large that a batch's activations swamp memory: a CNN's first feature map is 100 kB
#: per image; seed 003's test pass took 2.37 s in batches of 8192 (800 MB) and 1.49 s in batches of
#: 668 (this bound), on two threads.
EVAL_BYTES = 64 * 1024**2
#: Model FLOPs per optimizer step below which a run whose spec leaves ``threads`` open uses one
#: thread: such a step is a few dozen kernels too small to split. Measured on 2 cores: a 784-10-10
#: MLP at batch 64 (3 MFLOP per step) runs as fast on one thread as on two when the machine is idle,
#: and twice as fast when another process holds a core (an OpenMP barrier then waits for the
#: descheduled thread); from 784-50-50-50-10 (17 MFLOP) up, two threads win on an idle machine.
PARALLEL_STEP_FLOPS = 10e6


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device = 'cuda': no CUDA device is available here; use 'auto' or 'cpu'")
    return torch.device(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, autocast: Any = None, batch: int = EVAL_BATCH
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy (fraction) and predictions (int64, shape (N,)) of ``model`` on (x, y),
    in eval mode, in batches of ``batch``. Empty inputs give NaN metrics."""
    if len(y) == 0:
        return math.nan, math.nan, torch.empty(0, dtype=torch.long)
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    preds = []
    for i in range(0, len(y), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
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
    from nnstudy.train import packed

    check_data(spec, data, "train")
    if packed.fast_path_reason(spec) is None:  # MLPs and linear models: the stacked fast path, one lane
        result = packed.train_packed([spec], data, data_dir=data_dir, callbacks=[callback])[0]
        if isinstance(result, Exception):  # the callback stopped the run (a pruner): as the module path
            raise result
        del result.environment["packed"]
        return result

    from nnstudy.models import build_model, train_flops

    t_start = time.perf_counter()
    device = resolve_device(spec.device)
    if data is None:
        data = load(spec.data, data_dir=data_dir)
    threads_before = torch.get_num_threads()
    threads = run_threads(spec, data, device)
    torch.set_num_threads(threads)
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
    result.environment = run_environment(device, threads)
    return result


def run_threads(spec: RunSpec, data: Any, device: torch.device, lanes: int = 1) -> int:
    """Intra-op threads for a run: ``spec.threads`` when set; else, on a CPU, one thread for a small
    step (under ``PARALLEL_STEP_FLOPS`` model FLOPs per optimizer step, over all ``lanes``), and torch's
    current count (all cores unless the caller chose otherwise) for a larger one."""
    if spec.threads:
        return spec.threads
    if device.type != "cpu":
        return torch.get_num_threads()
    from nnstudy.models import train_flops

    n = len(data.train_y)
    batch = n if spec.batch_size == "full" else min(spec.batch_size, n)
    step = train_flops(spec.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes) * batch * lanes
    return 1 if step < PARALLEL_STEP_FLOPS else torch.get_num_threads()


def execution_order(model: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same layers, run with every ReLU that directly precedes a max-pool moved after it.

    ``maxpool(relu(v)) == relu(maxpool(v))`` exactly (ReLU is monotone), and the gradients agree
    too: both reach the window's first maximum when it is positive, and nothing otherwise. The ReLU
    and its backward then touch a quarter of the elements (seed 003's first feature map:
    128 × 32 × 28 × 28 per step). Layers are shared with ``model``: its names, parameters and
    ``state_dict`` are unchanged; returns ``model`` itself when there is nothing to move.
    """
    items = list(model.named_children())
    moved = False
    for i in range(len(items) - 1):
        (_, a), (_, b) = items[i], items[i + 1]
        if type(a) is torch.nn.ReLU and isinstance(b, torch.nn.MaxPool2d):
            items[i], items[i + 1] = items[i + 1], items[i]
            moved = True
    if not moved:
        return model
    from collections import OrderedDict

    return torch.nn.Sequential(OrderedDict(items))


def check_data(spec: RunSpec, data: Any, where: str) -> None:
    """Refuse ``Splits`` loaded for another ``DataSpec`` than the run's (None: to be loaded)."""
    if data is not None and getattr(data, "spec", spec.data) != spec.data:
        raise SpecError(f"{where}: the data given were loaded for {data.spec!r}, but the run asks for {spec.data!r}")


def _fit(spec: RunSpec, model: torch.nn.Module, data: Any, device: torch.device, callback: Callback | None):
    conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    # channels-last: oneDNN's convolutions, batch norm and pooling run on NHWC without reordering
    # (seed 003's CNN: 87 -> 64 ms per step on one core, measured); MLPs see flat rows either way
    fmt = torch.channels_last if conv else torch.contiguous_format
    model.to(memory_format=fmt)
    net = execution_order(model)
    x, y = data.train_x.to(device).contiguous(memory_format=fmt), data.train_y.to(device)
    vx, vy = data.val_x.to(device).contiguous(memory_format=fmt), data.val_y.to(device)
    eval_batch = _eval_batch(spec, data)
    n = len(y)
    bs = n if spec.batch_size == "full" else min(spec.batch_size, n)
    steps = math.ceil(n / bs)
    opt = build_optimizer(spec.optimizer, model.parameters())
    sched = LRSchedule(spec.schedule, spec.optimizer.lr, steps, spec.epochs)
    order = torch.Generator().manual_seed(spec.seed)  # data order: its own stream, on the CPU
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if spec.precision == "bf16" else None
    stopper = EarlyStopper(spec) if spec.early_stopping else None
    report_every = max(1, steps // 50)

    def ev(xs: torch.Tensor, ys: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        return evaluate(net, xs, ys, autocast=amp, batch=eval_batch)

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
                out = net(xb)
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
            row["train_loss"], row["train_accuracy"], _ = ev(x, y)
        else:
            row["train_loss"], row["train_accuracy"] = running_loss, correct.item() / n
        row["val_loss"], row["val_accuracy"], _ = ev(vx, vy)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if callback is not None:
            callback("epoch", dict(row))
        if not math.isfinite(running_loss) or running_loss > spec.max_loss:
            status = "diverged"
            break
        sched.end_epoch(row["val_loss"])
        if stopper is not None and stopper.update(epoch, row, lambda: copy.deepcopy(model.state_dict())):
            break

    if (stopper is not None and status == "complete" and spec.early_stopping.restore_best
            and stopper.best_state is not None):
        model.load_state_dict(stopper.best_state)
    evals: dict[str, tuple[float, float, torch.Tensor]] = {}
    if status == "complete":
        evals["val"] = ev(vx, vy)
        if spec.test:
            evals["test"] = ev(data.test_x.to(device).contiguous(memory_format=fmt), data.test_y.to(device))
    state = None
    if spec.save_weights:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return finish_run(spec, history, status, stopper, evals, state, data, train_seconds)


def _eval_batch(spec: RunSpec, data: Any) -> int:
    """Evaluation batch: ``EVAL_BATCH`` rows, fewer where the largest activation of that many
    images would pass ``EVAL_BYTES``."""
    from nnstudy.models import layers

    widest = max(math.prod(layer.output_shape) for layer in layers(spec.model, tuple(data.input_shape),
                                                                    data.num_classes))
    return max(64, min(EVAL_BATCH, EVAL_BYTES // (4 * widest)))


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
    best epoch's when early stopping restored them); empty for a diverged run. Shared by the module
    path and the packed trainer, so both report the same fields the same way.
    """
    best_epoch = len(history)
    early_stopped = False
    if stopper is not None and status == "complete":
        early_stopped = len(history) < spec.epochs
        if spec.early_stopping.restore_best and stopper.best_state is not None:
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


class EarlyStopper:
    """Watches one validation metric; keeps a copy of the best weights when asked to restore them."""

    def __init__(self, spec: RunSpec):
        es = spec.early_stopping
        self.metric, self.patience, self.min_delta = es.metric, es.patience, es.min_delta
        self.sign = -1.0 if es.metric.endswith("loss") else 1.0  # maximize sign × value
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


def _confusion(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows are the true class, columns the predicted one."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def run_environment(device: torch.device, threads: int) -> dict[str, Any]:
    """Where a run ran: device, threads, library versions, machine."""
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
