"""Training: one run (``train``), its optimizers and schedules, and what it returns."""

from __future__ import annotations

from nnstudy.train.loop import evaluate, resolve_device, train
from nnstudy.train.optim import LRSchedule, build_optimizer
from nnstudy.train.result import EPOCH_COLUMNS, METRICS, RunResult

__all__ = [
    "EPOCH_COLUMNS",
    "LRSchedule",
    "METRICS",
    "RunResult",
    "build_optimizer",
    "evaluate",
    "resolve_device",
    "train",
]
