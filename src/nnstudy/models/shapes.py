"""MLP shape families: how a depth ``k`` and one real scale ``s`` become a list of hidden widths.

Every family is ``widths[i] = max(1, round(s · ratio ** e[i]))``: the exponents ``e`` say how many
steps of ``ratio`` (0 < ratio ≤ 1) layer ``i`` lies below the widest, so the widest layers have width
≈ ``s`` and each step away from them multiplies the width by ``ratio``:

==========  ==================================  ===============  ==========================
shape       exponents e (k = 5)                 widths (s = 80)  what it is
==========  ==================================  ===============  ==========================
uniform     0 0 0 0 0                           80 80 80 80 80   seed 001's (k, m) networks
decreasing  0 1 2 3 4                           80 40 20 10 5    each layer ``ratio`` × the last
increasing  4 3 2 1 0                           5 10 20 40 80    decreasing, reversed
bottleneck  0 1 2 1 0                           80 40 20 40 80   wide–narrow–wide (V)
diamond     2 1 0 1 2                           20 40 80 40 20   narrow–wide–narrow
==========  ==================================  ===============  ==========================

(widths for ``ratio = 0.5``). With an even depth, bottleneck and diamond have two middle layers of
equal width (``k = 4``: exponents 0 1 1 0 and 1 0 0 1). Families collapse: at depth 1 every shape is
uniform; at depth 2 bottleneck and diamond are (they have no middle); at ratio 1 every shape is.
``collapse_note`` says so.

Rounding is half-up (``floor(x + 0.5)``) rather than Python's half-to-even, so that every width, and
with it the parameter count, is a non-decreasing function of ``s`` (``budget.shape_widths`` bisects it).
"""

from __future__ import annotations

import math

from nnstudy.errors import SpecError

__all__ = ["SHAPES", "check_ratio", "check_shape", "collapse_note", "family_widths", "shape_exponents"]

#: The shape families, in the order tables list them.
SHAPES: tuple[str, ...] = ("uniform", "decreasing", "increasing", "bottleneck", "diamond")


def check_shape(shape: str) -> None:
    """Raises SpecError naming ``shape`` and the allowed names if it is not one of ``SHAPES``."""
    if shape not in SHAPES:
        raise SpecError(f"shape = {shape!r}: not a shape family; allowed: {', '.join(SHAPES)}")


def check_ratio(ratio: float) -> None:
    """Raises SpecError unless 0 < ``ratio`` ≤ 1 (the width of a layer relative to its wider neighbour)."""
    if not (isinstance(ratio, (int, float)) and 0 < ratio <= 1) or isinstance(ratio, bool):
        raise SpecError(f"ratio = {ratio!r}: must be in (0, 1], the width of a layer over its wider neighbour's")


def shape_exponents(shape: str, depth: int) -> list[int]:
    """For each of ``depth`` hidden layers, how many ``ratio`` steps it lies below the widest layer.

    Raises:
        SpecError: an unknown ``shape``, or ``depth`` < 1.
    """
    check_shape(shape)
    if depth < 1:
        raise SpecError(f"depth k = {depth}: must be >= 1 (the number of hidden layers)")
    # distance of layer i from the middle layer(s): floor((k-1)/2) and ceil((k-1)/2)
    lo, hi = (depth - 1) // 2, depth // 2
    to_middle = [min(abs(i - lo), abs(i - hi)) for i in range(depth)]
    if shape == "uniform":
        return [0] * depth
    if shape == "decreasing":
        return list(range(depth))
    if shape == "increasing":
        return list(range(depth - 1, -1, -1))
    if shape == "diamond":
        return to_middle
    return [max(to_middle) - d for d in to_middle]  # bottleneck


def family_widths(shape: str, depth: int, scale: float, ratio: float = 0.5) -> list[int]:
    """The hidden widths of family ``shape`` at ``depth`` layers and scale ``scale`` (≈ the widest
    width): ``max(1, floor(scale · ratio ** e + 0.5))`` per layer; a list of ``depth`` ints ≥ 1,
    usable as ``MLPSpec(hidden=...)``.

    Raises:
        SpecError: an unknown ``shape``, ``depth`` < 1, ``scale`` < 0 or ``ratio`` outside (0, 1].
    """
    check_ratio(ratio)
    if not scale >= 0:  # also rejects NaN
        raise SpecError(f"scale = {scale!r}: must be >= 0")
    return [max(1, math.floor(scale * ratio**e + 0.5)) for e in shape_exponents(shape, depth)]


def collapse_note(shape: str, depth: int, ratio: float = 0.5) -> str:
    """Empty, or a sentence saying that ``shape`` at ``depth`` layers and ``ratio`` is the uniform shape."""
    if shape != "uniform" and ratio == 1:
        return f"ratio 1: every shape is uniform, so {shape} is too"
    if shape != "uniform" and depth == 1:
        return f"depth 1: every shape is uniform, so {shape} is too"
    if shape in ("bottleneck", "diamond") and depth == 2:
        return f"depth 2: {shape} has no middle layer, so it is uniform"
    return ""
