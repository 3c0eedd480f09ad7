"""nnstudy: neural-network studies on MNIST-family data, with answers you can trust."""

from __future__ import annotations

from nnstudy.errors import DataError, NnstudyError, SpecError, StoreError
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

__version__ = "0.1.0"

# The subpackage nnstudy.train is imported first; the function below then takes its name on the
# package, so that notebooks write ``nnstudy.train(lr=0.1)``. ``from nnstudy.train import ...``
# still reaches the subpackage through sys.modules.
from nnstudy.train import RunResult  # noqa: E402


def train(spec=None, data=None, *, data_dir=None, callback=None, **options) -> RunResult:
    """Train one model; returns its ``RunResult`` (``.curves``, ``.summary()``, ``.plot()``).

    ``spec`` is a RunSpec, a dict of RunSpec fields, or a TOML file; ``options`` are the short
    names of ``nnstudy.spec.SHORTCUTS`` (the CLI's flags): ``nnstudy.train(model="mlp", hidden=[300],
    optimizer="adam", lr=1e-3, epochs=10, test=True)``. ``data`` is a ``nnstudy.data.Splits``
    to reuse across runs. Raises SpecError or DataError on bad input.
    """
    from nnstudy.spec import make_run_spec
    from nnstudy.train.loop import train as _train

    run = make_run_spec(spec, options, source="nnstudy.train")
    return _train(run, data, data_dir=data_dir, callback=callback)


from nnstudy.study import open_study  # noqa: E402

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
