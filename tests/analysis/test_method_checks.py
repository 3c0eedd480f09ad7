"""Each methodology check fires on a case built to trigger it and stays silent on a clean one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnstudy.analysis import (
    StudyContext,
    check_at_chance,
    check_fixed_learning_rate,
    check_not_separable,
    check_overfitting,
    check_range_edges,
    check_runs_lost,
    check_still_improving,
    check_train_loss_rising,
    chosen_values,
    run_checks,
)

LR_RANGE = {"optimizer.lr": {"log": [0.005, 1.0]}, "trials": 8, "sampler": "tpe"}
SEEDS = range(5)


def _ctx(**kw) -> StudyContext:
    kw.setdefault("scientific", {"batch_size": [32, 512]})
    return StudyContext(**kw)


# --- a scientific key compared at one fixed learning rate --------------------------------------


def test_fixed_learning_rate_fires_for_batch_size_at_the_base_rate(finals):
    res = finals({"batch_size=32": [0.97] * 3, "batch_size=512": [0.93] * 3})
    [check] = check_fixed_learning_rate(res, _ctx(base={"optimizer.lr": 0.05, "batch_size": 128}))
    assert check.severity == "warning" and check.numbers["lr"] == 0.05
    assert check.sentence.startswith("batch_size was compared at one fixed learning rate (0.05)")
    assert "the ranking may reflect the learning rate, not batch_size" in check.sentence


@pytest.mark.parametrize("key", ["model.activation", "optimizer.name", "data.normalize", "model", "epochs"])
def test_fixed_learning_rate_fires_for_every_lr_coupled_key(finals, key):
    res = finals({"a": [0.9], "b": [0.8]}, **{"optimizer.lr": 0.1})
    [check] = check_fixed_learning_rate(res, _ctx(scientific={key: ["a", "b"]}))
    assert "(0.1)" in check.sentence and key in check.sentence  # the rate is read from the runs


@pytest.mark.parametrize(
    "scientific,nuisance",
    [
        ({"batch_size": [32, 512]}, LR_RANGE),  # tuned per arm: the fix the warning asks for
        ({"optimizer.lr": [0.01, 0.1]}, {}),  # the learning rate is the question
        ({"early_stopping.patience": [2, 5]}, {}),  # does not move the best learning rate
    ],
)
def test_fixed_learning_rate_silent_when_not_confounded(finals, scientific, nuisance):
    res = finals({"a": [0.9], "b": [0.8]}, **{"optimizer.lr": 0.05})
    assert (
        check_fixed_learning_rate(res, _ctx(scientific=scientific, nuisance=nuisance, base={"optimizer.lr": 0.05}))
        == []
    )


def test_fixed_learning_rate_silent_when_the_runs_used_several_rates(finals):
    res = finals({"a": [0.9], "b": [0.8]}, **{"optimizer.lr": [0.05, 0.2]})
    assert check_fixed_learning_rate(res, _ctx(base={"optimizer.lr": 0.05})) == []


# --- top two arms not separable ----------------------------------------------------------------


def test_not_separable_fires_with_seed_count_and_rough_estimate(finals):
    res = finals(
        {
            "a": [0.970, 0.972, 0.968, 0.975, 0.969, 0.971],
            "b": [0.969, 0.973, 0.970, 0.972, 0.966, 0.970],
            "c": [0.90] * 6,
        }
    )
    [check] = check_not_separable(res, _ctx(), n_boot=2000)
    n = check.numbers
    assert (n["a"], n["b"], n["n_pairs"]) == ("a", "b", 6) and n["low"] < 0.5 < n["high"]
    assert "cannot be told apart with 6 seed pairs" in check.sentence
    assert f"about {int(n['seeds_needed'])} seeds per arm" in check.sentence and "rough estimate" in check.sentence
    assert n["seeds_needed"] > 6


def test_not_separable_for_identical_arms_says_the_means_are_equal(finals):
    res = finals({"a": [0.95, 0.96, 0.97], "b": [0.95, 0.96, 0.97]})
    [check] = check_not_separable(res, _ctx(), n_boot=500)
    assert "P(a beats b) = 0.50 (a tied in all " in check.sentence and "means are equal" in check.sentence
    assert "fewer than the 5 pairs" in check.sentence


def test_not_separable_silent_when_the_best_arm_clearly_wins(finals):
    res = finals({"a": np.linspace(0.970, 0.975, 8), "b": np.linspace(0.950, 0.955, 8)})
    assert check_not_separable(res, _ctx(), n_boot=2000) == []
    # not unanimous: b wins 3 of 20 pairs, P = 0.85 with a lower bound above 0.5
    b = np.full(20, 0.95)
    a = b + np.where(np.arange(20) < 3, -0.01, 0.01)
    assert check_not_separable(finals({"a": a, "b": b}), _ctx(), n_boot=2000) == []


# --- best nuisance value at the edge of its range ----------------------------------------------


def _tuned(finals, tune, chosen: dict[str, float], key="optimizer.lr"):
    trials = {arm: [{key: v, "val_accuracy": 0.9}] for arm, v in chosen.items()}
    fin = pd.concat([finals({arm: [0.9, 0.91]}, **{key: v}) for arm, v in chosen.items()], ignore_index=True)
    return pd.concat([tune(trials), fin], ignore_index=True)


def test_range_edge_fires_at_the_top_in_log_space(finals, tune):
    # 0.04 is 3.5% of the way up the range in linear terms, but 39% in log space: not an edge
    res = _tuned(finals, tune, {"batch_size=32": 0.04, "batch_size=128": 0.1, "batch_size=512": 0.98})
    [check] = check_range_edges(res, _ctx(nuisance=LR_RANGE))
    assert check.severity == "warning" and check.numbers["chosen"] == {"batch_size=512": 0.98}
    assert check.sentence == (
        "The best optimizer.lr for batch_size=512 was 0.98, at the top of the searched "
        "range [0.005, 1]: widen the range."
    )


def test_range_edge_groups_arms_and_finds_the_bottom(finals, tune):
    res = _tuned(finals, tune, {"a": 0.0052, "b": 0.0051, "c": 0.1})
    [check] = check_range_edges(res, _ctx(nuisance=LR_RANGE))
    assert check.numbers["side"] == "bottom" and "in 2 of 3 arms (a → 0.0052, b → 0.0051)" in check.sentence


def test_range_edge_silent_inside_the_range(finals, tune):
    res = _tuned(finals, tune, {"a": 0.01, "b": 0.3, "c": 0.7})
    assert check_range_edges(res, _ctx(nuisance=LR_RANGE)) == []


def test_range_edge_for_int_ranges_and_a_floor_at_zero(finals, tune):
    ints = _tuned(finals, tune, {"a": 8, "b": 4}, key="model.depth")
    [top] = check_range_edges(ints, _ctx(nuisance={"model.depth": {"int": [1, 8]}}))
    assert top.severity == "warning" and "was 8, at the top of the searched range [1, 8]" in top.sentence
    zero = _tuned(finals, tune, {"a": 0.01, "b": 0.3}, key="model.dropout")
    [floor] = check_range_edges(zero, _ctx(nuisance={"model.dropout": {"uniform": [0.0, 0.5]}}))
    assert floor.severity == "info" and "0 is the smallest possible model.dropout" in floor.sentence


def test_chosen_values_fall_back_to_the_best_tuning_trial(tune):
    res = tune({"a": [{"optimizer.lr": 0.01, "val_accuracy": 0.90}, {"optimizer.lr": 0.3, "val_accuracy": 0.95}]})
    assert chosen_values(res, _ctx(nuisance=LR_RANGE)).loc["a", "optimizer.lr"] == 0.3


# --- diverged and failed runs ------------------------------------------------------------------


def test_runs_lost_reports_final_divergence_failures_and_tuning_divergence(finals, tune):
    res = finals({"a": [0.9, 0.9, 0.9, 0.9], "b": [0.9, 0.9]})
    res.loc[[0, 1, 2], "status"] = "diverged"
    res.loc[4, ["status", "error"]] = ["failed", "CUDA out of memory"]
    trials = tune({"a": [{"val_accuracy": 0.9}, {"val_accuracy": 0.1, "status": "diverged"}]})
    checks = {(c.name, c.numbers["phase"]): c for c in check_runs_lost(pd.concat([res, trials]))}
    assert set(checks) == {("diverged", "final"), ("failed", "final"), ("diverged", "tune")}
    assert checks["diverged", "final"].sentence.startswith("Final runs diverged: 3 of 4 (75%) in a")
    assert (
        checks["diverged", "final"].severity == "warning"
        and "which flatters it" in checks["diverged", "final"].sentence
    )
    lost_trial = tune({"a": [{"val_accuracy": 0.9}, {"status": "failed"}]})  # no error column at all
    [failed] = check_runs_lost(lost_trial)
    assert failed.sentence == "Tuning trials failed: 1 of 2 (50%) in a." and failed.severity == "warning"
    assert "1 of 2 (50%) in b" in checks["failed", "final"].sentence
    assert "CUDA out of memory" in checks["failed", "final"].sentence
    assert checks["diverged", "tune"].severity == "info" and "1 of 2 (50%) in a" in checks["diverged", "tune"].sentence


def test_runs_lost_silent_when_every_run_completed(finals):
    assert check_runs_lost(finals({"a": [0.9, 0.9], "b": [0.8, 0.8]})) == []


# --- curves: still improving, overfitting, training loss rising --------------------------------


def test_still_improving_fires_when_the_slope_beats_the_seed_noise(finals, curves_of):
    res = finals({"rising": [0.0] * 5, "flat": [0.0] * 5, "drift": [0.0] * 5})
    epochs = np.arange(1, 7)

    def curve(arm, seed):
        if arm == "rising":  # +1 point per epoch; seeds differ by 0.05 points
            return {"val_accuracy": 0.90 + 0.01 * epochs + 0.0005 * seed}
        if arm == "drift":  # +0.02 points per epoch, but seeds differ by 0.4 points
            return {"val_accuracy": 0.95 + 0.0002 * epochs + 0.004 * seed}
        return {"val_accuracy": 0.97 + 0.0005 * seed + 0.001 * (epochs % 2)}  # plateau with jitter

    [check] = check_still_improving(res, curves_of(res, curve), _ctx())
    assert list(check.numbers["arms"]) == ["rising"] and check.numbers["arms"]["rising"]["n_seeds"] == 5
    assert (
        "for rising: rising by 1.00 points per epoch over epochs 3–6, against a seed-to-seed std of "
        "0.08 points over 5 seeds: more epochs may change the answer."
    ) in check.sentence


def test_still_improving_follows_the_metric_direction(finals, curves_of):
    res = finals({"a": [0.0] * 3}, metric="val_loss")
    down = curves_of(res, lambda arm, s: {"val_loss": [0.5, 0.4, 0.3, 0.2 + 0.001 * s]})
    [check] = check_still_improving(res, down, _ctx(metric="val_loss"))
    assert (
        "The val_loss was still improving" in check.sentence
        and "falling by 0.0997 per epoch over epochs 1–4" in check.sentence
    )
    up = curves_of(res, lambda arm, s: {"val_loss": [0.2, 0.3, 0.4, 0.5 + 0.001 * s]})
    assert check_still_improving(res, up, _ctx(metric="val_loss")) == []  # getting worse is not improving
    one_seed = finals({"a": [0.0]}, metric="val_loss")
    assert (
        check_still_improving(
            one_seed, curves_of(one_seed, lambda a, s: {"val_loss": [0.5, 0.3]}), _ctx(metric="val_loss")
        )
        == []
    )


def _u_shape(arm, seed):
    return {
        "val_loss": np.array([0.30, 0.20, 0.15, 0.18, 0.24]) + 0.001 * seed,
        "train_loss": [0.50, 0.30, 0.20, 0.12, 0.08],
    }


def test_overfitting_fires_with_the_epoch_of_lowest_validation_loss(finals, curves_of):
    res = finals({"wide": [0.9] * 5})
    [check] = check_overfitting(res, curves_of(res, _u_shape))
    h = check.numbers["arms"]["wide"]
    assert (h["best_epoch"], h["last_epoch"], h["overfit_runs"]) == (3, 5, 5) and check.severity == "warning"
    assert "lowest 0.1520 at epoch 3, then 0.2420 at epoch 5 (+59.2%)" in check.sentence
    assert "training loss fell 0.2000 → 0.08000" in check.sentence


def test_overfitting_is_info_when_early_stopping_restored_the_best_epoch(finals, curves_of):
    res = finals({"wide": [0.9] * 5}, best_epoch=3, epochs_run=5)
    [check] = check_overfitting(res, curves_of(res, _u_shape))
    assert check.severity == "info" and "early stopping restored the best epoch" in check.sentence


def test_overfitting_silent_when_validation_loss_keeps_falling(finals, curves_of):
    res = finals({"a": [0.9] * 5})
    clean = curves_of(
        res,
        lambda a, s: {
            "val_loss": [0.30, 0.20, 0.15, 0.14, 0.1401 + 0.001 * s],
            "train_loss": [0.5, 0.3, 0.2, 0.12, 0.08],
        },
    )
    assert check_overfitting(res, clean) == []  # a rise of 0.0001 is noise, not overfitting
    both_up = curves_of(
        res,
        lambda a, s: {
            "val_loss": [0.30, 0.20, 0.15, 0.25, 0.40 + 0.001 * s],
            "train_loss": [0.50, 0.30, 0.20, 0.30, 0.45],
        },
    )
    assert check_overfitting(res, both_up) == []  # training loss rose too: not overfitting


def test_train_loss_rising_fires_with_its_epochs(finals, curves_of):
    res = finals({"lr=1": [0.5] * 3, "lr=0.1": [0.9] * 3})

    def curve(arm, seed):
        if arm == "lr=1" and seed == 2:
            return {"train_loss": [0.5, 0.3, 0.2, 0.4, 0.8]}
        return {"train_loss": [0.5, 0.3, 0.2, 0.19, 0.195]}  # a wiggle of 0.005 after the minimum is fine

    [check] = check_train_loss_rising(res, curves_of(res, curve))
    assert list(check.numbers["arms"]) == ["lr=1"]
    assert "for lr=1: 1 of 3 (33%) seeds; worst from 0.2000 at epoch 3 to 0.8000 at epoch 5" in check.sentence


def test_curve_checks_tolerate_missing_curves(finals):
    res = finals({"a": [0.9, 0.9]})
    for curves in (None, pd.DataFrame(), pd.DataFrame({"run": ["x"], "arm": ["a"], "epoch": [1]})):
        assert check_still_improving(res, curves, _ctx()) == []
        assert check_overfitting(res, curves) == [] and check_train_loss_rising(res, curves) == []


# --- all together ------------------------------------------------------------------------------


def test_run_checks_is_empty_for_a_clean_study_and_puts_warnings_first(finals, tune, curves_of):
    good = {"batch_size=32": 0.05, "batch_size=512": 0.2}
    res = _tuned(finals, tune, good)
    res.loc[(res.phase == "final") & (res.arm == "batch_size=512"), "val_accuracy"] = [0.80, 0.81]
    more = [
        finals({arm: np.linspace(v, v + 0.004, 6)}, **{"optimizer.lr": good[arm]})
        for arm, v in (("batch_size=32", 0.97), ("batch_size=512", 0.90))
    ]
    res = pd.concat([res] + [f.assign(seed=f.seed + 10, run=f.run + "+") for f in more], ignore_index=True)
    flat = curves_of(
        res,
        lambda a, s: {
            "val_accuracy": np.array([0.9, 0.95, 0.96, 0.96, 0.96]) + 0.001 * (s % 3),
            "val_loss": [0.3, 0.2, 0.15, 0.14, 0.14],
            "train_loss": [0.5, 0.3, 0.2, 0.15, 0.12],
        },
    )
    ctx = _ctx(nuisance=LR_RANGE, base={"optimizer.lr": 0.05})
    assert run_checks(res, flat, ctx, n_boot=1000) == []
    res.loc[res.index[0], "status"] = "diverged"  # a tuning trial: info
    res.loc[res["optimizer.lr"] == 0.2, "optimizer.lr"] = 1.0  # at the top of the range: warning
    severities = [c.severity for c in run_checks(res, flat, ctx, n_boot=1000)]
    assert severities == ["warning", "info"]


def test_search_space_reads_dicts_and_models_and_skips_settings():
    class LogRange:  # the study layer's pydantic spaces dump to the same dicts
        def model_dump(self):
            return {"log": (0.001, 0.1)}

    ctx = _ctx(nuisance={"optimizer.lr": LogRange(), "model.act": {"choice": ["relu", "tanh"]}, "trials": 8})
    assert ctx.search_space() == {"optimizer.lr": ("log", [0.001, 0.1]), "model.act": ("choice", ["relu", "tanh"])}
    with pytest.raises(ValueError, match="low < high"):
        _ctx(nuisance={"optimizer.lr": {"log": [0.1, 0.01]}}).search_space()
    with pytest.raises(ValueError, match="'max' or 'min'"):
        StudyContext(direction="up")
    assert StudyContext(metric="val_loss").direction == "min" and StudyContext().direction == "max"


def test_one_seeds_single_epoch_rise_is_information_not_a_bug(finals, curves_of):
    """Adam's loss steps up for one epoch now and then at a sane rate: one seed doing it once is
    information, and the sentence must not call it a bug or too high a rate."""
    res = finals({"adam": [0.97] * 5})

    def curve(arm, seed):
        if seed == 3:
            return {"train_loss": [0.40, 0.20, 0.12, 0.09, 0.105]}
        return {"train_loss": [0.40, 0.20, 0.12, 0.09, 0.08]}

    [check] = check_train_loss_rising(res, curves_of(res, curve))
    assert check.severity == "info"
    assert "bug" not in check.sentence.replace("not a sign of a bug", "")
    assert "likely too high" not in check.sentence
    assert "Training loss of one seed rose in its last epoch only for adam: 1 of 5 (20%) seeds" in check.sentence


def test_at_chance_fires_on_training_metrics_alone(finals):
    """No validation columns at all: the training loss at ln 10 still flags the run."""
    res = finals({"zeros": [2.3030] * 3, "default": [0.31] * 3}, metric="train_loss")
    res["train_accuracy"] = [0.112] * 3 + [0.91] * 3
    [check] = check_at_chance(res)
    assert check.numbers["arms"] == {"zeros": 3} and check.severity == "warning"
    assert "train_loss 2.303 >= ln 10 = 2.3026" in check.sentence
    assert check_at_chance(finals({"ok": [0.30] * 3}, metric="train_loss")) == []


def test_not_separable_compares_within_each_group_of_a_multi_key_study():
    """Depth at two budgets: the top two across budgets (the two depths of the larger budget) are not
    the question; the check looks within each budget and names the one where the depths tie."""
    rows = []
    for p in (25_000, 100_000):
        for k in (1, 2):
            for seed in range(5):
                if p == 25_000:  # depth 1 wins two pairs, loses two, ties one
                    acc = 0.9 + 0.001 * (k == 1) * [1, -1, 1, -1, 0][seed]
                else:  # depth 2 wins every pair
                    acc = 0.95 + 0.02 * (k == 2) + 0.001 * seed
                rows.append({"arm": f"budget.params={p}, model.depth={k}", "phase": "final", "status": "complete",
                             "seed": seed, "budget.params": p, "model.depth": k, "val_accuracy": acc})
    ctx = StudyContext(scientific={"budget.params": [25_000, 100_000], "model.depth": [1, 2]})
    [check] = check_not_separable(pd.DataFrame(rows), ctx, n_boot=2000)
    assert list(check.numbers["groups"]) == ["budget.params=25000"]
    assert check.sentence.startswith("Within budget.params=25000: the top two arms, budget.params=25000, model.depth=")
