"""Reports that never overstate, on real stored studies (issue 11, Build item 5).

Each test fails on the wording the report had before: "chosen on validation" for a training metric,
the quickstart's tuned learning rate presented without a word although its own untuned slice beat
it in every seed pair, a [1.00, 1.00] "interval" from five pairs, a run at chance passing silently
where there is no validation split.
"""

from __future__ import annotations

import pytest

from nnstudy.analysis import VERDICT_RULE, sign_test_min_pairs

pytestmark = pytest.mark.slow  # each study trains on real MNIST (seconds)


def test_quickstart_names_its_tuned_value_losing_to_the_untuned_slice(reports):
    """The stored quickstart: the MLP's tuning picked optimizer.lr 0.000858, and its slice at the base
    0.001 beat that in 5 of 5 seed pairs; the report says tuning was too noisy and what it would take."""
    report = reports("quickstart")
    [check] = [c for c in report.checks if c.name == "tuned_worse_than_slice"]
    assert check.severity == "warning"
    [(arm, hit)] = check.numbers["arms"].items()
    assert "mlp" in arm
    assert hit["n_pairs"] == 5 and hit["p"] == 1.0 and hit["diff"] > 0
    assert check.sentence.startswith("Tuning was too noisy: mlp [100] at its tuned "
                                     "optimizer.lr = 0.000858 did worse than at the base optimizer.lr = 0.001")
    assert "better in all 5 seed pairs" in check.sentence
    need = hit["runs_needed"]
    assert need >= 2 and f"about {int(need)} runs of each" in check.sentence
    assert f"each of the 4 tuning trials would need about {int(need)} seeds" in check.sentence
    assert any(f.kind == "check:tuned_worse_than_slice" for f in report.findings)
    assert check.sentence in report.markdown()
    # the linear arm's tuned rate did not lose to its slice: it is not named
    assert "linear at its tuned" not in check.sentence


def test_a_degenerate_p_interval_is_reported_as_all_pairs(reports):
    """5 of 5 pairs won gives a bootstrap 'interval' [1.00, 1.00] by construction; say the count."""
    report = reports("quickstart")
    answer = report.findings[0]
    assert answer.numbers["p_low"] == answer.numbers["p_high"] == 1.0
    assert "= 1.00 (mlp [100] better in all 5 seed pairs)" in answer.sentence
    text = report.markdown()
    assert "[1.00, 1.00]" not in text
    assert "A better in all 5 seed pairs" in text  # the pairwise table's cell


def test_training_metric_is_not_called_validation_and_chance_is_flagged(reports):
    """metric train_loss, validation = 0: the report says what chose, and the all-zero init's runs,
    stuck at chance, are flagged though there is no validation metric to see it on."""
    report = reports("init-at-chance")
    text = report.markdown()
    assert "chosen on validation" not in text and "on validation" not in text
    assert "train_loss (lower is better), chosen on the training loss" in text
    [check] = [c for c in report.checks if c.name == "at_chance"]
    assert check.severity == "warning" and check.numbers["phase"] == "final"
    assert check.numbers["arms"] == {"model.init=constant": 5}
    assert "Final runs stuck at chance: 5 of 5 (100%) in model.init=constant" in check.sentence
    assert check.sentence in text


def test_the_verdict_rule_reads_the_same_in_code_and_reports(reports):
    assert f"at least {sign_test_min_pairs()} seed pairs" in VERDICT_RULE
    text = reports("mlp-vs-linear").markdown()
    assert VERDICT_RULE in text
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "reports.md").read_text()
    assert VERDICT_RULE in " ".join(docs.split())


def test_the_p_matrix_figure_says_all_pairs_not_a_point_interval(reports):
    from nnstudy.report.study_figures import prob_better_matrix

    c = reports("quickstart").content
    fig = prob_better_matrix(c.matrix, {}, c.ctx.metric)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "1.00\nall 5 pairs" in texts and "0.00\nall 5 pairs" in texts
    assert not any("[1.00, 1.00]" in t for t in texts)
