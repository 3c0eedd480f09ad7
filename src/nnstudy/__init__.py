"""nnstudy: neural-network studies on MNIST-family data, with answers you can trust.

The public API is imported on first use (PEP 562): ``import nnstudy`` costs a few milliseconds, so
that ``nnstudy --help`` starts at once; torch, pandas and optuna load when a function needs them.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from nnstudy._lazy import exports
from nnstudy.errors import DataError, NnstudyError, SpecError, StoreError

if TYPE_CHECKING:
    from nnstudy.spec import (
        CNNSpec,
        DataSpec,
        EarlyStopSpec,
        LinearSpec,
        MLPSpec,
        OptimSpec,
        RunSpec,
        ScheduleSpec,
        VGG11Spec,
    )
    from nnstudy.study import open_study
    from nnstudy.train.result import RunResult

__version__ = "0.1.0"

# imported on first use (nnstudy/_lazy.py)
__getattr__ = exports(__name__, {
    ".spec": ["CNNSpec", "DataSpec", "EarlyStopSpec", "LinearSpec", "MLPSpec", "OptimSpec", "RunSpec", "ScheduleSpec",
              "VGG11Spec"],
    ".train.result": ["RunResult"],
    ".study": ["open_study"],
})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def train(spec=None, data=None, *, data_dir=None, callback=None, quiet=False, engine="auto",
          **options) -> RunResult:
    """Train one model; returns its ``RunResult`` (``.curves``, ``.summary()``, ``.plot()``).

    ``spec`` is a RunSpec, a dict of RunSpec fields, or a TOML file; ``options`` are the short
    names of ``nnstudy.flags.SHORTCUTS`` (the CLI's flags): ``nnstudy.train(model="mlp", hidden=[300],
    optimizer="adam", lr=1e-3, epochs=10, test=True)``. ``data`` is a ``nnstudy.data.Splits``
    to reuse across runs. A progress bar over the run's steps and a line per epoch show while it
    trains, in a terminal and in Jupyter (``nnstudy.progress``); ``quiet=True`` shows nothing.
    ``callback(event, info)`` is called too. ``engine`` is "auto", "stacked" (linear models and
    MLPs) or "modules" (any model; docs/trainer.md). Raises SpecError or DataError on bad input.
    """
    from nnstudy.progress import TrainProgress
    from nnstudy.spec import make_run_spec
    from nnstudy.train.loop import train as _train

    run = make_run_spec(spec, options, source="nnstudy.train")
    with TrainProgress(run, quiet=quiet) as progress:
        return _train(run, data, data_dir=data_dir, callback=progress.chain(callback), engine=engine)


_train_function = train


class _Package(types.ModuleType):
    """The type of the ``nnstudy`` module: its attribute ``train`` is always the function above.

    The import system binds a subpackage to its parent's attribute when it first imports it, so the
    first ``import nnstudy.train.loop`` (anywhere, at any time) would otherwise replace the function
    ``nnstudy.train`` with the subpackage ``nnstudy.train``, which ``sys.modules`` still reaches.
    """

    @property
    def train(self):
        package = sys.modules.get("nnstudy.train")
        if package is not None:  # its modules become the function's attributes (nnstudy.train.packed)
            package.attach(_train_function)
        return _train_function

    @train.setter
    def train(self, value) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError("nnstudy.train is the training function; it cannot be replaced")


sys.modules[__name__].__class__ = _Package

__all__ = [
    "CNNSpec",
    "DataError",
    "DataSpec",
    "EarlyStopSpec",
    "LinearSpec",
    "MLPSpec",
    "NnstudyError",
    "OptimSpec",
    "RunSpec",
    "ScheduleSpec",
    "SpecError",
    "StoreError",
    "RunResult",
    "VGG11Spec",
    "__version__",
    "open_study",
    "train",
]
