"""Builders of synthetic results/curves tables in the study layer's format, with fixed numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest


def _finals(values: Mapping[str, Sequence[float]], metric: str = "val_accuracy", **columns: Any) -> pd.DataFrame:
    """One completed final run per value: arm -> per-seed metric values (seed = position)."""
    rows = [
        {
            "run": f"{arm}/final/{seed}",
            "arm": arm,
            "phase": "final",
            "trial": np.nan,
            "seed": seed,
            "status": "complete",
            metric: float(v),
        }
        for arm, vs in values.items()
        for seed, v in enumerate(vs)
    ]
    frame = pd.DataFrame(rows)
    for key, value in columns.items():
        frame[key] = value
    return frame


def _tune(trials: Mapping[str, Sequence[Mapping[str, Any]]], metric: str = "val_accuracy") -> pd.DataFrame:
    """Tuning rows: arm -> list of {column: value} per trial (status defaults to complete)."""
    rows = []
    for arm, ts in trials.items():
        for i, t in enumerate(ts):
            rows.append(
                {
                    "run": f"{arm}/tune/{i}",
                    "arm": arm,
                    "phase": "tune",
                    "trial": i,
                    "seed": 1000 + i,
                    "status": "complete",
                    **t,
                }
            )
    return pd.DataFrame(rows)


def _curves(results: pd.DataFrame, per_run: Callable[[str, int], Mapping[str, Sequence[float]]]) -> pd.DataFrame:
    """Curves of every final run: per_run(arm, seed) -> {column: per-epoch values} (epochs from 1)."""
    rows = []
    for r in results[results["phase"] == "final"].itertuples(index=False):
        cols = per_run(r.arm, int(r.seed))
        n = len(next(iter(cols.values())))
        for e in range(n):
            rows.append(
                {
                    "run": r.run,
                    "arm": r.arm,
                    "phase": "final",
                    "seed": r.seed,
                    "epoch": e + 1,
                    **{k: float(v[e]) for k, v in cols.items()},
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def finals() -> Callable[..., pd.DataFrame]:
    return _finals


@pytest.fixture
def tune() -> Callable[..., pd.DataFrame]:
    return _tune


@pytest.fixture
def curves_of() -> Callable[..., pd.DataFrame]:
    return _curves
