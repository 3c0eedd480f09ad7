"""What the seed notebooks need that nnstudy could not say before (issue 11, Build item 1), each
through what a user runs: a run's recorded numbers, the data a run loads, the runs a study expands to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnstudy.data import load
from nnstudy.models import build_model
from nnstudy.spec import DataSpec, make_run_spec
from nnstudy.study import load_study, open_study, run_study


def cli(*args: str, cwd: Path, mnist_dir: Path | None = None) -> subprocess.CompletedProcess:
    where = ["--data-dir", str(mnist_dir)] if mnist_dir else []
    return subprocess.run([sys.executable, "-m", "nnstudy", *args, *where], cwd=cwd,
                          text=True, capture_output=True, timeout=600)


def test_test_subset_first_per_class_is_what_a_run_tests_on(tmp_path, mnist_dir):
    """Seed 002: the first 600 images of each class of both files, no validation split."""
    out = tmp_path / "run"
    p = cli("train", "--model", "linear", "--validation", "0", "--per-class", "600", "--select", "first",
            "--test-per-class", "600", "--epochs", "1", "--test", "--save-predictions", "--out", str(out), "--quiet",
            cwd=tmp_path, mnist_dir=mnist_dir)
    assert p.returncode == 0, p.stderr
    saved = np.load(out / "predictions.npz")
    assert len(saved["test_true"]) == 6000 and np.bincount(saved["test_true"]).tolist() == [600] * 10
    raw = load(DataSpec(validation=0), data_dir=mnist_dir)  # the whole files, to find "the first 600"
    first = np.concatenate([np.flatnonzero(raw.test_y.numpy() == c)[:600] for c in range(10)])
    data = load(DataSpec(validation=0, per_class=600, select="first", test_per_class=600), data_dir=mnist_dir)
    assert data.test_index.tolist() == sorted(first.tolist())
    train_first = np.concatenate([np.flatnonzero(raw.train_y.numpy() == c)[:600] for c in range(10)])
    assert data.train_index.tolist() == sorted(train_first.tolist())
    # the seeded random choice is another set, and the default (no subset) is the whole test file
    other = load(DataSpec(validation=0, test_per_class=600), data_dir=mnist_dir)
    assert other.test_index.tolist() != data.test_index.tolist() and len(other.test_y) == 6000
    assert len(raw.test_y) == 10_000 and raw.test_index is None


def test_split_kinds_match_keras_and_torch(tmp_path, mnist_dir):
    """'last' is Keras's validation_split (seed 003); 'random' is torch's random_split (seed 000)."""
    out = tmp_path / "keras"
    p = cli("train", "--model", "linear", "--split", "last", "--validation", "0.1", "--limit", "500", "--epochs", "1",
            "--save-predictions", "--out", str(out), "--quiet", cwd=tmp_path, mnist_dir=mnist_dir)
    assert p.returncode == 0, p.stderr
    assert np.load(out / "predictions.npz")["val_index"].tolist() == list(range(54_000, 60_000))
    data = load(DataSpec(validation=0.2, split="random", split_seed=55), data_dir=mnist_dir)
    _, val = torch.utils.data.random_split(range(60_000), [48_000, 12_000], generator=torch.Generator().manual_seed(55))
    assert data.val_index.tolist() == sorted(val.indices)
    counts = torch.bincount(data.val_y).tolist()
    stratified = torch.bincount(load(DataSpec(validation=0.2, split_seed=55), data_dir=mnist_dir).val_y).tolist()
    assert counts != stratified  # unstratified: the class counts are the draw's


def test_default_split_keeps_stored_identities():
    """The new keys at their defaults are the behaviour before them: a stored study's runs keep
    their identities (else every resumed study would train everything again)."""
    spec = make_run_spec({})
    assert "split" not in spec.identity_dict()["data"] and "select" not in spec.identity_dict()["data"]
    assert make_run_spec({}, {"split": "last"}).identity() != spec.identity()


def test_constant_init_with_separate_bias(tmp_path, mnist_dir):
    """Seed 001: nn.init.constant_(weight, 1000.0); nn.init.constant_(bias, 10000.0)."""
    spec = make_run_spec({}, {"model": "linear", "init": "constant", "init_value": 1000.0, "init_bias": 10000.0})
    model = build_model(spec.model, (1, 28, 28), 10)
    weight, bias = [p for p in model.parameters()]
    assert torch.all(weight == 1000.0) and torch.all(bias == 10000.0)
    one = make_run_spec({}, {"model": "linear", "init": "constant", "init_value": 0.5})
    same = build_model(one.model, (1, 28, 28), 10)
    assert all(torch.all(p == 0.5) for p in same.parameters())  # without init_bias: one value for both
    out = tmp_path / "run"
    p = cli("train", "--model", "linear", "--init", "constant", "--init-value", "0", "--init-bias", "0.25",
            "--per-class", "20", "--epochs", "1", "--out", str(out), "--quiet", cwd=tmp_path, mnist_dir=mnist_dir)
    assert p.returncode == 0, p.stderr
    assert "init_bias = 0.25" in (out / "spec.toml").read_text()


def test_pool_every_and_no_dense_head_flags_give_seed_003s_keras_cnn(tmp_path):
    p = cli("params", "--model", "cnn", "--channels", "8,8", "--kernel", "2", "--pool-every", "2", "--head", "none",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "15,994" in p.stdout  # the notebook's model.summary()


ZIP = """
[study]
name = "zip"
seeds = 2

[data]
per_class = 60
validation = 0.1

[base]
model = { kind = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = 0.1 }
epochs = 1

[scientific]
"model.activation" = ["relu", "tanh"]

[scientific.zip]
batch_size = [32, 256]
"data.limit" = [400, 200]
"""


def test_zipped_axis_moves_its_keys_together(tmp_path, mnist_dir):
    """Seed 000's batch size with its shrinking training set: two values that move together."""
    path = tmp_path / "zip.toml"
    path.write_text(ZIP)
    spec = load_study(path)
    assert [a.values for a in spec.arms()] == [
        {"model.activation": a, "batch_size": b, "data.limit": n}
        for a in ("relu", "tanh") for b, n in ((32, 400), (256, 200))
    ]
    run_study(spec, tmp_path / "runs", workers=1, data_dir=mnist_dir, quiet=True)
    res = open_study(tmp_path / "runs").results()
    assert len(res) == 8 and set(res["status"]) == {"complete"}
    assert sorted(zip(res["batch_size"], res["data.limit"], strict=True)) == [(32, 400)] * 4 + [(256, 200)] * 4
    path.write_text(ZIP.replace('"data.limit" = [400, 200]', '"data.limit" = [400]'))
    with pytest.raises(Exception, match=r"scientific.zip: its lists move together, so they need one length"):
        load_study(path)
    path.write_text(ZIP.replace('batch_size = [32, 256]', '"model.activation" = ["relu", "gelu"]'))
    with pytest.raises(Exception, match=r'scientific.zip."model.activation": also a key of \[scientific\]'):
        load_study(path)


CURVES = """
[study]
name = "curves"
seeds = 2
test_curves = true

[data]
per_class = 40
validation = 0.1

[base]
model = { kind = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = 0.1 }
epochs = 2

[scientific]
batch_size = [32, 64]

[nuisance]
"optimizer.lr" = { log = [0.01, 1.0] }
trials = 2
parallel = 2
"""


def test_test_curves_for_final_runs_only(tmp_path, mnist_dir):
    """Seeds 002 and 004 plot test curves: a study records them for its final runs, whose
    configuration is fixed before they see the test set, and never for tuning or slice runs."""
    from nnstudy.report import StudyReport
    from nnstudy.report.study_figures import curves_by_arm

    path = tmp_path / "curves.toml"
    path.write_text(CURVES)
    run_study(load_study(path), tmp_path / "runs", workers=1, data_dir=mnist_dir, quiet=True)
    study = open_study(tmp_path / "runs")
    curves = study.curves()
    finals = curves[curves["phase"] == "final"]
    others = curves[curves["phase"] != "final"]
    assert len(finals) == 2 * 2 * 2 and finals["test_accuracy"].notna().all()
    assert set(others["phase"]) == {"tune", "slice"} and others["test_accuracy"].isna().all()
    res = study.results()
    last = finals.sort_values("epoch").groupby("run").last()
    for run, row in last.iterrows():  # the curve ends at the final run's test score
        assert row["test_accuracy"] == pytest.approx(res.set_index("run").loc[run, "test_accuracy"])
    c = StudyReport(study, data_dir=mnist_dir, gallery=False).content
    fig = curves_by_arm(c.bands, c.arms, {a: (0, 0, 0) for a in c.arms})
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6 and "test (eval pass, final runs): accuracy" in titles
    with pytest.raises(Exception, match="base.test_curve: set study.test_curves"):
        path.write_text(CURVES.replace('epochs = 2', 'epochs = 2\ntest_curve = true'))
        load_study(path)
