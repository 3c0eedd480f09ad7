"""Studies: a question as a file, expanded into runs, trained, stored, and read back as tables.

    >>> spec = load_study("studies/quickstart.toml")          # validates everything, or SpecError
    >>> run_study(spec)                                        # trains what is missing, in runs/quickstart/
    >>> study = open_study("runs/quickstart")                  # or the .toml: its folder runs/<name>/
    >>> study.results(); study.curves(); study.status(); study.best_model("model.activation=tanh")
    >>> study.workers(); study.progress()                     # who is training it now, how fast
    >>> stored_study("postgresql://host/db", "batch-size")    # a study as its file was stored

``Study.results()`` (one row per stored run, in design order: arm by arm, tuning trials then finals;
the schema the analysis and report build on; keep it stable):

=================  ======================================================================
run                the RunSpec identity (16 hex digits): the run's name everywhere
arm                the arm's name, e.g. ``batch_size=32``, ``mlp [100]`` or the study file's own (``Arm``)
phase              ``tune`` (chooses nuisance values; never tested), ``final`` (seeds 0..n-1, tested) or
                   ``slice`` (tuned studies: seeds 0..n-1 at the base nuisance values, untuned, not tested)
trial              the run's number within its (arm, phase): tuning trial, or final seed index
seed               the run's seed (tuning runs: ``nuisance.seed``)
status             ``complete``, ``diverged``, ``pruned`` or ``failed``
<dotted key>       one column per scientific key, then per nuisance key (``optimizer.lr``), with the
                   value the run used (as written in the study file)
train_loss ...     ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``,
                   ``test_accuracy``: final metrics (accuracy as a fraction); NaN where absent: test
                   metrics exist only for complete final runs
epochs_run         epochs trained (fewer than asked: diverged, pruned or early-stopped)
best_epoch         the epoch whose weights the run kept (the last, unless early stopping restored one)
best_val_epoch     the epoch with the highest validation accuracy (None without validation)
early_stopped      bool
train_seconds      time in optimizer steps; ``seconds``: the run's wall time (its whole training call;
                   machine-dependent). A study's compute time is the sum of ``seconds``, its wall
                   time the span from the first run's start to the last run's end (``Study.times``)
params             parameter count
error              failed runs: ``ExceptionType: message``; else None
=================  ======================================================================

``Study.curves()``: one row per run and epoch: ``run``, ``arm``, ``phase``, ``seed``, then the
trainer's ``EPOCH_COLUMNS`` (``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
``val_accuracy``, ``lr``, ``seconds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nnstudy.errors import SpecError, StoreError
from nnstudy.study.design import ArmPlan, plan_arms
from nnstudy.study.file import StudySpec, load_study
from nnstudy.study.results import (
    arm_summary,
    curves_frame,
    planned_records,
    results_frame,
    status_frame,
    study_times,
)
from nnstudy.study.runner import RunSummary, run_study
from nnstudy.study.store import STORE_FILE, Record, Store, default_url

__all__ = ["RunSummary", "Study", "StudySpec", "load_study", "open_study", "run_study", "stored_study"]


class Study:
    """A study folder, read through its store. Each call reads the store afresh, so a handle on a
    study that is still running sees its progress."""

    def __init__(self, spec: StudySpec, folder: Path, storage: str | None = None):
        self.spec, self.folder = spec, folder
        self.store = Store(storage or folder_url(folder), readonly=True, study=spec.name)  # reading never writes

    def _read(self) -> tuple[list[ArmPlan], list[Any]]:
        by_id = {r.run: r for r in self.store.records(self.spec.name)}
        plans = plan_arms(self.spec, by_id.get)
        return plans, planned_records(plans, by_id)

    def results(self) -> pd.DataFrame:
        """One row per stored run (schema in the module docstring)."""
        return results_frame(self.spec, self._read()[1])

    def curves(self) -> pd.DataFrame:
        """One row per run and epoch."""
        return curves_frame(self._read()[1])

    def status(self) -> pd.DataFrame:
        """Per arm and phase: runs planned, complete, diverged, pruned, failed, still to run."""
        plans, rows = self._read()
        return status_frame(self.spec, plans, results_frame(self.spec, rows))

    def workers(self) -> pd.DataFrame:
        """The workers registered on this study's store: host, pid, seconds since their last beat,
        alive (beat within the grace period), runs in flight. Empty before any, or after all left."""
        from nnstudy.study._claims import workers

        rows = self.store.run(lambda: workers(self.store.engine, self.spec.name, self.spec.study.heartbeat))
        return pd.DataFrame([{"host": w.host, "pid": w.pid, "last beat (s ago)": round(w.age, 1),
                              "alive": w.alive, "runs in flight": w.running} for w in rows],
                            columns=["host", "pid", "last beat (s ago)", "alive", "runs in flight"])

    def progress(self, window_minutes: float = 10.0) -> dict[str, Any]:
        """``done``, ``total``, and over the runs finished in the last ``window_minutes``: ``rate``
        (runs per minute, None with fewer than 2) and ``eta_minutes`` for the rest at that rate."""
        import datetime as dt

        plans, rows = self._read()
        done, total = len(rows), sum(p.nominal for p in plans)
        now = dt.datetime.now(dt.timezone.utc)
        ago = sorted((now - dt.datetime.fromisoformat(r.finished_at)).total_seconds() / 60 for _, r in rows
                     if r.finished_at)
        recent = [a for a in ago if a <= window_minutes]
        rate = len(recent) / max(recent[-1], 1e-9) if len(recent) >= 2 else None
        eta = (total - done) / rate if rate else None
        return {"done": done, "total": total, "rate": rate, "eta_minutes": eta, "window_minutes": window_minutes}

    def summary(self) -> pd.DataFrame:
        """Per arm: the metric and test accuracy over the final seeds (mean and 95% interval, as the
        report writes them), chosen values."""
        plans, rows = self._read()
        return arm_summary(self.spec, plans, results_frame(self.spec, rows))

    def times(self) -> dict[str, float]:
        """``compute`` (sum of the runs' wall times) and ``wall`` (first run's start to last run's
        end) in seconds, as the report gives them (``nnstudy.study.results.study_times``)."""
        return study_times(self.results(), self.store.records(self.spec.name))

    def best_model(self, arm: str | int):
        """The weights of ``arm``'s best complete final run (by the study metric, on validation;
        ties: the lowest seed) in a model built by ``nnstudy.models.build_model``, in eval mode.

        ``arm``: its name as the tables show it (``"mlp [100]"``), its index (scientific order, from
        0), or its full label (``"model={kind=mlp, hidden=[100]}"``). Raises SpecError for an unknown
        arm, StoreError when the arm has no complete final run with weights yet.
        """
        import torch

        from nnstudy.models import build_model
        from nnstudy.spec import RunSpec

        arms = self.spec.arms()
        if isinstance(arm, int) and not isinstance(arm, bool):
            found = arms[arm] if 0 <= arm < len(arms) else None
        else:
            found = next((a for a in arms if arm in (a.name, a.label)), None)
        if found is None:
            listed = "; ".join(f"{a.index}: {a.name}" for a in arms)
            raise SpecError(f"{self.folder}: no arm {arm!r}; arms (index: name): {listed}")
        label = found.label
        finals: list[Record] = [r for _, r in self._read()[1]
                                if r.arm == label and r.phase == "final" and r.status == "complete" and r.weights]
        if not finals:
            raise StoreError(f"{self.folder}: arm {found.name!r} has no complete final run with weights yet")
        metric, sign = self.spec.study.metric, (-1.0 if self.spec.study.maximize else 1.0)
        best = min(finals, key=lambda r: (sign * r.metrics[metric], r.seed))
        run = RunSpec.model_validate(best.spec)
        model = build_model(run.model, input_shape=tuple(best.input_shape), num_classes=best.num_classes)
        if Path(best.weights).name != best.weights:  # a store from elsewhere may name any path: only runs/ is ours
            raise StoreError(f"{self.folder}: run {best.run} names weights outside runs/ ({best.weights!r})")
        path = self.folder / "runs" / best.weights
        try:  # a weights file is the user's disk's: any failure to read it is one line, never a traceback
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except FileNotFoundError:
            raise StoreError(f"{path}: the weights of run {best.run} are missing") from None
        except Exception as e:  # noqa: BLE001 (torch raises UnpicklingError, EOFError, RuntimeError, KeyError, ...)
            reason = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
            raise StoreError(f"{path}: cannot read the weights of run {best.run} (corrupt, empty or not a weights "
                             f"file): {type(e).__name__}: {reason}") from None
        return model.eval()

    def __repr__(self) -> str:
        return f"Study({self.spec.name!r}, {str(self.folder)!r})"


def folder_url(folder: str | Path) -> str:
    """The store of a study folder: the URL it records (``store.url``, without a password), else
    its own SQLite file."""
    recorded = Path(folder) / STORE_FILE
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    return default_url(folder)


def study_folder(path: str | Path) -> Path:
    """A study folder from a folder, its ``study.toml``, or a study file (→ ``runs/<name>``)."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.name == "study.toml" and ((p.parent / "study.db").exists() or (p.parent / STORE_FILE).exists()):
        return p.parent
    if p.is_file():
        return Path("runs") / load_study(p).name
    raise StoreError(f"{p}: no such study folder or study file")


def stored_study(storage: str, name: str) -> StudySpec:
    """The study ``name`` as its file was stored in the store at ``storage`` (what ``nnstudy worker``
    runs). Read-only. Raises StoreError when the store cannot be used or holds no such study."""
    import tempfile

    from nnstudy.spec import dump_toml, load_toml

    store = Store(storage, readonly=True, study=name)
    if not store.has_study(name):
        known = store.study_names()
        raise StoreError(f"{store.where}: holds no study named {name!r}"
                         + (f"; studies there: {', '.join(known)}" if known else ""))
    attrs = store.study_attrs(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        if "nnstudy:raw" in attrs:
            path.write_text(dump_toml(attrs["nnstudy:raw"]), encoding="utf-8")
        else:  # stored before the tables were: the file as written
            path.write_text(attrs.get("nnstudy:text", ""), encoding="utf-8")
            path.write_text(dump_toml(load_toml(path)), encoding="utf-8")
        spec = load_study(path)
    spec._source = f"{attrs.get('nnstudy:source') or name} (as stored in {store.where})"
    spec._text = attrs.get("nnstudy:text", "")
    return spec


def open_study(path: str | Path | None = None, storage: str | None = None, name: str | None = None) -> Study:
    """The study in a folder (or of a study file: its folder ``runs/<name>/``), read with the study
    file as last run there (``<folder>/study.toml``, overrides applied) from the store the folder
    records; or, with ``storage`` and ``name`` and no folder, the study as stored there. Read-only.

    Raises StoreError when there is no study there or its database cannot be read.
    """
    if path is None:
        if storage is None or name is None:
            raise StoreError("give a study folder, or --storage URL and --study NAME")
        return Study(stored_study(storage, name), Path("runs") / name, storage)
    folder = study_folder(path)
    if not (folder / "study.toml").is_file():
        raise StoreError(f"{folder}: not a study folder (no study.toml; run the study first: nnstudy run STUDY.toml)")
    return Study(load_study(folder / "study.toml"), folder, storage)
