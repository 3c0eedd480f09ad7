"""Training: one run (``train``), packs of runs (``packed.train_packed``), the epoch driver and its
engines, optimizers and schedules, and what a run returns. docs/trainer.md describes the parts.

Names are imported on first use (PEP 562), so that importing ``nnstudy.train.result`` (what a
study's tables read) does not load torch.

``nnstudy.train`` is the function that trains a run from short options (``nnstudy/__init__.py``);
once this package is imported, its modules are also that function's attributes (``attach``), so
that ``nnstudy.train.packed`` reaches ``nnstudy.train.packed``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nnstudy._lazy import exports

if TYPE_CHECKING:
    from nnstudy.train.loop import evaluate, resolve_device, train
    from nnstudy.train.optim import LRSchedule, build_optimizer
    from nnstudy.train.result import EPOCH_COLUMNS, METRICS, RunResult

__all__ = ["EPOCH_COLUMNS", "LRSchedule", "METRICS", "RunResult", "build_optimizer", "evaluate",
           "resolve_device", "train"]

_MODULES = ("driver", "engine", "loop", "mfu", "modules", "optim", "packed", "result", "stacked")

# imported on first use (nnstudy/_lazy.py)
__getattr__ = exports(__name__, {".loop": ["evaluate", "resolve_device", "train"],
                                 ".optim": ["LRSchedule", "build_optimizer"],
                                 ".result": ["EPOCH_COLUMNS", "METRICS", "RunResult"]}, modules=_MODULES)

_attached: set[int] = set()


def attach(function: Any) -> None:
    """Make this package's modules attributes of ``function`` (the function ``nnstudy.train``),
    once; ``nnstudy`` calls it when ``nnstudy.train`` is read after this package was imported."""
    if id(function) not in _attached:
        _attached.add(id(function))
        for name in _MODULES:
            setattr(function, name, importlib.import_module(f"{__name__}.{name}"))
