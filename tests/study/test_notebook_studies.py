"""studies/notebooks/: one study file per question of the five seed notebooks (issue 11, Build item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnstudy.analysis import stats
from nnstudy.analysis.tabular import seed_values
from nnstudy.study import load_study, open_study
from nnstudy.study.design import plan_arms

FOLDER = Path(__file__).parents[2] / "studies" / "notebooks"
FILES = sorted(FOLDER.glob("*.toml"))

#: The questions the issue lists, by the file that answers each.
QUESTIONS = {
    "000-batch-size", "000-learning-rate", "000-linear-vs-nonlinear",
    "001-linear-softmax", "001-initialization", "001-depth-vs-width", "001-shapes",
    "002-input-scaling", "002-third-layer", "002-mlp-vs-vgg11",
    "003-fnn-vs-cnn",
    "004-learning-rate", "004-width", "004-weight-decay", "004-dropout", "004-three-layer-grid",
}


def test_every_question_has_a_file():
    assert {p.stem for p in FILES} == QUESTIONS


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_notebook_study_validates_and_expands(path):
    spec = load_study(path)
    assert spec.name == path.stem and spec.study.question
    assert spec.study.seeds >= 5  # the reproductions give a mean and a 95% interval over >= 5 seeds
    assert f"nnstudy run studies/notebooks/{path.name}" in spec.text  # the file says how to run it
    plans = plan_arms(spec, {}.get)
    sliced = spec.study.seeds if spec.nuisance is not None and spec.nuisance.slice else 0
    assert sum(p.nominal for p in plans) == len(spec.arms()) * (spec.trials + spec.study.seeds + sliced)
    first = [r for p in plans for r in p.planned]
    assert first and all(r.spec.test == (r.phase == "final") for r in first)  # only final runs see the test set


def test_a_notebook_study_runs_at_reduced_size_through_the_cli(tmp_path, mnist_dir):
    """000-batch-size, shrunk with --set: tuned arms, their finals and the untuned slice at lr 0.05; its
    report shows both slices (issue 11's must-show): at the fixed lr the notebook's trend (batch 32 beats
    256), and with lr tuned per batch size the difference between batch sizes with its interval."""
    folder = tmp_path / "bs"
    sets = ["data.limit=2000", "base.epochs=2", "study.seeds=5", "nuisance.trials=2", "nuisance.parallel=2",
            "scientific.batch_size=[32,256]"]
    args = [sys.executable, "-m", "nnstudy", "run", str(FOLDER / "000-batch-size.toml"), "--dir", str(folder),
            "--data-dir", str(mnist_dir), "--workers", "1", "--quiet"]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, text=True, capture_output=True, timeout=900, env={**os.environ, "NNSTUDY_NPM": ""})
    assert p.returncode == 0, p.stderr + p.stdout
    res = open_study(folder).results()
    assert (res["status"] == "complete").all()
    assert sorted(res.groupby("phase").size().items()) == [("final", 10), ("slice", 10), ("tune", 4)]
    assert set(res.loc[res["phase"] == "slice", "optimizer.lr"]) == {0.05}  # the notebook's fixed rate
    assert res.loc[res["phase"] == "final", "test_accuracy"].notna().all()
    assert res.loc[res["phase"] != "final", "test_accuracy"].isna().all()

    findings = (folder / "report.md").read_text().split("## Findings", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in findings.splitlines() if line[:1].isdigit()]
    a, b = "batch_size=32", "batch_size=256"

    def shown(phase: str, arm: str) -> str:
        mi = stats.mean_interval(seed_values(res, "val_accuracy", arm, phase),
                                 bounds=stats.metric_bounds("val_accuracy"))
        return f"{arm} {100 * mi.mean:.2f}% [{100 * mi.low:.2f}%, {100 * mi.high:.2f}%] over 5 seeds"

    def difference(phase: str) -> str:
        d = stats.paired_difference(seed_values(res, "val_accuracy", a, phase),
                                    seed_values(res, "val_accuracy", b, phase))
        return f"mean difference {100 * d.mean_diff:+.2f} points ["

    # the tuned answer: the two batch sizes with their difference and its interval (the tuned finals)
    tuned = lines[0]
    assert shown("final", a).replace(f"{a} ", f"{a} has the best mean val_accuracy: ") in tuned
    assert f"beats the runner-up {b}" in tuned and difference("final") in tuned, tuned
    # the untuned slice at lr 0.05, the notebook's comparison: every arm's score and the trend
    [untuned] = [line for line in lines if "Untuned, every arm at the base optimizer.lr = 0.05" in line]
    assert shown("slice", a) in untuned and shown("slice", b) in untuned, untuned
    assert f"There, {a} beats {b}" in untuned and difference("slice") in untuned, untuned
