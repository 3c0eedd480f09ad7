"""Checks of runs' outcomes against a reference (re-exported by ``checks``).

* ``at_chance``: a completed run whose last training (or validation) loss is at least ln C, the loss
  of guessing uniformly over C classes, or whose accuracy is within ``CHANCE_MARGIN`` of 1/C: it
  learned nothing (seed 004's learning rate 1 with Adam: 9.81%). Read from whatever metrics the run
  has, so it fires without a validation split too. Final runs and the untuned slice warn; tuning
  trials inform (a search that reaches too high a rate is expected to find some).
* ``tuned_worse_than_slice``: an arm's final runs, at its tuned values, lose to its own untuned
  slice, at the base values with the same seeds, by the verdict rule (``stats.VERDICT_RULE``): the
  tuning chose a worse value than the one it started from, because one run per trial on one seed
  is noisier than the differences it ranks. The sentence gives the rough number of runs per
  configuration (``stats.seeds_needed``) that would tell the two values apart.
"""

from __future__ import annotations

import math

import pandas as pd

from nnstudy.analysis import formatting as fmt
from nnstudy.analysis import stats, tabular
from nnstudy.analysis._check import INFO, WARNING, Check
from nnstudy.analysis.context import StudyContext

#: MNIST, Fashion-MNIST and KMNIST all have 10 classes.
CLASSES = 10
#: An accuracy within this of 1/C (5 points for 10 classes) is "near chance".
CHANCE_MARGIN = 0.05
PHASES = (("final", "final runs", WARNING), ("slice", "untuned slice runs", WARNING), ("tune", "tuning trials", INFO))


def _at_chance(row: pd.Series, classes: int) -> str | None:
    """Why a run is at chance (``train_loss 2.303 >= ln 10``), or None."""
    floor = math.log(classes)
    for col in ("train_loss", "val_loss"):
        v = pd.to_numeric(row.get(col), errors="coerce")
        if pd.notna(v) and math.isfinite(v) and v >= floor:
            return f"{col} {fmt.value(v, col)} >= ln {classes} = {floor:.4f}"
    for col in ("train_accuracy", "val_accuracy", "test_accuracy"):
        v = pd.to_numeric(row.get(col), errors="coerce")
        if pd.notna(v) and v <= 1 / classes + CHANCE_MARGIN:
            return f"{col} {fmt.value(v, col)}, near the {100 / classes:.0f}% of guessing"
    return None


def check_at_chance(results: pd.DataFrame, classes: int = CLASSES) -> list[Check]:
    """Flag completed runs that learned nothing: loss at or above ln C, or accuracy near 1/C."""
    if "arm" not in results.columns:
        return []
    out = []
    for phase, label, severity in PHASES:
        rows = tabular.complete(tabular.phase_rows(results, phase))
        per_arm: dict[str, tuple[int, int, str]] = {}
        for arm in tabular.arms(rows):
            mine = rows[rows["arm"] == arm]
            why = [w for _, r in mine.iterrows() if (w := _at_chance(r, classes)) is not None]
            if why:
                per_arm[arm] = (len(why), len(mine), why[0])
        if not per_arm:
            continue
        listed = "; ".join(f"{fmt.count(k, n)} in {arm} (first: {w})" for arm, (k, n, w) in per_arm.items())
        tail = (
            "; expected where a search reaches learning rates too high (or too low) to learn"
            if phase == "tune"
            else ": these runs learned nothing (a learning rate far too high or too low, or a broken setup), "
            "and an arm's mean over them says nothing about its configuration"
        )
        out.append(Check("at_chance", severity, f"{label.capitalize()} stuck at chance: {listed}{tail}.",
                         {"phase": phase, "classes": classes, "arms": {a: k for a, (k, _, _) in per_arm.items()}}))
    return out


def check_tuned_worse_than_slice(
    results: pd.DataFrame, ctx: StudyContext, n_boot: int = stats.N_BOOT, seed: int = 0
) -> list[Check]:
    """Warn where an arm's tuned best loses to its own untuned slice over paired seeds."""
    if "phase" not in results.columns or not (results["phase"] == "slice").any():
        return []
    m = ctx.metric
    keys = [k for k in ctx.search_space() if k in results.columns]
    tune = tabular.phase_rows(results, "tune")
    clauses, hits = [], {}
    for arm in tabular.arms(results):
        tuned, untuned = (tabular.seed_values(results, m, arm, phase) for phase in ("final", "slice"))
        pb = stats.prob_better(untuned, tuned, ctx.better, n_boot=n_boot, seed=seed)
        if pb.decision != stats.A_BETTER:
            continue
        d = stats.paired_difference(untuned, tuned, n_boot=n_boot, seed=seed)
        sd = math.sqrt((tuned.var(ddof=1) + untuned.var(ddof=1)) / 2) if min(len(tuned), len(untuned)) > 1 else math.nan
        need = stats.seeds_needed(d.mean_diff, sd) if math.isfinite(sd) else math.nan
        finals = tabular.phase_rows(results, "final")
        mine = finals[finals["arm"] == arm]
        values = ", ".join(f"{k} = {fmt.num(mine[k].dropna().iloc[0])}" for k in keys if mine[k].notna().any())
        base = ", ".join(f"{k} = {fmt.num(ctx.base[k])}" for k in keys if k in ctx.base)
        trials = int((tune["arm"] == arm).sum()) if "arm" in tune.columns else 0
        clause = (
            f"{arm} at its tuned {values or 'values'} did worse than at the base {base or 'values'}: "
            f"P(untuned beats tuned) = {fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, 'the untuned run')}, "
            f"mean {m} difference {fmt.diff(d.mean_diff, m)} {fmt.interval(d.low, d.high, m, as_diff=True)}"
        )
        if math.isfinite(need):
            clause += (
                f"; with a seed-to-seed std of {fmt.bare(sd, m)}{fmt.unit(m)} against that difference, telling the "
                f"two values apart takes about {fmt.num(need)} runs of each (normal approximation, 80% power), so "
                f"each of the {fmt.plural(trials, 'tuning trial')} would need about {fmt.num(need)} seeds "
                f"(about {fmt.num(need * trials)} tuning runs)"
            )
        clauses.append(clause)
        hits[arm] = {"p": pb.p, "low": pb.low, "high": pb.high, "n_pairs": pb.n_pairs, "diff": d.mean_diff,
                     "sd": sd, "runs_needed": need, "trials": trials}
    if not clauses:
        return []
    sentence = (
        f"Tuning was too noisy: {'; '.join(clauses)}. One run per trial on one seed could not rank values this "
        f"close: the tuned value is not better than the base value it started from."
    )
    return [Check("tuned_worse_than_slice", WARNING, sentence, {"metric": m, "arms": hits})]
