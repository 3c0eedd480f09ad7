"""``Study``: a study folder read through its store (its tables, workers, progress, best model).
``nnstudy.study``'s docstring gives the tables' schema; ``open_study`` (``handle``) makes one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnstudy.errors import SpecError, StoreError
from nnstudy.study.design import ArmPlan, plan_arms
from nnstudy.study.file import StudySpec
from nnstudy.study.handle import folder_url
from nnstudy.study.results import (
    arm_summary,
    curves_frame,
    planned_records,
    results_frame,
    status_frame,
    study_times,
)
from nnstudy.study.store import Record, Store

if TYPE_CHECKING:
    import pandas as pd


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
        import pandas as pd

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

    def best_run(self, arm: str | int) -> Record:
        """``arm``'s best complete final run with weights: by the study metric, on validation; ties:
        the lowest seed. The one rule for "the best run" (``best_model``, the report's test-set
        gallery and confusion matrix).

        ``arm``: its name as the tables show it (``"mlp [100]"``), its index (scientific order, from
        0), or its full label (``"model={kind=mlp, hidden=[100]}"``). Raises SpecError for an unknown
        arm, StoreError when the arm has no complete final run with weights and a metric yet.
        """
        arms = self.spec.arms()
        if isinstance(arm, int) and not isinstance(arm, bool):
            found = arms[arm] if 0 <= arm < len(arms) else None
        else:
            found = next((a for a in arms if arm in (a.name, a.label)), None)
        if found is None:
            listed = "; ".join(f"{a.index}: {a.name}" for a in arms)
            raise SpecError(f"{self.folder}: no arm {arm!r}; arms (index: name): {listed}")
        metric, sign = self.spec.study.metric, (-1.0 if self.spec.study.maximize else 1.0)
        finals: list[Record] = [r for _, r in self._read()[1]
                                if r.arm == found.label and r.phase == "final" and r.status == "complete"
                                and r.weights and r.metrics.get(metric) is not None
                                and not math.isnan(r.metrics[metric])]
        if not finals:
            raise StoreError(f"{self.folder}: arm {found.name!r} has no complete final run with weights yet")
        return min(finals, key=lambda r: (sign * r.metrics[metric], r.seed))

    def best_model(self, arm: str | int):
        """The weights of ``arm``'s best run (``best_run``: the same arguments and errors) in a
        model built by ``nnstudy.models.build_model``, in eval mode."""
        return self.load_model(self.best_run(arm))

    def load_model(self, record: Record):
        """The weights of the stored run ``record`` (one with ``weights``) in its model, in eval mode.
        Raises StoreError when they are missing, unreadable, or named outside the study's runs/."""
        import torch

        from nnstudy.models import build_model
        from nnstudy.spec import RunSpec

        if not record.weights:  # a tuning run, or a final run stored without its weights
            raise StoreError(f"{self.folder}: run {record.run} has no saved weights")
        run = RunSpec.model_validate(record.spec)
        model = build_model(run.model, input_shape=tuple(record.input_shape), num_classes=record.num_classes)
        if Path(record.weights).name != record.weights:  # a store from elsewhere may name any path: only runs/ is ours
            raise StoreError(f"{self.folder}: run {record.run} names weights outside runs/ ({record.weights!r})")
        path = self.folder / "runs" / record.weights
        try:  # a weights file is the user's disk's: any failure to read it is one line, never a traceback
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except FileNotFoundError:
            raise StoreError(f"{path}: the weights of run {record.run} are missing") from None
        except Exception as e:  # noqa: BLE001 (torch raises UnpicklingError, EOFError, RuntimeError, KeyError, ...)
            reason = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
            raise StoreError(f"{path}: cannot read the weights of run {record.run} (corrupt, empty or not a weights "
                             f"file): {type(e).__name__}: {reason}") from None
        return model.eval()

    def __repr__(self) -> str:
        return f"Study({self.spec.name!r}, {str(self.folder)!r})"
