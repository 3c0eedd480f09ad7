"""The metric-against-a-key figure (seed 001's loss against depth, one curve per budget)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnstudy.analysis import arm_summary
from nnstudy.analysis.findings import split_keys
from nnstudy.report.study_figures import metric_by_keys


def test_layout_puts_the_numeric_key_with_most_values_on_x():
    sci = {"budget.params": [25_000, 100_000, 400_000], "model.depth": [1, 2, 3, 4, 6], "model.activation": ["tanh"]}
    assert split_keys(sci) == ("model.depth", ["budget.params", "model.activation"])
    assert split_keys({"model.depth": [1, 2]}) is None  # one key: the arm axis already shows it
    assert split_keys({"model.activation": ["relu", "tanh"], "data.normalize": ["unit", "center"]}) is None


def test_one_line_per_budget_through_the_arm_means():
    rows = []
    for p in (25_000, 100_000):
        for k in (1, 2, 3):
            for seed in range(3):
                rows.append({"arm": f"budget.params={p}, model.depth={k}", "phase": "final", "status": "complete",
                             "seed": seed, "budget.params": p, "model.depth": k,
                             "train_loss": 1.0 / k + (p == 25_000) * 0.5 + 0.01 * seed})
    finals = pd.DataFrame(rows)
    summary = arm_summary(finals, ["train_loss"])
    fig = metric_by_keys(summary, finals, "train_loss", "model.depth", ["budget.params"])
    lines = [c.lines[0] for c in fig.axes[0].containers]  # one errorbar (data line + caps) per budget
    assert len(lines) == 2
    ys = sorted(tuple(np.round(ln.get_ydata(), 6)) for ln in lines)
    expected_100k = tuple(np.round([1.0 + 0.01, 0.5 + 0.01, 1 / 3 + 0.01], 6))
    assert expected_100k in ys
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["budget.params=25000",
                                                                          "budget.params=100000"]


def test_findings_name_the_winning_depth_at_each_budget():
    from nnstudy.analysis import StudyContext, findings

    rows = []
    for p, best_k in ((25_000, 2), (100_000, 3)):
        for k in (1, 2, 3):
            for seed in range(5):
                loss = 0.5 - 0.2 * (k == best_k) + 0.001 * seed
                rows.append({"arm": f"budget.params={p}, model.depth={k}", "phase": "final", "status": "complete",
                             "seed": seed, "budget.params": p, "model.depth": k, "train_loss": loss})
    ctx = StudyContext(metric="train_loss", scientific={"budget.params": [25_000, 100_000], "model.depth": [1, 2, 3]})
    groups = [f for f in findings(pd.DataFrame(rows), None, ctx) if f.kind == "group"]
    assert [f.numbers["best"] for f in groups] == [2, 3]
    assert groups[0].sentence.startswith("At budget.params=25000: model.depth=2 has the best train_loss, 0.3020")
    assert "it beats model.depth=" in groups[0].sentence
    assert "P = 1.00 (model.depth=2 better in all 5 seed pairs)" in groups[0].sentence
