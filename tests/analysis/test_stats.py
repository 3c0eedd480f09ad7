"""Estimators of nnstudy.analysis.stats against scipy, numpy and hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from nnstudy.analysis import (
    A_BETTER,
    B_BETTER,
    UNDECIDED,
    arm_summary,
    mean_interval,
    paired_difference,
    pairwise,
    prob_better,
    prob_better_matrix,
    rank_arms,
    seeds_needed,
    sign_test_min_pairs,
)

A = np.array([0.912, 0.925, 0.918, 0.951, 0.933, 0.944, 0.907, 0.962, 0.921, 0.938, 0.929, 0.947])
B = np.array([0.905, 0.921, 0.922, 0.930, 0.915, 0.940, 0.899, 0.951, 0.924, 0.925, 0.918, 0.939])


# --- t-intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_interval_matches_scipy_t_interval(confidence):
    mi = mean_interval(A, confidence)
    low, high = sps.t.interval(confidence, len(A) - 1, loc=A.mean(), scale=sps.sem(A))
    assert mi.n == 12 and mi.mean == pytest.approx(A.mean()) and mi.std == pytest.approx(A.std(ddof=1))
    assert (mi.low, mi.high) == pytest.approx((low, high), rel=1e-12)


def test_mean_interval_by_hand_and_degenerate_cases():
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302653 -> 2 ± 4.302653 / sqrt(3)
    mi = mean_interval([1.0, 2.0, 3.0, math.nan])
    assert mi.n == 3 and mi.std == pytest.approx(1.0)
    assert mi.high - 2 == pytest.approx(4.302652729 / math.sqrt(3), rel=1e-8)
    one = mean_interval([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.std)
    assert mean_interval([]).n == 0


def test_t_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    draws = rng.normal(0.97, 0.01, size=(2000, 5))
    covered = [(mi := mean_interval(row)).low <= 0.97 <= mi.high for row in draws]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_arm_summary_counts_statuses_and_skips_absent_metrics(finals):
    res = finals({"a": [0.90, 0.92, 0.94], "b": [0.80]}, val_loss=[0.3, 0.25, 0.2, 0.5])
    lost = pd.DataFrame(
        [
            {"run": "a/x", "arm": "a", "phase": "final", "seed": 9, "status": "diverged", "val_accuracy": 0.1},
            {"run": "b/y", "arm": "b", "phase": "final", "seed": 9, "status": "failed", "error": "boom"},
            {"run": "b/t", "arm": "b", "phase": "tune", "seed": 5, "status": "complete", "val_accuracy": 0.99},
        ]
    )
    s = arm_summary(pd.concat([res, lost], ignore_index=True))
    assert list(s.index) == ["a", "b"]
    assert s.loc["a", ["runs", "n", "diverged", "failed"]].tolist() == [4, 3, 1, 0]
    assert s.loc["b", ["runs", "n", "diverged", "failed"]].tolist() == [2, 1, 0, 1]
    low, high = sps.t.interval(0.95, 2, loc=0.92, scale=sps.sem([0.90, 0.92, 0.94]))
    assert s.loc["a", "val_accuracy_mean"] == pytest.approx(0.92)  # the diverged 0.1 is not averaged in
    assert (s.loc["a", "val_accuracy_low"], s.loc["a", "val_accuracy_high"]) == pytest.approx((low, high))
    assert s.loc["b", "val_accuracy_n"] == 1 and math.isnan(s.loc["b", "val_accuracy_low"])
    assert "val_loss_mean" in s.columns and not any(c.startswith("test_") for c in s.columns)


def test_arm_summary_rejects_a_metric_that_is_not_a_column(finals):
    with pytest.raises(ValueError, match="test_accuracy"):
        arm_summary(finals({"a": [0.9, 0.8]}), metrics=["test_accuracy"])


def test_arm_summary_without_phase_status_or_seed_columns():
    res = pd.DataFrame({"arm": ["a", "a", "b", "b"], "val_accuracy": [0.9, 0.8, 0.7, 0.6]})
    s = arm_summary(res)
    assert s["n"].tolist() == [2, 2] and s["val_accuracy_mean"].tolist() == pytest.approx([0.85, 0.65])


def test_rank_arms_respects_direction(finals):
    res = finals({"a": [0.3, 0.3], "b": [0.1, 0.2], "c": [0.5, 0.4]}, metric="val_loss")
    assert [a for a, _ in rank_arms(res, "val_loss")] == ["b", "a", "c"]  # losses: lowest first
    assert [a for a, _ in rank_arms(res, "val_loss", "max")] == ["c", "a", "b"]


# --- paired bootstrap difference ---------------------------------------------------------------


def test_paired_difference_matches_scipy_paired_percentile_bootstrap():
    ours = paired_difference(A, B, n_boot=20_000, seed=3)
    ref = sps.bootstrap(
        (A, B),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        paired=True,
        method="percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(11),
    )
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.mean_diff == pytest.approx(np.mean(A - B)) and ours.n_pairs == 12
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_paired_difference_pairs_by_seed_only_where_both_arms_have_one():
    # seeds 2 and 3 are common: differences 1 and 3; resampled means are 1, 2, 3 with mass 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are exactly 1 and 3.
    a = pd.Series({0: 9.0, 1: 9.0, 2: 5.0, 3: 7.0})
    b = pd.Series({2: 4.0, 3: 4.0, 4: 100.0})
    d = paired_difference(a, b)
    assert (d.n_pairs, d.mean_diff, d.low, d.high) == (2, 2.0, 1.0, 3.0)
    assert paired_difference({7: 1.0}, {7: 0.5}).mean_diff == 0.5  # one pair: estimate, no interval
    assert math.isnan(paired_difference({7: 1.0}, {7: 0.5}).low)
    assert paired_difference({1: 1.0}, {2: 1.0}).n_pairs == 0


def test_positional_values_must_have_equal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


# --- P(A>B) ------------------------------------------------------------------------------------


def test_prob_better_counts_ties_half_and_respects_direction():
    a, b = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 5.0]  # tie, win, win, loss (for max)
    assert prob_better(a, b, "max").p == pytest.approx(2.5 / 4)
    assert prob_better(a, b, "min").p == pytest.approx(1.5 / 4)


def test_prob_better_interval_matches_scipy_bootstrap():
    ours = prob_better(A, B, n_boot=20_000, seed=5)

    def wins(a, b, axis):
        return np.mean((a > b) + 0.5 * (a == b), axis=axis)

    ref = sps.bootstrap(
        (A, B), wins, paired=True, method="percentile", n_resamples=20_000, rng=np.random.default_rng(2)
    ).confidence_interval
    assert ours.p == pytest.approx(wins(A, B, 0)) == 10 / 12
    # the statistic takes values k/12: the quantiles coincide exactly or differ by one step
    assert abs(ours.low - ref.low) <= 1 / 12 + 1e-12 and abs(ours.high - ref.high) <= 1 / 12 + 1e-12


def test_prob_better_small_case_by_hand():
    # wins [1, 1, 0]: P(no loss drawn in 3) = 8/27 > 2.5%, P(all three losses) = 1/27 > 2.5%
    pb = prob_better([3.0, 3.0, 1.0], [2.0, 2.0, 2.0], min_pairs=2)
    assert pb.p == pytest.approx(2 / 3) and (pb.low, pb.high) == (0.0, 1.0) and pb.decision == UNDECIDED


def test_decision_rule_on_clear_cut_cases():
    rng = np.random.default_rng(0)
    base = rng.normal(0.95, 0.003, size=10)
    good, bad = base + 0.02, base - 0.02 + rng.normal(0, 0.001, size=10)
    better = prob_better(good, bad)
    assert better.low > 0.5 and better.decision == A_BETTER
    worse = prob_better(bad, good)
    assert worse.high < 0.5 and worse.decision == B_BETTER
    same = prob_better(base, base.copy())
    assert (same.p, same.low, same.high, same.decision) == (0.5, 0.5, 0.5, UNDECIDED)
    # losses: lower is better, so the higher-loss arm loses
    assert prob_better(1 - good, 1 - bad, "min").decision == A_BETTER


def test_same_distribution_with_many_seeds_cannot_be_told_apart():
    rng = np.random.default_rng(1)
    pb = prob_better(rng.normal(0.97, 0.003, 30), rng.normal(0.97, 0.003, 30))
    assert pb.low < 0.5 < pb.high and pb.decision == UNDECIDED


def test_no_verdict_below_the_sign_test_minimum():
    assert sign_test_min_pairs(0.95) == 5  # 0.5^4 = 0.0625 > 0.05 >= 0.5^5 = 0.031
    assert sign_test_min_pairs(0.9) == 4 and sign_test_min_pairs(0.75) == 2
    four = prob_better([0.9] * 4, [0.8] * 4)  # wins all 4: the bootstrap says [1, 1], yet too few
    assert (four.low, four.high, four.n_pairs) == (1.0, 1.0, 4) and four.decision == UNDECIDED
    assert prob_better([0.9] * 5, [0.8] * 5).decision == A_BETTER
    assert prob_better([0.9] * 5, [0.8] * 5, min_pairs=6).decision == UNDECIDED


def test_prob_better_matrix_is_consistent_with_pairwise_calls(finals):
    rng = np.random.default_rng(4)
    res = finals({"x": rng.normal(0.96, 0.004, 8), "y": rng.normal(0.95, 0.004, 8), "z": rng.normal(0.90, 0.004, 8)})
    m = prob_better_matrix(res, "val_accuracy", n_boot=2000)
    p = m["p"]
    assert list(p.index) == list(p.columns) == ["x", "y", "z"] and np.isnan(np.diag(p.to_numpy(float))).all()
    off = ~np.eye(3, dtype=bool)
    assert np.allclose((p + p.T).to_numpy(float)[off], 1.0)
    assert np.allclose((m["low"] + m["high"].T).to_numpy(float)[off], 1.0)
    direct = prob_better(
        res[res.arm == "x"].set_index("seed")["val_accuracy"],
        res[res.arm == "z"].set_index("seed")["val_accuracy"],
        n_boot=2000,
    )
    assert (m.loc["x", ("p", "z")], m.loc["x", ("low", "z")]) == (direct.p, direct.low)
    assert m.loc["x", ("decision", "z")] == A_BETTER and m.loc["z", ("decision", "x")] == B_BETTER
    pw = pairwise(res, "val_accuracy", n_boot=2000)
    xz, zx = pw[(pw.a == "x") & (pw.b == "z")].iloc[0], pw[(pw.a == "z") & (pw.b == "x")].iloc[0]
    assert (zx["diff"], zx["diff_low"], zx["diff_high"]) == (-xz["diff"], -xz["diff_high"], -xz["diff_low"])


def test_seeds_needed_formula():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert seeds_needed(0.01, 0.02) == math.ceil(2 * (z * 2) ** 2) == 63
    assert seeds_needed(-0.01, 0.02) == 63
    assert seeds_needed(0.0, 0.02) == math.inf and math.isnan(seeds_needed(0.01, math.nan))


def test_intervals_are_clipped_to_what_a_metric_can_be():
    from nnstudy.analysis.stats import metric_bounds

    wide = mean_interval([0.99, 0.5, 0.98], bounds=metric_bounds("val_accuracy"))
    assert wide.high == 1.0 and 0 < wide.low < wide.mean
    assert mean_interval([0.01, 0.5, 0.02], bounds=metric_bounds("val_loss")).low == 0.0
    raw = mean_interval([0.99, 0.5, 0.98])
    assert raw.high > 1.0  # unclipped without bounds
