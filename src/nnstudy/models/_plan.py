"""From a model spec to the ordered list of its layers, with every shape checked.

``plan`` is the one place where a spec's fields become an architecture. It walks the layers once,
carrying the (batchless) shape, so that a head's first ``Linear`` knows its input width and a
feature map that shrinks to nothing is a ``SpecError`` naming the spec key, not a torch crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from nnstudy.errors import SpecError
from nnstudy.models._ops import Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Op, Pool, Shape
from nnstudy.spec import CNNSpec, LinearSpec, MLPSpec, VGG11Spec

#: Any one model spec (``RunSpec.model``).
AnyModelSpec = LinearSpec | MLPSpec | CNNSpec | VGG11Spec

#: VGG-11, configuration A (Simonyan & Zisserman 2014, table 1): conv widths, "M" = 2×2 max-pool.
#: The original has a fifth "M" after the last 512, 512 pair (224 → 7). On 28×28 inputs four pools
#: already reach 1×1 (28 → 14 → 7 → 3 → 1), so the fifth is dropped: the last pair runs at 1×1,
#: where its 3×3 convolutions (padding 1) see only their centre tap, but keep their parameters.
VGG11_CONFIG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)


@dataclass(frozen=True)
class Step:
    """One planned layer: its module name in the built ``nn.Sequential``, what it is, and the
    shapes (without the batch dimension) that go in and come out."""

    name: str
    op: Op
    in_shape: Shape
    out_shape: Shape


class _Stack:
    """Layers appended in order, each checked to leave a non-empty output."""

    def __init__(self, input_shape: Shape) -> None:
        self.shape = input_shape
        self.steps: list[Step] = []
        self._counts: Counter[str] = Counter()

    def add(self, op: Op, collapse: str = "", name: str = "") -> None:
        """Append ``op``. ``collapse`` is the error message if its output has a size ≤ 0."""
        out = op.out_shape(self.shape)
        if min(out) <= 0:
            raise SpecError(collapse or f"{op.kind} turns shape {self.shape} into {out}")
        if not name:
            self._counts[op.prefix] += 1
            name = op.prefix if isinstance(op, Flatten) else f"{op.prefix}{self._counts[op.prefix]}"
        self.steps.append(Step(name, op, self.shape, out))
        self.shape = out

    def dense(self, width: int, activation: str, batchnorm: bool, dropout: float) -> None:
        """Linear → [BatchNorm1d] → activation → [Dropout(p) if p > 0]; ``(F,)`` → ``(width,)``."""
        self.add(Dense(self.shape[0], width, then=activation))
        if batchnorm:
            self.add(BatchNorm(width, dims=1))
        if activation != "identity":
            self.add(Activation(activation))
        if dropout > 0:
            self.add(Dropout(dropout))

    def classifier(self, num_classes: int) -> None:
        """The final ``Linear`` to the class logits, named ``output``."""
        self.add(Dense(self.shape[0], num_classes), name="output")


def plan(spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> list[Step]:
    """The layers of ``spec`` for inputs of ``input_shape`` = (C, H, W), in forward order.

    Raises:
        SpecError: ``input_shape`` is not three positive sizes, ``num_classes`` < 1, a CNN asks for
            ``padding = "same"`` with an even kernel, or a feature map shrinks to 0 (too many pools,
            or a kernel larger than its padded input); the message names the key and the sizes.
            ``padding = "same"`` works with any kernel size.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"input_shape = {tuple(input_shape)}: expected (channels, height, width), each >= 1")
    if num_classes < 1:
        raise SpecError(f"num_classes = {num_classes}: must be >= 1")
    stack = _Stack(shape)
    if isinstance(spec, (LinearSpec, MLPSpec)):
        stack.add(Flatten())  # (B, C, H, W) -> (B, C·H·W)
        if isinstance(spec, MLPSpec):
            for width, p, bn in zip(spec.hidden, spec.dropouts(), spec.batchnorms(), strict=True):
                stack.dense(width, spec.activation, bn, p)
    elif isinstance(spec, CNNSpec):
        _cnn_features(stack, spec)
        stack.add(Flatten())  # (B, C, H, W) -> (B, C·H·W)
        for width, p in zip(spec.head, spec.dropouts(), strict=True):
            stack.dense(width, spec.activation, spec.batchnorm, p)
    elif isinstance(spec, VGG11Spec):
        _vgg_features(stack, spec)
        stack.add(Flatten())  # (B, 512·width, 1, 1) -> (B, 512·width) on 28×28 inputs
        for width in spec.head:  # torchvision's VGG classifier: no batch norm in the head
            stack.dense(width, spec.activation, batchnorm=False, dropout=spec.dropout)
    else:
        raise SpecError(f"model = {spec!r}: not a model spec; allowed kinds: linear, mlp, cnn, vgg11")
    stack.classifier(num_classes)
    return stack.steps


def _cnn_features(stack: _Stack, spec: CNNSpec) -> None:
    """Per entry of ``channels``: Conv2d → [BatchNorm2d] → activation, then after every
    ``pool_every`` blocks → [pool] → [Dropout]. ``padding = "same"`` keeps H and W for any kernel
    (torch pads an even kernel one more on the bottom/right, as Keras does)."""
    # odd kernels: the symmetric integer padding (the same module a notebook writes by hand)
    padding = spec.kernel // 2 if spec.padding == "same" and spec.kernel % 2 else spec.padding
    c_in, h0, w0 = stack.shape
    for i, c in enumerate(spec.channels, start=1):
        _, h, w = stack.shape
        conv_collapse = (
            f"model.kernel = {spec.kernel} with model.padding = {spec.padding!r}: conv block {i} of "
            f"model.channels = {spec.channels} gets a {h}×{w} feature map (from a {h0}×{w0} input), smaller "
            "than the kernel even after padding; use padding 'same', a smaller kernel or fewer blocks"
        )
        stack.add(Conv(c_in, c, spec.kernel, padding, then=spec.activation), conv_collapse)  # (B, c, h', w')
        if spec.batchnorm:
            stack.add(BatchNorm(c, dims=2))
        if spec.activation != "identity":
            stack.add(Activation(spec.activation))
        if i % spec.pool_every:
            c_in = c
            continue
        if spec.pool != "none":
            _, h, w = stack.shape
            pool_collapse = (
                f"model.channels = {spec.channels}: {len(spec.channels)} conv blocks with model.pool = "
                f"{spec.pool!r} are too many for a {h0}×{w0} input: block {i} halves a {h}×{w} feature map "
                f"to {h // 2}×{w // 2}; use fewer blocks or pool = 'none'"
            )
            stack.add(Pool(spec.pool), pool_collapse)  # (B, c, h // 2, w // 2)
        if spec.conv_dropout > 0:
            stack.add(Dropout(spec.conv_dropout))
        c_in = c


def vgg11_channels(width: float) -> list[int | str]:
    """``VGG11_CONFIG`` (four pools) with every conv width scaled by ``width``, rounded to the
    nearest integer and at least 1: ``vgg11_channels(0.25)[:3] == [16, "M", 32]``."""
    return [c if c == "M" else max(1, round(c * width)) for c in VGG11_CONFIG]


def _vgg_features(stack: _Stack, spec: VGG11Spec) -> None:
    """3×3 convolutions with padding 1 (sizes kept) → [BatchNorm2d] → activation; 2×2 max-pools.
    On 28×28: (B, 64w, 28, 28) → pool 14 → 7 → 3 → 1, ending at (B, 512w, 1, 1)."""
    c_in = stack.shape[0]
    _, h0, w0 = stack.shape
    for c in vgg11_channels(spec.width):
        if c == "M":
            stack.add(
                Pool("max"),
                collapse=(
                    f"model.kind = 'vgg11' needs inputs of at least 16×16: its 4 max-pools shrink the "
                    f"{h0}×{w0} input to nothing; use kind 'cnn' for smaller inputs"
                ),
            )
            continue
        stack.add(Conv(c_in, int(c), 3, 1, then=spec.activation))
        if spec.batchnorm:
            stack.add(BatchNorm(int(c), dims=2))
        if spec.activation != "identity":
            stack.add(Activation(spec.activation))
        c_in = int(c)
