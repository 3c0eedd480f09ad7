"""Models from specs: ``build_model`` builds one; ``count_params``, ``forward_flops``, ``layers`` and
``summary`` describe it without building it, from the same plan of layers.

    >>> from nnstudy.spec import MLPSpec
    >>> count_params(MLPSpec(hidden=[300]))
    238510
"""

from __future__ import annotations

from nnstudy.models._plan import VGG11_CONFIG, vgg11_channels
from nnstudy.models.build import build_model, init_weights
from nnstudy.models.params import (
    TRAIN_FLOPS_FACTOR,
    LayerInfo,
    count_params,
    forward_flops,
    layers,
    mlp_params,
    mlp_params_of_widths,
    train_flops,
)
from nnstudy.models.summary import ModelSummary, format_shape, summary

__all__ = [
    "TRAIN_FLOPS_FACTOR",
    "VGG11_CONFIG",
    "LayerInfo",
    "ModelSummary",
    "build_model",
    "count_params",
    "format_shape",
    "forward_flops",
    "init_weights",
    "layers",
    "mlp_params",
    "mlp_params_of_widths",
    "summary",
    "train_flops",
    "vgg11_channels",
]
