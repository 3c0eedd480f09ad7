"""Claims and heartbeats: which worker trains which run, kept in the study's own database.

Two small tables beside Optuna's (created on first use, through Optuna's engine, so the same SQL runs
on SQLite and PostgreSQL):

* ``nnstudy_workers``: one row per worker process (a ``nnstudy run`` or ``nnstudy worker``): its id,
  study, host, pid, when it started and its last beat (the database's clock, so machines whose clocks
  disagree still agree on who is late).
* ``nnstudy_claims``: one row per run ever claimed, keyed by (study, RunSpec identity): who holds it,
  ``state`` (``running``, ``released`` or ``done``), ``attempts`` and the reason of the last release.

A claim is one ``INSERT ... ON CONFLICT DO NOTHING`` (or a conditional ``UPDATE`` of a released or
dead claim): of two workers claiming a run at the same moment exactly one holds the row after it, on
PostgreSQL (row locks) as on SQLite (one writer at a time). A pack's runs are claimed in one
transaction, in identity order (so two packs never deadlock). A result is stored only by the
transaction that turns its claim from ``running`` by this worker to ``done`` (``finish``, in the same
transaction as Optuna's trial row): a slow worker declared dead that finishes anyway is refused, so
every identity is stored once.

A worker beats every ``study.heartbeat`` seconds from a thread. Its claims are released for another
worker once it has not beaten for ``GRACE`` heartbeats, or at once when its row names this host and
its pid is gone (a runner killed on this machine: the next ``nnstudy run`` retries its runs without
waiting). A run is started at most ``1 + study.retries`` times; the claim that would start it once
more records it failed with the reason instead.

Why not Optuna's own heartbeat (``heartbeat_interval``, ``RetryFailedTrialCallback``): it watches
RUNNING trials that ``study.optimize`` asked of a shared sampler, and retries them as new trials of
that sampler. Here the design asks every run from stored results (``design.py``), so the thing to
watch is a run's identity, not a trial; the mechanism is the same (beats in the database, a grace
period, a retry count), keyed by what makes a run the same run.
"""

from __future__ import annotations

import os
import platform
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

__all__ = ["FORGET", "GRACE", "Claims", "WorkerRow"]

#: A worker is dead once it has missed this many heartbeats (Optuna's default grace is 2 intervals;
#: one more absorbs a beat delayed by a busy SQLite file or a loaded machine).
GRACE = 3
#: A dead worker's row is kept this long (seconds) for ``nnstudy status``, then removed by the next to join.
FORGET = 3600.0

_meta = sa.MetaData()
WORKERS = sa.Table(
    "nnstudy_workers", _meta,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("study", sa.String(200), nullable=False, index=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("beat", sa.Float, nullable=False),
)
CLAIMS = sa.Table(
    "nnstudy_claims", _meta,
    sa.Column("study", sa.String(200), primary_key=True),
    sa.Column("run", sa.String(64), primary_key=True),
    sa.Column("worker", sa.String(80), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("claimed", sa.Float, nullable=False),
)


def _now(engine: sa.Engine) -> Any:
    """The database's clock as seconds since the epoch (a float), as a SQL expression."""
    name = engine.dialect.name
    if name == "sqlite":
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")
    if name == "postgresql":
        return sa.literal_column("extract(epoch from clock_timestamp())::float8")
    return sa.func.unix_timestamp(sa.func.now(6))  # MySQL / MariaDB


def _insert_new(engine: sa.Engine, table: sa.Table) -> Any:
    """``INSERT`` that does nothing where the primary key exists (someone else has the run)."""
    name = engine.dialect.name
    if name in ("sqlite", "postgresql"):
        dialect = __import__(f"sqlalchemy.dialects.{name}", fromlist=["insert"])
        return dialect.insert(table).on_conflict_do_nothing()
    return sa.insert(table).prefix_with("IGNORE")


def create_tables(engine: sa.Engine) -> None:
    """The two tables, where missing. Workers creating them at the same moment: the loser of a race
    on one table tries again (the winner may not have created the other one yet), until both exist."""
    for attempt in range(5):
        try:
            _meta.create_all(engine, checkfirst=True)
            return
        except sa.exc.DatabaseError:
            if has_tables(engine):
                return
            if attempt == 4:
                raise


def has_tables(engine: sa.Engine) -> bool:
    return all(sa.inspect(engine).has_table(t.name) for t in (WORKERS, CLAIMS))


def _alive_here(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class WorkerRow:
    """A worker as ``nnstudy status`` shows it. ``age``: seconds since its last beat."""

    id: str
    host: str
    pid: int
    started: float
    age: float
    alive: bool
    running: int


class Claims:
    """This process's claims on the runs of study ``study`` in the database behind ``engine``."""

    def __init__(self, engine: sa.Engine, study: str, heartbeat: float, retries: int,
                 timeout: float | None = None, on_timeout: Any = None):
        """``timeout``: a server store that has not taken a beat for this long calls ``on_timeout()``
        from a watchdog thread (a frozen server hangs the call in flight, which no thread can cut)."""
        self.engine, self.study, self.heartbeat, self.retries = engine, study, heartbeat, retries
        self.timeout, self.on_timeout = timeout, on_timeout
        self.host, self.pid = platform.node(), os.getpid()
        self.me = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.now = _now(engine)
        self.last_beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        create_tables(engine)

    # ------------------------------------------------------------------------------ the worker row

    def join(self) -> None:
        """Register this worker and start beating (a daemon thread). Rows of workers that died long ago
        (silent for ``FORGET`` seconds, or GRACE beats if longer) and hold no run are removed, so that
        ``nnstudy status`` lists the recent ones."""
        with self.engine.begin() as c:
            now = c.execute(sa.select(self.now)).scalar_one()
            holding = sa.select(CLAIMS.c.worker).where(CLAIMS.c.study == self.study, CLAIMS.c.state == "running")
            c.execute(sa.delete(WORKERS).where(
                WORKERS.c.study == self.study, WORKERS.c.beat < now - max(FORGET, GRACE * self.heartbeat),
                WORKERS.c.id.not_in(holding)))
            c.execute(sa.insert(WORKERS).values(id=self.me, study=self.study, host=self.host, pid=self.pid,
                                                started=self.now, beat=self.now))
        self.last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._beat_loop, name="nnstudy-heartbeat", daemon=True)
        self._thread.start()
        if self.timeout is not None:
            threading.Thread(target=self._watch_loop, name="nnstudy-watchdog", daemon=True).start()

    def beat(self) -> None:
        with self.engine.begin() as c:
            if c.execute(sa.update(WORKERS).where(WORKERS.c.id == self.me).values(beat=self.now)).rowcount == 0:
                c.execute(sa.insert(WORKERS).values(id=self.me, study=self.study, host=self.host, pid=self.pid,
                                                    started=self.now, beat=self.now))
        self.last_beat = time.monotonic()

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the database is away for now; the next beat tries again
                pass

    def _watch_loop(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() - self.last_beat > max(self.timeout, 2 * self.heartbeat):
                self.on_timeout()
                return

    def leave(self) -> None:
        """Stop beating, give back the claims still held (not counted as attempts: nothing died) and
        remove this worker's row. Best effort: a database that is gone leaves them to go stale."""
        self._stop.set()
        try:
            with self.engine.begin() as c:
                c.execute(sa.update(CLAIMS).where(CLAIMS.c.study == self.study, CLAIMS.c.worker == self.me,
                                                  CLAIMS.c.state == "running")
                          .values(state="released", attempts=CLAIMS.c.attempts - 1))
                c.execute(sa.delete(WORKERS).where(WORKERS.c.id == self.me))
        except sa.exc.SQLAlchemyError:
            pass

    # ----------------------------------------------------------------------------------- claims

    def dead(self) -> set[str]:
        """Workers holding running claims of this study that are dead: no row, no beat for GRACE
        heartbeats, or a pid on this host that no longer exists."""
        with self.engine.connect() as c:
            holders = {w for (w,) in c.execute(sa.select(CLAIMS.c.worker).distinct().where(
                CLAIMS.c.study == self.study, CLAIMS.c.state == "running", CLAIMS.c.worker != self.me))}
            if not holders:
                return set()
            now = c.execute(sa.select(self.now)).scalar_one()
            rows = c.execute(sa.select(WORKERS.c.id, WORKERS.c.host, WORKERS.c.pid, WORKERS.c.beat)
                             .where(WORKERS.c.id.in_(holders))).all()
        alive = {r.id for r in rows if now - r.beat <= GRACE * self.heartbeat
                 and not (r.host == self.host and not _alive_here(r.pid))}
        return holders - alive

    def claim(self, runs: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """Claim ``runs`` (one transaction): a new run, a released one, or one a dead worker held.
        Returns the runs won, each with its attempt number (1 for a first start) and the reason its
        previous attempt ended. An attempt number above ``1 + retries`` means: record it failed."""
        runs = sorted(set(runs))
        if not runs:
            return {}
        dead = self.dead()
        c_ = CLAIMS.c
        takeable = sa.or_(c_.state == "released", sa.and_(c_.state == "running", c_.worker.in_(dead))) if dead \
            else c_.state == "released"
        with self.engine.begin() as c:
            for run in runs:  # (an INSERT's row count is not reliable on every driver: the SELECT decides)
                c.execute(_insert_new(self.engine, CLAIMS).values(
                    study=self.study, run=run, worker=self.me, state="running", attempts=1, claimed=self.now))
                c.execute(sa.update(CLAIMS).where(c_.study == self.study, c_.run == run, takeable)
                          .values(worker=self.me, state="running", attempts=c_.attempts + 1, claimed=self.now))
            # what this worker holds now (also a claim won by an earlier try whose answer was lost)
            won = c.execute(sa.select(c_.run, c_.attempts, c_.error).where(
                c_.study == self.study, c_.run.in_(runs), c_.worker == self.me, c_.state == "running")).all()
        return {r.run: (r.attempts, r.error) for r in won}

    def release(self, run: str, reason: str) -> None:
        """Give a claimed run back after its attempt died (``reason``); the next claim retries it."""
        with self.engine.begin() as c:
            c.execute(sa.update(CLAIMS).where(CLAIMS.c.study == self.study, CLAIMS.c.run == run,
                                              CLAIMS.c.worker == self.me, CLAIMS.c.state == "running")
                      .values(state="released", error=reason))

    def finish(self, connection: Any, run: str) -> bool:
        """Inside the transaction that stores ``run``'s result: turn this worker's claim to done.
        False (store nothing) when the claim is no longer this worker's."""
        return connection.execute(sa.update(CLAIMS).where(
            CLAIMS.c.study == self.study, CLAIMS.c.run == run, CLAIMS.c.worker == self.me,
            CLAIMS.c.state == "running").values(state="done")).rowcount == 1

    def reopen(self, runs: Iterable[str]) -> None:
        """``--retry-failed``: runs stored as failed may be claimed again, from attempt 1."""
        runs = list(runs)
        if runs:
            with self.engine.begin() as c:
                c.execute(sa.update(CLAIMS).where(CLAIMS.c.study == self.study, CLAIMS.c.run.in_(runs),
                                                  CLAIMS.c.state == "done")
                          .values(state="released", attempts=0, error=None))

    def busy(self) -> dict[str, str]:
        """Runs claimed and running, by any worker (this one included): run → worker."""
        with self.engine.connect() as c:
            return dict(c.execute(sa.select(CLAIMS.c.run, CLAIMS.c.worker).where(
                CLAIMS.c.study == self.study, CLAIMS.c.state == "running")).all())


def workers(engine: sa.Engine, study: str, heartbeat: float) -> list[WorkerRow]:
    """Every registered worker of ``study`` with its runs in flight (read only; [] before any)."""
    if not has_tables(engine):
        return []
    with engine.connect() as c:
        now = c.execute(sa.select(_now(engine))).scalar_one()
        running: dict[str, int] = dict(c.execute(
            sa.select(CLAIMS.c.worker, sa.func.count()).where(CLAIMS.c.study == study, CLAIMS.c.state == "running")
            .group_by(CLAIMS.c.worker)).all())
        rows = c.execute(sa.select(WORKERS).where(WORKERS.c.study == study).order_by(WORKERS.c.started)).all()
    return [WorkerRow(r.id, r.host, r.pid, r.started, now - r.beat, now - r.beat <= GRACE * heartbeat,
                      running.get(r.id, 0)) for r in rows]
