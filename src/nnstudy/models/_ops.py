"""Layer descriptions: what one layer is, without building it.

Each op knows four things about itself: the torch module it becomes, the shape it outputs for a
given input shape, its parameter count and its forward FLOPs per sample. ``_plan.plan`` lists the
ops of a model spec; ``build_model`` turns them into modules, and ``layers`` / ``summary`` /
``count_params`` / ``forward_flops`` read the same list, so the model that is counted is the model
that is trained.

Shapes here never include the batch: ``(C, H, W)`` before ``Flatten``, ``(F,)`` after it.

FLOPs convention: a multiply-add is 2 FLOPs, and only Linear and Conv2d layers are counted
(``2·in·out`` and ``2·Cin·Cout·k²·Hout·Wout``, zero-padding included as the hardware computes it).
Bias additions, batch norm, activations, pooling and dropout are left out: they are a few FLOPs per
output element against hundreds to thousands for the matmuls, and MFU is about the matmuls. This
is also what ``torch.utils.flop_counter.FlopCounterMode`` counts (tests/models/test_params.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the methods that build modules: counting needs no torch
    from torch import nn

Shape = tuple[int, ...]

#: activation → its torch class in ``torch.nn``
_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU"}


def _nn():  # torch.nn, imported when a module is built
    from torch import nn

    return nn


@dataclass(frozen=True)
class Op:
    """Base of all layer descriptions. Subclasses override what differs from a parameter-free,
    shape-preserving, FLOP-free layer."""

    @property
    def kind(self) -> str:
        """The torch class name of the module, e.g. ``"Conv2d"``."""
        raise NotImplementedError

    @property
    def prefix(self) -> str:
        """Start of the module's name in the model: ``fc`` → ``fc1``, ``fc2``..."""
        raise NotImplementedError

    def module(self) -> nn.Module:
        """A fresh torch module for this layer, with torch's default initialization."""
        raise NotImplementedError

    def out_shape(self, shape: Shape) -> Shape:
        """The output shape (no batch) for an input of ``shape``."""
        return shape

    def params(self) -> int:
        """Trainable parameters (weights, biases, BN affine)."""
        return 0

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        """Forward FLOPs per sample under the convention of this module's docstring."""
        return 0


@dataclass(frozen=True)
class Flatten(Op):
    """``(C, H, W)`` → ``(C·H·W,)``."""

    @property
    def prefix(self) -> str:
        return "flatten"

    @property
    def kind(self) -> str:
        return "Flatten"

    def module(self) -> nn.Module:
        return _nn().Flatten()

    def out_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@dataclass(frozen=True)
class Dense(Op):
    """``nn.Linear(n_in, n_out)``: ``(n_in,)`` → ``(n_out,)``.

    ``then`` is the activation that follows it in the model (``"identity"`` for the classifier);
    ``init="kaiming"`` takes its gain from it.
    """

    n_in: int
    n_out: int
    then: str = "identity"

    @property
    def prefix(self) -> str:
        return "fc"

    @property
    def kind(self) -> str:
        return "Linear"

    def module(self) -> nn.Module:
        return _nn().Linear(self.n_in, self.n_out)

    def out_shape(self, shape: Shape) -> Shape:
        return (self.n_out,)

    def params(self) -> int:
        return self.n_in * self.n_out + self.n_out

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return 2 * self.n_in * self.n_out


@dataclass(frozen=True)
class Conv(Op):
    """``nn.Conv2d(c_in, c_out, kernel, padding=padding)``, stride 1: ``(c_in, H, W)`` →
    ``(c_out, H + 2p − k + 1, W + 2p − k + 1)``, or ``(c_out, H, W)`` for ``padding = "same"``.
    ``then`` as for ``Dense``."""

    c_in: int
    c_out: int
    kernel: int
    padding: int | str
    then: str = "identity"

    @property
    def prefix(self) -> str:
        return "conv"

    @property
    def kind(self) -> str:
        return "Conv2d"

    def module(self) -> nn.Module:
        if self.padding == "same":  # an even kernel (an odd one has its integer padding)
            from nnstudy.models.build import Conv2d

            return Conv2d(self.c_in, self.c_out, self.kernel)
        return _nn().Conv2d(self.c_in, self.c_out, self.kernel, padding=self.padding)

    def out_shape(self, shape: Shape) -> Shape:
        _, h, w = shape
        if self.padding == "same":
            return (self.c_out, h, w)
        grow = 2 * self.padding - self.kernel + 1
        return (self.c_out, h + grow, w + grow)

    def params(self) -> int:
        return self.c_in * self.c_out * self.kernel**2 + self.c_out

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        _, h_out, w_out = out_shape
        return 2 * self.c_in * self.c_out * self.kernel**2 * h_out * w_out


@dataclass(frozen=True)
class BatchNorm(Op):
    """``nn.BatchNorm1d`` (``dims=1``) or ``nn.BatchNorm2d`` (``dims=2``) over ``features``
    channels: 2 affine parameters each (the running mean and variance are buffers)."""

    features: int
    dims: int

    @property
    def prefix(self) -> str:
        return "bn"

    @property
    def kind(self) -> str:
        return f"BatchNorm{self.dims}d"

    def module(self) -> nn.Module:
        return _nn().BatchNorm1d(self.features) if self.dims == 1 else _nn().BatchNorm2d(self.features)

    def params(self) -> int:
        return 2 * self.features


@dataclass(frozen=True)
class Activation(Op):
    """One of ``relu``, ``tanh``, ``sigmoid``, ``gelu`` (``identity`` gets no layer at all)."""

    name: str

    @property
    def prefix(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        return _ACTIVATIONS[self.name]

    def module(self) -> nn.Module:
        return getattr(_nn(), _ACTIVATIONS[self.name])()


@dataclass(frozen=True)
class Pool(Op):
    """``nn.MaxPool2d(2)`` (``how="max"``) or ``nn.AvgPool2d(2)`` (``"avg"``): halves H and W,
    rounding down."""

    how: str

    @property
    def prefix(self) -> str:
        return f"{self.how}pool"

    @property
    def kind(self) -> str:
        return "MaxPool2d" if self.how == "max" else "AvgPool2d"

    def module(self) -> nn.Module:
        return _nn().MaxPool2d(2) if self.how == "max" else _nn().AvgPool2d(2)

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        return (c, h // 2, w // 2)


@dataclass(frozen=True)
class Dropout(Op):
    """``nn.Dropout(p)``; only planned for ``p > 0``."""

    p: float

    @property
    def prefix(self) -> str:
        return "dropout"

    @property
    def kind(self) -> str:
        return "Dropout"

    def module(self) -> nn.Module:
        return _nn().Dropout(self.p)
