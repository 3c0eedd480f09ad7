"""``nnstudy report``: writes the report of a study folder; a missing or corrupt database is one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnstudy.cli import main


def _nnstudy(*args: str, cwd, mnist_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNSTUDY_DATA": str(mnist_dir), "NNSTUDY_MIRRORS": "http://127.0.0.1:9/", "NNSTUDY_NPM": ""}
    return subprocess.run([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=env, text=True,
                          capture_output=True)


@pytest.mark.slow
def test_report_command_writes_the_report_and_prints_the_findings(studies, mnist_dir, tmp_path):
    folder = studies("same-config").folder
    out = tmp_path / "out"
    r = _nnstudy("report", str(folder), "--out", str(out), cwd=tmp_path, mnist_dir=mnist_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1. max_loss=") and "cannot be told apart" in r.stdout
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == [
        "confusion.png", "curves.png", "gallery.png", "prob_better.png", "scores.png"]


def _study_folder(tmp_path, db: bytes | None):
    """A study folder whose study.toml is fine and whose study.db is ``db`` (None: absent)."""
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "study.toml").write_text('[study]\nname = "s"\n\n[scientific]\nbatch_size = [32, 64]\n')
    if db is not None:
        (folder / "study.db").write_bytes(db)
    return folder


@pytest.mark.parametrize(("db", "says"), [
    (None, "no study database here"),
    (b"this is not a database, it is a sentence\n" * 50, "cannot use the study database: file is not a database"),
    (b"", "holds no study named 's'"),
])
def test_missing_or_corrupt_database_is_one_line_and_exit_2(tmp_path, capsys, db, says):
    folder = _study_folder(tmp_path, db)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(folder)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert str(folder / "study.db") in err
    assert not (folder / "report.html").exists()


def test_as_a_user_sees_it_no_traceback(tmp_path, mnist_dir):
    folder = _study_folder(tmp_path, b"\x00garbage" * 100)
    r = _nnstudy("report", str(folder), cwd=tmp_path, mnist_dir=mnist_dir)
    assert r.returncode == 2
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "file is not a database" in r.stderr


def test_no_study_folder_at_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert "no such study folder or study file" in capsys.readouterr().err
