"""Several studies at once: ``nnstudy run A.toml B.toml`` and ``nnstudy report --all DIR`` (issue 11, item 4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TINY = """
[study]
name = "{name}"
question = "Does {what} beat the other after one epoch?"
seeds = 2

[data]
per_class = 30
validation = 0.1

[base]
optimizer = {{ name = "sgd", lr = 0.1 }}
epochs = 1

[scientific]
{key} = {values}
"""


def nnstudy(*args: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNSTUDY_DATA": str(data_dir), "NNSTUDY_NPM": ""}
    return subprocess.run([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=900)


def test_batch_run_then_one_index_of_every_report(tmp_path, mnist_dir):
    (tmp_path / "studies").mkdir()
    files = []
    for name, what, key, values in (("widths", "a width", '"model.hidden"', "[16, 64]"),
                                     ("acts", "an activation", '"model.activation"', '["relu", "tanh"]')):
        f = tmp_path / "studies" / f"{name}.toml"
        f.write_text(TINY.format(name=name, what=what, key=key, values=values))
        files.append(str(f))
    p = nnstudy("run", *files, "--workers", "1", "--quiet", cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 0, p.stderr + p.stdout
    tail = p.stdout.strip().splitlines()[-3:]
    assert tail[0] == "2 studies:"
    assert re.match(r"widths: 4 of 4 runs stored \(4 trained now, 0 failed; compute [\d.]+ s\) in runs/widths$",
                    tail[1])
    assert re.match(r"acts: 4 of 4 runs stored \(4 trained now, 0 failed; compute [\d.]+ s\) in runs/acts$", tail[2])
    assert all((tmp_path / "runs" / name / "report.html").exists() for name in ("widths", "acts"))

    p = nnstudy("report", "--all", "runs", cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 0, p.stderr + p.stdout
    index = (tmp_path / "runs" / "index.html").read_text()
    assert index.index('href="acts/report.html"') < index.index('href="widths/report.html"')  # name order
    assert "Does a width beat the other after one epoch?" in index
    answer = next(line for line in p.stdout.splitlines() if line.startswith("widths: "))
    assert "4 of 4 runs complete" in answer
    md = (tmp_path / "runs" / "widths" / "report.md").read_text()
    first = re.search(r"^1\. (.*)$", md, re.M).group(1).replace("\\", "")
    assert first.split(":")[0] in index  # the index's answer is the report's first finding
    assert p.stdout.strip().endswith("index: runs/index.html")
    # again: the index and the reports are nnstudy's own, so they are replaced without --force
    assert nnstudy("report", "--all", "runs", cwd=tmp_path, data_dir=mnist_dir).returncode == 0


def test_batch_and_all_refuse_bad_input_in_one_line(tmp_path, mnist_dir):
    good = tmp_path / "a.toml"
    good.write_text(TINY.format(name="a", what="x", key='"model.hidden"', values="[16, 32]"))
    bad = tmp_path / "b.toml"
    bad.write_text(TINY.format(name="b", what="y", key='"model.hiden"', values="[16, 32]"))
    p = nnstudy("run", str(good), str(bad), cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 2 and "b.toml" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # every file is validated before any study trains
    p = nnstudy("run", str(good), str(good), cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 2 and "study.name = 'a': in two of the study files" in p.stderr
    p = nnstudy("run", str(good), str(bad).replace("b.toml", "a.toml"), "--dir", "x", cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 2 and "--dir x: names one study's folder" in p.stderr
    (tmp_path / "empty").mkdir()
    p = nnstudy("report", "--all", "empty", cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 2 and "no study folder under it" in p.stderr
    assert not (tmp_path / "empty" / "index.html").exists()
    p = nnstudy("report", cwd=tmp_path, data_dir=mnist_dir)
    assert p.returncode == 2 and "not both or neither" in p.stderr
