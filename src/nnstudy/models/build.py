"""``build_model``: a model spec → a ``torch.nn.Sequential`` with named layers.

Architectures (``(B, C, H, W)`` float input, logits ``(B, num_classes)`` out):

* ``linear``: Flatten → Linear(C·H·W, classes). ``activation`` has no layer to apply to.
* ``mlp``: Flatten → per hidden width: Linear → [BatchNorm1d] → activation → [Dropout(p) if p > 0]
  → Linear(classes).
* ``cnn``: per channel count: Conv2d(kernel, padding) → [BatchNorm2d] → activation →
  [MaxPool2d(2) | AvgPool2d(2)] → [Dropout(conv_dropout)]; Flatten → head layers like the MLP's
  hidden layers → Linear(classes).
* ``vgg11``: configuration A with widths × ``width``, 3×3 convs with padding 1 → [BatchNorm2d] →
  activation, four max-pools (the fifth is dropped, see ``_plan.VGG11_CONFIG``); Flatten → per head
  width: Linear → activation → [Dropout] → Linear(classes).

``activation = "identity"`` adds no layer. Module names are those of ``layers()`` and the summary:
``fc1``, ``bn1``, ``relu1``, ``dropout1``, ``conv1``, ``maxpool1``, ``flatten``, ``output``.

Randomness: only torch's global RNG, as it is when this is called (the trainer seeds it); nothing
here seeds or reads any other state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from nnstudy.models._ops import Conv, Dense
from nnstudy.models._plan import AnyModelSpec, plan

__all__ = ["Conv2d", "build_model", "init_weights"]

# calculate_gain knows no GELU; ReLU's √2 is the usual stand-in (GELU ≈ ReLU away from 0).
_KAIMING_NONLINEARITY = {
    "relu": "relu",
    "gelu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "identity": "linear",
}


class Conv2d(nn.Conv2d):
    """``nn.Conv2d(c_in, c_out, kernel, padding="same")`` for an even ``kernel`` (seed 003's Keras
    CNN), computed exactly as torch computes it (the input zero-padded by ``kernel - 1``, the extra
    row and column on the bottom and right, as Keras does, then a convolution without padding) but
    without the warning torch prints about that padded copy, which no setting avoids for an even
    kernel. It is torch's class but for ``forward``: the same name, repr, parameters and
    ``state_dict``, and the same outputs and gradients, bit for bit (tests/models/test_build.py)."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, padding="same")
        lo = (kernel - 1) // 2
        self.same_pad = (lo, kernel - 1 - lo) * 2  # F.pad's order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, self.same_pad)
        return nn.functional.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def build_model(
    spec: AnyModelSpec, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10
) -> nn.Sequential:
    """The torch model of ``spec`` for inputs ``(B, *input_shape)``, giving ``(B, num_classes)`` logits.

    Linear and Conv2d weights are initialized by ``spec.init`` (see ``init_weights``); batch norm
    keeps torch's defaults (weight 1, bias 0).

    Raises:
        SpecError: ``padding = "same"`` with an even kernel, a feature map that shrinks to 0 (too
            many pools or too large a kernel for the input), a bad ``input_shape`` or ``num_classes``.
    """
    steps = plan(spec, input_shape, num_classes)
    model = nn.Sequential(OrderedDict((s.name, s.op.module()) for s in steps))
    for s in steps:
        if isinstance(s.op, (Dense, Conv)):
            init_weights(model.get_submodule(s.name), spec.init, s.op.then, spec.init_std, spec.init_value,
                         spec.init_bias)
    return model


@torch.no_grad()
def init_weights(
    module: nn.Module, init: str, then: str = "relu", std: float = 0.01, value: float = 0.0,
    bias_value: float | None = None,
) -> None:
    """Initialize one Linear or Conv2d ``module`` in place.

    * ``default``: leave torch's (Kaiming-uniform with a = √5, set when the module was made).
    * ``xavier``: weights ~ xavier_uniform (gain 1, Glorot & Bengio 2010), bias 0.
    * ``kaiming``: weights ~ kaiming_normal, fan_in, with the gain of ``then``, the activation that
      follows the layer (√2 for relu and gelu, 5/3 for tanh, 1 for sigmoid and for the final
      classifier, ``then = "identity"``), bias 0.
    * ``normal``: weights ~ N(0, ``std``²), bias 0.
    * ``constant``: every weight = ``value``, every bias = ``bias_value`` (None: ``value``), as seed
      001's ``nn.init.constant_(weight, 1000.0); nn.init.constant_(bias, 10000.0)``.

    Raises:
        ValueError: an unknown ``init`` (the spec's validation already rules this out).
    """
    weight, bias = module.weight, module.bias
    if init == "default":
        return
    if init == "xavier":
        nn.init.xavier_uniform_(weight)
    elif init == "kaiming":
        nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity=_KAIMING_NONLINEARITY[then])
    elif init == "normal":
        nn.init.normal_(weight, 0.0, std)
    elif init == "constant":
        nn.init.constant_(weight, value)
    else:
        raise ValueError(f"init = {init!r}: allowed: default, xavier, kaiming, normal, constant")
    if bias is not None:
        b = (value if bias_value is None else bias_value) if init == "constant" else 0.0
        nn.init.constant_(bias, b)
