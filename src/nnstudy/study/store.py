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
  intermediate values = the metric per epoch; user attrs = the ``Record`` fields below.
* A trial is written once, complete, when its run has finished (``add_trial``: one transaction).
  There are no RUNNING trials to clean up after a crash: a run that was in flight has no trial and is
  asked again by the replayed design (``design.py``). A run's identity is its RunSpec hash; the
  runner looks it up before training anything, so no identity is ever trained twice.

A single process (the runner) writes; ``FolderLock`` makes a second runner on the same folder refuse.
Readers (``nnstudy status``) may look at any time: SQLite gives them a consistent snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nnstudy.errors import StoreError
from nnstudy.study._optuna import quiet_optuna

__all__ = ["FolderLock", "Record", "Store", "default_url", "json_safe"]

SEP = " :: "


@dataclass
class Record:
    """One finished run as stored (trial user attrs). ``status``: complete, diverged, failed or
    pruned. ``metrics``/``history`` hold None where a number is NaN (JSON has no NaN)."""

    run: str
    arm: str
    phase: str
    slot: int
    stage: int
    seed: int
    params: dict[str, Any]
    spec: dict[str, Any]
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict[str, float | None]] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    epochs_run: int = 0
    best_epoch: int | None = None
    early_stopped: bool = False
    n_params: int = 0
    train_seconds: float = 0.0
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_shape: list[int] = field(default_factory=list)
    num_classes: int = 0
    system_attrs: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""

    def to_attrs(self) -> dict[str, Any]:
        return {k: json_safe(v) for k, v in asdict(self).items() if k != "system_attrs"}

    @classmethod
    def from_trial(cls, trial: Any) -> Record:
        names = {f.name for f in fields(cls)}
        attrs = {k: v for k, v in trial.user_attrs.items() if k in names}
        rungs = {k: v for k, v in trial.system_attrs.items() if k.startswith("completed_rung")}  # ASHA's
        return cls(**attrs, system_attrs=rungs)


def json_safe(v: Any) -> Any:
    """``v`` with every NaN or infinity (nested in dicts and lists) replaced by None: JSON has neither."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return v


def default_url(folder: str | Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'study.db'}"


@contextlib.contextmanager
def _errors(where: str, file: Path | None = None) -> Iterator[None]:
    """Database trouble of any kind (missing, corrupt, unreachable, locked) → one StoreError line."""
    import optuna
    import sqlalchemy.exc

    try:
        with quiet_optuna():
            yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError) as e:
        raise store_error(where, e, file) from None


#: What a database error means, by the words of its original message (SQLite's, psycopg's).
_HAPPENED = (
    ("database or disk is full", "the disk is full"),
    ("no space left", "the disk is full"),
    ("disk quota", "the disk quota is used up"),
    ("readonly database", "the database or its folder is read-only"),
    ("read-only", "the database or its folder is read-only"),
    ("unable to open database file", "the database file cannot be opened or created (its folder is missing or "
                                     "not writable)"),
    ("no such table", "the database file was deleted or replaced while in use"),
    ("disk i/o error", "the disk failed to read or write (or the file was deleted while in use)"),
    ("database is locked", "another process holds the database locked"),
    ("connection refused", "the database server is unreachable"),
    ("could not connect", "the database server is unreachable"),
    ("could not translate host name", "the database server is unreachable"),
    ("server closed the connection", "the database server closed the connection (stopped or restarted?)"),
    ("terminating connection", "the database server closed the connection (stopped or restarted?)"),
    ("connection timeout", "the database server is unreachable"),
    ("timeout expired", "the database server is unreachable"),
)


def store_error(where: str, err: BaseException, file: Path | None = None) -> StoreError:
    """One line for a database failure: what happened (disk full, file deleted, server unreachable),
    then the original error text. Optuna wraps the driver's error in its own ("An exception is raised
    during the commit ..."), which names none of these: the driver's is found under it. ``file``: the
    SQLite file, whose absence is then what happened."""
    original = err
    seen = set()
    while original is not None and id(original) not in seen:  # Optuna's wrapper → SQLAlchemy's → the driver's
        seen.add(id(original))
        if getattr(original, "orig", None) is not None:
            original = original.orig
            break
        nxt = original.__cause__ or original.__context__
        if nxt is None:
            break
        original = nxt
    text = (str(original).strip().splitlines() or [type(original).__name__])[0]
    lower = text.lower()
    happened = next((h for words, h in _HAPPENED if words in lower), None)
    if file is not None and not file.exists():
        happened = "the database file was deleted"
    said = f"{happened}: {text}" if happened else text
    return StoreError(f"{where}: cannot use the study database: {said}")


class Store:
    """A study store at ``url``. ``create=False`` refuses a SQLite file that does not exist (readers
    must not leave an empty database behind)."""

    def __init__(self, url: str, create: bool = False):
        import optuna

        self.url = url
        self.where = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.split("@")[-1]
        self.file = Path(self.where) if url.startswith("sqlite:///") else None
        if url.startswith("sqlite:///") and not create and not Path(self.where).is_file():
            raise StoreError(f"{self.where}: no study database here (run the study first: nnstudy run STUDY.toml)")
        with _errors(self.where, self.file):
            # timeout: a reader holding SQLite's lock for a moment must not fail the writer
            kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
            self.storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        self._ids: dict[str, int] = {}

    # ----------------------------------------------------------------------------- the study itself

    def _study_id(self, name: str, maximize: bool, create: bool = True) -> int | None:
        import optuna

        if name not in self._ids:
            with _errors(self.where, self.file):
                try:
                    self._ids[name] = self.storage.get_study_id_from_name(name)
                except KeyError:
                    if not create:
                        return None
                    d = optuna.study.StudyDirection
                    self._ids[name] = self.storage.create_new_study([d.MAXIMIZE if maximize else d.MINIMIZE], name)
        return self._ids[name]

    def save_study(self, spec: Any, text: str) -> None:
        """Record the study (spec JSON, file text, source, versions) in the ``<name>`` study."""
        import optuna
        import torch

        import nnstudy

        sid = self._study_id(spec.name, spec.study.maximize)
        attrs = {
            "nnstudy:spec": spec.model_dump(mode="json", by_alias=True),
            "nnstudy:text": text,
            "nnstudy:source": spec.source,
            "nnstudy:versions": {"nnstudy": nnstudy.__version__, "torch": torch.__version__,
                                 "optuna": optuna.__version__},
        }
        with _errors(self.where, self.file):
            for k, v in attrs.items():
                self.storage.set_study_user_attr(sid, k, v)

    def study_attrs(self, name: str) -> dict[str, Any]:
        """The study-level attrs saved by ``save_study``; StoreError when this store has no such study."""
        sid = self._study_id(name, True, create=False)
        if sid is None:
            raise StoreError(f"{self.where}: holds no study named {name!r}")
        with _errors(self.where, self.file):
            return self.storage.get_study_user_attrs(sid)

    # ----------------------------------------------------------------------------------------- runs

    def records(self, name: str) -> list[Record]:
        """Every run stored for study ``name``, oldest first."""
        prefix = name + SEP
        out: list[Record] = []
        with _errors(self.where, self.file):
            for s in self.storage.get_all_studies():
                if s.study_name.startswith(prefix):
                    self._ids[s.study_name] = s._study_id
                    out += [Record.from_trial(t) for t in self.storage.get_all_trials(s._study_id, deepcopy=False)
                            if "run" in t.user_attrs]
        return sorted(out, key=lambda r: r.finished_at)

    def write(self, name: str, record: Record, value: float | None, params: dict[str, Any],
              distributions: dict[str, Any], intermediate: dict[int, float], maximize: bool) -> None:
        """Add ``record`` as one finished trial of its (arm, phase) study, in one transaction."""
        import optuna
        from optuna.trial import TrialState

        state = {"pruned": TrialState.PRUNED, "failed": TrialState.FAIL}.get(record.status, TrialState.COMPLETE)
        trial = optuna.trial.create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params=params,
            distributions=distributions,
            user_attrs=record.to_attrs(),
            system_attrs=record.system_attrs,
            intermediate_values=intermediate,
        )
        sid = self._study_id(SEP.join((name, record.arm, record.phase)), maximize)
        with _errors(self.where, self.file):
            self.storage.create_new_trial(sid, template_trial=trial)


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
