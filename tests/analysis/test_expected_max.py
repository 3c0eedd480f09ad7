"""Dodge et al. (2019) expected best score over n trials, against exhaustive enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from nnstudy.analysis import expected_max, expected_max_curves

SCORES = [0.31, 0.92, 0.55, 0.55, 0.74]  # with a tie, in no particular order


def _enumerated(values, n, best=max):
    """Mean and variance of best() over all len(values)**n ordered draws with replacement."""
    tops = np.array([best(t) for t in itertools.product(values, repeat=n)])
    return tops.mean(), tops.var()


@pytest.mark.parametrize("direction,best", [("max", max), ("min", min)])
def test_expected_max_equals_enumeration_over_all_draws(direction, best):
    curve = expected_max(SCORES, direction=direction)
    assert curve["n"].tolist() == [1, 2, 3, 4, 5] and (curve["trials"] == 5).all()
    for row in curve.itertuples():
        mean, var = _enumerated(SCORES, row.n, best)
        assert row.expected == pytest.approx(mean, abs=1e-12)
        assert row.var == pytest.approx(var, abs=1e-12) and row.std == pytest.approx(math.sqrt(var))


def test_expected_max_by_hand():
    # [1, 2], n = 2: max is 1 only for (1, 1): E = 1/4 + 2 * 3/4 = 1.75, E[max^2] = 1/4 + 4 * 3/4 = 3.25
    curve = expected_max([2.0, 1.0, math.nan])
    assert curve["expected"].tolist() == [1.5, 1.75]
    assert curve["var"].tolist() == pytest.approx([0.25, 3.25 - 1.75**2])


def test_expected_max_limits_and_extrapolation():
    curve = expected_max(SCORES, n_max=60)
    assert curve["expected"].iloc[0] == pytest.approx(np.mean(SCORES))  # one trial: the mean
    assert curve["expected"].is_monotonic_increasing
    assert curve["expected"].iloc[-1] == pytest.approx(max(SCORES), abs=1e-4)  # many: the best
    assert expected_max([]).empty and expected_max([0.7])["expected"].tolist() == [0.7]


def test_expected_max_curves_per_arm_from_the_tune_phase(tune, finals):
    res = pd.concat(
        [
            tune(
                {
                    "a": [{"val_accuracy": v} for v in SCORES],
                    "b": [{"val_accuracy": 0.5}, {"val_accuracy": 0.7}, {"val_accuracy": math.nan, "status": "failed"}],
                }
            ),
            finals({"a": [0.99, 0.99], "b": [0.1, 0.1]}),  # finals are not trials
        ],
        ignore_index=True,
    )
    curves = expected_max_curves(res, "val_accuracy")
    a, b = curves[curves.arm == "a"], curves[curves.arm == "b"]
    assert a["expected"].tolist() == pytest.approx(expected_max(SCORES)["expected"].tolist())
    assert b["n"].tolist() == [1, 2] and b["expected"].tolist() == pytest.approx([0.6, 0.5 / 4 + 0.7 * 3 / 4])
    losses = expected_max_curves(res.assign(val_loss=res["val_accuracy"]), "val_loss")  # min by name
    assert losses[losses.arm == "b"]["expected"].tolist() == pytest.approx([0.6, 0.7 / 4 + 0.5 * 3 / 4])


def test_expected_max_curves_without_a_tune_phase(finals):
    assert expected_max_curves(finals({"a": [0.9, 0.8]}), "val_accuracy").empty
    no_phase = pd.DataFrame({"arm": ["a"], "val_accuracy": [0.9]})
    assert list(expected_max_curves(no_phase, "val_accuracy").columns) == [
        "arm",
        "n",
        "expected",
        "var",
        "std",
        "trials",
    ]
