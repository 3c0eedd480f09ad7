"""Models from specs: ``build_model`` builds one; ``count_params``, ``forward_flops``, ``layers`` and
``summary`` describe it without building it, from the same plan of layers. ``width_for_budget``,
``depth_range``, ``shape_widths`` and ``budget_table`` size MLPs to a parameter budget (docs/budgets.md).

    >>> from nnstudy.spec import MLPSpec
    >>> count_params(MLPSpec(hidden=[300]))
    238510
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnstudy._lazy import exports

if TYPE_CHECKING:
    from nnstudy.models._plan import VGG11_CONFIG, vgg11_channels
    from nnstudy.models.budget import (
        DepthRange,
        ShapeFit,
        WidthFit,
        budget_table,
        depth_range,
        parse_depths,
        shape_widths,
        width_for_budget,
    )
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
    from nnstudy.models.shapes import SHAPES, family_widths
    from nnstudy.models.summary import ModelSummary, format_shape, summary

# imported on first use (nnstudy/_lazy.py)
__getattr__ = exports(__name__, {
    "._plan": ["VGG11_CONFIG", "vgg11_channels"],
    ".budget": ["DepthRange", "ShapeFit", "WidthFit", "budget_table", "depth_range", "parse_depths",
        "shape_widths", "width_for_budget"],
    ".build": ["build_model", "init_weights"],
    ".params": ["TRAIN_FLOPS_FACTOR", "LayerInfo", "count_params", "forward_flops", "layers", "mlp_params",
        "mlp_params_of_widths", "train_flops"],
    ".shapes": ["SHAPES", "family_widths"],
    ".summary": ["ModelSummary", "format_shape", "summary"],
})

__all__ = [
    "SHAPES",
    "TRAIN_FLOPS_FACTOR",
    "VGG11_CONFIG",
    "DepthRange",
    "LayerInfo",
    "ModelSummary",
    "ShapeFit",
    "WidthFit",
    "budget_table",
    "build_model",
    "count_params",
    "depth_range",
    "family_widths",
    "format_shape",
    "forward_flops",
    "init_weights",
    "layers",
    "mlp_params",
    "mlp_params_of_widths",
    "parse_depths",
    "shape_widths",
    "summary",
    "train_flops",
    "vgg11_channels",
    "width_for_budget",
]
