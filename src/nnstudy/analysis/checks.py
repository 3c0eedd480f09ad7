"""Methodology checks: what could make a study's answer wrong, each a sentence with its numbers.

Every check returns a list of ``Check`` (empty where there is nothing to say); where the same problem
shows in several arms it is one Check naming them all. Severity ``warning``: the answer may be wrong
or incomplete; ``info``: worth knowing, expected by design (a range search diverging at its high end).

* ``fixed_learning_rate``: a scientific key that changes the best learning rate (``LR_COUPLED``)
  compared at one fixed ``optimizer.lr``: the ranking may be the learning rate's (seed 000's
  batch-size notebook).
* ``not_separable``: P(best beats runner-up) has an interval containing 0.5 (stats.prob_better); with
  a rough count of seeds that would separate them (stats.seeds_needed).
* ``range_edge``: the chosen nuisance value lies within ``EDGE`` of a bound of its numeric range
  (relative position, in log space for ``log`` ranges).
* ``diverged`` / ``failed``: runs per arm and phase; divergence while tuning is ``info``.
* ``at_chance``, ``tuned_worse_than_slice``: runs that learned nothing, and an arm whose tuned value
  lost to its own untuned base value; written in ``_outcome_checks`` and re-exported here.
* ``still_improving``, ``overfitting``, ``train_loss_rising``: from the final runs' curves, written
  in ``_curve_checks`` (see there for the rules) and re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nnstudy.analysis import _curve_checks, _outcome_checks, stats, tabular
from nnstudy.analysis import formatting as fmt
from nnstudy.analysis._check import INFO, WARNING, Check
from nnstudy.analysis.context import StudyContext, split_keys

__all__ = [
    "Check",
    "chosen_values",
    "check_fixed_learning_rate",
    "check_not_separable",
    "check_range_edges",
    "check_at_chance",
    "check_runs_lost",
    "check_tuned_worse_than_slice",
    "check_still_improving",
    "check_overfitting",
    "check_train_loss_rising",
    "run_checks",
]

check_still_improving = _curve_checks.check_still_improving
check_overfitting = _curve_checks.check_overfitting
check_train_loss_rising = _curve_checks.check_train_loss_rising
check_at_chance = _outcome_checks.check_at_chance
check_tuned_worse_than_slice = _outcome_checks.check_tuned_worse_than_slice

#: Chosen values within this fraction of the range's width from a bound are "at the edge".
EDGE = 0.05

#: Scientific keys whose value moves the best learning rate, so comparing them at one fixed rate
#: confounds the two. Exact keys, then top-level prefixes (a key ``model`` or ``model.*``), each with
#: why: the phrase completes "the best learning rate usually changes ...".
LR_COUPLED: dict[str, str] = {
    # the gradient noise scale and the number of steps per epoch both change with the batch
    "batch_size": "with batch size",
    # a longer run tolerates (and a shorter one needs) a different rate
    "epochs": "with the number of epochs",
    # width, depth, activation, init and normalization change the loss surface's curvature
    "model": "with the model",
    # input scaling (normalize) rescales the gradients; the subset size changes steps per epoch
    "data": "with the data's scaling and size",
    # Adam's good rates are ~100x smaller than SGD's; momentum and weight decay scale the step
    "optimizer": "with the optimizer and its settings",
    # a schedule multiplies the rate over time (onecycle's peak is optimizer.lr)
    "schedule": "with the schedule",
}
LR_KEY = "optimizer.lr"


def _lr_reason(key: str) -> str | None:
    if key == LR_KEY:
        return None
    return LR_COUPLED.get(key) or LR_COUPLED.get(key.split(".", 1)[0])


def check_fixed_learning_rate(results: pd.DataFrame, ctx: StudyContext) -> list[Check]:
    """Warn where an LR-coupled scientific key was compared at one fixed ``optimizer.lr``."""
    if LR_KEY in ctx.scientific or LR_KEY in ctx.search_space():
        return []
    coupled = {k: r for k in ctx.scientific if (r := _lr_reason(str(k))) is not None}
    if not coupled:
        return []
    lr = ctx.base.get(LR_KEY)
    finals = tabular.phase_rows(results, "final")
    if LR_KEY in finals.columns:
        used = pd.unique(finals[LR_KEY].dropna())
        if len(used) > 1:  # the runs did use several rates: the rate was not fixed after all
            return []
        if len(used) == 1:
            lr = used[0]
    keys = fmt.join(coupled)
    reasons = fmt.join(dict.fromkeys(coupled.values()))
    n_arms = len(tabular.arms(results)) if "arm" in results.columns else 0
    at = f"one fixed learning rate ({fmt.num(lr)})" if lr is not None else "one fixed learning rate"
    sentence = (
        f"{keys} {'was' if len(coupled) == 1 else 'were'} compared at {at} across {fmt.plural(n_arms, 'arm')}: "
        f"the best learning rate usually changes {reasons}, so the ranking may reflect the learning rate, "
        f'not {keys}. Tune {LR_KEY} per arm ([nuisance] "{LR_KEY}" = {{ log = [lo, hi] }}).'
    )
    return [Check("fixed_learning_rate", WARNING, sentence, {"keys": list(coupled), "lr": lr, "n_arms": n_arms})]


def check_not_separable(
    results: pd.DataFrame, ctx: StudyContext, n_boot: int = stats.N_BOOT, seed: int = 0
) -> list[Check]:
    """Warn where the top two arms cannot be told apart by P(A>B), with a rough seeds-needed estimate.
    In a multi-key study (``split_keys``) the top two are those of each group, never across groups."""
    layout = split_keys(ctx.scientific)
    if layout is None or not all(k in results.columns for k in (layout[0], *layout[1])):
        return _not_separable(results, ctx, n_boot, seed)
    found: dict[str, Check] = {}
    for values, rows in results.groupby(layout[1], sort=False):
        values = values if isinstance(values, tuple) else (values,)
        where = ", ".join(f"{k}={fmt.num(v)}" for k, v in zip(layout[1], values, strict=True))
        for c in _not_separable(rows, ctx, n_boot, seed):
            found[where] = c
    if not found:
        return []
    sentence = " ".join(f"Within {where}: {c.sentence[0].lower()}{c.sentence[1:]}" for where, c in found.items())
    return [Check("not_separable", WARNING, sentence, {"groups": {w: c.numbers for w, c in found.items()}})]


def _not_separable(results: pd.DataFrame, ctx: StudyContext, n_boot: int, seed: int) -> list[Check]:
    ranked = stats.rank_arms(results, ctx.metric, ctx.better)
    if len(ranked) < 2:
        return []
    (a, ma), (b, mb) = ranked[0], ranked[1]
    va, vb = tabular.seed_values(results, ctx.metric, a), tabular.seed_values(results, ctx.metric, b)
    pb = stats.prob_better(va, vb, ctx.better, n_boot=n_boot, seed=seed)
    if pb.decision != stats.UNDECIDED:
        return []
    m = ctx.metric
    diff = ma.mean - mb.mean
    sd = math.sqrt((ma.std**2 + mb.std**2) / 2) if ma.n > 1 and mb.n > 1 else math.nan
    need = stats.seeds_needed(diff, sd)
    if math.isfinite(need):
        need = max(need, pb.min_pairs)
        estimate = (
            f"as a rough estimate (normal approximation, 80% power), about {fmt.num(need)} seeds "
            f"per arm would be needed, from n = 2((z_0.975 + z_0.8) sd / diff)^2"
        )
    elif need == math.inf:
        estimate = "their means are equal, so more seeds would not separate them"
    else:
        estimate = "with one seed per arm there is no spread to estimate how many seeds would be needed"
    few = (
        f" (fewer than the {pb.min_pairs} pairs any verdict needs at 95% confidence)"
        if pb.n_pairs < pb.min_pairs
        else ""
    )
    sentence = (
        f"The top two arms, {a} and {b}, cannot be told apart with {fmt.plural(pb.n_pairs, 'seed pair')}{few}: "
        f"P({a} beats {b}) = {fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, a)}; "
        f"their mean {m} differs by {fmt.bare(abs(diff), m)}{fmt.unit(m)} with a seed-to-seed std of "
        f"{fmt.bare(sd, m)}{fmt.unit(m)}; {estimate}."
    )
    return [
        Check(
            "not_separable",
            WARNING,
            sentence,
            {
                "a": a,
                "b": b,
                "p": pb.p,
                "low": pb.low,
                "high": pb.high,
                "n_pairs": pb.n_pairs,
                "diff": diff,
                "sd": sd,
                "seeds_needed": need,
            },
        )
    ]


def chosen_values(results: pd.DataFrame, ctx: StudyContext) -> pd.DataFrame:
    """The nuisance values each arm settled on: rows arms, columns nuisance keys (NaN: unknown).

    Read from the arm's final runs (they run the chosen configuration); an arm without final runs
    takes its best completed tuning trial by ``ctx.metric``.
    """
    keys = [k for k in ctx.search_space() if k in results.columns]
    finals, tune = tabular.phase_rows(results, "final"), tabular.complete(tabular.phase_rows(results, "tune"))
    table: dict[str, dict[str, Any]] = {}
    for arm in tabular.arms(results):
        rows = finals[finals["arm"] == arm]
        if not len(rows) and ctx.metric in tune.columns:
            t = tune[tune["arm"] == arm].dropna(subset=[ctx.metric])
            if len(t):
                best = t[ctx.metric].idxmax() if ctx.better == "max" else t[ctx.metric].idxmin()
                rows = t.loc[[best]]
        table[arm] = {k: (rows[k].dropna().iloc[0] if rows[k].notna().any() else math.nan) for k in keys}
    return pd.DataFrame.from_dict(table, orient="index", columns=keys)


def _position(v: float, lo: float, hi: float, kind: str) -> float:
    """Where v lies in [lo, hi], 0 at lo and 1 at hi; in log space for log ranges."""
    if kind == "log":
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def check_range_edges(results: pd.DataFrame, ctx: StudyContext, tol: float = EDGE) -> list[Check]:
    """Warn where an arm's chosen nuisance value sits within ``tol`` of a bound of its numeric range."""
    chosen = chosen_values(results, ctx)
    out = []
    for key, (kind, bounds) in ctx.search_space().items():
        if kind == "choice" or key not in chosen.columns:
            continue
        lo, hi = float(bounds[0]), float(bounds[1])
        sides: dict[str, dict[str, float]] = {"bottom": {}, "top": {}}
        for arm, v in chosen[key].items():
            if pd.isna(v) or (kind == "log" and float(v) <= 0):
                continue
            pos = _position(float(v), lo, hi, kind)
            if pos <= tol:
                sides["bottom"][str(arm)] = float(v)
            elif pos >= 1 - tol:
                sides["top"][str(arm)] = float(v)
        space = f"[{fmt.num(lo)}, {fmt.num(hi)}]"
        for side, hits in sides.items():
            if not hits:
                continue
            natural = side == "bottom" and lo == 0  # 0 is a floor (no dropout, no decay): nothing below
            advice = (
                f"0 is the smallest possible {key}, so the best is little or none of it"
                if natural
                else "widen the range"
            )
            if len(hits) == 1:
                arm, v = next(iter(hits.items()))
                sentence = (
                    f"The best {key} for {arm} was {fmt.num(v)}, at the {side} of the searched range {space}: {advice}."
                )
            else:
                listed = ", ".join(f"{arm} → {fmt.num(v)}" for arm, v in hits.items())
                sentence = (
                    f"The best {key} was at the {side} of the searched range {space} in "
                    f"{len(hits)} of {len(chosen)} arms ({listed}): {advice}."
                )
            out.append(
                Check(
                    "range_edge",
                    INFO if natural else WARNING,
                    sentence,
                    {"key": key, "side": side, "low": lo, "high": hi, "tolerance": tol, "chosen": hits},
                )
            )
    return out


def check_runs_lost(results: pd.DataFrame) -> list[Check]:
    """Count diverged and failed runs per arm: final divergence and any failure warn; tuning divergence informs."""
    if "status" not in results.columns or "arm" not in results.columns:
        return []
    out = []
    for phase, label in (("final", "final runs"), ("tune", "tuning trials")):
        rows = tabular.phase_rows(results, phase)
        for status in ("diverged", "failed"):
            per_arm = {}
            for arm in tabular.arms(rows):
                g = rows[rows["arm"] == arm]
                if (k := tabular.status_count(g, status)) > 0:
                    per_arm[arm] = (k, len(g))
            if not per_arm:
                continue
            listed = ", ".join(f"{fmt.count(k, n)} in {arm}" for arm, (k, n) in per_arm.items())
            sentence = f"{label.capitalize()} {status}: {listed}"
            if status == "failed":
                errors = rows.loc[rows["status"] == "failed"].get("error", pd.Series(dtype=str)).dropna()
                if len(errors):
                    sentence += f" (first error: {str(errors.iloc[0])[:100]!r})"
            elif phase == "tune":
                sentence += "; expected where the search reaches high learning rates, and they count as lost trials"
            else:  # the comparison keeps only completed seeds, which flatters an arm that lost some
                sentence += ": the arm's mean and interval rest on the seeds that completed, which flatters it"
            severity = INFO if (phase, status) == ("tune", "diverged") else WARNING
            out.append(
                Check(
                    status,
                    severity,
                    sentence + ".",
                    {
                        "phase": phase,
                        "counts": {a: k for a, (k, _) in per_arm.items()},
                        "runs": {a: n for a, (_, n) in per_arm.items()},
                    },
                )
            )
    return out


def run_checks(
    results: pd.DataFrame,
    curves: pd.DataFrame | None,
    ctx: StudyContext,
    n_boot: int = stats.N_BOOT,
    seed: int = 0,
) -> list[Check]:
    """All checks, warnings first (then in the order listed in this module's docstring)."""
    found = [
        *check_fixed_learning_rate(results, ctx),
        *check_not_separable(results, ctx, n_boot=n_boot, seed=seed),
        *check_range_edges(results, ctx),
        *check_runs_lost(results),
        *check_at_chance(results),
        *check_tuned_worse_than_slice(results, ctx, n_boot=n_boot, seed=seed),
        *check_still_improving(results, curves, ctx),
        *check_overfitting(results, curves),
        *check_train_loss_rising(results, curves),
    ]
    return sorted(found, key=lambda c: c.severity != WARNING)
