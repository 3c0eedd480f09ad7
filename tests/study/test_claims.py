"""Claims in the store, on SQLite and on a real PostgreSQL server: a run claimed by two workers at the
same moment has one winner; a result is stored only by the holder of its claim; a dead worker's claim
is taken over and counted as an attempt."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from nnstudy.study._claims import Claims
from nnstudy.study.store import Record, Store

RUNS = [f"{i:016x}" for i in range(40)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claims.db'}"
    return request.getfixturevalue("postgres").new_database()


def _claimer(url: str, start: float, out) -> None:
    """A worker process: at ``start``, claim every run (one pack at a time, 5 runs each), report the wins."""
    store = Store(url, create=True)
    claims = Claims(store.engine, "race", heartbeat=30, retries=2)
    claims.join()
    while time.time() < start:
        time.sleep(0.001)
    won: list[str] = []
    for i in range(0, len(RUNS), 5):
        pack = RUNS[i:i + 5][::-1] if i % 2 else RUNS[i:i + 5]  # packs overlap in other orders too
        won += store.run(lambda p=pack: list(claims.claim(p)))
    out.put(won)


def _results(out, procs) -> list:
    """One result from each process; a process that died without one fails the test at once (its
    traceback is in the captured stderr), not after a long wait."""
    import queue

    got: list = []
    deadline = time.monotonic() + 600  # a hang guard only
    while len(got) < len(procs):
        try:
            got.append(out.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead and time.monotonic() < deadline, f"a process ended with {dead}, before its result"
    return got


def test_a_worker_that_loses_the_race_to_create_one_claims_table_creates_the_other(store_url):
    # the race, made to happen every time: just before this worker creates the workers table, another
    # worker creates it (and has not created the claims table yet); the loser used to give up
    import sqlalchemy as sa

    from nnstudy.study._claims import CLAIMS, WORKERS, create_tables, has_tables

    engine, other = Store(store_url, create=True).engine, sa.create_engine(store_url)
    fired: list[bool] = []

    def the_other_worker_first(table, connection, **kw) -> None:
        if not fired:
            fired.append(True)
            table.create(other)

    sa.event.listen(WORKERS, "before_create", the_other_worker_first)
    try:
        create_tables(engine)
    finally:
        sa.event.remove(WORKERS, "before_create", the_other_worker_first)
        other.dispose()
    assert fired and has_tables(engine) and sa.inspect(engine).has_table(CLAIMS.name)


def test_of_four_workers_claiming_the_same_runs_at_once_exactly_one_wins_each(store_url):
    Store(store_url, create=True)  # tables exist before the race (creating them is not what is tested)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 4.0  # after every process has started and connected
    procs = [ctx.Process(target=_claimer, args=(store_url, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    wins = _results(out, procs)
    for p in procs:
        p.join(timeout=600)
    assert all(p.exitcode == 0 for p in procs)
    everyone = [r for w in wins for r in w]
    assert sorted(everyone) == sorted(RUNS)  # every run won once: none twice, none lost
    assert sum(bool(w) for w in wins) >= 1


def _record(run: str, status: str = "complete") -> Record:
    return Record(run=run, arm="a", phase="final", slot=0, stage=0, seed=0, params={}, spec={}, status=status,
                  metrics={"val_accuracy": 0.5}, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_run_finished_by_a_worker_declared_dead_and_by_its_successor_is_stored_once(store_url):
    store = Store(store_url, create=True)
    slow = Claims(store.engine, "s", heartbeat=0.2, retries=2)  # never joins, so never beats: dead at once
    assert list(slow.claim(["r1"])) == ["r1"]
    fresh = Claims(store.engine, "s", heartbeat=0.2, retries=2)
    fresh.join()
    try:
        assert fresh.claim(["r1"]) == {"r1": (2, None)}  # taken over: its second attempt
        assert store.write("s", _record("r1"), 0.5, {}, {}, {}, True, claims=fresh)
        assert not store.write("s", _record("r1"), 0.5, {}, {}, {}, True, claims=slow)  # too late: refused
        assert not store.write("s", _record("r1"), 0.5, {}, {}, {}, True, claims=fresh)  # and only once
        assert [r.run for r in store.records("s")] == ["r1"]
        assert fresh.claim(["r1"]) == {}  # done: nobody claims it again
    finally:
        fresh.leave()


def test_a_released_run_is_retried_up_to_the_limit_then_given_up_with_its_reason(store_url):
    store = Store(store_url, create=True)
    claims = Claims(store.engine, "s", heartbeat=30, retries=1)
    claims.join()
    try:
        assert claims.claim(["r"]) == {"r": (1, None)}
        claims.release("r", "WorkerDied: killed by SIGKILL")
        assert claims.claim(["r"]) == {"r": (2, "WorkerDied: killed by SIGKILL")}
        claims.release("r", "WorkerDied: killed again")
        attempts, reason = claims.claim(["r"])["r"]  # a third start would exceed 1 + retries: give up
        assert attempts == 3 and reason == "WorkerDied: killed again"
    finally:
        claims.leave()


def test_a_worker_leaving_gives_its_claims_back_uncounted(store_url):
    store = Store(store_url, create=True)
    first = Claims(store.engine, "s", heartbeat=30, retries=2)
    first.join()
    assert list(first.claim(["a", "b"])) == ["a", "b"]
    other = Claims(store.engine, "s", heartbeat=30, retries=2)
    other.join()
    try:
        assert other.claim(["a", "b"]) == {}  # held by a live worker
        first.leave()
        assert other.claim(["a", "b"]) == {"a": (1, None), "b": (1, None)}
    finally:
        other.leave()


def test_a_worker_dead_for_an_hour_is_forgotten_unless_it_still_holds_a_run(store_url):
    import sqlalchemy as sa

    from nnstudy.study._claims import FORGET, WORKERS

    store = Store(store_url, create=True)
    gone, holder = (Claims(store.engine, "s", heartbeat=30, retries=2) for _ in range(2))
    gone.join()
    holder.join()
    holder.claim(["r"])
    for w in (gone, holder):
        w._stop.set()  # they stop beating, and their beats are made an hour and a minute old
        with store.engine.begin() as c:
            c.execute(sa.update(WORKERS).where(WORKERS.c.id == w.me).values(beat=WORKERS.c.beat - FORGET - 60))
    newcomer = Claims(store.engine, "s", heartbeat=30, retries=2)
    newcomer.join()
    try:
        with store.engine.connect() as c:
            ids = {i for (i,) in c.execute(sa.select(WORKERS.c.id))}
        assert ids == {holder.me, newcomer.me}  # the holder's row stays while its run is claimed
    finally:
        newcomer.leave()

