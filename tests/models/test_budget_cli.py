"""``nnstudy budget`` and ``nnstudy params``: the table and the impossible requests as a user runs them,
``python -m nnstudy`` in subprocesses (started together, so that their torch imports overlap); the other
commands in-process through ``nnstudy.cli.main``, the same entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nnstudy.cli import main
from nnstudy.models import build_model, count_params, forward_flops, train_flops
from nnstudy.spec import MLPSpec

DOCS = Path(__file__).parents[2] / "docs" / "budgets.md"

#: name → arguments of one ``nnstudy`` call in a subprocess
CALLS = {
    "table": ["budget", "--params", "50000", "--depth", "1..6"],
    "too-small": ["budget", "--params", "500", "--depth", "1..3"],
    "negative": ["budget", "--params", "-5", "--depth", "1"],
    "depth-0": ["budget", "--params", "50000", "--depth", "0"],
    "empty-range": ["budget", "--params", "50000", "--depth", "5..2"],
}
IMPOSSIBLE = {
    "too-small": "budget P = 500: smaller than the smallest network, 784 → 1 → 10, which has 805 parameters",
    "negative": "budget P = -5: must be a positive number of parameters",
    "depth-0": "depth '0': depth 0 < 1",
    "empty-range": "depth '5..2': empty range (5 > 2)",
}


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``nnstudy ARGS`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_.value.code or 0, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    procs = {
        name: subprocess.Popen([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=env, text=True,
                               encoding="utf-8", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, args in CALLS.items()
    }
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate()
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


def rows(stdout: str) -> list[list[str]]:
    """The body rows of a rich table: the cells of every line with a │ between two cells."""
    return [[c.strip() for c in line.strip("│ ").split("│")] for line in stdout.splitlines() if line.count("│") > 2]


def test_budget_table_at_50000(runs):
    r = runs["table"]
    assert r.returncode == 0, r.stderr
    table = rows(r.stdout)
    assert [row[0] for row in table] == ["1", "2", "3", "4", "5", "6"]
    assert table[0][1:] == ["63", "50,095", "+0.19%"]
    for k, m, params, _ in table:
        model = build_model(MLPSpec(hidden=[int(m)] * int(k)))
        assert int(params.replace(",", "")) == sum(p.numel() for p in model.parameters())
    assert "k_P = 24598.5 is not a whole number: floored to 24598" in r.stdout


def test_budget_decreasing(capsys):
    code, out, err = run_main(capsys, "budget", "--params", "50_000", "--depth", "1..8", "--shape", "decreasing")
    assert code == 0, err
    table = rows(out)
    assert len(table) == 8
    for row in table:
        widths = [int(w) for w in row[1].split(", ")]
        assert widths == sorted(widths, reverse=True)
        assert int(row[2].replace(",", "")) == count_params(MLPSpec(hidden=widths))
    assert "depth 1: every shape is uniform" in table[0][-1]
    assert re.sub(r"\s+\n", "\n", out).strip() in DOCS.read_text(encoding="utf-8")  # the docs show it


def test_params_command(capsys):
    code, out, err = run_main(capsys, "params", "--model", "mlp", "--hidden", "50,50,50")
    assert code == 0, err
    spec = MLPSpec(hidden=[50, 50, 50])
    cells = {row[0]: row[1] for row in rows(out)}
    assert cells == {
        "parameters": "44,860",
        "forward FLOPs per sample": f"{forward_flops(spec):,}",
        "training FLOPs per sample": f"{train_flops(spec):,}",
    }


@pytest.mark.parametrize("name", IMPOSSIBLE)
def test_impossible_request_is_one_line_and_exit_2(runs, name):
    r = runs[name]
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [r.stderr.strip()]  # one line
    assert r.stderr.startswith("error: ") and IMPOSSIBLE[name] in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--params", "50000", "--depth", "24599"], "depth k = 24599: deeper than k_P = 24598"),
        (["--params", "50000", "--shape", "zigzag"], "shape = 'zigzag': not a shape family"),
        (["--params", "50000", "--shape", "diamond", "--ratio", "2"], "ratio = 2.0: must be in (0, 1]"),
        (["--params", "1000", "--inputs", "3072"], "budget P = 1,000: smaller than the smallest network, 3072 → 1"),
    ],
)
def test_more_impossible_requests_exit_2(capsys, args, message):
    code, out, err = run_main(capsys, "budget", *args)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_docs_show_the_commands_real_output(runs):
    # docs/budgets.md pastes what the command prints; it must still be what it prints
    assert re.sub(r"\s+\n", "\n", runs["table"].stdout).strip() in DOCS.read_text(encoding="utf-8")
