"""``nnstudy train``'s flags say what they take and what a run without them uses; each optimizer
runs at its own default learning rate (Adam at 0.001, not SGD's 0.01)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnstudy.spec import DEFAULT_LR, RunSpec, make_run_spec


@pytest.fixture(scope="module")
def train_help() -> dict[str, str]:
    """``--flag`` → its line in ``nnstudy train --help`` (wide enough for one line each)."""
    env = {**os.environ, "COLUMNS": "260"}
    out = subprocess.run([sys.executable, "-m", "nnstudy", "train", "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    lines = {}
    for line in out.splitlines():
        words = line.strip("│ ").split()
        if words and words[0].startswith("--"):
            lines[words[0]] = line
    return lines


@pytest.mark.parametrize("flag,metavar,default", [
    ("--epochs", "<int>", "default 5"),
    ("--batch-size", "<int|full>", "default 64"),
    ("--validation", "<float>", "default 0.1"),
    ("--hidden", "<int,...>", "default 100"),
    ("--kernel", "<int>", "default 3 for cnn"),
    ("--lr", "<float>", "default per optimizer: sgd 0.01, adam 0.001"),
])
def test_numeric_flags_show_their_type_and_default(train_help, flag, metavar, default):
    line = train_help[flag]
    assert metavar in line and default in line and "<str>" not in line, line


def test_defaults_in_help_are_the_runspec_defaults(train_help):
    spec = RunSpec()
    assert f"default {spec.epochs}" in train_help["--epochs"]
    assert f"default {spec.batch_size}" in train_help["--batch-size"]


@pytest.mark.parametrize("name", list(DEFAULT_LR))
def test_each_optimizer_runs_at_its_own_default_rate_unless_told(name):
    assert make_run_spec(None, {"optimizer": name}).optimizer.lr == DEFAULT_LR[name]
    assert make_run_spec(None, {"optimizer": name, "lr": 0.5}).optimizer.lr == 0.5
    assert DEFAULT_LR["adam"] == 0.001 and RunSpec().optimizer.lr == DEFAULT_LR["sgd"]
