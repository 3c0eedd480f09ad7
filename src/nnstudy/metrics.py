"""Metric names, in one place, and which way is better.

A run's final metrics are ``FINAL``; a study ranks runs by one of ``RANKED`` (chosen on a training or
validation split, never on test). Accuracies are fractions in [0, 1], larger is better; losses are
in [0, ∞), smaller is better. Every part of nnstudy asks here rather than looking at a name's ending.
"""

from __future__ import annotations

import math

__all__ = ["FINAL", "RANKED", "bounds", "direction", "is_accuracy", "is_loss", "maximize"]

#: Final metrics a run can carry, in this order; ``test_*`` only when the run was tested.
FINAL = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
#: Metrics a study can rank runs by.
RANKED = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")


def is_accuracy(metric: str) -> bool:
    return metric.endswith("accuracy")


def is_loss(metric: str) -> bool:
    return metric.endswith("loss")


def maximize(metric: str) -> bool:
    """Whether larger is better: False for losses, True otherwise."""
    return not is_loss(metric)


def direction(metric: str) -> str:
    """``"min"`` for losses, ``"max"`` otherwise."""
    return "max" if maximize(metric) else "min"


def bounds(metric: str) -> tuple[float, float]:
    """The range a metric's values can take: accuracies [0, 1], losses [0, ∞), else unbounded."""
    if is_accuracy(metric):
        return (0.0, 1.0)
    if is_loss(metric):
        return (0.0, math.inf)
    return (-math.inf, math.inf)
