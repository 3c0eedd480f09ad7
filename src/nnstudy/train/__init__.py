"""Training: one run (``train``), packs of runs (``packed.train_packed``), the epoch driver and its
engines, optimizers and schedules, and what a run returns. docs/trainer.md describes the parts.

``nnstudy.train`` is the function that trains a run from short options (``nnstudy/__init__.py``);
this package's modules are also its attributes, so that ``nnstudy.train.packed`` reaches
``nnstudy.train.packed`` once the package is imported.
"""

from __future__ import annotations

import importlib
import sys

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

_MODULES = ("driver", "engine", "loop", "mfu", "modules", "optim", "packed", "result", "stacked")


def _attach_to_function() -> None:
    function = getattr(sys.modules.get("nnstudy"), "_train_function", None)
    if function is not None:
        for name in _MODULES:
            setattr(function, name, importlib.import_module(f"{__name__}.{name}"))


_attach_to_function()
