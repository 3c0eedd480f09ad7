"""A study's tables, computed from its stored runs in design order (see ``nnstudy.study`` for the schema).

Rows follow the design, not the clock: arm by arm (scientific order), tuning trials then final
seeds. Two stores holding the same runs give the same tables, however and in how many sittings the
runs were trained, which is what makes "the table after a kill and resume equals the uninterrupted
one" a test of equality.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from nnstudy import metrics
from nnstudy.study.design import ArmPlan, PlannedRun
from nnstudy.study.file import StudySpec, render_value
from nnstudy.study.store import Record
from nnstudy.train.result import best_val_epoch

if TYPE_CHECKING:  # pandas is imported by the functions that make frames: a store that does not
    import pandas as pd  # answer is said without it (tests/test_startup.py)

__all__ = ["RESULT_COLUMNS", "arm_summary", "curves_frame", "planned_records", "results_frame", "status_frame",
           "study_times", "write_csv"]

METRIC_COLUMNS = metrics.FINAL
#: Columns of ``results()`` around the hyperparameter columns (one per scientific and nuisance key).
RESULT_COLUMNS = (
    ("run", "arm", "phase", "trial", "seed", "status"),
    (*METRIC_COLUMNS, "epochs_run", "best_epoch", "best_val_epoch", "early_stopped", "train_seconds", "seconds",
     "params", "error"),
)
#: Columns that measure the machine, not the model: the only ones two identical studies may differ in.
TIMING_COLUMNS = ("train_seconds", "seconds")


def planned_records(plans: Sequence[ArmPlan], by_id: dict[str, Record]) -> list[tuple[PlannedRun, Record]]:
    """(planned run, its record) in design order, each identity once (a tuning trial that repeats an
    earlier one's values is the same run, trained and listed once)."""
    out, seen = [], set()
    for plan in plans:
        for run in plan.planned:
            rec = by_id.get(run.identity)
            if rec is not None and run.identity not in seen:
                seen.add(run.identity)
                out.append((run, rec))
    return out


def _keys(spec: StudySpec) -> list[str]:
    return spec.scientific_keys() + (list(spec.nuisance.params) if spec.nuisance else [])


def results_frame(spec: StudySpec, rows: Sequence[tuple[PlannedRun, Record]]) -> pd.DataFrame:
    """One row per stored run: identity, arm, phase, trial, seed, status, hyperparameters, metrics."""
    import pandas as pd

    head, tail = RESULT_COLUMNS
    keys = _keys(spec)
    records = []
    for run, rec in rows:
        row: dict[str, Any] = {"run": rec.run, "arm": run.arm.name, "phase": rec.phase, "trial": rec.slot,
                               "seed": rec.seed, "status": rec.status}
        row.update({k: run.arm.values.get(k, run.params.get(k)) for k in keys})
        row.update({m: _num(rec.metrics.get(m)) for m in METRIC_COLUMNS})
        row.update(epochs_run=rec.epochs_run, best_epoch=rec.best_epoch, best_val_epoch=best_val_epoch(rec.history),
                   early_stopped=rec.early_stopped, train_seconds=rec.train_seconds, seconds=rec.seconds,
                   params=rec.n_params, error=rec.error)
        records.append(row)
    frame = pd.DataFrame(records, columns=[*head, *keys, *tail])
    return frame.astype({"trial": "int64", "seed": "int64", "epochs_run": "int64", "params": "int64"})


def write_csv(frame: pd.DataFrame, path: str | Path | IO[str]) -> None:
    """``frame`` as CSV with every list or table cell (``model``, ``model.hidden``) written as JSON,
    which any CSV reader can parse back; plain values as pandas writes them."""
    def cell(v: Any) -> Any:
        return json.dumps(v) if isinstance(v, (list, tuple, dict)) else v

    frame.map(cell).to_csv(path, index=False)


def study_times(results: pd.DataFrame, records: Sequence[Record]) -> dict[str, float]:
    """The study's durations, one definition for the CLI, the report and the files:

    * ``compute``: the sum of its runs' wall times (``results["seconds"]``: each run's whole training
      call), what the runs cost however many trained at once; also per phase (``phase:tune``, ...).
    * ``wall``: wall-clock time from the first run's start to the last run's end (pauses between
      sittings included).
    * ``runs``: how many runs the sums are over.
    """
    import pandas as pd

    out: dict[str, float] = {"runs": float(len(results))}
    seconds = pd.to_numeric(results["seconds"], errors="coerce")
    out["compute"] = float(seconds.sum())
    for phase in pd.unique(results["phase"]):
        out[f"phase:{phase}"] = float(seconds[results["phase"] == phase].sum())
    spans = []
    for rec in records:
        try:
            end = dt.datetime.fromisoformat(rec.finished_at)
        except (TypeError, ValueError):
            continue
        spans.append((end - dt.timedelta(seconds=float(rec.seconds or 0.0)), end))
    out["wall"] = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds() if spans else math.nan
    return out


def curves_frame(rows: Sequence[tuple[PlannedRun, Record]]) -> pd.DataFrame:
    """One row per run and epoch: run, arm, phase, seed, then the trainer's per-epoch columns (the
    test curve's too where a final run recorded one: ``study.test_curves``)."""
    import pandas as pd

    from nnstudy.train.result import EPOCH_COLUMNS, TEST_CURVE_COLUMNS

    columns = list(EPOCH_COLUMNS)
    if any(c in h for _, rec in rows for h in rec.history[:1] for c in TEST_CURVE_COLUMNS):
        columns += TEST_CURVE_COLUMNS
    records = [{"run": rec.run, "arm": run.arm.name, "phase": rec.phase, "seed": rec.seed,
                **{c: _num(h.get(c)) for c in columns}} for run, rec in rows for h in rec.history]
    return pd.DataFrame(records, columns=["run", "arm", "phase", "seed", *columns])


def status_frame(spec: StudySpec, plans: Sequence[ArmPlan], results: pd.DataFrame) -> pd.DataFrame:
    """Counts per arm and phase: planned runs, each status, and runs still to train."""
    import pandas as pd

    statuses = ["complete", "diverged", "pruned", "failed"]
    rows = []
    for plan in plans:
        t = plan.tuner
        sliced = spec.study.seeds if t is not None and t.nuisance.slice else 0
        for phase, planned in (("tune", t.total if t else 0), ("final", spec.study.seeds), ("slice", sliced)):
            if not planned:
                continue
            mine = results[(results["arm"] == plan.arm.name) & (results["phase"] == phase)]
            counts = {s: int((mine["status"] == s).sum()) for s in statuses}
            if phase == "final" and plan.finals_planned and not any(r.phase == "final" for r in plan.planned):
                planned = 0  # no tuning run completed: there is no configuration to re-run
            rows.append({"arm": plan.arm.name, "phase": phase, "planned": planned, **counts,
                         "to run": max(0, planned - len(mine))})
    return pd.DataFrame(rows, columns=["arm", "phase", "planned", *statuses, "to run"])


def arm_summary(spec: StudySpec, plans: Sequence[ArmPlan], results: pd.DataFrame) -> pd.DataFrame:
    """One row per arm from its complete final runs: the study metric and test accuracy as the
    mean and its 95% t-interval over seeds (as text, exactly as the report writes them: ``97.12%
    [96.80%, 97.44%]``), how many finals, and the chosen nuisance values. Nothing in it depends on
    timing, so a rerun that trains nothing prints the same table."""
    import pandas as pd

    from nnstudy.analysis import formatting as fmt
    from nnstudy.analysis.stats import mean_interval, metric_bounds

    metric = spec.study.metric
    shown = [metric] + [m for m in ("test_accuracy", "test_loss") if m != metric]
    rows = []
    for plan in plans:
        finals = results[(results["arm"] == plan.arm.name) & (results["phase"] == "final")]
        ok = finals[finals["status"] == "complete"]
        row: dict[str, Any] = {"arm": plan.arm.name, "finals": f"{len(ok)}/{spec.study.seeds}"}
        for m in shown:
            mi = mean_interval(pd.to_numeric(ok[m], errors="coerce"), 0.95, metric_bounds(m))
            text = fmt.NA if mi.n == 0 else fmt.value(mi.mean, m)
            row[f"{m} [95% CI]"] = text if math.isnan(mi.low) else f"{text} {fmt.interval(mi.low, mi.high, m)}"
        if spec.nuisance is not None:
            chosen = plan.chosen
            for k in spec.nuisance.params:
                row[k] = "—" if not chosen else _short(chosen[k])
        others = finals[finals["status"] != "complete"]["status"].value_counts()
        row["note"] = ", ".join(f"{n} {s}" for s, n in others.items())
        if plan.finals_planned and plan.chosen is None:
            row["note"] = "no tuning run completed"
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if frame["note"].astype(bool).any() else frame.drop(columns="note")


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else render_value(v)

