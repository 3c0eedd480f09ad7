"""studies/notebooks/: one study file per question of the five seed notebooks (issue 11, Build item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    """000-batch-size, shrunk with --set: tuned arms, their finals and the untuned slice at lr 0.05."""
    folder = tmp_path / "bs"
    sets = ["data.limit=600", "base.epochs=1", "study.seeds=2", "nuisance.trials=2", "nuisance.parallel=2",
            "scientific.batch_size=[32,256]"]
    args = [sys.executable, "-m", "nnstudy", "run", str(FOLDER / "000-batch-size.toml"), "--dir", str(folder),
            "--data-dir", str(mnist_dir), "--workers", "1", "--quiet", "--no-report"]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, text=True, capture_output=True, timeout=900, env={**os.environ, "NNSTUDY_NPM": ""})
    assert p.returncode == 0, p.stderr + p.stdout
    res = open_study(folder).results()
    assert (res["status"] == "complete").all()
    assert sorted(res.groupby("phase").size().items()) == [("final", 4), ("slice", 4), ("tune", 4)]
    assert set(res.loc[res["phase"] == "slice", "optimizer.lr"]) == {0.05}  # the notebook's fixed rate
    assert res.loc[res["phase"] == "final", "test_accuracy"].notna().all()
    assert res.loc[res["phase"] != "final", "test_accuracy"].isna().all()
