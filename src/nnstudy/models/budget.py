"""Parameter budgets for MLPs: for a budget ``P``, which depths fit, how wide each layer must be.

Seed 001's network has ``k`` hidden layers of width ``m``, ``n_in`` inputs and ``n_out`` classes
(``β`` = 1 with batch norm, which adds a weight and a bias per hidden unit, else 0)::

    Parameters(k, m) = (n_in + 1)m + (k − 1)(m + 1)m + (m + 1)n_out + 2βkm
                     = (k − 1)m² + (n_in + n_out + k + 2βk)m + n_out
                     = (k − 1)m² + (794 + k)m + 10                      (784 → 10, no batch norm)

(``params.mlp_params_of_widths`` counts it; it equals torch's ``sum(p.numel())`` by test.)

* ``width_for_budget(P, k)``: m_P(k), the integer width whose count is nearest ``P``. The real root of
  ``Parameters(k, m) = P`` is ``m* = 2(P − n_out) / (b + √(b² + 4(k − 1)(P − n_out)))`` with
  ``b = n_in + n_out + k(1 + 2β)`` (the quadratic formula, written so that it also holds at ``k = 1``,
  where the count is linear in ``m``). The count grows with ``m``, so the nearest integer is
  ``⌊m*⌋`` or ``⌈m*⌉``; both are counted exactly, the nearer wins, a tie goes to the narrower.
* ``depth_range(P)``: the depths that fit. ``k_min = 1``; the deepest network is the narrowest,
  ``Parameters(k, 1) = (n_in + 2n_out − 1) + (2 + 2β)k`` (= 803 + 2k for 784 → 10), so
  ``k_P = ⌊(P − n_in − 2n_out + 1) / (2 + 2β)⌋``. When the division is not whole, the floor is the
  answer (one more layer would not fit) and ``P − Parameters(k_P, 1)`` parameters are left over.
* ``shape_widths(shape, P, k)``: a shape family (``shapes.py``) brought to ``P`` by its scale.
* ``budget_table(P, depths, shape)``: one row per depth, what ``nnstudy budget`` prints.

Impossible requests raise ``SpecError`` with one line naming the value and what is allowed: ``P`` not a
positive whole number, ``P`` below the smallest network ``Parameters(1, 1)`` (805 for 784 → 10),
a depth < 1 or deeper than ``k_P``, an empty depth range.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from nnstudy.errors import SpecError
from nnstudy.models.params import mlp_params, mlp_params_of_widths
from nnstudy.models.shapes import check_ratio, check_shape, collapse_note, family_widths, shape_exponents

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "WidthFit",
    "DepthRange",
    "ShapeFit",
    "width_for_budget",
    "depth_range",
    "shape_widths",
    "budget_table",
    "parse_depths",
]


@dataclass(frozen=True)
class WidthFit:
    """m_P(k): the uniform network of ``depth`` layers whose count is nearest ``budget``.

    Attributes:
        budget: the requested parameter count P.
        depth: k, the number of hidden layers.
        width: m_P(k), every hidden layer's width.
        params: the exact count of that network (equal to torch's).
        error: ``(params − budget) / budget``; negative when under budget.
        root: the real solution m* of ``Parameters(k, m) = P``, which ``width`` rounds.
    """

    budget: int
    depth: int
    width: int
    params: int
    error: float
    root: float

    @property
    def widths(self) -> list[int]:
        """The hidden widths, ``[width] * depth``, for ``MLPSpec(hidden=...)``."""
        return [self.width] * self.depth


@dataclass(frozen=True)
class DepthRange:
    """The depths a budget allows (each at width ≥ 1).

    Attributes:
        budget: P.
        k_min: the smallest depth, 1 (one hidden layer of width m_P(1)).
        k_max: k_P, the largest depth whose narrowest network (every width 1) fits in P.
        k_exact: ``(P − n_in − 2n_out + 1) / (2 + 2β)``, the real number that k_P floors.
        leftover: ``P − Parameters(k_P, 1)``: parameters the deepest network leaves unused (0 when
            ``k_exact`` is whole).
    """

    budget: int
    k_min: int
    k_max: int
    k_exact: float
    leftover: int

    @property
    def note(self) -> str:
        """One sentence on k_P: whole, or floored with its leftover."""
        if self.leftover == 0:
            return f"k_P = {self.k_max} exactly: {self.k_max} layers of width 1 use all {self.budget:,} parameters"
        return (
            f"k_P = {self.k_exact:g} is not a whole number: floored to {self.k_max} (one more layer would not "
            f"fit); {self.k_max} layers of width 1 leave {self.leftover} of the {self.budget:,} parameters unused"
        )


@dataclass(frozen=True)
class ShapeFit:
    """A shape family brought to a budget: the widths whose exact count is nearest ``budget``.

    Attributes:
        shape: the family (``SHAPES``).
        budget: P.
        depth: k, the number of hidden layers.
        widths: the hidden widths, ints ≥ 1, for ``MLPSpec(hidden=list(widths))``.
        params: their exact count (equal to torch's).
        error: ``(params − budget) / budget``.
        scale: the real scale s at which the family's *unrounded* count equals P (for uniform,
            the root m*); ``widths`` are the nearest rounded widths.
        ratio: the family's ratio between neighbouring layers.
        note: empty, or why this is not the shape its name says (collapsed to uniform, widths
            clipped at 1).
    """

    shape: str
    budget: int
    depth: int
    widths: tuple[int, ...]
    params: int
    error: float
    scale: float
    ratio: float
    note: str = ""


def _check_sizes(n_in: int, n_out: int) -> None:
    if n_in < 1 or n_out < 1:
        raise SpecError(f"inputs = {n_in}, classes = {n_out}: both must be >= 1")


def _smallest(n_in: int, n_out: int, batchnorm: bool) -> int:
    """Parameters(1, 1): the smallest MLP with a hidden layer."""
    return mlp_params_of_widths([1], n_in, n_out, batchnorm)


def _check_budget(budget: float, n_in: int, n_out: int, batchnorm: bool) -> int:
    """``budget`` as an int, or SpecError: not a whole number, ≤ 0, or below Parameters(1, 1)."""
    _check_sizes(n_in, n_out)
    whole = isinstance(budget, numbers.Integral) or (isinstance(budget, float) and budget.is_integer())
    if isinstance(budget, bool) or not whole:
        raise SpecError(f"budget P = {budget!r}: must be a whole number of parameters")
    p = int(budget)
    if p <= 0:
        raise SpecError(f"budget P = {p}: must be a positive number of parameters")
    smallest = _smallest(n_in, n_out, batchnorm)
    if p < smallest:
        bn = " with batch norm" if batchnorm else ""
        raise SpecError(
            f"budget P = {p:,}: smaller than the smallest network, {n_in} → 1 → {n_out}{bn}, which has "
            f"{smallest:,} parameters; use P >= {smallest:,}"
        )
    return p


def depth_range(budget: int, n_in: int = 784, n_out: int = 10, batchnorm: bool = False) -> DepthRange:
    """k_min = 1 and k_P, the largest depth that fits ``budget`` (every width 1), with what is left over.

    Raises:
        SpecError: ``budget`` is not a positive whole number or is below Parameters(1, 1).
    """
    p = _check_budget(budget, n_in, n_out, batchnorm)
    base = n_in + 2 * n_out - 1  # Parameters(k, 1) = base + per_layer · k
    per_layer = 2 + 2 * int(batchnorm)  # a width-1 layer: its weight from the layer before, its bias [, BN's 2]
    k_max = (p - base) // per_layer
    return DepthRange(p, 1, k_max, (p - base) / per_layer, (p - base) % per_layer)


def _uniform_count(depth: int, width: int, n_in: int, n_out: int, batchnorm: bool) -> int:
    """Parameters(k, m) in closed form (O(1) for any depth), batch norm included."""
    return mlp_params(depth, width, n_in, n_out) + (2 * depth * width if batchnorm else 0)


def _check_depth(depth: int, p: int, n_in: int, n_out: int, batchnorm: bool) -> int:
    """``depth`` as an int, or SpecError unless 1 ≤ ``depth`` ≤ k_P for budget ``p`` (already checked)."""
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise SpecError(f"depth k = {depth!r}: must be a whole number >= 1 (the number of hidden layers)")
    depth = int(depth)
    k_p = depth_range(p, n_in, n_out, batchnorm).k_max
    if depth > k_p:
        narrowest = _uniform_count(depth, 1, n_in, n_out, batchnorm)
        raise SpecError(
            f"depth k = {depth}: deeper than k_P = {k_p}, the most hidden layers that fit P = {p:,} (at width 1, "
            f"{depth} layers already have {narrowest:,} parameters); use a depth <= {k_p}"
        )
    return depth


def width_for_budget(
    budget: int, depth: int, n_in: int = 784, n_out: int = 10, batchnorm: bool = False
) -> WidthFit:
    """m_P(k): the width whose ``depth``-layer uniform MLP has the count nearest ``budget``
    (ties → the narrower), with its exact count and relative error.

    ``width_for_budget(50_000, 1)`` → width 63, 50,095 parameters (+0.19%).

    Raises:
        SpecError: ``budget`` not a positive whole number or below Parameters(1, 1); ``depth`` < 1
            or > k_P.
    """
    p = _check_budget(budget, n_in, n_out, batchnorm)
    depth = _check_depth(depth, p, n_in, n_out, batchnorm)
    a = depth - 1
    b = n_in + n_out + depth * (1 + 2 * int(batchnorm))
    c = p - n_out
    root = 2 * c / (b + math.sqrt(b * b + 4 * a * c))  # = (−b + √(b² + 4ac)) / 2a, also at a = 0

    def count(m: int) -> int:
        return _uniform_count(depth, m, n_in, n_out, batchnorm)

    # ⌊m*⌋ from the float root, then corrected by exact counts (the float can be off by one for huge P)
    lo = max(1, math.floor(root))
    while lo > 1 and count(lo) > p:
        lo -= 1
    while count(lo + 1) <= p:
        lo += 1
    width = min((lo, lo + 1), key=lambda m: (abs(count(m) - p), m))
    n = count(width)
    return WidthFit(p, depth, width, n, (n - p) / p, root)


def _unrounded_count(exponents: Sequence[int], scale: float, ratio: float, n_in: int, n_out: int, bn: bool) -> float:
    """The family's count with real widths ``max(1, scale · ratio^e)``: continuous and increasing in scale."""
    sizes = [float(n_in), *(max(1.0, scale * ratio**e) for e in exponents), float(n_out)]
    dense = sum((a + 1) * b for a, b in pairwise(sizes))
    return dense + (2 * sum(sizes[1:-1]) if bn else 0.0)


def _bisect(increasing, target: float, lo: float) -> tuple[float, float]:
    """``(lo, hi)`` with ``increasing(lo) <= target < increasing(hi)`` and ``hi − lo`` at float precision;
    ``increasing`` is non-decreasing and ``increasing(lo) <= target`` on entry."""
    hi = max(1.0, 2 * lo)
    while increasing(hi) <= target:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if increasing(mid) <= target else (lo, mid)
    return lo, hi


def shape_widths(
    shape: str,
    budget: int,
    depth: int,
    ratio: float = 0.5,
    n_in: int = 784,
    n_out: int = 10,
    batchnorm: bool = False,
) -> ShapeFit:
    """The widths of family ``shape`` (``shapes.SHAPES``) at ``depth`` layers whose exact count is
    nearest ``budget``.

    ``uniform`` is m_P(k) (``width_for_budget``). Other families are solved in two steps:

    1. ``scale``: the real s at which the count of the *unrounded* widths ``max(1, s · ratio^e)`` is P
       (bisection; the count is continuous and increasing in s).
    2. ``widths``: the exact count of the *rounded* widths (``shapes.family_widths``) is a
       non-decreasing step function of s. Bisection finds the step where it crosses P; of the two
       widths lists either side of it (the last at or under P, the first over), the one whose count is
       nearer P wins, a tie goes to the smaller. Several widths may change at one step, so a
       non-uniform family's count is coarser than uniform's: typically within a few percent of P.

    Raises:
        SpecError: an unknown ``shape``; ``ratio`` outside (0, 1]; ``budget`` not a positive whole
            number or below Parameters(1, 1); ``depth`` < 1 or > k_P.
    """
    check_shape(shape)
    check_ratio(ratio)
    p = _check_budget(budget, n_in, n_out, batchnorm)
    depth = _check_depth(depth, p, n_in, n_out, batchnorm)
    note = collapse_note(shape, depth, ratio)
    if shape == "uniform":
        fit = width_for_budget(p, depth, n_in, n_out, batchnorm)
        return ShapeFit(shape, p, depth, tuple(fit.widths), fit.params, fit.error, fit.root, ratio, note)
    exponents = shape_exponents(shape, depth)
    s_lo, s_hi = _bisect(lambda s: _unrounded_count(exponents, s, ratio, n_in, n_out, batchnorm), p, 0.0)
    scale = (s_lo + s_hi) / 2

    def count(s: float) -> int:
        return mlp_params_of_widths(family_widths(shape, depth, s, ratio), n_in, n_out, batchnorm)

    # at s = 0 every width is 1, which fits because depth <= k_P
    under, over = (family_widths(shape, depth, s, ratio) for s in _bisect(count, p, 0.0))
    widths = min((under, over), key=lambda w: abs(mlp_params_of_widths(w, n_in, n_out, batchnorm) - p))
    n = mlp_params_of_widths(widths, n_in, n_out, batchnorm)
    if min(scale * ratio**e for e in exponents) < 0.5:
        note = "; ".join(filter(None, [note, "the narrowest widths are clipped at 1"]))
    return ShapeFit(shape, p, depth, tuple(widths), n, (n - p) / p, scale, ratio, note)


def budget_table(
    budget: int,
    depths: Iterable[int],
    shape: str = "uniform",
    ratio: float = 0.5,
    n_in: int = 784,
    n_out: int = 10,
    batchnorm: bool = False,
) -> pd.DataFrame:
    """One row per depth: the widths of ``shape`` nearest ``budget`` (m_P(k) for uniform).

    Returns:
        A DataFrame with columns ``shape``, ``depth``, ``widths`` (tuple of ints), ``params`` (exact),
        ``error`` ((params − P) / P), ``scale`` (see ``shape_widths``), ``note``; one row per depth,
        in the order given.

    Raises:
        SpecError: no depths, or any error of ``shape_widths`` (the first depth that fails).
    """
    import pandas as pd

    depths = list(depths)
    if not depths:
        raise SpecError("depths: empty; give at least one depth, e.g. 1..10")
    fits = [shape_widths(shape, budget, k, ratio, n_in, n_out, batchnorm) for k in depths]
    columns = ["shape", "depth", "widths", "params", "error", "scale", "note"]
    return pd.DataFrame([[getattr(f, c) for c in columns] for f in fits], columns=columns)


def parse_depths(text: str) -> list[int]:
    """``"4"`` → ``[4]``; ``"1..10"`` → ``[1, 2, …, 10]`` (both ends included).

    Raises:
        SpecError: not ``N`` or ``A..B`` with whole numbers, a depth < 1, or ``A > B``.
    """
    parts = str(text).strip().split("..")
    try:
        if len(parts) > 2:
            raise ValueError
        lo, hi = int(parts[0]), int(parts[-1])
    except ValueError:
        raise SpecError(f"depth {text!r}: expected N or A..B with whole numbers, e.g. 4 or 1..10") from None
    if lo > hi:
        raise SpecError(f"depth {text!r}: empty range ({lo} > {hi}); write A..B with A <= B")
    if lo < 1:
        raise SpecError(f"depth {text!r}: depth {lo} < 1; every network has at least one hidden layer")
    return list(range(lo, hi + 1))
