"""``nnstudy run`` as a user runs it, in real processes: resume after kill -9, --workers 2 against
--workers 1, a rerun that trains nothing, and the quickstart study on real MNIST."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from studyfiles import TINY

from nnstudy.study import load_study, open_study
from nnstudy.study.design import plan_arms
from nnstudy.study.results import TIMING_COLUMNS

pytestmark = pytest.mark.slow

#: 2 arms × (4 tuning trials in rounds of 2 + 2 seeds) = 12 runs of a few tenths of a second each:
#: long enough to be killed in the middle, short enough to run four times. Runs here pass --no-report
#: (their tests compare tables and stores; the report costs more than the training), except the rerun
#: and the quickstart, which write it as a user's command does.
STUDY = TINY.replace("per_class = 20", "per_class = 50").replace("epochs = 1", "epochs = 2") + """
[scientific]
"model.activation" = ["relu", "tanh"]

[nuisance]
"optimizer.lr" = { log = [0.01, 1.0] }
trials = 4
parallel = 2
"""
TOTAL = 16  # 2 arms × (4 tuning trials + 2 final seeds + 2 untuned slice seeds)
QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.toml"


def table(stdout: str) -> str:
    """The results table ``nnstudy run`` prints: without the progress lines before it (one per run,
    when not on a terminal, and a resumed study's "resuming: ..." line) or the line of counts and
    timing after it."""
    lines = [line for line in stdout.splitlines() if not re.match(r"\[\d+/\d+\] |resuming: ", line)]
    end = next(i for i, line in enumerate(lines) if " runs stored in " in line)
    return "\n".join(lines[:end])


def final_table(folder: Path):
    return open_study(folder).results().drop(columns=list(TIMING_COLUMNS))


def stored_runs(folder: Path, settled: bool = False) -> int:
    """Trials in the study's store. While the runner writes (``settled=False``): read-only and without
    waiting for its lock (a reader that waits can see the study finish meanwhile), 0 when the database
    is missing or busy. Once the runner is gone (``settled=True``): read-write, so that SQLite rolls
    back a transaction a kill -9 cut short, as the next runner would."""
    uri = f"file:{folder / 'study.db'}" + ("" if settled else "?mode=ro")
    try:
        with sqlite3.connect(uri, uri=True, timeout=5 if settled else 0.01) as db:
            return db.execute("select count(*) from trials").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or locked by the writer
        if settled:
            raise
        return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the workers are children of the forkserver, a child of the runner)."""
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    return kids + [d for k in kids for d in descendants(k)]


def workers_of(runner: int) -> list[int]:
    """The worker processes: children of the runner's forkserver."""
    for child in descendants(runner):
        try:
            if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
                return [int(c) for c in Path(f"/proc/{child}/task/{child}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return []


def state(pid: int) -> str:
    """R (running), S (sleeping), ... from /proc; "" once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return ""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.fixture(scope="module")
def reference(made_once, cli):
    """The study run once (for the whole test run), uninterrupted, with one worker: (study file,
    folder, stdout). Read only: a test that runs in the folder copies it first."""
    def make(root: Path) -> None:
        (root / "study.toml").write_text(STUDY)
        p = cli("run", str(root / "study.toml"), "--dir", "ref", "--workers", "1", "--quiet", "--no-report", cwd=root)
        assert p.returncode == 0, p.stderr
        (root / "stdout.txt").write_text(p.stdout)

    root = made_once("cli-reference", make)
    return root / "study.toml", root / "ref", (root / "stdout.txt").read_text()


def test_uninterrupted_run_prints_one_row_per_arm(reference):
    _, folder, out = reference
    assert "model.activation=relu" in table(out) and "model.activation=tanh" in table(out)
    assert f"{TOTAL} of {TOTAL} runs stored" in out and f"{TOTAL} trained now" in out
    assert len(final_table(folder)) == TOTAL


def test_rerun_trains_nothing_and_prints_the_same_table(reference, cli, tmp_path):
    path, ref_folder, out = reference
    folder = tmp_path / "ref"
    shutil.copytree(ref_folder, folder)
    p = cli("run", str(path), "--dir", str(folder), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "0 trained now" in p.stdout and table(p.stdout) == table(out)
    assert stored_runs(folder, settled=True) == TOTAL


#: ``nnstudy run ARGS`` through the CLI's entry point, then whether it started the worker pool's server
#: (multiprocessing's forkserver: a process that imports torch and nnstudy for the workers to fork from).
RUN_THEN_SAY_IF_SERVER = """import sys, multiprocessing.forkserver as fs
from nnstudy.cli import main
try:
    main(["run", *sys.argv[1:]])
except SystemExit as e:
    assert not e.code, e.code
print("worker server started:", fs._forkserver._forkserver_pid is not None)
"""


def test_a_rerun_with_nothing_to_train_starts_no_worker_processes(reference, cli, tmp_path):
    path, folder, _ = reference

    def run(*args: str) -> list[str]:
        p = subprocess.run([sys.executable, "-c", RUN_THEN_SAY_IF_SERVER, str(path), "--workers", "2", "--quiet",
                            "--no-report", *args], cwd=tmp_path, env=cli.env, text=True, capture_output=True)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip().splitlines()

    shutil.copytree(folder, tmp_path / "again")
    out = run("--dir", str(tmp_path / "again"))
    assert f"{TOTAL} of {TOTAL} runs stored" in out[-2] and "0 trained now" in out[-2]
    assert out[-1] == "worker server started: False"
    # the same folder with one seed more: its 4 new runs train in the pool, its server started on first use
    out = run("--dir", str(tmp_path / "again"), "--set", "study.seeds=3")
    assert "4 trained now, 0 failed" in out[-2] and out[-1] == "worker server started: True"


def test_two_workers_give_the_same_numbers_as_one(reference, cli, tmp_path):
    path, folder, out = reference
    p = cli("run", str(path), "--dir", str(tmp_path / "w2"), "--workers", "2", "--quiet", "--no-report", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert table(p.stdout) == table(out)
    assert final_table(tmp_path / "w2").equals(final_table(folder))


def test_kill_9_at_a_random_run_then_resume_equals_the_uninterrupted_study(reference, cli, tmp_path):
    path, ref_folder, ref_out = reference
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    k = rng.randint(1, TOTAL // 3)
    folder = tmp_path / "killed"
    proc = cli.popen("run", str(path), "--dir", str(folder), "--workers", "2", "--quiet", "--no-report", cwd=tmp_path)
    while stored_runs(folder) < k:  # no deadline: a slow machine waits longer (pytest-timeout guards hangs)
        assert proc.poll() is None, f"the runner ended before run {k} (seed {seed}): {proc.communicate()}"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.05))  # runs take ~0.1 s here: kill within the next one or two
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    stored = stored_runs(folder, settled=True)
    assert k <= stored < TOTAL, f"killed too late to test anything (seed {seed}, {stored} stored)"
    # workers (and the forkserver) die with the runner: nobody keeps training. Ten minutes is a hang
    # guard, not a speed requirement: a worker still alive after it has outlived every run by far.
    deadline = time.monotonic() + 600
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and not any(alive(w) for w in workers)

    p = cli("run", str(path), "--dir", str(folder), "--workers", "1", "--quiet", "--no-report", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{TOTAL - stored} trained now" in p.stdout, (seed, stored, p.stdout)
    frame = final_table(folder)
    assert len(frame) == TOTAL and frame["run"].is_unique and stored_runs(folder, settled=True) == TOTAL
    assert frame.equals(final_table(ref_folder)), f"seed {seed}"
    assert table(p.stdout) == table(ref_out)


def test_a_runner_sigkilled_mid_run_on_sqlite_has_its_runs_retried_by_the_next_run(reference, cli, tmp_path):
    """One machine, SQLite, the runner training in its own process (--workers 1): SIGKILL it; the next
    ``nnstudy run`` takes over the dead process's claims at once (its pid is gone from this host) and
    the table equals the uninterrupted one."""
    path, ref_folder, _ = reference
    folder = tmp_path / "killed-alone"
    proc = cli.popen("run", str(path), "--dir", str(folder), "--workers", "1", "--quiet", "--no-report", cwd=tmp_path)
    in_flight: list[str] = []
    while not in_flight:  # a run claimed and training, after at least two are stored
        assert proc.poll() is None, proc.communicate()
        if stored_runs(folder) >= 2:
            try:
                with sqlite3.connect(f"file:{folder / 'study.db'}?mode=ro", uri=True, timeout=0.01) as db:
                    in_flight = [r for (r,) in db.execute("select run from nnstudy_claims where state = 'running'")]
            except sqlite3.OperationalError:
                pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    stored = stored_runs(folder, settled=True)
    with sqlite3.connect(folder / "study.db") as db:  # what the dead runner held: claimed, never stored
        killed = [r for (r,) in db.execute("select run from nnstudy_claims where state = 'running'")]
    assert killed, "the kill fell between two runs: nothing in flight to retry"
    p = cli("run", str(path), "--dir", str(folder), "--workers", "1", "--quiet", "--no-report", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{TOTAL - stored} trained now" in p.stdout and "0 failed" in p.stdout
    assert final_table(folder).equals(final_table(ref_folder))
    with sqlite3.connect(folder / "study.db") as db:
        attempts = dict(db.execute("select run, attempts from nnstudy_claims").fetchall())
    assert all(attempts[r] == 2 for r in killed) and sum(a == 2 for a in attempts.values()) == len(killed)


def test_two_runners_started_on_one_new_folder_at_once_give_one_study_and_delete_nothing(reference, cli, tmp_path):
    """Fresh or not is decided under the folder's lock: the runner that loses the lock says so and
    removes nothing; the winner's study is complete."""
    path, ref_folder, _ = reference
    folder = tmp_path / "raced"
    procs = [cli.popen("run", str(path), "--dir", str(folder), "--workers", "1", "--quiet", "--no-report",
                       cwd=tmp_path) for _ in range(2)]
    results = [(p.communicate(), p.returncode) for p in procs]
    codes = sorted(code for _, code in results)
    assert codes in ([0, 0], [0, 2]), results
    for (_, err), code in results:
        if code == 2:
            assert "another nnstudy run" in err and len(err.strip().splitlines()) == 1
    assert final_table(folder).equals(final_table(ref_folder)) and (folder / "study.toml").is_file()


def test_ctrl_c_stops_cleanly_with_exit_130_and_the_same_command_resumes(reference, cli, tmp_path):
    path, ref_folder, _ = reference
    folder = tmp_path / "interrupted"
    # one run per task (no packs), and the signal sent the moment the runner reports its second stored
    # run (a line per run when its output is not a terminal): the study is then far from done
    # SIGINT at its default, as a shell starts a command: a child inherits an ignored SIGINT, and Python
    # then installs no KeyboardInterrupt handler (the full suite's process had it ignored by then)
    proc = cli.popen("run", str(path), "--dir", str(folder), "--workers", "2", "--set", "study.pack=false",
                     cwd=tmp_path, start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    head = []
    while sum(bool(re.match(r"\[\d+/\d+\] ", line)) for line in head) < 2:
        line = proc.stdout.readline()
        assert line, f"the runner ended before its second run: {head} {proc.communicate()}"
        head.append(line)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    out, err = proc.communicate()
    out = "".join(head) + out
    stored = stored_runs(folder, settled=True)
    assert proc.returncode == 130, err
    assert f"interrupted: {stored} of {TOTAL} runs stored" in out and "run the same command again" in out
    assert len(open_study(folder).results()) == stored == len(pd.read_csv(folder / "results.csv"))
    p = cli("run", str(path), "--dir", str(folder), "--workers", "1", "--quiet", "--no-report", cwd=tmp_path)
    assert p.returncode == 0 and f"{TOTAL - stored} trained now" in p.stdout
    assert final_table(folder).equals(final_table(ref_folder))


def kill_a_training_worker(proc, folder: Path) -> None:
    """SIGKILL one of the runner's worker processes while it trains (running, not waiting for a task)."""
    victim = None
    while victim is None:
        assert proc.poll() is None, proc.communicate()
        victim = next((w for w in workers_of(proc.pid) if stored_runs(folder) >= 1 and state(w) == "R"), None)
        time.sleep(0.005)
    os.kill(victim, signal.SIGKILL)


def run_killing_a_worker(cli, path: Path, tmp_path: Path, name: str, *args: str, tries: int = 5):
    """``nnstudy run`` with two workers, one SIGKILLed while it runs; again in a new folder (up to
    ``tries``) while the kill landed between two tasks (a worker that runs but holds no task: then no run
    died, and the kill tested nothing). Every attempt must finish with exit 0 and every run stored.
    Returns (folder, stdout) of the first attempt whose kill took a run with it."""
    for attempt in range(tries):
        folder = tmp_path / f"{name}-{attempt}"
        proc = cli.popen("run", str(path), "--dir", str(folder), "--workers", "2", "--no-report", *args, cwd=tmp_path)
        kill_a_training_worker(proc, folder)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        frame = open_study(folder).results()
        assert len(frame) == TOTAL and frame["run"].is_unique, frame
        if "WorkerDied" in out or (frame["status"] == "failed").any():
            return folder, out
    pytest.fail(f"in {tries} tries no SIGKILL landed while a worker held a task")


def test_a_worker_killed_mid_run_fails_that_run_and_the_study_goes_on(reference, cli, tmp_path):
    """With no retries left (study.retries = 0): the killed worker's runs are stored failed with why."""
    path, _, _ = reference
    folder, out = run_killing_a_worker(cli, path, tmp_path, "worker-killed", "--quiet", "--set", "study.retries=0")
    frame = open_study(folder).results()
    failed = frame[frame["status"] == "failed"]
    assert len(failed) >= 1 and failed["error"].str.startswith("WorkerDied: the worker process was killed by").all()
    # the victim's task: one run, or a pack whose every run is failed and says how many it held
    sizes = {r.environment.get("packed", 1) for r in open_study(folder).store.records("tiny") if r.status == "failed"}
    assert sizes == {len(failed)}, sizes
    assert len(frame) == TOTAL and frame["run"].is_unique  # the failed runs are final; every other run ran
    assert f"{TOTAL} of {TOTAL} runs stored" in out and f"{len(failed)} failed" in out


def test_a_worker_killed_mid_run_is_retried_and_the_table_equals_the_uninterrupted_one(reference, cli, tmp_path):
    path, ref_folder, _ = reference
    folder, out = run_killing_a_worker(cli, path, tmp_path, "worker-retried")
    assert "WorkerDied: the worker process was killed by SIGKILL" in out and "retrying (attempt 2 of 3)" in out
    assert f"{TOTAL} of {TOTAL} runs stored" in out and "0 failed" in out
    assert final_table(folder).equals(final_table(ref_folder))
    with sqlite3.connect(folder / "study.db") as db:  # the killed runs' claims: started twice, stored once
        attempts = dict(db.execute("select run, attempts from nnstudy_claims").fetchall())
    assert len(attempts) == TOTAL and 2 in attempts.values() and set(attempts.values()) <= {1, 2}


def test_quickstart_finishes_on_real_mnist_and_a_rerun_trains_nothing(cli, tmp_path):
    first = cli("run", str(QUICKSTART), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    spec = load_study(QUICKSTART)
    n = sum(p.nominal for p in plan_arms(spec, {}.get))  # 2 arms × (trials + finals + untuned slice)
    assert n == 2 * (spec.trials + 2 * spec.study.seeds)
    assert f"{n} of {n} runs stored in runs/quickstart ({n} trained now, 0 failed" in first.stdout
    frame = final_table(tmp_path / "runs" / "quickstart")
    finals = frame[frame["phase"] == "final"]
    assert len(finals) == 2 * spec.study.seeds and (finals["test_accuracy"] > 0.85).all()
    second = cli("run", str(QUICKSTART), cwd=tmp_path)
    assert second.returncode == 0 and "0 trained now" in second.stdout
    assert f"resuming: {n} of {n} runs already stored, 0 to train" in second.stdout
    assert table(second.stdout) == table(first.stdout)
