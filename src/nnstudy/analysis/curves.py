"""Learning curves over seeds: the band a report draws around each arm's mean curve."""

from __future__ import annotations

import pandas as pd

from nnstudy.analysis.tabular import final_complete

__all__ = ["CURVE_METRICS", "curve_bands"]

#: Curve columns summarized over seeds, in the figure's panel order.
CURVE_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "test_loss", "test_accuracy")


def curve_bands(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per arm, curve metric and epoch, over the completed final runs: ``mean``, ``low`` (min),
    ``high`` (max) and ``n`` (seeds with that epoch). Arms in the order of ``results``."""
    columns = ["arm", "metric", "epoch", "mean", "low", "high", "n"]
    if curves.empty or results.empty:
        return pd.DataFrame(columns=columns)
    c = curves[curves["run"].isin(final_complete(results)["run"])]
    present = [m for m in CURVE_METRICS if m in c.columns and c[m].notna().any()]
    if c.empty or not present:
        return pd.DataFrame(columns=columns)
    long = c.melt(id_vars=["arm", "epoch"], value_vars=present, var_name="metric").dropna(subset=["value"])
    g = long.groupby(["arm", "metric", "epoch"], sort=False)["value"]
    out = g.agg(mean="mean", low="min", high="max", n="count").reset_index()
    order = {a: i for i, a in enumerate(pd.unique(results["arm"]))}
    return out.sort_values(["arm", "metric", "epoch"], key=lambda s: s.map(order) if s.name == "arm" else s,
                           kind="stable").reset_index(drop=True)[columns]
