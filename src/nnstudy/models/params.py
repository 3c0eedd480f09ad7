"""Parameter counts, output shapes and FLOPs, computed from a spec without building the model.

Everything here reads one walk over the layers, ``layers()``, which reads the same plan that
``build_model`` builds, so ``count_params(spec)`` equals ``sum(p.numel() for p in
build_model(spec).parameters())`` by construction and by test.

FLOPs convention (per sample): a multiply-add is 2 FLOPs; only Linear (``2·in·out``) and Conv2d
(``2·Cin·Cout·k²·Hout·Wout``) layers are counted. Bias additions, batch norm, activations, pooling
and dropout are left out: each costs a few FLOPs per output element, against ``2·in`` (hundreds to
thousands) per output element of the layer before it. A training step costs 3× the forward pass:
the backward pass computes the gradients with respect to both the inputs and the weights, each a
matmul of the forward's size (the convention of Kaplan et al. 2020 and of MFU reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from nnstudy.errors import SpecError
from nnstudy.models._ops import Shape
from nnstudy.models._plan import AnyModelSpec, plan

__all__ = [
    "LayerInfo",
    "layers",
    "count_params",
    "forward_flops",
    "train_flops",
    "mlp_params",
    "mlp_params_of_widths",
    "TRAIN_FLOPS_FACTOR",
]

#: Training FLOPs per sample = this × forward FLOPs (forward 1×, backward 2×).
TRAIN_FLOPS_FACTOR = 3


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model as the summary shows it.

    Attributes:
        name: the module's name in the built ``nn.Sequential`` (``conv1``, ``bn1``, ``output``).
        kind: its torch class name (``Conv2d``, ``BatchNorm2d``, ``Linear``...).
        output_shape: its output shape without the batch dimension: ``(300,)``, ``(32, 28, 28)``.
        params: its trainable parameters (BN: the affine weight and bias; running stats are buffers).
        flops: its forward FLOPs per sample (see the module docstring for what is counted).
    """

    name: str
    kind: str
    output_shape: Shape
    params: int
    flops: int


def layers(
    spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10
) -> list[LayerInfo]:
    """Every layer of the model ``build_model(spec, input_shape, num_classes)``, in forward order.

    Raises:
        SpecError: the spec does not fit the input (see ``build_model``).
    """
    return [
        LayerInfo(s.name, s.op.kind, s.out_shape, s.op.params(), s.op.flops(s.in_shape, s.out_shape))
        for s in plan(spec, input_shape, num_classes)
    ]


def count_params(spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> int:
    """The exact number of trainable parameters of ``build_model(spec, input_shape, num_classes)``."""
    return sum(info.params for info in layers(spec, input_shape, num_classes))


def forward_flops(spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> int:
    """Forward FLOPs per sample: 2 per multiply-add of the Linear and Conv2d layers only."""
    return sum(info.flops for info in layers(spec, input_shape, num_classes))


def train_flops(spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> int:
    """Training FLOPs per sample and step: ``TRAIN_FLOPS_FACTOR`` (3) × ``forward_flops``."""
    return TRAIN_FLOPS_FACTOR * forward_flops(spec, input_shape, num_classes)


def mlp_params(k: int, m: int, n_in: int = 784, n_out: int = 10) -> int:
    """Parameters of an MLP with ``k`` hidden layers of width ``m`` (no batch norm):
    ``n_in·m + m + (k−1)(m² + m) + m·n_out + n_out``; for 784 → 10 that is
    ``(k−1)m² + (794+k)m + 10`` (DESIGN.md section 5).

    Raises:
        SpecError: ``k`` or ``m`` < 1.
    """
    if k < 1 or m < 1:
        raise SpecError(f"mlp_params(k={k}, m={m}): depth k and width m must both be >= 1")
    return n_in * m + m + (k - 1) * (m * m + m) + m * n_out + n_out


def mlp_params_of_widths(
    widths: Sequence[int], n_in: int = 784, n_out: int = 10, batchnorm: bool = False
) -> int:
    """Parameters of an MLP ``n_in → widths[0] → … → widths[-1] → n_out``; with ``batchnorm``,
    plus 2 per hidden unit (BN's affine weight and bias). Empty ``widths`` is softmax regression.

    Raises:
        SpecError: a width < 1.
    """
    if any(w < 1 for w in widths):
        raise SpecError(f"hidden widths {list(widths)}: every width must be >= 1")
    sizes = [n_in, *widths, n_out]
    dense = sum((a + 1) * b for a, b in pairwise(sizes))
    return dense + (2 * sum(widths) if batchnorm else 0)
