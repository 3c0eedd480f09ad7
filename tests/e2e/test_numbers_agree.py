"""The quickstart as a user runs it (a smaller --set of the same study), and ``nnstudy train``: the
arm names, the interval format and the duration definitions read the same in the CLI's output,
``summary.json``, ``results.csv`` and ``report.md``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from nnstudy.analysis import formatting as fmt
from nnstudy.analysis.stats import mean_interval, metric_bounds
from nnstudy.study import open_study

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.toml"
SMALLER = ["--set", "data.per_class=100", "--set", "base.epochs=2", "--set", "study.seeds=3",
           "--set", "nuisance.trials=2"]


def nnstudy(*args: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNSTUDY_DATA": str(data_dir), "NNSTUDY_MIRRORS": "http://127.0.0.1:9/", "NNSTUDY_NPM": ""}
    p = subprocess.run([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=env, text=True, capture_output=True)
    assert p.returncode == 0, p.stderr + p.stdout
    return p


def table_rows(stdout: str) -> list[list[str]]:
    """The body rows of the rich tables in ``stdout``: the cells of every line with │ between cells."""
    return [[c.strip() for c in line.strip("│ ").split("│")] for line in stdout.splitlines() if line.count("│") > 2]


def test_quickstart_names_intervals_and_durations_agree_everywhere(tmp_path, mnist_dir):
    p = nnstudy("run", str(QUICKSTART), *SMALLER, cwd=tmp_path, data_dir=mnist_dir)
    folder = tmp_path / "runs" / "quickstart"
    csv = pd.read_csv(folder / "results.csv")
    md = (folder / "report.md").read_text()

    # arm names: derived from what differs between the two model tables, the same in every place
    names = ["linear", "mlp [100]"]
    cli = {row[0]: row for row in table_rows(p.stdout)}
    assert list(cli) == names
    assert list(pd.unique(csv["arm"])) == names
    assert f"- **arms**: 2: {', '.join(names)}" in md
    assert "model={kind" not in p.stdout
    study = open_study(folder)  # best_model takes the name as the tables show it, or the arm's index
    by_name, by_index = study.best_model("mlp [100]").state_dict(), study.best_model(1).state_dict()
    assert by_name.keys() == by_index.keys() and all(torch.equal(by_name[k], by_index[k]) for k in by_name)

    # the CLI's answer table prints each arm's mean with its 95% interval, as report.md does, computed
    # from the final runs in results.csv
    header = next(line for line in p.stdout.splitlines() if "┃" in line)
    assert "val_accuracy [95% CI]" in header and "±" not in p.stdout
    finals = csv[(csv["phase"] == "final") & (csv["status"] == "complete")]
    for name in names:
        mi = mean_interval(finals.loc[finals["arm"] == name, "val_accuracy"], 0.95, metric_bounds("val_accuracy"))
        cell = f"{fmt.value(mi.mean, 'val_accuracy')} {fmt.interval(mi.low, mi.high, 'val_accuracy')}"
        assert re.fullmatch(r"\d+\.\d\d% \[\d+\.\d\d%, \d+\.\d\d%\]", cell)
        assert cli[name][2] == cell
        assert re.search(rf"^\| \d+ \| {re.escape(name)} \|.*\| {re.escape(cell)} \|", md, re.M), (name, cell)

    # one definition of compute time (the sum of the runs' wall times, results.csv's seconds) and of
    # wall time, printed by the CLI as the report writes them
    compute = fmt.duration(csv["seconds"].sum())
    assert f"compute {compute} (sum of the runs' wall times)" in p.stdout
    assert f"- **compute**: {compute} over {len(csv)} runs" in md
    wall = re.search(r"- \*\*wall time\*\*: (.+?) \(first run's start", md).group(1)
    assert f"wall time {wall} (first run's start to last run's end)" in p.stdout

    # one run: its wall time is summary.json's seconds, printed by nnstudy train the same way
    out = tmp_path / "one"
    t = nnstudy("train", "--model", "mlp", "--hidden", "100", "--per-class", "50", "--epochs", "2", "--quiet",
                "--out", str(out), cwd=tmp_path, data_dir=mnist_dir)
    summary = json.loads((out / "summary.json").read_text())
    rows = {row[0]: row[1] for row in table_rows(t.stdout)}
    assert rows["wall time"] == fmt.duration(summary["seconds"])
    assert rows["step time"] == f"{fmt.duration(summary['train_seconds'])} (in optimizer steps)"


def test_run_files_say_what_their_numbers_are(tmp_path, mnist_dir):
    """best_epoch is the epoch whose weights were kept, best_val_epoch the one that scored best on
    validation; spec.toml names the threads the run used; results.csv cells are JSON."""
    out = tmp_path / "one"
    nnstudy("train", "--model", "mlp", "--hidden", "32", "--per-class", "30", "--epochs", "4", "--lr", "0.5",
            "--quiet", "--out", str(out), cwd=tmp_path, data_dir=mnist_dir)
    summary = json.loads((out / "summary.json").read_text())
    curve = pd.read_csv(out / "metrics.csv")
    assert summary["best_epoch"] == 4  # no early stopping: the last epoch's weights are kept
    assert summary["best_val_epoch"] == int(curve.loc[curve["val_accuracy"].idxmax(), "epoch"])
    threads = summary["environment"]["threads"]
    assert f"threads = {threads}" in (out / "spec.toml").read_text().splitlines()

    text = QUICKSTART.read_text().replace("seeds = 5", "seeds = 2").replace("trials = 4", "trials = 1")
    path = tmp_path / "quickstart.toml"
    path.write_text(text.replace("per_class = 1000", "per_class = 30").replace("epochs = 5", "epochs = 1"))
    nnstudy("run", str(path), "--workers", "1", "--quiet", "--no-report", cwd=tmp_path, data_dir=mnist_dir)
    csv = pd.read_csv(tmp_path / "runs" / "quickstart" / "results.csv")
    assert [json.loads(m) for m in pd.unique(csv["model"])] == [{"kind": "linear"}, {"kind": "mlp", "hidden": [100]}]
    results = nnstudy("results", str(tmp_path / "runs" / "quickstart"), "--format", "csv", cwd=tmp_path,
                      data_dir=mnist_dir)
    assert pd.read_csv(io.StringIO(results.stdout))["model"].equals(csv["model"])  # the same JSON
    sliced = nnstudy("results", str(tmp_path / "runs" / "quickstart"), "--phase", "slice", "--format", "csv",
                     cwd=tmp_path, data_dir=mnist_dir)
    assert list(pd.read_csv(io.StringIO(sliced.stdout))["phase"]) == ["slice"] * 4  # 2 arms × 2 seeds, untuned
