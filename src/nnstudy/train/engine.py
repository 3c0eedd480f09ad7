"""The contract between the epoch driver (``driver.py``) and an engine: how R lanes compute.

A *lane* is one run being trained: its model, optimizer state and running metrics. The driver owns
what a run means (DESIGN.md section 6): data order, the schedule's rate at every step, the epoch row,
train-eval, validation, divergence, early stopping and restoring the best weights, what a result
holds and what it cost. An engine owns how the numbers are computed: where the weights live, the
forward and backward pass, the optimizer update, evaluation. The driver never looks inside an
engine, and an engine never decides when a run stops. Two engines exist:

* ``stacked.StackedMLP``: linear models and MLPs as stacked tensors, a hand-written forward and
  backward pass and fused optimizer kernels over all lanes (``_lanes.Lanes``);
* ``modules.TorchModules``: any model ``build_model`` makes, as torch modules with autograd,
  channels-last, autocast and ``torch.optim``; several lanes of one shape (no batch norm, no
  dropout) run as one ``torch.func.vmap`` program.

An engine says what it trains by class attributes (``kinds``, ``optimizers``, ``batchnorm``), which
``unsupported`` turns into a reason, and which runs may share its program (``lane_key``); the packing
policy (``packed.py``) decides from those which engine trains a run and which runs train together.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from nnstudy.spec import RunSpec

__all__ = ["Engine", "Hyper", "hyper_of", "unsupported"]

#: One lane's optimizer hyperparameters for one step: lr (the schedule's rate for this step),
#: momentum, nesterov, weight_decay, beta1, beta2, eps.
Hyper = dict[str, Any]


def hyper_of(spec: RunSpec) -> Hyper:
    """The run's optimizer hyperparameters at its base learning rate."""
    o = spec.optimizer
    return {"lr": o.lr, "momentum": o.momentum, "nesterov": o.nesterov, "weight_decay": o.weight_decay,
            "beta1": o.beta1, "beta2": o.beta2, "eps": o.eps}


class Engine(Protocol):
    """How R same-shape lanes train. The driver calls, per epoch: ``start_epoch``, then ``step`` once
    per batch, then ``end_epoch``, then ``predict`` as the run's semantics need; between epochs it may
    ``snapshot``, ``restore``, ``select`` and ``state_dict``. Lane indices are positions in the
    current lanes (``select`` renumbers them).

    Attributes:
        name: what ``train(..., engine=name)`` calls it.
        kinds: the model kinds it trains (``spec.model.kind``).
        optimizers: the optimizers it trains with (``spec.optimizer.name``).
        batchnorm: whether it trains models with batch norm.
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    optimizers: ClassVar[tuple[str, ...]]
    batchnorm: ClassVar[bool]

    @classmethod
    def lane_key(cls, spec: RunSpec) -> Hashable | None:
        """What the models of runs sharing one program must have in common (shape, activation...);
        None when the run can only train as a program of its own."""

    @classmethod
    def lane_bytes(cls, spec: RunSpec, n_train: int, input_shape: Sequence[int], num_classes: int) -> int:
        """Rough memory one lane needs (weights, gradients, optimizer state, step buffers)."""

    def __init__(self, specs: list[RunSpec], models: list[torch.nn.Module], dropout_seeds: list[int],
                 data: Any, device: torch.device) -> None:
        """Lanes for ``specs``, lane r starting from ``models[r]``'s weights (built by the driver under
        the run's seed), drawing its dropout masks from a generator seeded by ``dropout_seeds[r]``
        (or, where the engine trains that lane alone, from torch's RNG, which the driver has seeded),
        over ``data`` (a ``Splits``) on ``device``."""

    @property
    def R(self) -> int:
        """The number of lanes."""

    def start_epoch(self, steps: int, batch: int) -> None:
        """An epoch of ``steps`` batches of at most ``batch`` rows begins: zero the running sums,
        put the models in training mode."""

    def step(self, i: int, idx: torch.Tensor, B: int, hyper: Sequence[Hyper]) -> None:
        """Step ``i`` of the epoch: one optimizer step of every lane, lane r on training rows
        ``idx[r·B:(r+1)·B]`` (int64, on the device) with the hyperparameters ``hyper[r]``. Adds the
        batch's summed cross-entropy and right answers (train mode) to the lane's running sums."""

    def end_epoch(self) -> tuple[np.ndarray, np.ndarray]:
        """Per lane, the epoch's summed training loss (float64) and right answers (R,)."""

    def predict(self, split: str, lanes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Eval-mode mean loss, accuracy (fractions) and predictions (int64, (len(lanes), N)) of
        ``lanes`` on ``split`` ("train", "val" or "test"), in batches small enough to bound memory.
        An empty split gives NaN metrics."""

    def snapshot(self, lane: int) -> Any:
        """A copy of the lane's weights, for ``restore``."""

    def restore(self, lane: int, state: Any) -> None:
        """Load a ``snapshot`` back into the lane."""

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the lanes ``keep``, in that order (the others stopped)."""

    def state_dict(self, lane: int) -> dict[str, torch.Tensor]:
        """The lane's weights as CPU tensors under the names of its ``build_model`` module."""


def unsupported(engine: type, spec: RunSpec) -> str | None:
    """Why ``engine`` cannot train ``spec`` (for messages), from what it says it supports; None when it can."""
    m, name = spec.model, engine.name
    if m.kind not in engine.kinds:
        return f"model kind {m.kind!r} (the {name} engine takes {', '.join(engine.kinds)})"
    if not engine.batchnorm and m.kind in ("mlp", "cnn", "vgg11") and _has_batchnorm(m):
        return f"batch norm (the {name} engine has none: its statistics couple the samples of a batch)"
    if spec.optimizer.name not in engine.optimizers:
        return f"optimizer {spec.optimizer.name!r} (the {name} engine takes {', '.join(engine.optimizers)})"
    return None


def _has_batchnorm(model: Any) -> bool:
    bn = getattr(model, "batchnorms", None)
    return any(bn()) if callable(bn) else bool(getattr(model, "batchnorm", False))
