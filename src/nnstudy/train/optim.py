"""Optimizers and learning-rate schedules, built from ``OptimSpec`` and ``ScheduleSpec``.

Schedules are closed-form multipliers of the base learning rate, evaluated per optimizer step and
written into the param groups: one mechanism for every schedule instead of a torch scheduler object
per kind, and the same formula can later drive many packed runs at once (a tensor of base rates).
``plateau`` is the one schedule that reacts to a measurement, so it keeps a little state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from nnstudy.spec import OptimSpec, ScheduleSpec

__all__ = ["build_optimizer", "LRSchedule"]


def build_optimizer(spec: OptimSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The torch optimizer for ``spec``. Weight decay is L2 added to the gradient, except for
    ``adamw`` (decoupled, as its paper defines it). SGD, Adam and AdamW use torch's fused kernels
    (one pass over each parameter tensor for the whole update), where this torch has them for the
    parameters' device; else, like RMSprop and Adadelta, ``foreach`` (one kernel per operation over
    all parameters instead of a Python loop over tensors)."""
    params = list(params)
    wd = spec.weight_decay
    if spec.name == "sgd":
        return _fused_or_foreach(
            torch.optim.SGD, params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=wd
        )
    if spec.name in ("adam", "adamw"):
        cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
        return _fused_or_foreach(cls, params, lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps, weight_decay=wd)
    if spec.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=spec.lr, alpha=spec.alpha, eps=spec.eps, momentum=spec.momentum, weight_decay=wd, foreach=True
        )
    if spec.name == "adadelta":
        return torch.optim.Adadelta(params, lr=spec.lr, rho=spec.rho, eps=spec.eps, weight_decay=wd, foreach=True)
    raise AssertionError(f"unhandled optimizer {spec.name!r}")  # spec validation makes this unreachable


def _fused_or_foreach(cls: type[torch.optim.Optimizer], params: list, **kw) -> torch.optim.Optimizer:
    """``cls(params, fused=True)`` where supported (torch >= 2.4 on CPU; CUDA), else ``foreach=True``."""
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):
        return cls(params, foreach=True, **kw)


class LRSchedule:
    """Learning rate at every step of a run.

    ``rate(step)`` gives the rate for optimizer step ``step`` (0-based, over the whole run);
    ``end_epoch(val_loss)`` lets ``plateau`` react. Warmup (any schedule) ramps linearly from
    ``lr / warmup_steps`` to the schedule's own value over the first ``warmup_epochs``.
    """

    def __init__(self, spec: ScheduleSpec, base_lr: float, steps_per_epoch: int, epochs: int):
        self.spec = spec
        self.base_lr = base_lr
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * epochs
        self.warmup_steps = int(round(spec.warmup_epochs * steps_per_epoch))
        self._plateau_scale = 1.0
        self._best = math.inf
        self._bad_epochs = 0

    @property
    def is_constant(self) -> bool:
        """True when every step's rate is ``base_lr`` (no schedule, no warmup), so a trainer may skip
        asking. ``plateau`` is never constant: its rate changes with the validation loss."""
        return self.spec.name == "constant" and self.warmup_steps == 0

    def multiplier(self, step: int) -> float:
        s, t, total = self.spec, step, max(self.total_steps, 1)
        epoch = t // self.steps_per_epoch
        if s.name == "constant":
            m = 1.0
        elif s.name == "plateau":
            m = self._plateau_scale
        elif s.name == "step":
            m = s.gamma ** (epoch // s.step_size)
        elif s.name == "exponential":
            m = s.gamma**epoch
        elif s.name == "cosine":
            floor = s.min_lr / self.base_lr
            m = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t / total))
        elif s.name == "onecycle":
            m = _one_cycle(t, total, s.pct_start)
        else:  # pragma: no cover - spec validation makes this unreachable
            raise AssertionError(s.name)
        if t < self.warmup_steps:
            m *= (t + 1) / self.warmup_steps
        return m

    def rate(self, step: int) -> float:
        return self.base_lr * self.multiplier(step)

    def end_epoch(self, val_loss: float | None) -> None:
        """Reduce-on-plateau bookkeeping (torch's 'rel' threshold of 1e-4, mode 'min')."""
        if self.spec.name != "plateau" or val_loss is None or math.isnan(val_loss):
            return
        if val_loss < self._best * (1.0 - 1e-4):
            self._best, self._bad_epochs = val_loss, 0
        else:
            self._bad_epochs += 1
            if self._bad_epochs > self.spec.patience:
                self._plateau_scale *= self.spec.factor
                self._bad_epochs = 0


def _one_cycle(t: int, total: int, pct_start: float, div: float = 25.0, final_div: float = 1e4) -> float:
    """torch.optim.lr_scheduler.OneCycleLR's multiplier (cosine annealing, default div factors)."""
    up_end = pct_start * total - 1
    lo, hi, end = 1.0 / div, 1.0, 1.0 / (div * final_div)
    if t <= up_end:
        frac = t / up_end if up_end > 0 else 1.0
        return hi + (lo - hi) / 2.0 * (math.cos(math.pi * frac) + 1.0)
    frac = (t - up_end) / max(total - 1 - up_end, 1e-12)
    return end + (hi - end) / 2.0 * (math.cos(math.pi * min(frac, 1.0)) + 1.0)
