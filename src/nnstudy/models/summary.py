"""A Keras-like summary of a model spec: layers, output shapes, parameters, FLOPs.

``print(summary(MLPSpec(hidden=[300])))`` prints (tests/models/test_summary.py checks it)::

    Model: mlp, input (None, 1, 28, 28), 10 classes
    ________________________________________________________
     Layer (type)        Output Shape   Param #   FLOPs
    ========================================================
     flatten (Flatten)   (None, 784)    0         0
     fc1 (Linear)        (None, 300)    235,500   470,400
     relu1 (ReLU)        (None, 300)    0         0
     output (Linear)     (None, 10)     3,010     6,000
    ========================================================
    Total params: 238,510
    Trainable params: 238,510
    Non-trainable params: 0
    Forward FLOPs per sample: 476,400 (training: 1,429,200)
    ________________________________________________________

Shapes are written like Keras's, with ``None`` for the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnstudy.models._plan import AnyModelSpec
from nnstudy.models.params import TRAIN_FLOPS_FACTOR, LayerInfo, layers

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ModelSummary", "summary", "format_shape"]

_HEADER = ("Layer (type)", "Output Shape", "Param #", "FLOPs")


def format_shape(shape: Sequence[int]) -> str:
    """A batchless shape the way Keras writes it: ``(300,)`` → ``"(None, 300)"``."""
    return "(" + ", ".join(["None", *(str(d) for d in shape)]) + ")"


@dataclass(frozen=True)
class ModelSummary:
    """The layers of one model and their totals.

    Attributes:
        kind: the spec's model kind (``mlp``, ``cnn``...).
        input_shape: (C, H, W) of one sample.
        num_classes: width of the output layer.
        rows: every layer in forward order (name, kind, output shape, params, FLOPs).
        total_params: sum of the rows' parameters, equal to torch's ``sum(p.numel())``.
        trainable_params: the trainable ones; every parameter of an nnstudy model is trainable.
        forward_flops: forward FLOPs per sample (multiply-adds × 2 of Linear and Conv2d layers).
    """

    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    rows: list[LayerInfo]
    total_params: int
    trainable_params: int
    forward_flops: int

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def train_flops(self) -> int:
        """Training FLOPs per sample: 3 × forward (forward + a backward of twice its cost)."""
        return TRAIN_FLOPS_FACTOR * self.forward_flops

    def _cells(self) -> list[tuple[str, str, str, str]]:
        return [
            (f"{r.name} ({r.kind})", format_shape(r.output_shape), f"{r.params:,}", f"{r.flops:,}")
            for r in self.rows
        ]

    def _title(self) -> str:
        return f"Model: {self.kind}, input {format_shape(self.input_shape)}, {self.num_classes} classes"

    def _totals(self) -> list[str]:
        return [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Forward FLOPs per sample: {self.forward_flops:,} (training: {self.train_flops:,})",
        ]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(row[i]) for row in [_HEADER, *cells]) + 3 for i in range(len(_HEADER))]
        rule = len(" ") + sum(widths)

        def line(row: Sequence[str]) -> str:
            return (" " + "".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()

        out = [self._title(), "_" * rule, line(_HEADER), "=" * rule]
        out += [line(row) for row in cells]
        out += ["=" * rule, *self._totals(), "_" * rule]
        return "\n".join(out)

    def to_rich(self) -> Table:
        """The same table as a ``rich.table.Table``, totals in the caption (for the CLI)."""
        from rich.table import Table

        table = Table(title=self._title(), caption="\n".join(self._totals()), caption_justify="left")
        table.add_column(_HEADER[0])
        table.add_column(_HEADER[1])
        for name in _HEADER[2:]:
            table.add_column(name, justify="right")
        for row in self._cells():
            table.add_row(*row)
        return table


def summary(
    spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10
) -> ModelSummary:
    """The summary of ``build_model(spec, input_shape, num_classes)``, computed without building it.

    Raises:
        SpecError: the spec does not fit the input (see ``build_model``).
    """
    rows = layers(spec, input_shape, num_classes)
    total = sum(r.params for r in rows)
    return ModelSummary(
        kind=spec.kind,
        input_shape=tuple(int(d) for d in input_shape),
        num_classes=num_classes,
        rows=rows,
        total_params=total,
        trainable_params=total,
        forward_flops=sum(r.flops for r in rows),
    )
