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
    "VGG11Spec",
    "__version__",
]
