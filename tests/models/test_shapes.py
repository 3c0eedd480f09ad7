"""Shape families at a parameter budget: the widths have the shape their name says, their count equals
torch's and is the nearest the family reaches, and degenerate cases collapse to uniform."""

from __future__ import annotations

from itertools import pairwise

import pytest

from nnstudy.errors import SpecError
from nnstudy.models import SHAPES, build_model, family_widths, mlp_params_of_widths, shape_widths, width_for_budget
from nnstudy.models.shapes import shape_exponents
from nnstudy.spec import MLPSpec

BUDGETS = [25_000, 50_000, 100_000, 400_000]
DEPTHS = range(1, 9)


@pytest.mark.parametrize(
    "shape,k5,k4",
    [
        ("uniform", [0, 0, 0, 0, 0], [0, 0, 0, 0]),
        ("decreasing", [0, 1, 2, 3, 4], [0, 1, 2, 3]),
        ("increasing", [4, 3, 2, 1, 0], [3, 2, 1, 0]),
        ("bottleneck", [0, 1, 2, 1, 0], [0, 1, 1, 0]),
        ("diamond", [2, 1, 0, 1, 2], [1, 0, 0, 1]),
    ],
)
def test_exponents(shape, k5, k4):
    assert shape_exponents(shape, 5) == k5 and shape_exponents(shape, 4) == k4
    assert shape_exponents(shape, 1) == [0]


def test_family_widths_of_the_docstring_table():
    assert family_widths("decreasing", 5, 80) == [80, 40, 20, 10, 5]
    assert family_widths("increasing", 5, 80) == [5, 10, 20, 40, 80]
    assert family_widths("bottleneck", 5, 80) == [80, 40, 20, 40, 80]
    assert family_widths("diamond", 5, 80) == [20, 40, 80, 40, 20]
    assert family_widths("decreasing", 3, 10, ratio=0.25) == [10, 3, 1]  # 0.625 rounds to 1
    assert family_widths("decreasing", 4, 10, ratio=0.25) == [10, 3, 1, 1]  # 0.156 is clipped to 1
    assert family_widths("uniform", 2, 2.5) == [3, 3]  # half-up, not Python's half-to-even


def _is_non_increasing(w):
    return all(a >= b for a, b in pairwise(w))


def _has_shape(shape: str, widths: list[int]) -> bool:
    """Whether ``widths`` have the profile ``shape`` names (ties allowed: rounding and clipping)."""
    k = len(widths)
    first, second = widths[: (k + 1) // 2], widths[k // 2 :]  # both halves include the middle layer(s)
    if shape == "uniform":
        return len(set(widths)) == 1
    if shape == "decreasing":
        return _is_non_increasing(widths)
    if shape == "increasing":
        return _is_non_increasing(widths[::-1])
    if shape == "diamond":  # rises to the middle, then falls
        return _is_non_increasing(first[::-1]) and _is_non_increasing(second) and max(widths) in first[-1:]
    # bottleneck: falls to the middle, then rises
    return _is_non_increasing(first) and _is_non_increasing(second[::-1]) and min(widths) in first[-1:]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("budget", BUDGETS)
def test_shape_count_and_torch(shape, budget):
    for depth in DEPTHS:
        fit = shape_widths(shape, budget, depth)
        widths = list(fit.widths)
        assert len(widths) == depth and min(widths) >= 1
        assert _has_shape(shape, widths), fit
        if depth >= 3 and shape != "uniform":
            assert len(set(widths)) > 1, fit  # a real shape, not uniform in disguise
        model = build_model(MLPSpec(hidden=widths))
        assert fit.params == sum(p.numel() for p in model.parameters()), fit
        assert fit.error == pytest.approx((fit.params - budget) / budget)
        assert abs(fit.error) < 0.03, fit


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("budget", [3_000, 50_000, 400_000])
def test_shape_is_the_nearest_the_family_reaches(shape, budget):
    # brute force: every widths list the family takes for scales near the answer, one per step of
    # the step function s → family_widths(s): thresholds are where some layer's s·ratio^e hits n + ½
    for depth in (2, 3, 4, 5, 7):
        fit = shape_widths(shape, budget, depth)
        exponents = shape_exponents(shape, depth)
        lo, hi = 0.7 * fit.scale, 1.3 * fit.scale
        cuts = sorted({(n + 0.5) / 0.5**e for e in exponents for n in range(int(lo * 0.5**e), int(hi * 0.5**e) + 1)})
        cuts = [lo, *(c for c in cuts if lo < c < hi), hi]
        best = abs(fit.params - budget)
        for a, b in pairwise(cuts):
            w = family_widths(shape, depth, (a + b) / 2)
            distance = abs(mlp_params_of_widths(w, 784, 10) - budget)
            assert distance >= best, (depth, w, fit)


@pytest.mark.parametrize("budget", BUDGETS)
def test_uniform_through_the_generic_solver_is_m_p_k(budget):
    # at ratio 1 decreasing is uniform, but goes through the bisection, not the quadratic
    for depth in DEPTHS:
        generic = shape_widths("decreasing", budget, depth, ratio=1.0)
        fit = width_for_budget(budget, depth)
        assert list(generic.widths) == fit.widths and generic.params == fit.params
        assert generic.scale == pytest.approx(fit.root, rel=1e-9)
        assert generic.note == "ratio 1: every shape is uniform, so decreasing is too"


def test_scale_brings_the_unrounded_count_to_p():
    fit = shape_widths("diamond", 100_000, 5)
    real = [fit.scale * 0.5**e for e in shape_exponents("diamond", 5)]
    sizes = [784, *real, 10]
    assert sum((a + 1) * b for a, b in pairwise(sizes)) == pytest.approx(100_000, rel=1e-9)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_depth_1_collapses_to_uniform(shape):
    fit = shape_widths(shape, 50_000, 1)
    assert fit.widths == (63,) and fit.params == 50_095
    assert fit.note == f"depth 1: every shape is uniform, so {shape} is too"


@pytest.mark.parametrize("shape", ["bottleneck", "diamond"])
def test_depth_2_bottleneck_and_diamond_are_uniform(shape):
    fit = shape_widths(shape, 50_000, 2)
    assert list(fit.widths) == width_for_budget(50_000, 2).widths
    assert "no middle layer" in fit.note


def test_clipped_widths_are_noted():
    assert "clipped at 1" in shape_widths("decreasing", 50_000, 8).note
    assert shape_widths("decreasing", 50_000, 5).note == ""


@pytest.mark.parametrize("batchnorm", [False, True])
def test_generalised_sizes_equal_torch(batchnorm):
    for shape in SHAPES:
        fit = shape_widths(shape, 300_000, 4, ratio=0.6, n_in=3 * 32 * 32, n_out=100, batchnorm=batchnorm)
        model = build_model(MLPSpec(hidden=list(fit.widths), batchnorm=batchnorm), (3, 32, 32), 100)
        assert fit.params == sum(p.numel() for p in model.parameters())
        assert abs(fit.error) < 0.01


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: shape_widths("zigzag", 50_000, 3), r"shape = 'zigzag': not a shape family; allowed: uniform"),
        (lambda: shape_widths("diamond", 50_000, 3, ratio=0), r"ratio = 0: must be in \(0, 1\]"),
        (lambda: shape_widths("diamond", 50_000, 3, ratio=1.5), r"ratio = 1.5"),
        (lambda: shape_widths("diamond", 500, 3), r"budget P = 500: smaller than the smallest network"),
        (lambda: shape_widths("diamond", 50_000, 0), r"depth k = 0"),
        (lambda: shape_widths("increasing", 50_000, 30_000), r"deeper than k_P = 24598"),
        (lambda: family_widths("decreasing", 3, -1.0), r"scale = -1.0: must be >= 0"),
        (lambda: family_widths("decreasing", 0, 10.0), r"depth k = 0"),
    ],
)
def test_bad_requests_raise(call, match):
    with pytest.raises(SpecError, match=match):
        call()
