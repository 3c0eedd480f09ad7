"""The study store: Optuna's RDB storage (a SQLite file in the study folder, or any URL Optuna takes,
e.g. ``postgresql://...``) holding every run of a study with everything needed to trust and redo it.

Mapping onto Optuna:

* One Optuna study named ``<name>`` carries the study itself in its user attrs: ``nnstudy:spec`` (the
  StudySpec as JSON), ``nnstudy:text`` (the file as written), ``nnstudy:source``, ``nnstudy:versions``.
  The validation split is a pure function of the ``[data]`` table (DataSpec: dataset, fraction,
  split_seed), so the stored spec records it exactly; no index list is needed.
* One Optuna study per (arm, phase), named ``<name> :: <arm label> :: tune`` or ``... :: final``, with
  the study metric's direction. Every run is one trial of it: params = the nuisance values (with
  their distributions, so optuna-dashboard can plot the search); value = the metric on validation
  (a diverged run: the worst value, see ``design.worst_value``); state COMPLETE, PRUNED or FAIL;
  intermediate values = the metric per epoch; user attrs = the fields of ``Record`` (record.py).
* A trial is written once, complete, when its run has finished (``finish``: one transaction, which
  also turns the run's claim to done, so a run finished by two workers is stored once: see
  ``_claims.py``). There are no RUNNING trials to clean up after a crash: a run in flight has a claim
  and no trial, and is claimed again once its worker is dead. A run's identity is its RunSpec hash.

Several processes, on one machine or many, may work on one store at once; a claim decides who trains
what. ``FolderLock`` keeps two runners off one study folder with a SQLite file (a folder is also
where a fresh study is created: that is decided under the lock). Readers (``nnstudy status``) open
the store read-only (``readonly=True``): a SQLite file is opened with ``mode=ro`` (unless a killed
writer left its journal, which SQLite must roll back before any read) and nothing is
created anywhere; a store without the study says so.

URLs: a password is never shown (``redact``; ``scrub`` removes it from any error text). A server
that does not answer is retried for ``NNSTUDY_DB_TIMEOUT`` seconds (default 30: a restarting server
comes back in that time), then it is a StoreError naming it; connecting gives up after the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nnstudy.errors import StoreError
from nnstudy.study._db_errors import original_text, store_error
from nnstudy.study._optuna import quiet_optuna, study_direction
from nnstudy.study._urls import db_timeout, engine_url, redact, scrub, trouble, without_password
from nnstudy.study.record import Record, json_safe

__all__ = ["STORE_FILE", "FolderLock", "Record", "Store", "db_timeout", "default_url", "json_safe", "redact", "scrub",
           "store_error", "without_password"]

SEP = " :: "
#: In a study folder whose store is elsewhere: its URL, without the password.
STORE_FILE = "store.url"


def default_url(folder: str | Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'study.db'}"


def _rdb_storage(url: str, kwargs: dict[str, Any], readonly: bool) -> Any:
    """Optuna's RDBStorage. Two workers starting on a new database at once both create its tables; the
    loser's "already exists" is retried (its second look finds them)."""
    import optuna

    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=readonly)
        except Exception as e:
            text = str(getattr(e, "orig", None) or e).lower()
            if attempt == 2 or not ("already exists" in text or "duplicate key" in text):
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


class Store:
    """A study store at ``url``. ``create=False`` refuses a SQLite file that does not exist;
    ``readonly=True`` writes nothing at all (readers must leave a store as they found it).

    Raises StoreError, naming the store (never its password), when it cannot be used.
    """

    def __init__(self, url: str, create: bool = False, readonly: bool = False, study: str | None = None):

        self.url, self.readonly = url, readonly
        self.study = study  # the study a reader looks for: named when the store holds none
        self.answered = False  # until the server first answers, a refusal is a wrong URL: no waiting
        self.seconds = 0.0  # spent in the database by this process's calls (benchmarks/workers.py)
        self.claims_seconds = 0.0  # of which in claims and heartbeat-table reads (``run``)
        self.where = redact(url)
        self.server = not url.startswith("sqlite")
        self.timeout = db_timeout()
        path = Path(self.where) if url.startswith("sqlite:///") else None
        self.file = path
        if self.server and url.split("?")[0].count("@") > 1:  # SQLAlchemy would take part of it for the host
            raise StoreError(f"{self.where.split('@')[-1]}: the URL has an '@' in its password; write it as %40")
        if path is not None and (readonly or not create) and not path.is_file():
            raise StoreError(f"{self.where}: no study database here (run the study first: nnstudy run STUDY.toml)")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}  # a reader's lock must not fail a writer
        if self.server:
            kwargs = {"pool_pre_ping": True}  # a restarted server: reconnect instead of failing once
            if url.startswith(("postgresql", "postgres")):
                kwargs["connect_args"] = {"connect_timeout": max(1, round(self.timeout))}
        engine = engine_url(url)
        if path is not None and readonly:
            # read-only, unless a writer's journal is there: a writer killed in a transaction leaves it
            # "hot", and SQLite must roll it back before anyone may read (mode=ro would refuse to)
            journal = path.with_name(path.name + "-journal")
            engine = f"sqlite:///file:{path}?mode={'rw' if journal.exists() else 'ro'}&uri=true"
        with self._errors():
            if readonly:
                self._check_has_optuna(engine, kwargs)
            self.storage = self._call(lambda: _rdb_storage(engine, kwargs, readonly))
        self.answered = True
        self._ids: dict[str, int] = {}

    def _check_has_optuna(self, url: str, kwargs: dict[str, Any]) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, **kwargs)
        try:
            tables = self._call(lambda: sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
        if "studies" not in tables or "version_info" not in tables:
            named = f" named {self.study!r}" if self.study else ""
            raise StoreError(f"{self.where}: holds no study{named} (an empty or non-Optuna database)")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Database trouble of any kind (missing, corrupt, unreachable, locked) → one StoreError line:
        what failed, then the database's own words (without the password)."""
        import optuna
        import sqlalchemy.exc

        try:
            with quiet_optuna():
                yield
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError, ImportError) as e:
            kind = trouble(e)
            text = original_text(e)
            if isinstance(e, ImportError) or "No module named" in text:
                what = "no driver for this database (pip install 'nnstudy[postgres]' for PostgreSQL)"
            elif kind == "silent" or (kind == "away" and self.answered):
                what = f"the database did not answer within {self.timeout:g} s (NNSTUDY_DB_TIMEOUT)"
            else:
                raise store_error(self.where, e, self.file, self.url) from None
            raise StoreError(f"{self.where}: {what}: {scrub(text, self.url)}") from None

    def _call(self, fn: Any) -> Any:
        """``fn()``, retried while a database server is away, for up to ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        while True:
            t0 = time.perf_counter()
            try:
                return fn()
            except Exception as e:
                if not (self.server and self.answered and trouble(e) == "away") or time.monotonic() > deadline:
                    raise
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            finally:
                self.seconds += time.perf_counter() - t0

    def run(self, fn: Any) -> Any:
        """``fn()`` with this store's retries and error line (for the claims' SQL; its time is counted
        apart in ``claims_seconds``, and in ``seconds`` with the rest)."""
        t0 = time.perf_counter()
        try:
            with self._errors():
                return self._call(fn)
        finally:
            self.claims_seconds += time.perf_counter() - t0

    @property
    def engine(self) -> Any:
        return self.storage.engine

    # ----------------------------------------------------------------------------- the study itself

    def _study_id(self, name: str, maximize: bool, create: bool = True) -> int | None:
        import optuna

        if name not in self._ids:
            with self._errors():
                try:
                    self._ids[name] = self._call(lambda: self.storage.get_study_id_from_name(name))
                except KeyError:
                    if not create:
                        return None
                    try:
                        self._ids[name] = self._call(lambda: self.storage.create_new_study(
                            [study_direction(maximize)], name))
                    except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
                        self._ids[name] = self._call(lambda: self.storage.get_study_id_from_name(name))
        return self._ids[name]

    def has_study(self, name: str) -> bool:
        return self._study_id(name, True, create=False) is not None

    def save_study(self, spec: Any, text: str) -> None:
        """Record the study (spec JSON, file text, its tables after ``--set``, source, versions) in the
        ``<name>`` study."""
        import optuna
        import torch

        import nnstudy

        sid = self._study_id(spec.name, spec.study.maximize)
        attrs = {
            "nnstudy:spec": spec.model_dump(mode="json", by_alias=True),
            "nnstudy:text": text,
            "nnstudy:raw": spec.raw,
            "nnstudy:source": spec.source,
            "nnstudy:versions": {"nnstudy": nnstudy.__version__, "torch": torch.__version__,
                                 "optuna": optuna.__version__},
        }
        with self._errors():
            for k, v in attrs.items():
                self._call(lambda k=k, v=v: self.storage.set_study_user_attr(sid, k, v))

    def study_attrs(self, name: str) -> dict[str, Any]:
        """The study-level attrs saved by ``save_study``; StoreError when this store has no such study."""
        sid = self._study_id(name, True, create=False)
        if sid is None:
            raise StoreError(f"{self.where}: holds no study named {name!r}")
        with self._errors():
            return self._call(lambda: self.storage.get_study_user_attrs(sid))

    def study_names(self) -> list[str]:
        """The nnstudy studies in this store (Optuna studies with a stored study file)."""
        with self._errors():
            studies = self._call(self.storage.get_all_studies)
        return sorted(s.study_name for s in studies if "nnstudy:spec" in s.user_attrs)

    # ----------------------------------------------------------------------------------------- runs

    def records(self, name: str) -> list[Record]:
        """Every run stored for study ``name``, oldest first (a run retried with ``--retry-failed``:
        its failed attempt first, so that a dict by identity keeps the newest)."""
        prefix = name + SEP

        def read() -> list[Record]:
            out: list[Record] = []
            for s in self.storage.get_all_studies():
                if s.study_name.startswith(prefix):
                    self._ids[s.study_name] = s._study_id
                    out += [Record.from_trial(t) for t in self.storage.get_all_trials(s._study_id, deepcopy=False)
                            if "run" in t.user_attrs]
            return out

        with self._errors():
            out = self._call(read)
        return sorted(out, key=lambda r: r.finished_at)

    def write(self, name: str, record: Record, value: float | None, params: dict[str, Any],
              distributions: dict[str, Any], intermediate: dict[int, float], maximize: bool,
              claims: Any = None) -> bool:
        """Add ``record`` as one finished trial of its (arm, phase) study, in one transaction. With
        ``claims`` (``_claims.Claims``), only while this worker holds the run's claim, which the same
        transaction closes; returns False (nothing stored) when another worker has it now."""
        import json

        import optuna
        from optuna.storages._rdb import models
        from optuna.trial import TrialState

        state = {"pruned": TrialState.PRUNED, "failed": TrialState.FAIL}.get(record.status, TrialState.COMPLETE)
        # Optuna's trial insert takes one query per attribute to see whether it is there already (about
        # 1 ms each; a record has about 25): the trial goes in through Optuna without them, and its
        # attributes, on a trial that was not there a moment ago, as plain rows in the same insert.
        bare = optuna.trial.create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                                         params=params, distributions=distributions,
                                         intermediate_values=intermediate)
        attrs = [(models.TrialUserAttributeModel, record.to_attrs()), (models.TrialSystemAttributeModel,
                                                                        record.system_attrs)]
        sid = self._study_id(SEP.join((name, record.arm, record.phase)), maximize)

        def finish() -> bool:
            # in one transaction: the claim's update (with ``claims``), the trial and its attributes;
            # all commit, or nothing does
            session = self.storage.scoped_session()
            try:
                if claims is not None and not claims.finish(session, record.run):
                    session.rollback()
                    return False
                models.StudyModel.find_or_raise_by_id(sid, session, for_update=True)  # numbers the trial
                trial = self.storage._get_prepared_new_trial(sid, bare, session)
                session.add_all([model(trial_id=trial.trial_id, key=k, value_json=json.dumps(v))
                                 for model, values in attrs for k, v in values.items()])
                session.commit()
                return True
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

        with self._errors():
            return self._call(finish)


class FolderLock:
    """An exclusive ``fcntl`` lock on ``<folder>/.lock`` for the life of a runner: a second runner on
    the same folder gets a StoreError instead of a second writer. Released by the OS if the process
    dies, so a killed runner never leaves a stale lock."""

    def __init__(self, folder: Path):
        self.path = folder / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"{self.path.parent}: another nnstudy run (pid {holder}) is running this study; "
                             "wait for it or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
