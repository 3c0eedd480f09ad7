"""nnstudy.analysis: pure functions from a study's results to statistics, checks and findings.

Inputs are the study layer's tables: ``results`` (one row per run: ``run``, ``arm``, ``phase``,
``seed``, ``status``, hyperparameter columns by dotted key, final metrics) and ``curves`` (one row per
run and epoch). Outputs are dataclasses and DataFrames; nothing here draws or writes files.

* ``stats``: per-arm t-intervals, paired bootstrap differences, P(A>B) with its decision rule
  (Bouthillier et al. 2021), expected best score over tuning trials (Dodge et al. 2019).
* ``checks``: methodology checks, each a sentence with its numbers.
* ``findings``: the answer first, then spread, tuned values and warnings.

>>> ctx = StudyContext(metric="val_accuracy", scientific={"batch_size": [32, 512]})
>>> for f in findings(results, curves, ctx): print(f.rank, f.sentence)  # doctest: +SKIP
"""

from __future__ import annotations

from nnstudy.analysis.checks import (
    LR_COUPLED,
    Check,
    check_at_chance,
    check_fixed_learning_rate,
    check_not_separable,
    check_overfitting,
    check_range_edges,
    check_runs_lost,
    check_still_improving,
    check_train_loss_rising,
    check_tuned_worse_than_slice,
    chosen_values,
    run_checks,
)
from nnstudy.analysis.context import StudyContext, default_direction
from nnstudy.analysis.findings import Finding, findings, split_keys
from nnstudy.analysis.stats import (
    A_BETTER,
    B_BETTER,
    UNDECIDED,
    VERDICT_RULE,
    MeanInterval,
    PairedDifference,
    ProbBetter,
    arm_summary,
    expected_max,
    expected_max_curves,
    mean_interval,
    paired_difference,
    pairwise,
    prob_better,
    prob_better_matrix,
    rank_arms,
    seeds_needed,
    sign_test_min_pairs,
)
from nnstudy.analysis.tabular import FINAL_METRICS, seed_values

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "FINAL_METRICS",
    "LR_COUPLED",
    "UNDECIDED",
    "VERDICT_RULE",
    "Check",
    "Finding",
    "MeanInterval",
    "PairedDifference",
    "ProbBetter",
    "StudyContext",
    "arm_summary",
    "check_fixed_learning_rate",
    "check_not_separable",
    "check_overfitting",
    "check_range_edges",
    "check_at_chance",
    "check_runs_lost",
    "check_still_improving",
    "check_train_loss_rising",
    "check_tuned_worse_than_slice",
    "chosen_values",
    "default_direction",
    "expected_max",
    "expected_max_curves",
    "findings",
    "split_keys",
    "mean_interval",
    "paired_difference",
    "pairwise",
    "prob_better",
    "prob_better_matrix",
    "rank_arms",
    "run_checks",
    "seed_values",
    "seeds_needed",
    "sign_test_min_pairs",
]
