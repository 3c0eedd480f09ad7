"""Findings: a study's answer as a short ranked list of sentences, each with its numbers.

Order: (1) the answer: the best arm by the study's metric with its mean and 95% t-interval over
seeds, and whether it beats the runner-up by the verdict rule (``stats.VERDICT_RULE``), with the
interval and the paired mean difference (``stats``); in a study of several scientific keys the answer
is one per group: the winner of the numeric key within each combination of the others
(``split_keys``: which depth wins at each parameter budget), never one winner across the groups,
then a line per group; (2) the best arm's test score, where final runs
were tested; (3) the spread of the arms' means against the seed-to-seed noise; (4) where the study ran
the untuned slice (every arm at the base nuisance values, the same seeds), every arm's score there and
its best against its worst with the paired difference: the comparison at one fixed learning rate, beside
the tuned one of (1); (5) the nuisance values each arm settled on, where they were tuned; (6) for a
family of several comparisons, a note that each verdict holds at 95% on its own, not jointly
(multiplicity); (7) the methodology checks' warnings (``checks``).

No sentence goes without a number: accuracies read as percents with 2 decimals, losses with 4
significant digits, probabilities with 2 decimals, intervals as ``[low, high]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nnstudy.analysis import formatting as fmt
from nnstudy.analysis import stats, tabular
from nnstudy.analysis._check import WARNING, Check
from nnstudy.analysis.checks import chosen_values, run_checks
from nnstudy.analysis.context import StudyContext, split_keys


@dataclass(frozen=True)
class Finding:
    """One ranked sentence. ``kind``: answer, group, multiplicity, test, spread, slice, nuisance, or
    ``check:<name>``."""

    rank: int
    kind: str
    sentence: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _score(mi: stats.MeanInterval, metric: str) -> str:
    """``97.85% [97.61%, 98.09%] over 5 seeds``, or ``97.85% (1 seed, no interval)``."""
    if mi.n < 2:
        return f"{fmt.value(mi.mean, metric)} ({fmt.plural(mi.n, 'seed')}, no interval)"
    return f"{fmt.value(mi.mean, metric)} {fmt.interval(mi.low, mi.high, metric)} over {fmt.plural(mi.n, 'seed')}"


def _answer(results: pd.DataFrame, ctx: StudyContext, n_boot: int, seed: int) -> tuple[str, dict[str, Any]]:
    m = ctx.metric
    ranked = stats.rank_arms(results, ctx.metric, ctx.better)
    if not ranked:
        finals = tabular.phase_rows(results, "final")
        n_arms = len(tabular.arms(results)) if "arm" in results.columns else 0
        return (
            f"No final run has a {m} yet (0 of {len(finals)} final runs completed across "
            f"{fmt.plural(n_arms, 'arm')}), so there is no answer.",
            {"finals": len(finals)},
        )
    best, mb = ranked[0]
    head = f"{best} has the best mean {m}: {_score(mb, m)}"
    numbers: dict[str, Any] = {"best": best, "mean": mb.mean, "low": mb.low, "high": mb.high, "n": mb.n}
    if len(ranked) == 1:
        return head + "; no other arm has completed final runs to compare it with.", numbers
    ru, mr = ranked[1]
    va, vb = tabular.seed_values(results, m, best), tabular.seed_values(results, m, ru)
    pb = stats.prob_better(va, vb, ctx.better, n_boot=n_boot, seed=seed)
    pd_ = stats.paired_difference(va, vb, n_boot=n_boot, seed=seed)
    evidence = (
        f"P({best} beats {ru}) = {fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, best)}, "
        f"mean difference {fmt.diff(pd_.mean_diff, m)} "
        f"{fmt.interval(pd_.low, pd_.high, m, as_diff=True)}"
    )
    runner = f"the runner-up {ru} ({_score(mr, m)})"
    if pb.decision == stats.A_BETTER:
        tail = f"it beats {runner}: {evidence}."
    elif pb.decision == stats.B_BETTER:
        tail = (
            f"but {runner} beats it in most seed pairs: {evidence}; the mean and the pairwise "
            f"comparison disagree, so a few seeds drive the mean."
        )
    else:
        few = (
            f", fewer than the {pb.min_pairs} any verdict needs at 95% confidence"
            if pb.n_pairs < pb.min_pairs
            else ", an interval that contains 0.5"
        )
        tail = f"it cannot be told apart from {runner}: {evidence}{few}."
    numbers.update(
        {
            "runner_up": ru,
            "runner_up_mean": mr.mean,
            "p": pb.p,
            "p_low": pb.low,
            "p_high": pb.high,
            "n_pairs": pb.n_pairs,
            "decision": pb.decision,
            "diff": pd_.mean_diff,
            "diff_low": pd_.low,
            "diff_high": pd_.high,
        }
    )
    return f"{head}; {tail}", numbers


def _test(results: pd.DataFrame, ctx: StudyContext, arm: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The best arm's (or ``arm``'s) test score, where the final runs were tested and the metric is not
    the test one."""
    ranked = stats.rank_arms(results, ctx.metric, ctx.better)
    test = "test_" + ctx.metric.split("_", 1)[-1]
    if not ranked or test == ctx.metric or test not in results.columns:
        return None
    best = ranked[0][0] if arm is None else arm
    done = tabular.final_complete(results)
    mi = stats.mean_interval(pd.to_numeric(done.loc[done["arm"] == best, test], errors="coerce"),
                             bounds=stats.metric_bounds(test))
    if mi.n == 0:
        return None
    return (
        f"On the test set, which chose nothing, {best} scored {test} {_score(mi, test)}.",
        {"arm": best, "metric": test, "mean": mi.mean, "low": mi.low, "high": mi.high, "n": mi.n,
         "shown": _score(mi, test)},
    )


def _spread(results: pd.DataFrame, ctx: StudyContext) -> tuple[str, dict[str, Any]] | None:
    """Best minus worst arm mean, next to the largest seed-to-seed standard deviation within an arm."""
    ranked = stats.rank_arms(results, ctx.metric, ctx.better)
    if len(ranked) < 2:
        return None
    m = ctx.metric
    (best, mb), (worst, mw) = ranked[0], ranked[-1]
    spread = abs(mb.mean - mw.mean)
    stds = [mi.std for _, mi in ranked if math.isfinite(mi.std)]
    noise = (
        f", against a seed-to-seed std of at most {fmt.bare(max(stds), m)}{fmt.unit(m)} within an arm" if stds else ""
    )
    return (
        f"Across the {len(ranked)} arms the mean {m} ranges from {fmt.value(mw.mean, m)} ({worst}) "
        f"to {fmt.value(mb.mean, m)} ({best}), a spread of {fmt.bare(spread, m)}{fmt.unit(m)}{noise}.",
        {
            "arms": len(ranked),
            "best": mb.mean,
            "worst": mw.mean,
            "spread": spread,
            "max_seed_std": max(stds) if stds else math.nan,
        },
    )


def _per_group(results: pd.DataFrame, ctx: StudyContext, n_boot: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Multi-key studies: within each combination of the group keys, which value of the x key wins,
    with its interval and the P(A>B) verdict against the runner-up in that group."""
    layout = split_keys(ctx.scientific)
    if layout is None or not all(k in results.columns for k in (layout[0], *layout[1])):
        return []
    x, groups = layout
    m = ctx.metric
    out = []
    for values, rows in results.groupby(groups, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        where = ", ".join(f"{k}={fmt.num(v)}" for k, v in zip(groups, values, strict=True))
        ranked = stats.rank_arms(rows, m, ctx.better)
        if not ranked:
            continue
        x_of = rows.groupby("arm", sort=False)[x].first()
        (best, mb) = ranked[0]
        sentence = f"At {where}: {x}={fmt.num(x_of[best])} has the best {m}, {_score(mb, m)}"
        numbers: dict[str, Any] = {"x": x, "group": dict(zip(groups, values, strict=True)), "best": x_of[best],
                                   "where": where, "mean": mb.mean, "low": mb.low, "high": mb.high}
        if len(ranked) > 1:
            ru, mr = ranked[1]
            pb = stats.prob_better(tabular.seed_values(rows, m, best), tabular.seed_values(rows, m, ru), ctx.better,
                                   n_boot=n_boot, seed=seed)
            verdict = "beats" if pb.decision == stats.A_BETTER else "cannot be told apart from"
            who = f"{x}={fmt.num(x_of[best])}"
            sentence += (f"; it {verdict} {x}={fmt.num(x_of[ru])} ({_score(mr, m)}): P = "
                         f"{fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, who)}")
            numbers.update(runner_up=x_of[ru], p=pb.p, p_low=pb.low, p_high=pb.high, decision=pb.decision)
        tested = _test(rows, ctx, arm=best)
        if tested is not None:  # the group winner's test score (its group has one winner, the study none)
            sentence += f"; on the test set, which chose nothing, it scored {tested[1]['metric']} {tested[1]['shown']}"
            numbers["test"] = tested[1]["mean"]
        out.append((sentence + ".", numbers))
    return out


def _group_headline(groups: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """The answer of a multi-key study: the winner within each group, never one winner across groups
    (depth against width at three budgets asks which depth wins at each budget)."""
    x, keys = groups[0][1]["x"], list(groups[0][1]["group"])
    parts, decided = [], 0
    for _, n in groups:
        if "decision" not in n:
            how = "the only arm with final runs"
        elif n["decision"] == stats.A_BETTER:
            how, decided = f"beats {x}={fmt.num(n['runner_up'])}", decided + 1
        else:
            how = f"not told apart from {x}={fmt.num(n['runner_up'])}"
        parts.append(f"at {n['where']}, {x}={fmt.num(n['best'])} ({how})")
    sentence = (
        f"The arms are compared within each {fmt.join(keys)}, so the answer is one per group, not a winner "
        f"across them: {'; '.join(parts)}. A verdict by the P(A>B) rule in {decided} of "
        f"{fmt.plural(len(groups), 'group')}."
    )
    return sentence, {"x": x, "groups": keys, "best": [n["best"] for _, n in groups], "decided": decided}


def _multiplicity(results: pd.DataFrame, ctx: StudyContext, n_groups: int) -> tuple[str, dict[str, Any]] | None:
    """A note for a family of pairwise comparisons: each verdict holds at 95% on its own, not jointly."""
    m = n_groups if n_groups else math.comb(len(stats.rank_arms(results, ctx.metric, ctx.better)), 2)
    if m < 2:
        return None
    what = "per-group comparisons" if n_groups else "pairwise comparisons in the table"
    bound = min(1.0, 0.05 * m)
    return (
        f"There are {m} {what}, each judged at 95% confidence on its own with no correction for "
        f"multiplicity: the chance that at least one of their verdicts is wrong can be as high as "
        f"{100 * bound:.0f}% (the Bonferroni bound, {m} × 5%), so read a single verdict among many with care.",
        {"comparisons": m, "bound": bound},
    )


def _slice(results: pd.DataFrame, ctx: StudyContext, n_boot: int, seed: int) -> tuple[str, dict[str, Any]] | None:
    """The untuned slice: every arm at the base nuisance values (seed 000's fixed lr 0.05), its score
    per arm in the study's order, then its best arm against its worst over paired seeds."""
    rows = tabular.complete(tabular.phase_rows(results, "slice"))
    if not len(rows) or ctx.metric not in rows.columns:
        return None
    m = ctx.metric
    scored = [(arm, stats.mean_interval(tabular.seed_values(results, m, arm, "slice"), bounds=stats.metric_bounds(m)))
              for arm in tabular.arms(rows)]
    scored = [(arm, mi) for arm, mi in scored if mi.n > 0]
    if len(scored) < 2:
        return None
    sign = 1.0 if ctx.better == "max" else -1.0
    best = max(scored, key=lambda t: sign * t[1].mean)[0]
    worst = min(scored, key=lambda t: sign * t[1].mean)[0]
    va, vb = tabular.seed_values(results, m, best, "slice"), tabular.seed_values(results, m, worst, "slice")
    pb = stats.prob_better(va, vb, ctx.better, n_boot=n_boot, seed=seed)
    pd_ = stats.paired_difference(va, vb, n_boot=n_boot, seed=seed)
    at = ", ".join(f"{k} = {fmt.num(ctx.base[k])}" for k in ctx.search_space() if k in ctx.base) or "the base values"
    verdict = {stats.A_BETTER: "beats", stats.B_BETTER: "loses to"}.get(pb.decision, "cannot be told apart from")
    listed = "; ".join(f"{arm} {_score(mi, m)}" for arm, mi in scored)
    sentence = (
        f"Untuned, every arm at the base {at} with the same seeds (the untuned slice, which the tuned comparison "
        f"above does not use), {m} by arm: {listed}. There, {best} {verdict} {worst}: "
        f"P({best} beats {worst}) = {fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, best)}, "
        f"mean difference {fmt.diff(pd_.mean_diff, m)} {fmt.interval(pd_.low, pd_.high, m, as_diff=True)}."
    )
    return sentence, {"at": {k: ctx.base[k] for k in ctx.search_space() if k in ctx.base},
                      "means": {arm: mi.mean for arm, mi in scored}, "best": best, "worst": worst, "p": pb.p,
                      "p_low": pb.low, "p_high": pb.high, "n_pairs": pb.n_pairs, "decision": pb.decision,
                      "diff": pd_.mean_diff, "diff_low": pd_.low, "diff_high": pd_.high}


def _nuisance(results: pd.DataFrame, ctx: StudyContext) -> list[tuple[str, dict[str, Any]]]:
    """One sentence per tuned key: the value each arm settled on, with the trials it took."""
    chosen = chosen_values(results, ctx)
    tune = tabular.phase_rows(results, "tune")
    if not len(tune) or chosen.empty:
        return []
    trials = tune.groupby("arm", sort=False).size()
    budget = (
        f"{int(trials.min())} trials per arm"
        if trials.min() == trials.max()
        else f"{int(trials.min())}–{int(trials.max())} trials per arm"
    )
    out = []
    for key in chosen.columns:
        values = chosen[key].dropna()
        if values.empty:
            continue
        listed = ", ".join(f"{arm} → {fmt.num(v)}" for arm, v in values.items())
        out.append(
            (
                f"Tuned {key} (on {ctx.metric}, {budget}): {listed}.",
                {"key": key, "chosen": values.to_dict(), "trials": trials.to_dict()},
            )
        )
    return out


def findings(
    results: pd.DataFrame,
    curves: pd.DataFrame | None,
    ctx: StudyContext,
    checks: list[Check] | None = None,
    n_boot: int = stats.N_BOOT,
    seed: int = 0,
) -> list[Finding]:
    """The study's findings, answer first; ``checks`` defaults to ``run_checks(results, curves, ctx)``.

    Raises ValueError where ``results`` has no ``arm`` column or no ``ctx.metric`` column.
    """
    tabular.require(results, ["arm", ctx.metric])
    groups = _per_group(results, ctx, n_boot, seed)
    answer = _group_headline(groups) if groups else _answer(results, ctx, n_boot, seed)
    items: list[tuple[str, str, dict[str, Any]]] = [("answer", *answer)]
    items += [("group", s, n) for s, n in groups]
    # a multi-key study has no winner across its groups: each group line carries its winner's test score
    for kind, part in (("test", None if groups else _test(results, ctx)), ("spread", _spread(results, ctx)),
                       ("slice", _slice(results, ctx, n_boot, seed))):
        if part is not None:
            items.append((kind, *part))
    items += [("nuisance", s, n) for s, n in _nuisance(results, ctx)]
    if (note := _multiplicity(results, ctx, len(groups))) is not None:
        items.append(("multiplicity", *note))
    if checks is None:
        checks = run_checks(results, curves, ctx, n_boot=n_boot, seed=seed)
    items += [(f"check:{c.name}", c.sentence, c.numbers) for c in checks if c.severity == WARNING]
    return [Finding(rank, kind, sentence, numbers) for rank, (kind, sentence, numbers) in enumerate(items, 1)]
