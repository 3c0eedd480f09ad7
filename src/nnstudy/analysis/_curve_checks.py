"""Checks on the learning curves of the completed final runs (re-exported by ``checks``).

* ``still_improving``: per run, the least-squares slope of the metric over its last ``window`` + 1
  epochs, signed so that improvement is positive; an arm fires where the mean slope over its seeds
  is above the across-seed standard deviation of the last epoch's value (needs >= 2 seeds) *and* the
  mean last-epoch step is an improvement (a run that plateaued two epochs ago still has a positive
  slope over the window): one more epoch would move the metric more than the seeds disagree, so
  more epochs may change the answer.
* ``overfitting``: per run, the epoch e* of the lowest validation loss; the run overfits where e* is
  before the last epoch, validation loss rose after it and training loss kept falling. An arm fires
  where at least half its runs overfit and their median rise exceeds both the across-seed std of the
  last validation loss and ``rel_tol`` (2%) of the lowest validation loss. ``info`` where early
  stopping restored the best epoch (the reported metrics are unaffected), else ``warning``.
* ``train_loss_rising``: a run's training loss ended above its minimum by more than ``rel_tol`` (10%)
  of that minimum and ``abs_tol`` (0.01) (diverged runs are counted by ``checks.check_runs_lost``).
  A *sustained* rise (two or more epochs past the minimum, in two or more seeds of an arm, or to more
  than twice the minimum) warns:
  the learning rate is likely too high for that arm. One seed whose loss rose in its last epoch only
  is ``info``: adaptive optimizers such as Adam make such one-epoch steps up at sane learning rates,
  so it says nothing about a bug, and the sentence says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nnstudy.analysis import formatting as fmt
from nnstudy.analysis import tabular
from nnstudy.analysis._check import INFO, WARNING, Check
from nnstudy.analysis.context import StudyContext


def _runs(fc: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, pd.DataFrame]]:
    """{arm: {run: its curve rows with finite ``columns``}}, arms in order of appearance."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    if not all(c in fc.columns for c in columns):
        return out
    for run, r in fc.groupby("run", sort=False):
        r = r[np.isfinite(r[columns].to_numpy(dtype=float)).all(axis=1)]
        if len(r):
            out.setdefault(str(r["arm"].iloc[0]), {})[str(run)] = r
    return out


#: At most this many arms are spelled out in one sentence; the rest are counted.
MAX_LISTED = 3


def _listing(clauses: dict[str, str], n_arms: int, subject: str) -> str:
    """``subject for arm: clause`` for one arm, else ``subject in k of n arms (a: clause; b: clause)``,
    the first ``MAX_LISTED`` arms spelled out and the others counted (a sentence a person reads)."""
    if len(clauses) == 1:
        arm, clause = next(iter(clauses.items()))
        return f"{subject} for {arm}: {clause}"
    shown = list(clauses.items())[:MAX_LISTED]
    listed = "; ".join(f"{arm}: {clause}" for arm, clause in shown)
    if len(clauses) > MAX_LISTED:
        listed += f"; and {len(clauses) - MAX_LISTED} more"
    return f"{subject} in {len(clauses)} of {n_arms} arms ({listed})"


def check_still_improving(
    results: pd.DataFrame, curves: pd.DataFrame | None, ctx: StudyContext, window: int = 3
) -> list[Check]:
    """Warn for arms whose metric still improved at the last epoch by more than the seed noise."""
    fc = tabular.final_curves(results, curves)
    candidates = [ctx.metric, ctx.metric.replace("test_", "val_")]
    metric = next((m for m in candidates if m in fc.columns), None)
    if metric is None:
        return []
    sign = 1.0 if ctx.better == "max" else -1.0
    per_arm = _runs(fc, ["epoch", metric])
    hits: dict[str, dict[str, Any]] = {}
    for arm, runs in per_arm.items():
        slopes, steps, lasts, firsts, ends = [], [], [], [], []
        for r in runs.values():
            if len(r) < 2:
                continue
            tail = r.tail(window + 1)
            slope = np.polyfit(tail["epoch"].to_numpy(float), tail[metric].to_numpy(float), 1)[0]
            slopes.append(sign * slope)
            steps.append(sign * float(r[metric].iloc[-1] - r[metric].iloc[-2]))
            lasts.append(float(r[metric].iloc[-1]))
            firsts.append(int(tail["epoch"].iloc[0]))
            ends.append(int(tail["epoch"].iloc[-1]))
        if len(slopes) < 2:  # one seed: no noise to compare with
            continue
        gain, noise = float(np.mean(slopes)), float(np.std(lasts, ddof=1))
        last_step = float(np.mean(steps))
        if gain > noise and last_step > 0:
            hits[arm] = {
                "gain_per_epoch": gain,
                "last_step": last_step,
                "seed_std": noise,
                "n_seeds": len(slopes),
                "from_epoch": int(np.median(firsts)),
                "last_epoch": int(np.median(ends)),
            }
    if not hits:
        return []
    verb = "rising" if sign > 0 else "falling"
    clauses = {
        arm: (
            f"{verb} by {fmt.bare(h['gain_per_epoch'], metric)}{fmt.unit(metric)} per epoch over epochs "
            f"{h['from_epoch']}–{h['last_epoch']}, against a seed-to-seed std of "
            f"{fmt.bare(h['seed_std'], metric)}{fmt.unit(metric)} over {fmt.plural(h['n_seeds'], 'seed')}"
        )
        for arm, h in hits.items()
    }
    sentence = _listing(clauses, len(per_arm), f"The {metric} was still improving at the last epoch")
    sentence += ": more epochs may change the answer."
    return [Check("still_improving", WARNING, sentence, {"metric": metric, "window": window, "arms": hits})]


def _restored(results: pd.DataFrame, runs: list[str]) -> bool:
    """True where every one of ``runs`` reports an earlier best epoch than it ran (early stopping)."""
    if not {"run", "best_epoch", "epochs_run"} <= set(results.columns):
        return False
    rows = results[results["run"].astype(str).isin(runs)]
    return len(rows) == len(runs) and bool((rows["best_epoch"] < rows["epochs_run"]).all())


def check_overfitting(results: pd.DataFrame, curves: pd.DataFrame | None, rel_tol: float = 0.02) -> list[Check]:
    """Flag arms whose validation loss rose after its minimum while training loss kept falling."""
    per_arm = _runs(tabular.final_curves(results, curves), ["epoch", "val_loss", "train_loss"])
    hits: dict[str, dict[str, Any]] = {}
    restored: list[bool] = []
    for arm, runs in per_arm.items():
        rows, lasts, over = [], [], []
        for run, r in runs.items():
            vl, tl, ep = (r[c].to_numpy(float) for c in ("val_loss", "train_loss", "epoch"))
            k = int(np.argmin(vl))  # first epoch with the lowest validation loss
            lasts.append(vl[-1])
            if k < len(vl) - 1 and vl[-1] > vl[k] and tl[-1] < tl[k]:
                over.append(run)
                rows.append((ep[k], ep[-1], vl[k], vl[-1], tl[k], tl[-1]))
        if not over or 2 * len(over) < len(runs):
            continue
        best_ep, last_ep, vmin, vlast, tbest, tlast = np.median(np.array(rows), axis=0)
        noise = float(np.std(lasts, ddof=1)) if len(lasts) > 1 else 0.0
        if vlast - vmin > max(noise, rel_tol * vmin):
            hits[arm] = {
                "overfit_runs": len(over),
                "runs": len(runs),
                "best_epoch": int(best_ep),
                "last_epoch": int(last_ep),
                "val_loss_min": vmin,
                "val_loss_last": vlast,
                "train_loss_at_best": tbest,
                "train_loss_last": tlast,
                "seed_std": noise,
            }
            restored.append(_restored(results, over))
    if not hits:
        return []
    clauses = {
        arm: (
            f"{fmt.count(h['overfit_runs'], h['runs'])} seeds, lowest {fmt.value(h['val_loss_min'], 'loss')} "
            f"at epoch {h['best_epoch']}, then {fmt.value(h['val_loss_last'], 'loss')} at epoch "
            f"{h['last_epoch']} (+{100 * (h['val_loss_last'] / h['val_loss_min'] - 1):.1f}%) while "
            f"training loss fell {fmt.value(h['train_loss_at_best'], 'loss')} → "
            f"{fmt.value(h['train_loss_last'], 'loss')}"
        )
        for arm, h in hits.items()
    }
    sentence = _listing(clauses, len(per_arm), "Validation loss rose after its lowest epoch (overfitting)")
    if all(restored):
        sentence += "; early stopping restored the best epoch, so the reported metrics are unaffected."
        severity = INFO
    else:
        sentence += (
            "; the last epoch's metrics are worse than the best epoch's (medians over seeds): "
            "use early stopping or fewer epochs."
        )
        severity = WARNING
    return [Check("overfitting", severity, sentence, {"rel_tol": rel_tol, "arms": hits})]


def check_train_loss_rising(
    results: pd.DataFrame, curves: pd.DataFrame | None, rel_tol: float = 0.1, abs_tol: float = 0.01
) -> list[Check]:
    """Warn for arms with a final run whose training loss ended well above its minimum."""
    per_arm = _runs(tabular.final_curves(results, curves), ["epoch", "train_loss"])
    hits: dict[str, dict[str, Any]] = {}
    for arm, runs in per_arm.items():
        rising = []
        for r in runs.values():
            tl, ep = r["train_loss"].to_numpy(float), r["epoch"].to_numpy(float)
            k = int(np.argmin(tl))
            if k < len(tl) - 1 and tl[-1] - tl[k] > max(rel_tol * tl[k], abs_tol):
                rising.append((tl[-1] / tl[k] if tl[k] > 0 else np.inf, ep[k], ep[-1], tl[k], tl[-1]))
        if rising:
            _, k_ep, last_ep, tmin, tlast = max(rising)
            hits[arm] = {
                "rising_runs": len(rising),
                "runs": len(runs),
                "min_epoch": int(k_ep),
                "last_epoch": int(last_ep),
                "train_loss_min": tmin,
                "train_loss_last": tlast,
                "sustained": len(rising) > 1 or any(r[2] - r[1] > 1 or r[0] > 2 for r in rising),
            }
    out = []
    for sustained in (True, False):
        mine = {arm: h for arm, h in hits.items() if h["sustained"] == sustained}
        if not mine:
            continue
        clauses = {
            arm: (
                f"{fmt.count(h['rising_runs'], h['runs'])} seeds; worst from {fmt.value(h['train_loss_min'], 'loss')} "
                f"at epoch {h['min_epoch']} to {fmt.value(h['train_loss_last'], 'loss')} at epoch {h['last_epoch']}"
            )
            for arm, h in mine.items()
        }
        if sustained:
            sentence = _listing(clauses, len(per_arm), "Training loss rose over the epochs of final runs")
            sentence += ": the learning rate is likely too high for these arms."
        else:
            sentence = _listing(clauses, len(per_arm), "Training loss of one seed rose in its last epoch only")
            sentence += (": a single one-epoch step up, which stochastic and adaptive optimizers (Adam among them) "
                         "take at sane learning rates; not a sign of a bug or of too high a rate on its own.")
        out.append(Check("train_loss_rising", WARNING if sustained else INFO, sentence,
                         {"rel_tol": rel_tol, "abs_tol": abs_tol, "arms": mine}))
    return out
