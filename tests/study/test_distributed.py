"""Several workers on one study in a real PostgreSQL server (started by the tests, on loopback): every
run stored once, the table equal to one process's, a SIGKILLed worker's runs retried, a restarted
server survived; and the store's edges (wrong URL, wrong password, unknown study, a frozen server)."""

from __future__ import annotations

import random
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from studyfiles import TINY

from cli_main import run_main
from nnstudy.study import open_study
from nnstudy.study.results import TIMING_COLUMNS

pytestmark = pytest.mark.slow

#: 3 arms × (12 tuning trials in rounds of 4 + 4 final seeds + 4 untuned seeds) = 60 tiny runs; workers
#: wait on each other at every round (the design asks round r+1 from round r's stored results only).
STUDY = TINY.replace('name = "tiny"', 'name = "many"').replace("seeds = 2", "seeds = 4\nheartbeat = 1") + """
[scientific]
"model.activation" = ["relu", "tanh", "sigmoid"]

[nuisance]
"optimizer.lr" = { log = [0.01, 1.0] }
trials = 12
parallel = 4
"""
TOTAL = 60


def table(folder: Path, storage: str | None = None):
    return open_study(folder, storage).results().drop(columns=list(TIMING_COLUMNS))


def pg(url: str, sql: str) -> list[tuple]:
    """Rows of ``sql`` in the database of ``url``, read straight from the server."""
    db = re.match(r".*@([^:]+):(\d+)/(\w+)", url)
    with psycopg.connect(f"host={db[1]} port={db[2]} user=nnstudy dbname={db[3]}", autocommit=True) as c:
        return c.execute(sql).fetchall()


def stored(url: str) -> int:
    try:
        return pg(url, "select count(*) from trials")[0][0]
    except psycopg.errors.UndefinedTable:
        return 0


def runs_stored(url: str) -> list[str]:
    """The RunSpec identity of every trial in the store (one per trial: duplicates show)."""
    return [v for (v,) in pg(url, "select value_json from trial_user_attributes where key = 'run'")]


def wait_until(condition, what: str, procs=()) -> None:
    """Poll ``condition`` (no deadline: the suite's pytest-timeout guards a hang); fail early if one
    of ``procs`` exits with an error meanwhile."""
    while not condition():
        for p in procs:
            if p.poll() not in (None, 0):
                pytest.fail(f"waiting for {what}: a worker failed: {p.communicate()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(made_once, cli):
    """The study on SQLite in one process, uninterrupted (once for the whole test run): (study file,
    its results table)."""
    def make(root: Path) -> None:
        (root / "many.toml").write_text(STUDY)
        p = cli("run", str(root / "many.toml"), "--dir", "one", "--workers", "1", "--quiet", "--no-report", cwd=root)
        assert p.returncode == 0, p.stderr

    root = made_once("distributed-reference", make)
    return root / "many.toml", table(root / "one")


def start(cli, tmp_path, url, n: int, first: bool = True, text: str = STUDY) -> list:
    """``nnstudy run FILE --storage URL`` in one folder (when ``first``), then ``nnstudy worker`` in
    others, until ``n`` processes work on the study, one training process each."""
    path = tmp_path / "many.toml"
    path.write_text(text)
    procs = []
    if first:
        procs.append(cli.popen("run", str(path), "--dir", "w0", "--storage", url, "--workers", "1", "--quiet",
                               "--no-report", cwd=tmp_path))
        wait_until(lambda: stored(url) > 0, "the first run", procs)  # the study is in the store
    while len(procs) < n:
        procs.append(cli.popen("worker", "--storage", url, "--study", "many", "--dir", f"w{len(procs)}",
                               "--workers", "1", cwd=tmp_path))
    return procs


def finish(procs) -> list[tuple[int, str, str]]:
    """Wait for every process: (exit code, stdout, stderr) each."""
    outs = [p.communicate() for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def check_complete(url: str, folder: Path, reference_table) -> None:
    ids = runs_stored(url)
    assert len(ids) == TOTAL and len(set(ids)) == TOTAL  # every run stored, each once
    assert table(folder).equals(reference_table)  # the folder finds its store (store.url)


def test_three_workers_store_every_run_once_and_the_table_equals_one_process(reference, cli, postgres, tmp_path):
    _, ref = reference
    url = postgres.new_database()
    procs = start(cli, tmp_path, url, 3)
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    worker_lines = [line for _, out, _ in results[1:] for line in out.splitlines() if re.match(r"\[\d+/60\] ", line)]
    trained = [int(m[1]) for _, out, _ in results[1:] for m in re.finditer(r"\((\d+) trained by this worker", out)]
    assert len(worker_lines) == sum(trained)  # a worker prints one line per run it finished
    check_complete(url, tmp_path / "w0", ref)
    assert (tmp_path / "w0" / "store.url").read_text().strip() == url and not (tmp_path / "w0" / "study.db").exists()
    claims = pg(url, "select count(*), max(attempts), min(state), max(state) from nnstudy_claims")[0]
    assert claims == (TOTAL, 1, "done", "done")  # each run claimed once, started once
    assert pg(url, "select count(*) from nnstudy_workers") == [(0,)]  # each worker left when done


def test_the_same_command_started_on_three_machines_at_once_on_a_new_database(cli, postgres, study_file, tmp_path):
    """``nnstudy run FILE --storage URL`` three times at the same moment on an empty database: they race to
    create Optuna's tables, nnstudy's, the study and its arms' studies, and each run is still stored once."""
    from studyfiles import TUNED

    url = postgres.new_database()
    path = study_file(TUNED)
    procs = [cli.popen("run", str(path), "--dir", f"m{i}", "--storage", url, "--workers", "1", "--quiet",
                       "--no-report", cwd=tmp_path) for i in range(3)]
    results = finish(procs)
    for code, _, err in results:
        assert code == 0, err
    trained = sum(int(re.search(r"\((\d+) trained now", out)[1]) for _, out, _ in results)
    ids = runs_stored(url)
    assert len(ids) == len(set(ids)) == trained == 2 * (3 + 2 + 2)


def test_chaos_a_worker_sigkilled_twice_at_random_moments_the_study_completes_every_run_once(
        reference, cli, postgres, tmp_path):
    _, ref = reference
    url = postgres.new_database()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    procs = start(cli, tmp_path, url, 3)
    killed: set[str] = set()
    for k in sorted(rng.sample(range(5, TOTAL - 15), 2)):
        wait_until(lambda k=k: stored(url) >= k, f"{k} runs stored (seed {seed})")
        died: set[str] = set()
        while not died:  # until a kill lands on a worker holding a run
            victim, held = None, []
            while not held:  # a worker holding a run right now, picked at random
                live = [p for p in procs if p.poll() is None]
                assert live, f"every worker ended before the kill (seed {seed})"
                victim = rng.choice(live)
                held = [r for (r,) in pg(url, "select run from nnstudy_claims where state = 'running' "
                                              f"and worker like '%:{victim.pid}:%'")]
                time.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
            victim.communicate()
            # a run the victim stored between the look and the kill was not killed (a busy machine
            # widens that gap); every other run it held died with it and must be retried
            died = {r for (r, state, worker) in pg(url, "select run, state, worker from nnstudy_claims")
                    if r in held and not (state == "done" and f":{victim.pid}:" in worker)}
            procs.append(cli.popen("worker", "--storage", url, "--study", "many", "--dir", f"w{len(procs)}",
                                   "--workers", "1", cwd=tmp_path))  # the machine comes back
        killed |= died
    for code, _, err in finish(procs):
        assert code in (0, -signal.SIGKILL), err
    check_complete(url, tmp_path / "w0", ref)
    attempts = dict(pg(url, "select run, attempts from nnstudy_claims"))
    assert killed and all(attempts[r] >= 2 for r in killed), (seed, killed, attempts)  # retried, then stored


def test_the_database_restarted_mid_study_workers_reconnect_or_exit_clearly_and_a_rerun_finishes(
        reference, cli, postgres, tmp_path):
    path, ref = reference
    url = postgres.new_database()
    procs = start(cli, tmp_path, url, 2)
    wait_until(lambda: stored(url) >= 15, "15 runs stored", procs)
    postgres.restart()
    for code, out, err in finish(procs):
        assert code == 0 or (code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
                             and f"127.0.0.1:{postgres.port}" in err), (code, out, err)
    again = cli("run", str(tmp_path / "many.toml"), "--dir", "w0", "--storage", url, "--workers", "1", "--quiet",
                "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    check_complete(url, tmp_path / "w0", ref)


def test_status_shows_the_workers_their_runs_in_flight_and_the_progress(cli, postgres, tmp_path):
    url = postgres.new_database()
    path = tmp_path / "many.toml"
    # beats 10 minutes apart: the stopped worker stays alive (within 3 beats) and keeps its runs
    path.write_text(STUDY.replace("heartbeat = 1", "heartbeat = 600"))
    frozen = cli.popen("run", str(path), "--dir", "w0", "--storage", url, "--workers", "1", "--quiet",
                       "--no-report", cwd=tmp_path)
    stop_while_holding(url, frozen)  # it holds a pack (one arm's round): that arm cannot go on without it
    other = cli.popen("worker", "--storage", url, "--study", "many", "--dir", "w1", "--workers", "1", cwd=tmp_path)
    try:
        wait_until(lambda: stored(url) >= 10, "10 runs stored", [other])  # the other arms go on without it
        p = cli("status", str(tmp_path / "w0"), cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "workers: 2 alive of 2 registered" in p.stdout and "runs in flight" in p.stdout
        row = next(line for line in p.stdout.splitlines() if re.search(rf"│ +{frozen.pid} +│", line))
        assert re.search(r"│ +True +│ +[1-9]\d* +│$", row.rstrip()), row  # alive, with its runs in flight
        done = int(re.search(r"(\d+) of 60 runs stored", p.stdout)[1])
        assert 10 <= done < TOTAL and re.search(r"runs/minute over the last 10 minutes, about [\d.]+ minutes to go",
                                                p.stdout)
    finally:
        frozen.send_signal(signal.SIGCONT)
    for code, _, err in finish([frozen, other]):
        assert code == 0, err
    ids = runs_stored(url)
    assert len(ids) == TOTAL == len(set(ids))


def stop_while_holding(url: str, proc) -> None:
    """SIGSTOP ``proc`` (the only worker so far) at a moment it holds a claimed run."""
    def holding() -> int:
        return pg(url, "select count(*) from nnstudy_claims where state = 'running'")[0][0] if _has_claims(url) else 0

    while True:
        wait_until(lambda: holding() > 0, "a claim", [proc])
        proc.send_signal(signal.SIGSTOP)
        if holding() > 0:
            return
        proc.send_signal(signal.SIGCONT)  # stopped between two claims: try again


def _has_claims(url: str) -> bool:
    return bool(pg(url, "select count(*) from information_schema.tables where table_name = 'nnstudy_claims'")[0][0])


def test_a_stored_study_with_another_file_is_refused_while_workers_run_it(cli, postgres, tmp_path):
    url = postgres.new_database()
    slow = STUDY.replace("heartbeat = 1", "heartbeat = 600")  # a stopped worker stays alive
    (tmp_path / "many.toml").write_text(slow)
    running = cli.popen("run", str(tmp_path / "many.toml"), "--dir", "w0", "--storage", url, "--workers", "1",
                        "--quiet", "--no-report", cwd=tmp_path)
    stop_while_holding(url, running)  # mid-study, so it cannot finish before the other file comes
    other = tmp_path / "other.toml"
    other.write_text(slow.replace("seeds = 4", "seeds = 5"))
    p = cli("run", str(other), "--dir", "x", "--storage", url, "--quiet", cwd=tmp_path)
    running.kill()
    running.communicate()
    assert p.returncode == 2 and "different study file" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------- store edges


def one_line(p) -> str:
    err = p.stderr.strip()
    assert p.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, (p.returncode, err)
    assert "Traceback" not in p.stdout + p.stderr
    return err


def in_process(capsys, *args: str) -> SimpleNamespace:
    """``nnstudy ARGS`` in this process (``cli_main``), shaped as ``cli``'s result for ``one_line``."""
    code, out, err = run_main(capsys, *args)
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_wrong_url_wrong_password_unknown_study_one_line_exit_2_nothing_created_no_password(
        cli, postgres, study_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = study_file(STUDY)
    host = f"127.0.0.1:{postgres.port}"
    db = postgres.new_database().rsplit("/", 1)[1]
    wrong = "Wr0ngPa55word"
    cases = {
        "postgresql://nnstudy@127.0.0.1:1/nnstudy_test": "127.0.0.1:1",  # nobody listens there
        f"postgresql://secret_user:{wrong}@{host}/{db}": "password authentication failed",
        f"postgresql://{host}/{db}?user=secret_user&password={wrong}": "password authentication failed",
        f"postgresql://nnstudy@{host}/no_such_db": "no_such_db",
    }
    for url, says in cases.items():
        for args in (["run", str(path), "--storage", url, "--quiet"], ["worker", "--storage", url, "--study", "many"],
                     ["status", "--storage", url, "--study", "many"]):
            p = in_process(capsys, *args)
            err = one_line(p)
            assert says in err and wrong not in p.stdout + p.stderr, (args, err)
            assert not (tmp_path / "runs").exists()  # nothing created before the store answered
    known = postgres.new_database()
    assert cli("run", str(path), "--storage", known, "--quiet", "--no-report", "--set", "study.max_runs=1",
               cwd=tmp_path).returncode == 0
    err = one_line(in_process(capsys, "worker", "--storage", known, "--study", "nope"))
    assert "holds no study named 'nope'; studies there: many" in err


def test_an_unreachable_store_is_said_before_the_data_is_loaded(cli, study_file, tmp_path):
    """`nnstudy run --storage URL` asks the server first: with the data missing too, the answer is
    the store's (in about a second, not after torch and the data load), and no folder is created."""
    path = study_file(STUDY)
    cli_env = cli.env
    try:
        cli.env = {**cli_env, "NNSTUDY_DATA": str(tmp_path / "no-data-here")}
        err = one_line(cli("run", str(path), "--storage", "postgresql://nnstudy@127.0.0.1:1/x", "--quiet",
                           cwd=tmp_path))
    finally:
        cli.env = cli_env
    assert "127.0.0.1:1" in err and "no-data-here" not in err, err
    assert not (tmp_path / "runs").exists()


def test_a_password_is_never_printed_and_the_folder_remembers_the_url_without_it(cli, postgres, study_file, tmp_path):
    path = study_file(STUDY.replace("trials = 12", "trials = 4").replace('"relu", "tanh", "sigmoid"', '"relu"'))
    url = postgres.new_database().replace("nnstudy@", f"secret_user:{postgres.SECRET}@")
    p = cli("run", str(path), "--dir", "s", "--storage", url, "--no-report", cwd=tmp_path)  # its workers: the default
    assert p.returncode == 0, p.stderr
    recorded = (tmp_path / "s" / "store.url").read_text().strip()
    assert recorded == url.replace(f":{postgres.SECRET}@", "@")
    env_keep = cli.env
    try:
        cli.env = {**env_keep, "PGPASSWORD": postgres.SECRET}  # the password from the environment, as libpq reads it
        outputs = [cli(*args, cwd=tmp_path) for args in (["status", "s"], ["results", "s"], ["report", "s"])]
    finally:
        cli.env = env_keep
    for q in outputs:
        assert q.returncode == 0, q.stderr
    denied = cli("status", "s", cwd=tmp_path)  # no password anywhere: one line saying so
    one_line(denied)
    everything = p.stdout + p.stderr + "".join(q.stdout + q.stderr for q in [*outputs, denied])
    everything += "".join(f.read_text(errors="replace") for f in (tmp_path / "s").rglob("*") if f.is_file()
                          and f.suffix in (".html", ".md", ".csv", ".toml", ".url", ".json"))
    assert postgres.SECRET not in everything


def test_a_frozen_server_is_an_error_naming_it_within_the_stated_time_not_a_hang(cli, postgres, study_file, tmp_path):
    url = postgres.new_database()
    path = study_file(STUDY)
    env_keep = cli.env
    cli.env = {**env_keep, "NNSTUDY_DB_TIMEOUT": "3"}
    postgres.freeze()
    try:
        for args in (["run", str(path), "--storage", url, "--quiet"], ["status", "--storage", url, "--study", "many"]):
            err = one_line(cli(*args, cwd=tmp_path))
            assert f"127.0.0.1:{postgres.port}" in err and "did not answer within 3 s" in err, err
            assert not (tmp_path / "runs").exists()
    finally:
        postgres.thaw()
        cli.env = env_keep


def test_a_server_frozen_mid_study_stops_the_worker_with_one_line_and_its_runs_go_back(cli, postgres, tmp_path):
    url = postgres.new_database()
    env_keep = cli.env
    cli.env = {**env_keep, "NNSTUDY_DB_TIMEOUT": "3"}
    try:
        procs = start(cli, tmp_path, url, 1)
    finally:
        cli.env = env_keep
    wait_until(lambda: stored(url) >= 3, "3 runs stored", procs)
    postgres.freeze()
    try:
        out, err = procs[0].communicate()  # no deadline: the watchdog must end it (pytest-timeout guards a hang)
    finally:
        postgres.thaw()
    assert procs[0].returncode == 2, (out, err)
    assert err.strip().splitlines()[-1].startswith(f"error: postgresql://nnstudy@127.0.0.1:{postgres.port}/")
    assert "did not answer for 3 s" in err
    again = cli("run", str(tmp_path / "many.toml"), "--dir", "w0", "--storage", url, "--workers", "1", "--quiet",
                "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    ids = runs_stored(url)
    assert len(ids) == TOTAL == len(set(ids))


def test_read_only_commands_on_a_database_without_the_study_write_nothing(cli, postgres, tmp_path):
    url = postgres.new_database()
    err = one_line(cli("status", "--storage", url, "--study", "many", cwd=tmp_path))
    assert "holds no study" in err
    assert pg(url, "select count(*) from information_schema.tables where table_schema = 'public'") == [(0,)]
