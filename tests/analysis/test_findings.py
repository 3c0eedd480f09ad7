"""Findings: the answer first, every sentence with a number, honest about what cannot be told apart."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nnstudy.analysis import A_BETTER, Check, StudyContext, findings

ORDER = ["answer", "group", "test", "spread", "slice", "nuisance", "multiplicity", "check"]


def _assert_well_formed(found):
    assert found and found[0].kind == "answer"
    assert [f.rank for f in found] == list(range(1, len(found) + 1))
    groups = [ORDER.index(f.kind.split(":")[0]) for f in found]
    assert groups == sorted(groups), [f.kind for f in found]
    for f in found:
        assert re.search(r"\d", f.sentence), f.sentence


def test_clear_winner_is_the_answer_with_interval_and_p(finals):
    res = finals(
        {
            "batch_size=32": [0.9712, 0.9730, 0.9725, 0.9741, 0.9718, 0.9733],
            "batch_size=512": [0.9501, 0.9522, 0.9490, 0.9515, 0.9508, 0.9499],
        }
    )
    found = findings(res, None, StudyContext(scientific={"optimizer.lr": [0.1]}), n_boot=2000)
    _assert_well_formed(found)
    answer = found[0].sentence
    assert answer.startswith("batch_size=32 has the best mean val_accuracy: 97.27% [97.15%, 97.38%] over 6 seeds")
    assert "it beats the runner-up batch_size=512 (95.06% [94.94%, 95.18%] over 6 seeds)" in answer
    # every pair agrees: the count, not a bootstrap "interval" [1.00, 1.00] that reads as certainty
    assert "P(batch_size=32 beats batch_size=512) = 1.00 (batch_size=32 better in all 6 seed pairs)" in answer
    assert "[1.00, 1.00]" not in answer
    assert "mean difference +2.21 points [" in answer
    assert found[1].kind == "spread" and "a spread of 2.21 points" in found[1].sentence


def test_two_arms_with_the_same_configuration_cannot_be_told_apart(finals):
    same = [0.9712, 0.9730, 0.9725, 0.9741, 0.9718, 0.9733, 0.9720]
    res = finals({"relu": same, "relu again": same})
    found = findings(res, None, StudyContext(), n_boot=2000)
    _assert_well_formed(found)
    assert "it cannot be told apart from the runner-up relu again" in found[0].sentence
    assert "P(relu beats relu again) = 0.50 (relu tied in all 7 seed pairs)" in found[0].sentence
    assert "mean difference +0.00 points [0.00, 0.00]" in found[0].sentence
    assert any(f.kind == "check:not_separable" for f in found)


def test_too_few_seeds_for_any_verdict_is_said_with_the_number_needed(finals):
    res = finals({"a": [0.98, 0.97, 0.99], "b": [0.90, 0.91, 0.92]})
    answer = findings(res, None, StudyContext(), n_boot=2000)[0].sentence
    assert "cannot be told apart" in answer and "fewer than the 5 any verdict needs" in answer


def test_mean_and_pairs_disagree(finals):
    res = finals({"lucky": [0.99] + [0.90] * 6, "steady": [0.91] * 7})
    answer = findings(res, None, StudyContext(), n_boot=4000)[0].sentence
    assert answer.startswith("lucky has the best mean val_accuracy: 91.29%")
    assert "but the runner-up steady (91.00% [91.00%, 91.00%] over 7 seeds) beats it in most seed pairs" in answer
    assert "P(lucky beats steady) = 0.14 [0.00, 0.43]" in answer


def test_losses_rank_lowest_first_with_four_significant_digits(finals):
    res = finals(
        {
            "adam": [0.0712, 0.0698, 0.0705, 0.0731, 0.0709, 0.0720],
            "sgd": [0.1123, 0.1098, 0.1140, 0.1111, 0.1132, 0.1104],
        },
        metric="val_loss",
        test_loss=0.08,
    )
    found = findings(res, None, StudyContext(metric="val_loss"), n_boot=2000)
    _assert_well_formed(found)
    assert found[0].sentence.startswith("adam has the best mean val_loss: 0.07125 [")
    assert "it beats the runner-up sgd" in found[0].sentence and "mean difference -0.04055 [" in found[0].sentence
    assert found[1].sentence == (
        "On the test set, which chose nothing, adam scored test_loss 0.08000 [0.08000, 0.08000] over 6 seeds."
    )


def test_tuned_values_and_warnings_follow_the_answer(finals, tune):
    res = pd.concat(
        [
            tune(
                {
                    "batch_size=32": [{"optimizer.lr": 0.041, "val_accuracy": 0.97}] * 3,
                    "batch_size=512": [{"optimizer.lr": 0.98, "val_accuracy": 0.95}] * 3,
                }
            ),
            finals({"batch_size=32": [0.97, 0.972, 0.971]}, **{"optimizer.lr": 0.041}),
            finals({"batch_size=512": [0.95, 0.952, 0.951]}, **{"optimizer.lr": 0.98}),
        ],
        ignore_index=True,
    )
    ctx = StudyContext(scientific={"batch_size": [32, 512]}, nuisance={"optimizer.lr": {"log": [0.005, 1.0]}})
    found = findings(res, None, ctx, n_boot=1000)
    _assert_well_formed(found)
    [tuned] = [f for f in found if f.kind == "nuisance"]
    assert tuned.sentence == (
        "Tuned optimizer.lr (on val_accuracy, 3 trials per arm): batch_size=32 → 0.041, batch_size=512 → 0.98."
    )
    assert any(f.kind == "check:range_edge" and "0.98" in f.sentence for f in found)
    assert not any(f.kind == "check:fixed_learning_rate" for f in found)  # the rate was tuned


def test_a_tuned_study_states_its_untuned_slice_beside_the_tuned_answer(finals, tune):
    """Seed 000's question has two slices: tuned per batch size (the answer) and at the fixed lr 0.05
    (the untuned slice, where the notebook's trend lives). The findings state both with their numbers;
    before, the slice was only drawn in the isolation figure."""
    res = pd.concat(
        [
            tune({arm: [{"optimizer.lr": lr, "val_accuracy": 0.97}] * 3
                  for arm, lr in (("batch_size=32", 0.04), ("batch_size=128", 0.2), ("batch_size=512", 0.9))}),
            finals({"batch_size=32": [0.970, 0.972, 0.971, 0.969, 0.973]}, **{"optimizer.lr": 0.04}),
            finals({"batch_size=128": [0.971, 0.970, 0.972, 0.973, 0.969]}, **{"optimizer.lr": 0.2}),
            finals({"batch_size=512": [0.969, 0.971, 0.970, 0.972, 0.971]}, **{"optimizer.lr": 0.9}),
            finals({"batch_size=32": [0.96, 0.962, 0.961, 0.963, 0.960],
                    "batch_size=128": [0.94, 0.941, 0.942, 0.943, 0.944],
                    "batch_size=512": [0.90, 0.905, 0.901, 0.902, 0.903]}, **{"optimizer.lr": 0.05}
                   ).assign(phase="slice"),
        ],
        ignore_index=True,
    )
    ctx = StudyContext(scientific={"batch_size": [32, 128, 512]}, nuisance={"optimizer.lr": {"log": [0.005, 1.0]}},
                       base={"optimizer.lr": 0.05})
    found = findings(res, None, ctx, n_boot=1000)
    _assert_well_formed(found)
    assert "cannot be told apart" in found[0].sentence  # tuned: no difference
    [untuned] = [f for f in found if f.kind == "slice"]
    assert untuned.numbers["best"] == "batch_size=32" and untuned.numbers["worst"] == "batch_size=512"
    assert untuned.numbers["decision"] == A_BETTER and untuned.numbers["n_pairs"] == 5
    s = untuned.sentence
    assert s.startswith("Untuned, every arm at the base optimizer.lr = 0.05 with the same seeds")
    # every arm in the study's order, with its interval: the trend at the fixed rate
    assert s.index("batch_size=32 96.12% [") < s.index("batch_size=128 94.20% [") < s.index("batch_size=512 90.22% [")
    assert "There, batch_size=32 beats batch_size=512: P(batch_size=32 beats batch_size=512) = 1.00" in s
    assert "mean difference +5.90 points [" in s
    assert not [f for f in findings(res[res.phase != "slice"], None, ctx, n_boot=200) if f.kind == "slice"]


def test_fixed_learning_rate_warning_is_among_the_findings(finals):
    res = finals({"batch_size=32": [0.97, 0.972, 0.971], "batch_size=512": [0.90, 0.91, 0.905]})
    ctx = StudyContext(scientific={"batch_size": [32, 512]}, base={"optimizer.lr": 0.05})
    found = findings(res, None, ctx, n_boot=1000)
    [warn] = [f for f in found if f.kind == "check:fixed_learning_rate"]
    assert warn.rank > 1 and "one fixed learning rate (0.05)" in warn.sentence


def test_given_checks_are_used_and_info_is_left_to_the_report(finals):
    res = finals({"a": [0.9, 0.91], "b": [0.8, 0.81]})
    given = [Check("custom", "warning", "3 things went wrong."), Check("note", "info", "1 note.")]
    found = findings(res, None, StudyContext(), checks=given, n_boot=500)
    assert [f.kind for f in found][-1] == "check:custom" and all(f.kind != "check:note" for f in found)


def test_minimal_tables_one_arm_and_no_answer_yet(tune):
    bare = pd.DataFrame({"arm": ["a", "a", "b"], "val_accuracy": [0.9, 0.92, 0.8]})  # no phase/status/seed
    found = findings(bare, None, StudyContext(), n_boot=500)
    _assert_well_formed(found)
    assert found[0].sentence.startswith("a has the best mean val_accuracy: 91.00% [")
    assert "(80.00% (1 seed, no interval))" in found[0].sentence
    one = findings(bare[bare.arm == "a"], None, StudyContext(), n_boot=500)
    assert "no other arm has completed final runs" in one[0].sentence and len(one) == 1
    only_tuning = tune({"a": [{"val_accuracy": 0.9}]})
    [none] = findings(only_tuning, None, StudyContext(), n_boot=500)
    assert (
        none.sentence
        == "No final run has a val_accuracy yet (0 of 0 final runs completed across 1 arm), so there is no answer."
    )
    with pytest.raises(ValueError, match="no column 'arm'"):
        findings(pd.DataFrame({"val_accuracy": [0.9]}), None, StudyContext())
    with pytest.raises(ValueError, match="no column 'val_acc'; it has arm, val_accuracy"):
        findings(bare, None, StudyContext(metric="val_acc"))


def test_generated_study_reads_answer_first_with_numbers_everywhere(finals, tune, curves_of):
    rng = np.random.default_rng(2024)
    means = {"batch_size=32": 0.975, "batch_size=64": 0.974, "batch_size=512": 0.940}
    trials = {
        arm: [
            {"optimizer.lr": float(np.exp(rng.uniform(np.log(0.005), 0))), "val_accuracy": m - rng.uniform(0, 0.05)}
            for _ in range(8)
        ]
        for arm, m in means.items()
    }
    fin = [
        finals({arm: m + rng.normal(0, 0.002, 6)}, **{"optimizer.lr": 0.06}, test_accuracy=m - 0.003)
        for arm, m in means.items()
    ]
    res = pd.concat([tune(trials), *fin], ignore_index=True)
    res["run"] = res["run"] + "#" + res.index.astype(str)
    curves = curves_of(
        res,
        lambda a, s: {
            "val_accuracy": [0.9, 0.95, 0.96, 0.965, 0.97 + 0.001 * s],
            "val_loss": [0.3, 0.2, 0.15, 0.13, 0.12],
            "train_loss": [0.4, 0.25, 0.18, 0.14, 0.12],
        },
    )
    ctx = StudyContext(
        scientific={"batch_size": [32, 64, 512]},
        nuisance={"optimizer.lr": {"log": [0.005, 1.0]}},
        seeds=6,
        epochs=5,
        question="Does batch size change accuracy once lr is tuned?",
    )
    found = findings(res, curves, ctx, n_boot=2000)
    _assert_well_formed(found)
    assert [f.kind for f in found][:4] == ["answer", "test", "spread", "nuisance"]
    assert found[0].numbers["best"] in ("batch_size=32", "batch_size=64")
    assert found[0].numbers["runner_up"] in ("batch_size=32", "batch_size=64")


def test_multi_key_study_answers_per_group_with_a_multiplicity_note():
    """Depth against width at several budgets: the headline is one answer per budget, never one
    winner across budgets, and the family of per-budget comparisons carries a multiplicity note."""
    rows = []
    for p, best_k in ((25_000, 1), (100_000, 3), (400_000, 3)):
        for k in (1, 2, 3):
            for seed in range(5):
                loss = 0.5 - 0.2 * (k == best_k) - 0.3 * (p == 400_000) + 0.001 * seed
                rows.append({"arm": f"budget.params={p}, model.depth={k}", "phase": "final", "status": "complete",
                             "seed": seed, "budget.params": p, "model.depth": k, "train_loss": loss})
    ctx = StudyContext(metric="train_loss",
                       scientific={"budget.params": [25_000, 100_000, 400_000], "model.depth": [1, 2, 3]})
    found = findings(pd.DataFrame(rows), None, ctx, n_boot=2000)
    _assert_well_formed(found)
    answer = found[0].sentence
    assert "has the best mean" not in answer  # the old headline: one winner across the budgets
    assert answer.startswith("The arms are compared within each budget.params, so the answer is one per group")
    assert "at budget.params=25000, model.depth=1 (beats model.depth=" in answer
    assert "at budget.params=400000, model.depth=3 (beats model.depth=" in answer
    assert "A verdict by the P(A>B) rule in 3 of 3 groups." in answer
    [note] = [f for f in found if f.kind == "multiplicity"]
    assert note.numbers["comparisons"] == 3
    assert "can be as high as 15% (the Bonferroni bound, 3 × 5%)" in note.sentence


def test_multi_key_study_gives_each_group_winners_test_score_not_one_across_groups():
    rows = []
    for p, best_k in ((25_000, 1), (100_000, 2)):
        for k in (1, 2):
            for seed in range(5):
                acc = 0.9 + 0.02 * (k == best_k) + 0.001 * seed + 0.03 * (p == 100_000)
                rows.append({"arm": f"budget.params={p}, model.depth={k}", "phase": "final", "status": "complete",
                             "seed": seed, "budget.params": p, "model.depth": k, "val_accuracy": acc,
                             "test_accuracy": acc - 0.005})
    ctx = StudyContext(scientific={"budget.params": [25_000, 100_000], "model.depth": [1, 2]})
    found = findings(pd.DataFrame(rows), None, ctx, n_boot=2000)
    assert not any(f.kind == "test" for f in found)  # no "best arm" across the budgets
    groups = [f for f in found if f.kind == "group"]
    assert "on the test set, which chose nothing, it scored test_accuracy 91.70% [" in groups[0].sentence
    assert groups[1].numbers["test"] == pytest.approx(0.947)
