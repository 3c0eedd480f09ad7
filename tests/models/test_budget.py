"""Budgets: m_P(k), k_P and the budget table, checked against torch (``sum(p.numel())`` of the built
model) and against brute force (every width near the answer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnstudy.errors import SpecError
from nnstudy.models import (
    budget_table,
    build_model,
    depth_range,
    mlp_params,
    mlp_params_of_widths,
    parse_depths,
    width_for_budget,
)
from nnstudy.spec import MLPSpec

BUDGETS = [25_000, 50_000, 100_000, 400_000]
DEPTHS = range(1, 9)


def torch_count(widths, input_shape=(1, 28, 28), num_classes=10, batchnorm=False) -> int:
    model = build_model(MLPSpec(hidden=list(widths), batchnorm=batchnorm), input_shape, num_classes)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("budget", BUDGETS)
def test_every_row_of_the_table_equals_torch(budget):
    table = budget_table(budget, DEPTHS)
    assert list(table["depth"]) == list(DEPTHS)
    for row in table.itertuples(index=False):
        assert len(row.widths) == row.depth and len(set(row.widths)) == 1
        assert row.params == torch_count(row.widths), row
        assert row.error == pytest.approx((row.params - budget) / budget)


def test_k1_at_50000_is_63_wide_with_50095_parameters():
    fit = width_for_budget(50_000, 1)
    assert (fit.depth, fit.width, fit.params) == (1, 63, 50_095)
    assert 795 * 63 + 10 == 50_095 == torch_count([63])  # the seed's Parameters(1, m) = 795m + 10
    assert fit.error == pytest.approx(95 / 50_000)
    assert fit.root == pytest.approx((50_000 - 10) / 795)


def test_k3_m50_has_44860_parameters_by_formula_and_by_torch():
    assert (3 - 1) * 50**2 + (794 + 3) * 50 + 10 == 44_860
    assert mlp_params(3, 50) == 44_860 == torch_count([50, 50, 50])


@pytest.mark.parametrize(
    "budget,batchnorm",
    [(p, bn) for bn in (False, True) for p in (805, 806, 807, 1_000, 7_777, *BUDGETS, 1_234_567) if p >= 805 + 2 * bn],
)
def test_width_is_the_nearest_integer(budget, batchnorm):
    k_p = depth_range(budget, batchnorm=batchnorm).k_max
    for depth in [k for k in DEPTHS if k <= k_p]:
        fit = width_for_budget(budget, depth, batchnorm=batchnorm)
        best = abs(fit.params - budget)
        assert fit.params == mlp_params_of_widths(fit.widths, batchnorm=batchnorm)
        for m in range(max(1, fit.width - 3), fit.width + 4):
            distance = abs(mlp_params_of_widths([m] * depth, batchnorm=batchnorm) - budget)
            assert distance > best or (distance == best and m >= fit.width), (depth, m, fit)


def test_root_solves_the_quadratic():
    for budget in BUDGETS:
        for k in DEPTHS:
            r = width_for_budget(budget, k).root
            assert (k - 1) * r**2 + (794 + k) * r + 10 == pytest.approx(budget, rel=1e-12)


def test_a_tie_goes_to_the_narrower_width():
    # with 785 inputs, Parameters(1, m) = 796m + 10: P = 49,760 is 398 from both m = 62 and m = 63
    assert mlp_params(1, 62, n_in=785) == 49_362 and mlp_params(1, 63, n_in=785) == 50_158
    assert width_for_budget(49_760, 1, n_in=785).width == 62
    assert width_for_budget(49_761, 1, n_in=785).width == 63
    # Parameters(2, m) = m² + 796m + 10: 8,070 at m = 10, 8,887 at m = 11, halfway at 8,478.5
    assert width_for_budget(8_478, 2).width == 10 and width_for_budget(8_479, 2).width == 11


@pytest.mark.parametrize(
    "input_shape,num_classes,batchnorm",
    [((3, 32, 32), 100, False), ((1, 1, 10), 3, False), ((1, 28, 28), 10, True), ((3, 32, 32), 10, True)],
)
def test_generalised_sizes_equal_torch(input_shape, num_classes, batchnorm):
    n_in = math.prod(input_shape)
    budget = 60_000 if n_in > 100 else 2_000
    for depth in range(1, 6):
        fit = width_for_budget(budget, depth, n_in, num_classes, batchnorm)
        assert fit.params == torch_count(fit.widths, input_shape, num_classes, batchnorm), fit
        step = mlp_params_of_widths([fit.width + 1] * depth, n_in, num_classes, batchnorm) - mlp_params_of_widths(
            fit.widths, n_in, num_classes, batchnorm
        )
        assert abs(fit.params - budget) <= step  # within one width step of P


def test_huge_budget_stays_exact():
    # the float root can be off for huge P; the answer is corrected by exact integer counts
    fit = width_for_budget(10**15, 3)
    for m in (fit.width - 1, fit.width + 1):
        assert abs(mlp_params(3, m) - 10**15) >= abs(fit.params - 10**15)


def test_depth_range_when_k_p_is_not_whole():
    # Parameters(k, 1) = 803 + 2k, so k_P = (P − 803) / 2 = 24598.5 at P = 50,000
    span = depth_range(50_000)
    assert (span.k_min, span.k_max, span.k_exact, span.leftover) == (1, 24_598, 24_598.5, 1)
    assert mlp_params(24_598, 1) == 49_999 <= 50_000 < mlp_params(24_599, 1) == 50_001
    assert "not a whole number" in span.note and "24598" in span.note
    assert width_for_budget(50_000, 24_598).width == 1


def test_depth_range_when_k_p_is_whole():
    span = depth_range(50_001)
    assert (span.k_max, span.k_exact, span.leftover) == (24_599, 24_599.0, 0)
    assert mlp_params(24_599, 1) == 50_001
    assert "exactly" in span.note


@pytest.mark.parametrize(
    "n_in,n_out,batchnorm,budget",
    [(*sizes, p) for sizes in [(784, 10, False), (784, 10, True), (3072, 100, False), (5, 2, True)]
     for p in (2_000, 9_999, 50_000) if p >= mlp_params_of_widths([1], *sizes)],
)
def test_k_p_is_the_largest_depth_that_fits(n_in, n_out, batchnorm, budget):
    span = depth_range(budget, n_in, n_out, batchnorm)
    fits = mlp_params_of_widths([1] * span.k_max, n_in, n_out, batchnorm)
    assert fits <= budget < mlp_params_of_widths([1] * (span.k_max + 1), n_in, n_out, batchnorm)
    assert span.leftover == budget - fits
    assert math.floor(span.k_exact) == span.k_max
    with pytest.raises(SpecError, match=f"k_P = {span.k_max}"):
        width_for_budget(budget, span.k_max + 1, n_in, n_out, batchnorm)


def test_smallest_budget_is_the_smallest_network():
    assert width_for_budget(805, 1).widths == [1] and torch_count([1]) == 805
    assert depth_range(805).k_max == 1


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: width_for_budget(804, 1), r"budget P = 804: smaller than the smallest network.*805"),
        (lambda: width_for_budget(806, 1, batchnorm=True), r"P = 806.*batch norm.*807"),
        (lambda: width_for_budget(0, 1), r"budget P = 0: must be a positive"),
        (lambda: width_for_budget(-50_000, 3), r"budget P = -50000: must be a positive"),
        (lambda: width_for_budget(50_000.5, 3), r"budget P = 50000.5: must be a whole number"),
        (lambda: width_for_budget(True, 3), r"budget P = True: must be a whole number"),
        (lambda: width_for_budget(50_000, 0), r"depth k = 0: must be a whole number >= 1"),
        (lambda: width_for_budget(50_000, -2), r"depth k = -2"),
        (lambda: width_for_budget(50_000, 24_599), r"depth k = 24599: deeper than k_P = 24598"),
        (lambda: width_for_budget(50_000, 3, n_in=0), r"inputs = 0"),
        (lambda: depth_range(-1), r"budget P = -1"),
        (lambda: budget_table(50_000, []), r"depths: empty"),
        (lambda: budget_table(50_000, range(5, 2)), r"depths: empty"),
    ],
)
def test_impossible_requests_raise_one_line(call, match):
    with pytest.raises(SpecError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_table_columns():
    table = budget_table(50_000, [3, 1])
    assert list(table.columns) == ["shape", "depth", "widths", "params", "error", "scale", "note"]
    assert list(table["depth"]) == [3, 1] and list(table["params"]) == [49_895, 50_095]
    numpy_ints = budget_table(np.int64(50_000), np.arange(3, 0, -2))  # a notebook's numbers work too
    assert numpy_ints.drop(columns="scale").equals(table.drop(columns="scale"))


@pytest.mark.parametrize("text,depths", [("4", [4]), ("1..10", list(range(1, 11))), (" 2..3 ", [2, 3]), ("5..5", [5])])
def test_parse_depths(text, depths):
    assert parse_depths(text) == depths


@pytest.mark.parametrize(
    "text,match",
    [("5..2", r"empty range \(5 > 2\)"), ("0..3", "depth 0 < 1"), ("0", "depth 0 < 1"), ("x", "expected N or A..B"),
     ("1..2..3", "expected N or A..B"), ("", "expected N or A..B"), ("1.5", "expected N or A..B")],
)
def test_parse_depths_rejects(text, match):
    with pytest.raises(SpecError, match=match):
        parse_depths(text)
