"""Nothing a user gives nnstudy crashes it (issue 13): every bad study file, path or disk is one line on
stderr, exit code 2, no traceback, and nothing written."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from studyfiles import TINY

from cli_main import run_main as _cli

GRID = TINY + '\n[scientific]\n"model.activation" = ["relu", "tanh"]\n'


def _refused(code: int, err: str, *says: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for s in says:
        assert s in err, err


def _with(table: str, lines: str) -> str:
    """TINY with ``lines`` added under its ``[table]`` (study, data or base), and GRID's arms."""
    return GRID.replace(f"[{table}]\n", f"[{table}]\n{lines}\n", 1)


NUISANCE = GRID + "\n[nuisance]\ntrials = 2\n"
BAD_STUDIES = {
    "repeated value": (GRID.replace('["relu", "tanh"]', '["relu", "relu"]'), "values relu (#1) and relu (#2)"),
    "repeated number": (TINY + "\n[scientific]\nbatch_size = [32, 32]\n", "scientific.batch_size: values 32 (#1)"),
    "one float twice": (TINY + '\n[scientific]\n"optimizer.lr" = [0.1, 0.10]\n', "give the same runs"),
    "int and float": (TINY + '\n[scientific]\n"optimizer.lr" = [1, 1.0]\n', "give the same runs"),
    "hidden as list": (TINY + '\n[scientific]\n"model.hidden" = [100, [100]]\n', "give the same runs"),
    "boolean lr": (TINY + '\n[scientific]\n"optimizer.lr" = [true, 0.1]\n', "not the boolean true"),
    "boolean epochs": (_with("base", "epochs = true").replace("epochs = 1\n", "", 1), "not the boolean true"),
    "infinite warmup": (_with("base", "schedule = { warmup_epochs = inf }"), "finite number"),
    "nan lr": (TINY.replace("lr = 0.1", "lr = nan"), "optimizer.lr = nan: a finite number"),
    "infinite max_loss": (_with("base", "max_loss = inf"), "max_loss = inf: a finite number"),
    "infinite weight decay": (TINY.replace("lr = 0.1", "lr = 0.1, weight_decay = inf"), "finite number"),
    "infinite minutes": (_with("study", "max_minutes = inf"), "study.max_minutes = inf"),
    "infinite log range": (NUISANCE + '"optimizer.lr" = { log = [0.001, inf] }\n', 'nuisance."optimizer.lr" = inf'),
    # only the untuned slice runs at the base lr: every tuned run overrides it, so it must be checked there
    "infinite base lr under tuning": (
        NUISANCE.replace("lr = 0.1", "lr = inf") + '"optimizer.lr" = { log = [0.001, 0.1] }\n',
        "base.optimizer.lr = inf: a finite number"),
    "overflowing range": (NUISANCE + '"optimizer.momentum" = { uniform = [-1e308, 1e308] }\n', "too wide"),
    "repeated choice": (NUISANCE + '"optimizer.lr" = { choice = [0.1, 0.10] }\n', "values 0.1, 0.1 give the same"),
    "huge int": (TINY.replace("epochs = 1", "epochs = 100000000000000000000"), "|n| < 2**63"),
    "billion seeds": (TINY.replace("seeds = 2", "seeds = 1000000000"), "study.seeds = 1000000000: the design would"),
    "huge grid": (NUISANCE.replace("trials = 2\n", 'sampler = "grid"\n') + '"epochs" = { int = [1, 1000000000] }\n',
                  "a grid of 1,000,000,000 values"),
    "too many arms": (TINY + "\n[scientific]\n" + "\n".join(
        f'"{k}" = [{", ".join(str(0.01 * (i + 1)) for i in range(20))}]'
        for k in ("optimizer.lr", "optimizer.momentum", "schedule.gamma", "optimizer.weight_decay")) + "\n",
        "scientific: 160,000 arms"),
    "threads": (_with("study", "threads = 100000"), "study.threads = 100000: at most 1024"),
    "line breaks in keys": (_with("study", 'metric = { "a\\nb" = 0 }').replace('[base]', '[base]\n"x\\u2028y" = 1'),
                            'study.metric = { "a\\nb" = 0 }'),
    "line break in an unknown key": (_with("base", '"a\\nb" = 1'), "unknown key"),
}


@pytest.mark.parametrize("case", list(BAD_STUDIES))
def test_a_bad_study_file_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    text, says = BAD_STUDIES[case]
    study = tmp_path / "study.toml"
    study.write_text(text)
    code, _, err = _cli(capsys, "run", study, "--dir", tmp_path / "out")
    _refused(code, err, f"{study}: ", says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


@pytest.mark.parametrize(("content", "says"), [
    (b"\xff\xfe[study]\n", "not UTF-8 text (byte 0xff at offset 0)"),
    (b'[study]\nname = "big"\nquestion = "' + b"a" * (1 << 20) + b'"\n', "larger than 1024 KiB"),
    (b"[study]\nx = " + b"[" * 100_000, "malformed TOML"),
    (b"\x00\x01\x02 random bytes \x7f", "malformed TOML"),
])
def test_an_unreadable_study_or_config_file_is_one_line(tmp_path, capsys, content, says):
    path = tmp_path / "file.toml"
    path.write_bytes(content)
    for command in (("run", path, "--dir", tmp_path / "out"), ("train", "--config", path, "--out", tmp_path / "o")):
        code, _, err = _cli(capsys, *command)
        _refused(code, err, str(path), says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.toml"]


def test_a_folder_as_the_study_file_is_one_line(tmp_path, capsys):
    code, _, err = _cli(capsys, "run", tmp_path)
    _refused(code, err, f"{tmp_path}: is a folder")


def test_dir_naming_a_file_is_one_line_and_leaves_it(study_file, tmp_path, capsys, offline):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for args in (("--dir", taken), ("--dir", taken / "sub")):
        code, _, err = _cli(capsys, "run", study_file(GRID), *args, "--no-report")
        _refused(code, err, f"{taken} (the study folder): is a file, not a folder")
    code, _, err = _cli(capsys, "train", "--epochs", "1", "--per-class", "5", "--out", taken / "run")
    _refused(code, err, f"{taken} (--out): is a file, not a folder")
    assert taken.read_text() == "mine"


# ------------------------------------------------------------------------ read-only folders, full disks


@contextlib.contextmanager
def _mounted(folder: Path, *options: str):
    """``folder`` re-mounted (a read-only bind mount, or a small tmpfs): root ignores permission bits,
    so a mount is the honest read-only folder. Skips where this process may not mount."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *options, str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip() or 'not root'}): a read-only folder or a full disk "
                    "needs a mount (root ignores permission bits)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def _read_only(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with _mounted(folder, "--bind", str(folder)):
        r = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
        yield folder


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only folder for root needs a bind mount, which needs root")
def test_a_read_only_folder_is_one_line_for_run_train_and_report(study_file, tmp_path, capsys, offline):
    study = study_file(GRID)
    with _read_only(tmp_path / "ro") as ro:
        code, _, err = _cli(capsys, "run", study, "--dir", ro / "study")
        _refused(code, err, f"{ro}", "cannot write: the file system is read-only")
        code, _, err = _cli(capsys, "run", study, "--dir", ro / "study", "--no-report")
        _refused(code, err, f"{ro} (the study folder): cannot write: the file system is read-only")
        code, out, err = _cli(capsys, "train", "--epochs", "1", "--per-class", "5", "--out", ro / "run")
        _refused(code, err, f"{ro} (--out): cannot write")
        assert "epoch" not in out  # refused before training, not after
        code, _, err = _cli(capsys, "run", study, "--dir", tmp_path / "study", "--no-report")
        assert code == 0, err
        code, _, err = _cli(capsys, "report", tmp_path / "study", "--out", ro)
        _refused(code, err, f"{ro}: cannot write: the file system is read-only")
    assert sorted(p.name for p in (tmp_path / "ro").iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs, which needs root to mount")
def test_a_full_disk_while_weights_are_written_is_one_line(study_file, cli, tmp_path):
    """784-300-10 weights are 0.9 MB: the first final run's weights do not fit in 600 KB beside the
    study's database, and the runner stops with one line (results.csv's own failure does not hide it);
    the run is not stored, so the same command trains it once there is room."""
    study = study_file(TINY.replace("hidden = [16]", "hidden = [300]") + "\n[scientific]\nbatch_size = [32]\n")
    with _mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=600k", "tmpfs") as small:
        for workers in ("1", "2"):
            r = cli("run", str(study), "--dir", str(small / f"w{workers}"), "--workers", workers, "--no-report",
                    cwd=tmp_path)
            assert r.returncode == 2, r.stderr
            assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
            assert "the disk is full" in r.stderr and str(small / f"w{workers}") in r.stderr, r.stderr
            assert not list((small / f"w{workers}").rglob("*.tmp"))  # no half-written weights left


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs, which needs root to mount")
def test_a_full_disk_for_train_is_one_line(tmp_path, capsys, offline):
    with _mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as small:
        code, _, err = _cli(capsys, "train", "--epochs", "1", "--per-class", "5", "--hidden", "16",
                            "--out", small / "r")
        _refused(code, err, str(small / "r"), "the disk is full")


# ------------------------------------------------------------------------------------------- the store


def test_a_deleted_database_says_so(tmp_path):
    from nnstudy.errors import StoreError
    from nnstudy.study.store import Store

    path = tmp_path / "study.db"
    store = Store(f"sqlite:///{path}", create=True)
    store._study_id("s", True)
    path.unlink()  # deleted while in use
    store.storage.engine.dispose()
    with pytest.raises(StoreError) as deleted:
        store.records("s")
    assert str(deleted.value).startswith(f"{path}: cannot use the study database: the database file was deleted")
    assert "no such table" in str(deleted.value)  # the driver's own words after it


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs, which needs root to mount")
def test_a_full_disk_under_the_database_says_so(tmp_path):
    from nnstudy.errors import StoreError
    from nnstudy.study.store import Store

    with _mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=48k", "tmpfs") as small:
        with pytest.raises(StoreError) as full:
            Store(f"sqlite:///{small / 'study.db'}", create=True)._study_id("s", True)
    assert str(full.value) == (f"{small / 'study.db'}: cannot use the study database: the disk is full: "
                               "database or disk is full")


def test_an_unreachable_database_server_says_so(tmp_path, capsys):
    pytest.importorskip("psycopg")
    (tmp_path / "study.toml").write_text(GRID)  # a study folder whose store is a server nobody runs
    code, _, err = _cli(capsys, "status", tmp_path, "--storage", "postgresql+psycopg://nobody@127.0.0.1:9/x")
    _refused(code, err, "127.0.0.1:9/x: cannot use the study database: the database server is unreachable: ",
             "Connection refused")


def test_missing_data_with_a_sqlite_storage_url_creates_no_database_file(tmp_path, capsys, monkeypatch):
    """`--storage sqlite:///FILE` is the user's file: a study whose data cannot be found leaves no
    empty database there (only a database server is asked before the data loads)."""
    study = tmp_path / "study.toml"
    study.write_text(GRID)
    (tmp_path / "empty").mkdir()
    for name, value in (("NNSTUDY_DATA", tmp_path / "empty"), ("NNSTUDY_CACHE", tmp_path / "empty"),
                        ("NNSTUDY_MIRRORS", "http://127.0.0.1:9/"), ("NNSTUDY_NPM", "")):
        monkeypatch.setenv(name, str(value))
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    code, _, err = _cli(capsys, "run", study, "--dir", tmp_path / "out", "--storage", url)
    _refused(code, err, "cannot find")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "study.toml"]
    assert not any((tmp_path / "empty").iterdir())
