"""docs/reproductions.md's generator on a tiny stored study (issue 11, Build item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnstudy.analysis import stats
from nnstudy.analysis.tabular import seed_values
from nnstudy.study import open_study

STUDY = """
[study]
name = "tiny-repro"
question = "Does a hidden layer beat softmax regression?"
seeds = 5

[data]
per_class = 30
validation = 0.2

[base]
optimizer = { name = "adam", lr = 0.003 }
epochs = 2

[scientific]
model = [{ kind = "linear" }, { kind = "mlp", hidden = [64] }]
"""

CLAIMS = """
[[row]]
study = "tiny-repro"
seed = "009"
what = "softmax regression, test accuracy"
metric = "test_accuracy"
arm = "model={kind=linear}"
notebook = 0.5
claim = "value"
tolerance = 0.5
note = "the notebook chose its epochs on the test set"

[[row]]
study = "tiny-repro"
seed = "009"
what = "the MLP against softmax regression"
metric = "test_accuracy"
arm = "best"
claim = "best"
notebook_arm = "model={kind=linear}"

[[row]]
study = "never-run"
seed = "009"
what = "a question not run here"
metric = "test_accuracy"
notebook = 0.9
claim = "value"
"""


def run(*args: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNSTUDY_DATA": str(data_dir), "NNSTUDY_NPM": ""}
    p = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=900)
    assert p.returncode == 0, p.stderr + p.stdout
    return p


@pytest.mark.slow
def test_generator_writes_both_numbers_and_what_holds(tmp_path, mnist_dir):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny-repro.toml").write_text(STUDY)
    run("nnstudy", "run", "studies/tiny-repro.toml", "--set", "base.epochs=1", "--workers", "1", "--quiet",
        "--no-report", cwd=tmp_path, data_dir=mnist_dir)
    (tmp_path / "claims.toml").write_text(CLAIMS)
    run("nnstudy.report.reproductions", "--runs", "runs", "--claims", "claims.toml", "--studies", "studies",
        "--out", "repro.md", "--machine", "a test machine", cwd=tmp_path, data_dir=mnist_dir)
    text = (tmp_path / "repro.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 009 |")]
    assert len(rows) == 3

    res = open_study(tmp_path / "runs" / "tiny-repro").results()
    linear = seed_values(res, "test_accuracy", "linear")  # results() name the arm; the claims give its label
    mi = stats.mean_interval(linear, bounds=stats.metric_bounds("test_accuracy"))
    assert len(linear) == 5  # test accuracy from the five final runs only
    shown = f"{100 * mi.mean:.2f}% [{100 * mi.low:.2f}%, {100 * mi.high:.2f}%] over 5 seeds"
    assert shown in rows[0] and "| 50.00% |" in rows[0]
    gap = abs(mi.mean - 0.5)
    word = "reproduced" if gap <= 0.5 else "not reproduced"
    said = f"{word}: the notebook's number is {100 * gap:.2f} points from nnstudy's mean (tolerance 50 points)"
    assert said in rows[0]
    assert "reduced: base.epochs=1" in rows[0]  # the stored study ran at another size than its file
    assert "the notebook chose its epochs on the test set" in rows[0]

    best = stats.rank_arms(res, "val_accuracy", "max")[0][0]
    if best == "linear":  # the arm's name; the claims file may give its label (model={kind=linear})
        assert "holds" in rows[1]
    else:
        assert f"does not hold: the best arm on val_accuracy is {best}, not linear" in rows[1]
    assert "none reported" in rows[1]

    assert "not run here (runs/never-run has no stored study)" in rows[2] and "| 90.00% |" in rows[2]
    seconds = float(res["seconds"].sum())
    assert f"Machine: a test machine. Compute: {seconds:.1f} s of run wall time over 10 runs in 1 stored study" in text
    assert stats.VERDICT_RULE in text


def test_generator_refuses_a_bad_claims_file_in_one_line(tmp_path, mnist_dir):
    (tmp_path / "claims.toml").write_text(CLAIMS.replace('claim = "best"', 'claim = "bestest"'))
    env = {**os.environ, "NNSTUDY_DATA": str(mnist_dir)}
    p = subprocess.run([sys.executable, "-m", "nnstudy.report.reproductions", "--claims", "claims.toml"],
                       cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    assert p.returncode == 2 and "row[1].claim = 'bestest': allowed: value, best, better, none" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_the_shipped_claims_name_real_arms_of_the_shipped_studies():
    """docs/reproductions.toml: every question of studies/notebooks/ has a row, and every arm a row
    names (arm, a, b, notebook_arm) is an arm of that study's design."""
    from nnstudy.report.reproductions import load_claims
    from nnstudy.study import load_study

    repo = Path(__file__).parents[2]
    claims = load_claims(repo / "docs" / "reproductions.toml")
    shipped = {p.stem for p in (repo / "studies" / "notebooks").glob("*.toml")}
    assert {c.study for c in claims} == shipped
    for c in claims:
        design = load_study(repo / "studies" / "notebooks" / f"{c.study}.toml").arms()
        arms = {x for a in design for x in (a.label, a.name)}  # either names the arm
        for name in (c.arm, c.a, c.b, c.notebook_arm):
            assert name in (None, "best") or name in arms, (c.study, name)


GROUPED = """
[study]
name = "tiny-grouped"
question = "Which width is best, with and without weight decay?"
seeds = 5

[data]
per_class = 30
validation = 0.2

[base]
model = { kind = "mlp", hidden = [16] }
optimizer = { name = "adam", lr = 0.003 }
epochs = 1

[scientific]
"model.hidden" = [8, 32]
"optimizer.weight_decay" = [0.0, 0.1]
"""


@pytest.mark.slow
@pytest.mark.parametrize("per", [None, "optimizer.weight_decay"])
def test_a_multi_key_row_gives_the_best_arm_of_each_group_not_one_across_them(tmp_path, mnist_dir, per):
    """Seed 001's depth against width asks which depth wins at each budget: a row with arm = "best"
    answers per group, as the study's report does (or per the row's ``per`` key), never with one
    winner across the groups."""
    from nnstudy.analysis.context import split_keys
    from nnstudy.report.reproductions import Claim, row
    from nnstudy.study import load_study, run_study

    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny-grouped.toml").write_text(GROUPED)
    spec = load_study(tmp_path / "studies" / "tiny-grouped.toml")
    run_study(spec, tmp_path / "runs" / "tiny-grouped", workers=1, data_dir=mnist_dir, quiet=True)
    c = Claim(study="tiny-grouped", seed="009", what="w", metric="test_accuracy", per=per)
    cell = row(c, tmp_path / "runs", tmp_path / "studies").cells[3]
    res = open_study(tmp_path / "runs" / "tiny-grouped").results()
    x, groups = (("model.hidden", ["optimizer.weight_decay"]) if per else split_keys(spec.axes()))
    assert cell.startswith("the best mean val_accuracy in each group: at ")
    for value, rows in res.groupby(groups[0]):
        best = stats.rank_arms(rows, "val_accuracy", "max")[0][0]
        mi = stats.mean_interval(seed_values(rows, "test_accuracy", best), bounds=stats.metric_bounds("test_accuracy"))
        shown = f"{100 * mi.mean:.2f}% [{100 * mi.low:.2f}%, {100 * mi.high:.2f}%] over 5 seeds"
        won = rows.loc[rows["arm"] == best, x].iloc[0]
        assert f"at {groups[0]}={value:g}: {x}={won:g} {shown}" in cell
    assert cell.count("; at ") == 1  # two groups
    with pytest.raises(Exception, match="per = 'seed' is not one of several scientific keys"):
        row(Claim(study="tiny-grouped", seed="009", what="w", metric="test_accuracy", per="seed"),
            tmp_path / "runs", tmp_path / "studies")


TUNED = """
[study]
name = "tiny-tuned"
question = "Does batch size matter once the learning rate is tuned, and at the base rate?"
seeds = 5

[data]
per_class = 30
validation = 0.2

[base]
model = { kind = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = 0.05 }
epochs = 1

[scientific]
batch_size = [8, 128]

[nuisance]
"optimizer.lr" = { log = [0.01, 0.5] }
trials = 2
"""


@pytest.mark.slow
def test_a_slice_row_reads_the_untuned_runs_at_the_base_values(tmp_path, mnist_dir):
    """Seed 000's batch-size trend was seen at one fixed lr: a row with phase = "slice" reads the untuned
    slice (base lr, final seeds) instead of the tuned final runs, and says so."""
    from nnstudy.report.reproductions import Claim, load_claims, row
    from nnstudy.study import load_study, run_study

    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny-tuned.toml").write_text(TUNED)
    spec = load_study(tmp_path / "studies" / "tiny-tuned.toml")
    run_study(spec, tmp_path / "runs" / "tiny-tuned", workers=1, data_dir=mnist_dir, quiet=True)
    res = open_study(tmp_path / "runs" / "tiny-tuned").results()
    c = Claim(study="tiny-tuned", seed="009", what="w", metric="val_accuracy", arm="batch_size=8", claim="better",
              a="batch_size=8", b="batch_size=128", phase="slice")
    r = row(c, tmp_path / "runs", tmp_path / "studies")
    untuned = seed_values(res, "val_accuracy", "batch_size=8", "slice")
    mi = stats.mean_interval(untuned, bounds=stats.metric_bounds("val_accuracy"))
    assert len(untuned) == 5 and not untuned.equals(seed_values(res, "val_accuracy", "batch_size=8"))
    shown = f"{100 * mi.mean:.2f}% [{100 * mi.low:.2f}%, {100 * mi.high:.2f}%] over 5 seeds"
    assert r.cells[3] == shown + "; the untuned slice at the base values, not tested"
    pb = stats.prob_better(untuned, seed_values(res, "val_accuracy", "batch_size=128", "slice"), "max")
    assert f"P = {pb.p:.2f}" in r.cells[4] or f"= {pb.p:.2f}" in r.cells[4]
    assert r.runs == len(res)  # the study's compute counts every run, not the slice's alone
    assert "unfinished" not in r.cells[5]
    # a study stopped before its design was done says so: one more seed in its file, nothing trained
    (tmp_path / "runs" / "tiny-tuned" / "study.toml").write_text(
        (tmp_path / "runs" / "tiny-tuned" / "study.toml").read_text().replace("seeds = 5", "seeds = 6"))
    size = row(c, tmp_path / "runs", tmp_path / "studies").cells[5]
    p = open_study(tmp_path / "runs" / "tiny-tuned").progress()  # 4 more planned: a final and a slice run per arm
    assert p["total"] == len(res) + 4 and p["done"] < p["total"]
    assert size.endswith(f"; unfinished: {p['done']} of {p['total']} planned runs stored"), size
    (tmp_path / "bad.toml").write_text('[[row]]\nstudy = "s"\nseed = "0"\nwhat = "w"\nmetric = "test_accuracy"\n'
                                       'phase = "slice"\n')
    with pytest.raises(Exception, match="the untuned slice is never tested"):
        load_claims(tmp_path / "bad.toml")
