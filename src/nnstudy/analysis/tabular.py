"""Reading the results and curves tables of the study layer, tolerant of missing optional columns.

Required: ``arm`` and the metric asked for. Optional, with what their absence means:
``phase`` (every row is a final run), ``status`` (every run completed), ``seed`` (values are paired by
their position within an arm), ``run`` (curves cannot be matched to results; all curves are used).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from nnstudy import metrics

#: Final metrics of a run, in the order tables show them.
FINAL_METRICS = metrics.FINAL


def require(frame: pd.DataFrame, columns: Iterable[str], what: str = "results") -> None:
    """Raise ValueError naming the missing columns and the ones there are."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} has no column {', '.join(map(repr, missing))}; it has {', '.join(map(str, frame.columns))}"
        )


def arms(results: pd.DataFrame) -> list[str]:
    """Arm labels in the order they first appear (the study layer writes them in scientific order)."""
    require(results, ["arm"])
    return [str(a) for a in pd.unique(results["arm"].dropna())]


def phase_rows(results: pd.DataFrame, phase: str) -> pd.DataFrame:
    """Rows of one phase; without a ``phase`` column every row counts as ``final``, none as ``tune``."""
    if "phase" not in results.columns:
        return results if phase == "final" else results.iloc[0:0]
    return results[results["phase"] == phase]


def complete(rows: pd.DataFrame) -> pd.DataFrame:
    """Completed runs; without a ``status`` column every run counts as completed."""
    if "status" not in rows.columns:
        return rows
    return rows[rows["status"] == "complete"]


def final_complete(results: pd.DataFrame) -> pd.DataFrame:
    """The runs the comparison rests on: final phase, completed."""
    return complete(phase_rows(results, "final"))


def status_count(rows: pd.DataFrame, status: str) -> int:
    """Number of rows with this status (0 without a ``status`` column)."""
    return int((rows["status"] == status).sum()) if "status" in rows.columns else 0


def seed_values(results: pd.DataFrame, metric: str, arm: str, phase: str = "final") -> pd.Series:
    """Per-seed values of ``metric`` over the completed runs of ``arm`` in ``phase`` (the final runs,
    or the untuned ``slice`` at the base values, which uses the same seeds): a Series indexed by seed.

    Non-finite values are dropped; two runs with the same seed (which the store should not hold) are
    averaged. Without a ``seed`` column the index is the run's position within the arm.
    """
    require(results, ["arm", metric])
    rows = complete(phase_rows(results, phase))
    rows = rows[rows["arm"] == arm]
    values = pd.to_numeric(rows[metric], errors="coerce").astype(float)
    if "seed" in rows.columns:
        s = pd.Series(values.to_numpy(), index=rows["seed"].to_numpy(), name=metric)
        s = s[np.isfinite(s.to_numpy())]
        return s.groupby(level=0, sort=True).mean()
    s = pd.Series(values.to_numpy(), index=np.arange(len(values)), name=metric)
    return s[np.isfinite(s.to_numpy())]


def final_curves(results: pd.DataFrame, curves: pd.DataFrame | None) -> pd.DataFrame:
    """Curves of the completed final runs, sorted by run and epoch (empty where there are none)."""
    if curves is None or len(curves) == 0 or "epoch" not in curves.columns or "arm" not in curves.columns:
        return pd.DataFrame(columns=["run", "arm", "epoch"])
    c = curves
    if "phase" in c.columns:
        c = c[c["phase"] == "final"]
    if "run" in c.columns and "run" in results.columns:
        c = c[c["run"].isin(final_complete(results)["run"])]
    key = "run" if "run" in c.columns else "seed" if "seed" in c.columns else None
    if key is None:  # one curve per arm, nothing to tell runs apart by
        c = c.assign(run=c["arm"])
    elif key == "seed":
        c = c.assign(run=c["arm"].astype(str) + "/" + c["seed"].astype(str))
    return c.sort_values(["run", "epoch"], kind="stable")
