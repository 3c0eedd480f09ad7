"""The runner in this process (``--workers 1``) on tiny real-MNIST studies: store, dedupe, tuning
records, failures, pruning, budget, locks, and the Python API that reads it all back."""

from __future__ import annotations

import sqlite3
import sys

import pytest
import torch
from studyfiles import GRID, TUNED

from nnstudy.cli import main
from nnstudy.errors import StoreError
from nnstudy.study import load_study, open_study, run_study
from nnstudy.study.store import FolderLock


def trials_in_db(folder) -> dict[str, int]:
    """Trials per Optuna state, read straight from the SQLite file."""
    with sqlite3.connect(folder / "study.db") as db:
        return dict(db.execute("select state, count(*) from trials group by state").fetchall())


def command(*args: str) -> int:
    """``nnstudy ARGS`` in this process; its exit code."""
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def run(path, folder, **kw):
    return run_study(load_study(path, kw.pop("overrides", ())), folder, workers=1, quiet=True, **kw)


@pytest.fixture
def grid_study(tmp_path, study_file, offline):
    """A finished 2 arms × 2 seeds grid study: (folder, RunSummary)."""
    folder = tmp_path / "grid"
    return folder, run(study_file(GRID), folder)


@pytest.fixture
def tuned_study(tmp_path, study_file, offline):
    """A finished study with the learning rate tuned per arm (3 trials in rounds of 2, 2 seeds)."""
    folder = tmp_path / "tuned"
    return folder, run(study_file(TUNED), folder)


def test_grid_study_stores_every_run_once_with_everything(grid_study):
    folder, summary = grid_study
    assert (summary.trained, summary.done, summary.total, summary.stopped) == (4, 4, 4, None)
    frame = open_study(folder).results()
    assert list(frame["arm"]) == ["model.activation=relu"] * 2 + ["model.activation=tanh"] * 2
    assert list(frame["seed"]) == [0, 1, 0, 1] and set(frame["phase"]) == {"final"}
    assert frame["run"].is_unique and (frame["status"] == "complete").all()
    assert frame[["val_accuracy", "test_accuracy", "test_loss"]].notna().all().all()
    assert list(frame["model.activation"]) == ["relu", "relu", "tanh", "tanh"]
    assert trials_in_db(folder) == {"COMPLETE": 4}
    assert (folder / "study.toml").is_file() and (folder / "results.csv").is_file()
    assert sorted(p.stem for p in (folder / "runs").glob("*.pt")) == sorted(frame["run"])
    curves = open_study(folder).curves()
    assert len(curves) == 4 and {"run", "arm", "phase", "seed", "epoch", "val_loss", "lr"} <= set(curves.columns)


def test_store_holds_spec_history_timings_and_environment(grid_study):
    folder, _ = grid_study
    study = open_study(folder)
    rec = study.store.records("tiny")[0]
    assert rec.spec["seed"] == rec.seed and rec.spec["test"] is True and rec.history and rec.history[0]["epoch"] == 1
    assert rec.seconds > 0 and rec.train_seconds > 0 and rec.n_params == 784 * 16 + 16 + 16 * 10 + 10
    assert {"torch", "nnstudy", "python", "machine", "host", "optuna", "threads"} <= rec.environment.keys()
    attrs = study.store.study_attrs("tiny")
    assert attrs["nnstudy:spec"]["data"]["per_class"] == 20 and "[scientific]" in attrs["nnstudy:text"]


def test_plain_optuna_reads_each_run_as_the_store_wrote_it(grid_study):
    """The store writes a run's attributes as rows of its own (not through Optuna's per-attribute
    setter): Optuna's own API, as optuna-dashboard uses it, reads back every field of every record,
    with the run's value, state and per-epoch values."""
    import optuna

    folder, _ = grid_study
    records = {r.run: r for r in open_study(folder).store.records("tiny")}
    url = f"sqlite:///{folder / 'study.db'}"
    trials = [t for s in optuna.get_all_study_summaries(url) if s.study_name.startswith("tiny :: ")
              for t in optuna.load_study(study_name=s.study_name, storage=url).trials]
    assert sorted(t.user_attrs["run"] for t in trials) == sorted(records)
    for t in trials:
        rec = records[t.user_attrs["run"]]
        assert t.user_attrs == rec.to_attrs() and t.state == optuna.trial.TrialState.COMPLETE
        assert t.value == rec.metrics["val_accuracy"] and t.intermediate_values  # the study metric per epoch


def test_rerun_trains_nothing_and_gives_the_same_results(grid_study, study_file, capsys):
    folder, _ = grid_study
    before = open_study(folder).results()
    again = run(study_file(GRID), folder)
    assert again.trained == 0 and again.done == 4 and trials_in_db(folder) == {"COMPLETE": 4}
    after = open_study(folder).results()
    assert before.equals(after)


def test_more_seeds_later_reuses_the_runs_already_there(grid_study, study_file):
    folder, _ = grid_study
    more = run(study_file(GRID), folder, overrides=[("study.seeds", 3)])
    assert more.trained == 2 and more.done == 6 and trials_in_db(folder) == {"COMPLETE": 6}
    assert list(open_study(folder).results()["seed"]) == [0, 1, 2, 0, 1, 2]


def test_best_model_is_the_arms_best_final_run_as_a_torch_module(grid_study):
    from nnstudy.data import load

    folder, _ = grid_study
    study = open_study(folder)
    data = load(study.spec.data)
    frame = study.results()
    tanh = frame[frame["arm"] == "model.activation=tanh"]
    best = tanh.loc[tanh["val_accuracy"].idxmax()]
    model = study.best_model("model.activation=tanh")
    assert isinstance(model, torch.nn.Module) and not model.training
    assert type(model.tanh1).__name__ == "Tanh"
    with torch.no_grad():
        acc = (model(data.test_x).argmax(1) == data.test_y).double().mean().item()
    assert acc == pytest.approx(best["test_accuracy"], abs=1e-12)
    run = study.best_run("model.activation=tanh")  # the one rule, which the report's gallery also uses
    assert (run.run, run.seed) == (best["run"], best["seed"])
    assert study.best_model(0) is not None
    with pytest.raises(Exception, match="no arm"):
        study.best_model("model.activation=gelu")


def test_tuned_study_records_the_chosen_rate_and_only_finals_are_tested(tuned_study):
    folder, summary = tuned_study
    assert summary.done == summary.total == 2 * (3 + 2 + 2)
    study = open_study(folder)
    frame = study.results()
    tune, final = frame[frame["phase"] == "tune"], frame[frame["phase"] == "final"]
    assert len(tune) == 6 and len(final) == 4
    assert tune["test_accuracy"].isna().all() and tune["test_loss"].isna().all()  # no tuning run has one
    assert final["test_accuracy"].notna().all() and final["test_loss"].notna().all()
    assert (tune["seed"] == 1000).all() and list(final["seed"]) == [0, 1, 0, 1]
    summary_table = study.summary()
    for arm, rows in tune.groupby("arm"):
        best = rows.loc[rows["val_accuracy"].idxmax(), "optimizer.lr"]
        assert (final[final["arm"] == arm]["optimizer.lr"] == best).all()
        assert summary_table.set_index("arm").loc[arm, "optimizer.lr"] == f"{best:.4g}"
    assert not list((folder / "runs").glob("*.tmp")) and len(list((folder / "runs").glob("*.pt"))) == 4
    status = study.status()
    assert list(status["planned"]) == [3, 2, 2, 3, 2, 2] and (status["to run"] == 0).all()
    untuned = frame[frame["phase"] == "slice"]
    assert len(untuned) == 4 and untuned["test_accuracy"].isna().all()
    tuning_run = next(r for r in study.store.records(study.spec.name) if r.phase == "tune")
    with pytest.raises(StoreError, match=f"run {tuning_run.run} has no saved weights"):
        study.load_model(tuning_run)  # only final runs keep weights: one line, not a TypeError


@pytest.mark.parametrize("pack", [False, True], ids=["alone", "packed"])
def test_a_run_that_raises_is_stored_failed_with_its_error_and_the_study_goes_on(tmp_path, study_file, offline,
                                                                                 monkeypatch, pack):
    loop, packed = sys.modules["nnstudy.train"], sys.modules["nnstudy.train.packed"]
    real_train, real_packed = loop.train, packed.train_packed

    def train(spec, data, **kw):  # tanh runs hit a bug; the others train for real
        if spec.model.activation == "tanh":
            raise FloatingPointError("tanh exploded")
        return real_train(spec, data, **kw)

    def train_packed(specs, data=None, **kw):  # the same bug in a pack of tanh runs fails the pack
        if specs[0].model.activation == "tanh":
            raise FloatingPointError("tanh exploded")
        return real_packed(specs, data, **kw)

    monkeypatch.setattr(loop, "train", train)
    monkeypatch.setattr(packed, "train_packed", train_packed)
    folder = tmp_path / "failing"
    summary = run(study_file(GRID), folder, overrides=[("study.pack", pack)])
    assert (summary.trained, summary.failed, summary.done) == (4, 2, 4)
    frame = open_study(folder).results()
    failed = frame[frame["status"] == "failed"]
    assert list(failed["arm"]) == ["model.activation=tanh"] * 2
    assert (failed["error"] == "FloatingPointError: tanh exploded").all() and failed["test_accuracy"].isna().all()
    assert (frame[frame["status"] == "complete"]["arm"] == "model.activation=relu").all()
    assert trials_in_db(folder) == {"COMPLETE": 2, "FAIL": 2}
    monkeypatch.setattr(loop, "train", real_train)  # failed runs are final: a rerun does not retry them
    assert run(study_file(GRID), folder).trained == 0


def test_retry_failed_runs_the_failed_runs_again_and_keeps_their_first_attempt(tmp_path, study_file, offline,
                                                                              monkeypatch, capsys):
    import importlib

    loop = importlib.import_module("nnstudy.train")
    real_train = loop.train

    def train(spec, data, **kw):
        if spec.model.activation == "tanh":
            raise FloatingPointError("tanh exploded")
        return real_train(spec, data, **kw)

    monkeypatch.setattr(loop, "train", train)
    path, folder = study_file(GRID), tmp_path / "retried"
    assert run(path, folder, overrides=[("study.pack", False)]).failed == 2
    monkeypatch.setattr(loop, "train", real_train)  # the bug is fixed
    assert run(path, folder, overrides=[("study.pack", False)]).trained == 0  # failed runs are not retried alone
    again = run(path, folder, overrides=[("study.pack", False)], retry_failed=True)
    assert (again.trained, again.failed, again.done) == (2, 0, 4)
    frame = open_study(folder).results()
    assert (frame["status"] == "complete").all() and len(frame) == 4 and frame["run"].is_unique
    assert trials_in_db(folder) == {"COMPLETE": 4, "FAIL": 2}  # the failed attempts stay on record in Optuna
    assert command("run", str(path), "--dir", str(folder), "--retry-failed", "--quiet", "--no-report",
                   "--set", "study.pack=false") == 0
    assert "0 trained now" in capsys.readouterr().out  # nothing failed is left to retry


@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_pruned_tuning_runs_stop_early_and_never_win(tmp_path, study_file, offline, pruner):
    text = TUNED.replace("trials = 3", f'trials = 12\npruner = "{pruner}"').replace("parallel = 2", "parallel = 4")
    text = text.replace("epochs = 1", "epochs = 3").replace("log = [0.01, 1.0]", "log = [0.0001, 3.0]")
    text = text.replace("seeds = 2", "seeds = 1").replace('["relu", "tanh"]', '["relu"]')
    folder = tmp_path / pruner
    summary = run(study_file(text), folder)
    frame = open_study(folder).results()
    pruned = frame[frame["status"] == "pruned"]
    assert len(pruned) >= 1 and (pruned["epochs_run"] < 3).all() and (pruned["trial"] >= 4).all()
    assert trials_in_db(folder).get("PRUNED") == len(pruned) and summary.done == 14
    final_lr = frame[frame["phase"] == "final"]["optimizer.lr"].item()
    assert final_lr not in set(pruned["optimizer.lr"])


def test_budget_stops_cleanly_and_a_larger_budget_continues(tmp_path, study_file, offline):
    path, folder = study_file(GRID), tmp_path / "budget"
    first = run(path, folder, overrides=[("study.max_runs", 3)])
    assert first.stopped == "max_runs = 3" and first.done == 3 and trials_in_db(folder) == {"COMPLETE": 3}
    assert run(path, folder, overrides=[("study.max_runs", 3)]).trained == 0
    rest = run(path, folder)
    assert rest.stopped is None and rest.trained == 1 and rest.done == 4


def test_a_second_runner_on_the_same_folder_is_refused(tmp_path, study_file, offline):
    folder = tmp_path / "locked"
    folder.mkdir()
    with FolderLock(folder), pytest.raises(StoreError, match="another nnstudy run"):
        run(study_file(GRID), folder)
    assert not (folder / "study.db").exists()


def test_missing_or_corrupt_database_is_one_line_and_exit_2(grid_study, tmp_path, capsys):
    folder, _ = grid_study
    (folder / "study.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot use the study database"):
        open_study(folder).results()
    for args in (["results", str(folder)], ["status", str(folder)], ["status", str(tmp_path / "nowhere")]):
        code = command(*args)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err


def test_results_command_prints_csv_and_tables(grid_study, capsys):
    folder, _ = grid_study
    assert command("results", str(folder), "--format", "csv", "--phase", "final") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run,arm,phase,trial,seed,status,model.activation,train_loss") and len(lines) == 5
    assert command("status", str(folder)) == 0
    out = capsys.readouterr().out
    assert "model.activation=relu" in out and "planned" in out
    assert command("results", str(folder)) == 0
    assert "model.activation=tanh" in capsys.readouterr().out


def test_read_only_commands_on_an_empty_database_leave_it_byte_identical(tmp_path, study_file, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "study.toml").write_text(GRID)
    (folder / "study.db").write_bytes(b"")  # an empty SQLite file: no tables, no study
    for args in (["status", str(folder)], ["results", str(folder)], ["report", str(folder)]):
        code = command(*args)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "holds no study" in err, err
        assert (folder / "study.db").read_bytes() == b""
    assert sorted(p.name for p in folder.iterdir()) == ["study.db", "study.toml"]


def test_read_only_commands_never_write_to_a_study_database(grid_study, capsys):
    folder, _ = grid_study
    before = (folder / "study.db").read_bytes()
    for args in (["status", str(folder)], ["results", str(folder), "--format", "csv"]):
        assert command(*args) == 0
    capsys.readouterr()
    assert (folder / "study.db").read_bytes() == before


def test_status_after_a_writer_was_killed_mid_transaction_rolls_it_back_and_reads(grid_study, capsys):
    """A runner killed inside a write leaves SQLite's journal "hot": the next reader must roll it back,
    so ``status`` may not insist on read-only there (it does everywhere else)."""
    import subprocess

    folder, _ = grid_study
    before = open_study(folder).results()
    db = folder / "study.db"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sqlite3\n"
        f"c = sqlite3.connect({str(db)!r}); c.execute('pragma cache_size=1')\n"
        "c.execute(\"update trial_user_attributes set value_json = value_json || ' '\")\n"
        "os.kill(os.getpid(), 9)\n")])
    assert killed.returncode == -9 and (folder / "study.db-journal").is_file()
    assert command("status", str(folder)) == 0, capsys.readouterr().err
    assert open_study(folder).results().equals(before)

