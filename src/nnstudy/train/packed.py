"""Many same-shape MLP runs trained as one batched program, and the fast path of a single run.

Runs that share a model shape, a dataset and a batch size but differ in seed, learning rate, weight
decay, momentum, dropout rates, schedule, initialization or number of epochs are stacked into *lanes*:
the weights of layer ``l`` of every lane live in one ``(R, out, in)`` tensor, and a training step is
one ``baddbmm``/``bmm`` per matmul for all R lanes. The forward and backward passes are written out
by hand into preallocated buffers (no autograd graph, no module calls), and the optimizer step is
torch's fused kernel over one flat buffer. The same code trains one run (R = 1): ``train()`` takes
this path for every run it applies to (``fast_path_reason``), so a packed run and the same run alone
share one mechanism and give the same numbers within float tolerance (tests/train/test_packed.py).

What each lane sees is exactly what the run sees alone:

* initial weights: ``build_model`` under ``torch.manual_seed(spec.seed)``, as ``loop.train`` does,
  copied into the stacks;
* data order: its own ``torch.Generator().manual_seed(spec.seed)``, one ``randperm`` per epoch;
* dropout masks: its own generator, seeded by a number drawn from torch's RNG right after the
  model was built (so it depends on the seed only), one ``rand(B, width)`` per dropout layer and
  step, kept where ``u >= p`` and scaled by ``1 / (1 - p)`` (``nn.Dropout``'s expectation).

Numbers are those of DESIGN.md section 6: running train metrics (or an eval pass with
``train_eval = "full"``), an eval pass over the validation split after every epoch, divergence,
early stopping (with restored weights) and schedules per run. A lane that stops (diverged, early
stopped, or done with fewer epochs than the others) leaves the pack, and the rest go on without it.

Cost accounting: a packed run's ``seconds``, ``train_seconds`` and per-epoch ``seconds`` are its share
of the pack's wall time (the pack's time divided by the lanes trained in it), so that they add up to
the study's time; ``environment["packed"]`` is the number of runs in its pack.

Where it does not apply (``fast_path_reason``): convolutional models, batch norm, and optimizers
other than SGD, Adam and AdamW; ``train`` uses the module path for those.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from nnstudy.errors import SpecError
from nnstudy.spec import RunSpec
from nnstudy.train._lanes import Lanes, mlp_shape
from nnstudy.train.loop import (
    Callback,
    EarlyStopper,
    check_data,
    finish_run,
    resolve_device,
    run_environment,
    run_threads,
)
from nnstudy.train.optim import LRSchedule
from nnstudy.train.result import RunResult

__all__ = ["fast_path_reason", "pack_key", "packable", "train_packed", "MAX_LANES", "PACK_MEMORY"]

#: Most runs in one pack. Past a dozen or two lanes the batched matmuls are large enough to run at
#: the machine's rate, and a larger pack only delays the first results.
MAX_LANES = 32
#: Bytes a pack may use for its weights, optimizer state and step buffers (full-batch runs are big).
PACK_MEMORY = 2 * 1024**3

_OPTIMIZERS = ("sgd", "adam", "adamw")
#: Fields of a RunSpec that must be equal for runs to share a pack, in the order errors name them.
_PACK_FIELDS = ("data", "model shape", "batch_size", "optimizer", "precision", "device", "threads")


def fast_path_reason(spec: RunSpec) -> str | None:
    """None when ``spec`` trains on the stacked fast path; else why it cannot (for messages).

    The one place that decides: ``train`` calls it for every run, ``packable`` for every group.
    """
    m = spec.model
    if m.kind not in ("linear", "mlp"):
        return f"model kind {m.kind!r} (the fast path takes linear and mlp)"
    if m.kind == "mlp" and any(m.batchnorms()):
        return "batch norm (its statistics couple the samples of a batch)"
    if spec.optimizer.name not in _OPTIMIZERS:
        return f"optimizer {spec.optimizer.name!r} (the fast path takes sgd, adam and adamw)"
    return None


def pack_key(spec: RunSpec) -> tuple[Any, ...] | None:
    """Runs with equal keys can be trained as one pack; None when ``spec`` has no fast path.

    Equal: dataset spec, hidden widths and activation, batch size, optimizer kind, precision, device
    and threads. Free per run: seed, init, dropout rates, optimizer hyperparameters, schedule, epochs,
    early stopping, ``train_eval``, ``test``, ``max_loss``, what to save.
    """
    if fast_path_reason(spec) is not None:
        return None
    return (spec.data, mlp_shape(spec), spec.batch_size, spec.optimizer.name, spec.precision, spec.device, spec.threads)


def _lane_bytes(spec: RunSpec, n_train: int | None) -> int:
    """Rough bytes one lane needs: weights, gradients and optimizer state (4 copies, fp32), and the
    step buffers (input batch, 3 buffers per hidden layer, logits)."""
    hidden, _ = mlp_shape(spec)
    widths = (784, *hidden, 10)
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    bs = spec.batch_size if spec.batch_size != "full" else (n_train or 60_000)
    return 4 * (4 * params + bs * (widths[0] + 3 * sum(hidden) + 3 * widths[-1]))


def packable(specs: Sequence[RunSpec], max_lanes: int = MAX_LANES, n_train: int | None = None) -> list[list[RunSpec]]:
    """Split ``specs`` into groups that ``train_packed`` can train together, in order of first
    appearance; a run without a fast path (``fast_path_reason``) is a group of its own.

    Args:
        specs: runs to train.
        max_lanes: most runs per group.
        n_train: training images per run, to size full-batch packs (None: assume 60,000).

    Returns:
        The groups; every spec appears in exactly one.
    """
    groups: dict[Any, list[list[RunSpec]]] = {}
    order: list[list[RunSpec]] = []
    for s in specs:
        key = pack_key(s)
        if key is None:
            order.append([s])
            continue
        cap = max(1, min(max_lanes, PACK_MEMORY // max(_lane_bytes(s, n_train), 1)))
        chunks = groups.setdefault(key, [])
        if not chunks or len(chunks[-1]) >= cap:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(s)
    return order


def train_packed(
    specs: Sequence[RunSpec],
    data: Any = None,
    *,
    data_dir: str | None = None,
    callbacks: Sequence[Callback | None] | None = None,
) -> list[RunResult | Exception]:
    """Train ``specs`` as one pack and return one result per spec, in order.

    Args:
        specs: runs with equal ``pack_key`` (use ``packable`` to group them).
        data: the ``Splits`` of their common ``data`` spec; loaded when None.
        data_dir: where the dataset files are, when ``data`` is None.
        callbacks: one ``Callback`` (or None) per spec: the same events ``train`` sends.

    Returns:
        ``RunResult`` for each run; where a run's callback raised an ``Exception`` (a pruner that
        stops the run), that exception instead, and the run left the pack at that point.

    Raises:
        SpecError: an empty list, a run without a fast path, or runs that cannot share a pack (the
            message names the first field in which they differ), or callbacks of the wrong length.
        DataError: the dataset cannot be found or is corrupt.
    """
    specs = list(specs)
    _check_packable(specs)
    if callbacks is not None and len(callbacks) != len(specs):
        raise SpecError(f"train_packed: {len(callbacks)} callbacks for {len(specs)} runs")
    check_data(specs[0], data, "train_packed")
    from nnstudy.data import load

    t_start = time.perf_counter()
    spec0 = specs[0]
    device = resolve_device(spec0.device)
    if data is None:
        data = load(spec0.data, data_dir=data_dir)
    threads_before = torch.get_num_threads()
    threads = run_threads(spec0, data, device, lanes=len(specs))
    torch.set_num_threads(threads)
    try:
        trainer = _PackTrainer(specs, data, device, list(callbacks or [None] * len(specs)))
        results = trainer.run()
    finally:
        torch.set_num_threads(threads_before)
    share = (time.perf_counter() - t_start) / len(specs)
    env = run_environment(device, threads)
    env["packed"] = len(specs)
    for r in results:
        if isinstance(r, RunResult):
            r.seconds = share
            r.environment = dict(env)
    return results


def _check_packable(specs: list[RunSpec]) -> None:
    if not specs:
        raise SpecError("train_packed: no runs given")
    for i, s in enumerate(specs):
        reason = fast_path_reason(s)
        if reason is not None:
            raise SpecError(f"train_packed: run {i} ({s.identity()}) cannot be packed: {reason}")
    first = pack_key(specs[0])
    for i, s in enumerate(specs[1:], start=1):
        key = pack_key(s)
        if key != first:
            field = next(f for f, a, b in zip(_PACK_FIELDS, first, key, strict=True) if a != b)  # type: ignore[arg-type]
            raise SpecError(
                f"train_packed: runs 0 and {i} differ in {field}: they cannot share a pack; "
                "group runs with packable() first"
            )


# -------------------------------------------------------------------------------------- the trainer


class _Run:
    """Bookkeeping of one run in the pack: its spec, schedule, history and stopping state."""

    def __init__(self, index: int, spec: RunSpec, model: torch.nn.Module, steps: int, callback: Callback | None):
        self.index, self.spec, self.model, self.callback = index, spec, model, callback
        self.sched = LRSchedule(spec.schedule, spec.optimizer.lr, steps, spec.epochs)
        self.order = torch.Generator().manual_seed(spec.seed)  # data order: its own stream, as in loop.py
        self.stopper = EarlyStopper(spec) if spec.early_stopping else None
        self.history: list[dict[str, float]] = []
        self.status = "complete"
        self.train_seconds = 0.0
        self.error: Exception | None = None
        o = spec.optimizer
        self.hyper = {"lr": o.lr, "momentum": o.momentum, "nesterov": o.nesterov, "weight_decay": o.weight_decay,
                      "beta1": o.beta1, "beta2": o.beta2, "eps": o.eps}

    def notify(self, event: str, info: dict[str, Any]) -> bool:
        """Send an event to the run's callback; False (and the error kept) when it raised."""
        if self.callback is None:
            return True
        try:
            self.callback(event, info)
        except Exception as e:  # a pruner stopping the run: the run leaves, the pack goes on
            self.error = e
            return False
        return True


class _PackTrainer:
    """The epoch loop of a pack: per-lane data order, schedules and bookkeeping around ``Lanes``."""

    def __init__(self, specs: list[RunSpec], data: Any, device: torch.device, callbacks: list[Callback | None]):
        from nnstudy.models import build_model

        self.data, self.device = data, device
        models, dropout_seeds = [], []
        for s in specs:  # initial weights exactly as loop.train makes them for the run alone
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(s.seed)
                models.append(build_model(s.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes))
                dropout_seeds.append(int(torch.randint(0, 2**62, ())))
        self.lanes = Lanes(specs, models, dropout_seeds, data, device)
        self.n = len(data.train_y)
        self.x = data.train_x.reshape(self.n, -1).to(device, self.lanes.cdt)  # (N, F)
        self.y = data.train_y.to(device)
        bs = specs[0].batch_size
        self.bs = self.n if bs == "full" else min(bs, self.n)
        self.steps = math.ceil(self.n / self.bs)
        self.runs = [_Run(i, s, m, self.steps, cb)
                     for i, (s, m, cb) in enumerate(zip(specs, models, callbacks, strict=True))]
        self.results: list[RunResult | Exception | None] = [None] * len(specs)

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = getattr(self.data, f"{name}_x"), getattr(self.data, f"{name}_y")
        return xs.reshape(len(ys), self.x.shape[1]).to(self.device, self.lanes.cdt), ys.to(self.device)

    def run(self) -> list[RunResult | Exception]:
        active = list(self.runs)  # lane i trains run active[i]
        vx, vy = self._split("val")
        any_report = any(r.callback is not None for r in active)
        report_every = max(1, self.steps // 50)
        step = 0
        epoch = 0
        while active:
            epoch += 1
            t0 = time.perf_counter()
            R = len(active)
            perms = torch.stack([torch.randperm(self.n, generator=r.order) for r in active]).to(self.device)  # (R, N)
            # per step and lane: summed log-likelihood and right answers, added up once at the end
            nll = torch.zeros(self.steps, R, device=self.device)
            hits = torch.zeros(self.steps, R, self.bs, dtype=torch.bool, device=self.device)
            full = self.steps * self.bs == self.n
            # (steps, R·bs) index rows, one contiguous row per step (the last may be shorter)
            body = perms[:, : (self.steps if full else self.steps - 1) * self.bs]
            rows = body.view(R, -1, self.bs).transpose(0, 1).reshape(-1, R * self.bs)
            tail = None if full else perms[:, (self.steps - 1) * self.bs :].reshape(-1)
            schedules_constant = all(r.sched.is_constant for r in active)
            hyper = [r.hyper for r in active]
            for i in range(self.steps):
                if not schedules_constant:
                    hyper = [{**r.hyper, "lr": r.sched.rate(step)} for r in active]
                idx = rows[i] if i < len(rows) else tail
                B = len(idx) // R
                self.lanes.forward_backward(self.x, self.y, idx, B, nll[i], hits[i, :, :B])
                self.lanes.update(hyper)
                step += 1
                if any_report and (i + 1) % report_every == 0:
                    for r in active:
                        r.notify("step", {"epoch": epoch, "step": i + 1, "steps": self.steps})
            loss_sum = -nll.double().sum(0)  # (R,)
            correct = hits.sum((0, 2))  # (R,)
            train_time = (time.perf_counter() - t0) / R
            active = self._end_epoch(active, epoch, hyper, loss_sum, correct, vx, vy, t0, train_time)
        return self.results  # type: ignore[return-value]

    def _end_epoch(self, active: list[_Run], epoch: int, hyper: list[dict[str, Any]], loss_sum: torch.Tensor,
                   correct: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, t0: float, train_time: float
                   ) -> list[_Run]:
        """Metrics of the epoch for every lane, then retire the lanes that stop; returns those left."""
        R = len(active)
        running = (loss_sum / self.n).cpu().numpy()
        acc = (correct.double() / self.n).cpu().numpy()
        val_loss, val_acc, val_pred = last_val = self.lanes.predict(vx, vy)
        if any(r.spec.train_eval == "full" for r in active):
            full_loss, full_acc, _ = self.lanes.predict(self.x, self.y)
        seconds = (time.perf_counter() - t0) / R
        keep, leaving = [], []
        for lane, r in enumerate(active):
            r.train_seconds += train_time
            row = {"epoch": epoch, "lr": hyper[lane]["lr"]}
            if r.spec.train_eval == "full":
                row["train_loss"], row["train_accuracy"] = float(full_loss[lane]), float(full_acc[lane])
            else:
                row["train_loss"], row["train_accuracy"] = float(running[lane]), float(acc[lane])
            row["val_loss"], row["val_accuracy"] = float(val_loss[lane]), float(val_acc[lane])
            row["seconds"] = seconds
            r.history.append(row)
            stop = not r.notify("epoch", dict(row))
            if not stop and (not math.isfinite(running[lane]) or running[lane] > r.spec.max_loss):
                r.status, stop = "diverged", True
            if not stop:
                r.sched.end_epoch(row["val_loss"])
                if r.stopper is not None and r.stopper.update(epoch, row, partial(self.lanes.lane_state, lane)):
                    stop = True
            stop = stop or epoch == r.spec.epochs
            (leaving if stop else keep).append(lane)
        if leaving:
            self._finish(active, leaving, vx, vy, last_val)
        if leaving and keep:
            self.lanes.select(keep)
        return [active[i] for i in keep]

    def _finish(self, active: list[_Run], leaving: list[int], vx: torch.Tensor, vy: torch.Tensor,
                last_val: tuple[np.ndarray, np.ndarray, torch.Tensor]) -> None:
        """Results of the runs in lanes ``leaving``: restore best weights where asked, final val/test
        predictions (one batched pass for those lanes; this epoch's validation pass, ``last_val``,
        serves the lanes whose weights did not change since), weights."""
        from nnstudy.models import train_flops

        restored = []
        for lane in leaving:
            r = active[lane]
            if r.error is None and r.status == "complete" and r.stopper is not None \
                    and r.spec.early_stopping.restore_best and r.stopper.best_state is not None:
                self.lanes.load_lane(lane, r.stopper.best_state)
                restored.append(lane)
        done = [lane for lane in leaving if active[lane].error is None and active[lane].status == "complete"]
        val_of = {lane: (last_val[0][lane], last_val[1][lane], last_val[2][lane]) for lane in done}
        if restored:
            fresh = self.lanes.predict(vx, vy, restored)
            val_of.update({lane: (fresh[0][j], fresh[1][j], fresh[2][j]) for j, lane in enumerate(restored)})
        tested = [lane for lane in done if active[lane].spec.test]
        test = self.lanes.predict(*self._split("test"), tested) if tested else None
        for lane in leaving:
            r = active[lane]
            if r.error is not None:
                self.results[r.index] = r.error
                continue
            evals: dict[str, tuple[float, float, torch.Tensor]] = {}
            if lane in done:
                loss, acc, pred = val_of[lane]
                evals["val"] = (float(loss), float(acc), pred)
                if lane in tested:
                    k = tested.index(lane)
                    evals["test"] = (float(test[0][k]), float(test[1][k]), test[2][k])
            state = None
            if r.spec.save_weights:
                state = self._state_dict(r.model, self.lanes.lane_state(lane))
            result = finish_run(r.spec, r.history, r.status, r.stopper, evals, state, self.data, r.train_seconds)
            result.params = sum(p.numel() for p in r.model.parameters())
            per_sample = train_flops(r.spec.model, input_shape=tuple(self.data.input_shape),
                                     num_classes=self.data.num_classes)
            result.train_flops = float(per_sample) * self.n * len(r.history)
            self.results[r.index] = result

    @staticmethod
    def _state_dict(model: torch.nn.Module, tensors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The lane's weights under the names of the run's ``nn.Sequential`` (``fc1.weight``...)."""
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for p, t in zip((p for m in linears for p in (m.weight, m.bias)), tensors, strict=True):
                p.copy_(t)
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
