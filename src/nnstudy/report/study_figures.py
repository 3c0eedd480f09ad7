"""A study's figures: drawing only, from the numbers in ``report.content.Content``.

``study_figures(content)`` returns the figures that apply to the study, each with a file name, a title
and a caption that says what is drawn (which band, which interval, which runs):

* ``curves``: learning curves per arm (train and validation, loss and accuracy): mean over seeds, band
  min–max over seeds.
* ``scores``: the study metric and its test counterpart against the scientific value, final runs:
  seeds as dots, the mean with its 95% t-interval; log x axis where the values span a decade or more.
* ``by_keys`` (two or more scientific keys, one numeric): the metric against the numeric key with the
  most values, one line per combination of the others (seed 001's final training loss against depth,
  one curve per parameter budget), means with their 95% t-intervals.
* ``isolation`` (tuned studies): each arm at its tuned values beside the untuned slice at the base
  values, or, where the study did not run that slice, beside the tuning trials themselves.
* ``prob_better``: the P(row beats column) matrix with its intervals.
* ``budget`` (tuned studies): expected best score against the number of tuning trials.
* ``gallery``, ``confusion``: the best arm's best final run on the test set (``figures``' drawers).

Colours follow the arm order everywhere; accuracies are drawn as percents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, PercentFormatter

from nnstudy.analysis import A_BETTER, B_BETTER, VERDICT_RULE
from nnstudy.analysis import formatting as fmt
from nnstudy.analysis.findings import split_keys
from nnstudy.report import figures
from nnstudy.report._files import FIGURE_NAMES
from nnstudy.report.content import ArmAxis, Content

__all__ = [
    "FIGURE_NAMES",
    "Drawn",
    "arm_colors",
    "budget_curves",
    "metric_by_keys",
    "curves_by_arm",
    "isolation",
    "prob_better_matrix",
    "scores_by_arm",
    "study_figures",
]

CURVE_PANELS = (("train_loss", "val_loss"), ("train_accuracy", "val_accuracy"))


@dataclass(frozen=True)
class Drawn:
    """One figure of a report: ``name`` (file stem), ``title``, ``caption``, the Figure."""

    name: str
    title: str
    caption: str
    figure: Figure


def arm_colors(arms: list[str]) -> dict[str, tuple]:
    """One colour per arm, in order (tab10; tab20 past ten arms)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {arm: cmap(i % cmap.N) for i, arm in enumerate(arms)}


def _metric_axis(ax: Axes, metric: str, which: str = "y") -> None:
    """Accuracies (stored as fractions) read as percents."""
    if fmt.is_accuracy(metric):
        (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0))


def _arm_axis(ax: Axes, axis: ArmAxis, arms: list[str]) -> None:
    """Ticks at the arms' positions, labelled with their values; log scale where the axis says."""
    if axis.log:
        ax.set_xscale("log")
    shown = [a for a in arms if a in axis.positions]
    ax.xaxis.set_major_locator(FixedLocator([axis.positions[a] for a in shown]))
    ax.xaxis.set_minor_locator(NullLocator())
    labels = [axis.ticks[a] for a in shown]
    long = max((len(t) for t in labels), default=0) > 8
    ax.set_xticklabels(labels, rotation=20 if long else 0, ha="right" if long else "center")
    ax.set_xlabel(axis.name)
    if not axis.numeric:
        ax.set_xlim(-0.5, len(axis.positions) - 0.5)


def _jitter(x: float, k: int, axis: ArmAxis) -> np.ndarray:
    """k positions around x, so seeds with equal scores stay visible (multiplicative on a log axis)."""
    offsets = np.linspace(-1, 1, k) if k > 1 else np.zeros(1)
    if axis.log:
        return x * 2.0 ** (0.08 * offsets)
    if axis.numeric:
        span = max(axis.positions.values()) - min(axis.positions.values()) or 1.0
        return x + 0.012 * span * offsets
    return x + 0.12 * offsets


def _points(ax: Axes, summary: pd.DataFrame, seeds: pd.DataFrame, metric: str, axis: ArmAxis,
            colors: dict[str, tuple]) -> None:
    """Per arm: its seeds as dots and the mean with its 95% t-interval; numeric axes join the means."""
    xs, means = [], []
    for arm in summary.index:
        if arm not in axis.positions or f"{metric}_mean" not in summary.columns:
            continue
        row, x = summary.loc[arm], axis.positions[arm]
        values = pd.to_numeric(seeds.loc[seeds["arm"] == arm, metric], errors="coerce").dropna().to_numpy()
        if len(values):
            ax.scatter(_jitter(x, len(values), axis), values, s=14, color=colors[arm], alpha=0.55, linewidths=0)
        mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
        if not np.isfinite(mean):
            continue
        yerr = [[mean - low], [high - mean]] if np.isfinite(low) else None
        ax.errorbar([x], [mean], yerr=yerr, fmt="o", ms=6, color=colors[arm], capsize=5, lw=1.6, zorder=3)
        xs.append(x)
        means.append(mean)
    if axis.numeric and len(xs) > 1:
        ax.plot(xs, means, "-", color="0.55", lw=1, zorder=2)
    _metric_axis(ax, metric)
    ax.grid(True, alpha=0.3)


def curves_by_arm(bands: pd.DataFrame, arms: list[str], colors: dict[str, tuple], *, train_eval: str = "running"
                  ) -> Figure:
    """Learning curves per arm, 2 × 2 panels (rows loss, accuracy; columns train, validation), and a
    third column for the test set where the final runs recorded test curves (``study.test_curves``):
    the mean over seeds as a line and the min–max over seeds as a band (an error bar where there is
    one epoch)."""
    panels = [list(p) for p in CURVE_PANELS]
    if bands["metric"].isin(["test_loss", "test_accuracy"]).any():
        panels = [[*p, p[0].replace("train_", "test_")] for p in panels]
    fig = Figure(figsize=(5 * len(panels[0]), 6.6), layout="constrained")
    axes = fig.subplots(2, len(panels[0]), sharex=True, sharey="row")
    how = "running mean over batches" if train_eval == "running" else "eval pass"
    splits = [f"train ({how})", "validation (eval pass)", "test (eval pass, final runs)"]
    for r, pair in enumerate(panels):
        for c, metric in enumerate(pair):
            ax = axes[r][c]
            for arm in arms:
                b = bands[(bands["arm"] == arm) & (bands["metric"] == metric)]
                if b.empty:
                    continue
                x, m, lo, hi = (b[k].to_numpy(float) for k in ("epoch", "mean", "low", "high"))
                ax.plot(x, m, "o-", ms=3, color=colors[arm], label=arm)
                if len(x) > 1:
                    ax.fill_between(x, lo, hi, color=colors[arm], alpha=0.18, linewidth=0)
                else:
                    ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="none", ecolor=colors[arm], capsize=5)
            ax.set_title(f"{splits[c]}: {metric.split('_', 1)[1]}", fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            _metric_axis(ax, metric)
            if r == 1:
                ax.set_xlabel("epoch")
    losses = bands.loc[bands["metric"].isin(panels[0]), ["low", "high"]].to_numpy(float).ravel()
    losses = losses[np.isfinite(losses)]
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 20:  # log only when it helps
        axes[0][0].set_yscale("log")
    legend = {}  # one entry per arm, from whichever panel drew it
    for ax in axes.ravel():
        handles, labels = ax.get_legend_handles_labels()
        legend.update(zip(labels, handles, strict=True))
    if legend:
        labels, handles = list(legend), list(legend.values())
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), fontsize=9)
    return fig


def scores_by_arm(summary: pd.DataFrame, seeds: pd.DataFrame, metrics: list[str], axis: ArmAxis,
                  colors: dict[str, tuple]) -> Figure:
    """One panel per metric: each arm's final runs (dots) and mean with its 95% t-interval, against
    the scientific value."""
    fig = Figure(figsize=(5.2 * len(metrics), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    arms = list(summary.index)
    for ax, metric in zip(axes, metrics, strict=True):
        _points(ax, summary, seeds, metric, axis, colors)
        _arm_axis(ax, axis, arms)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {axis.name}", fontsize=10)
    return fig


def isolation(tuned: pd.DataFrame, tuned_seeds: pd.DataFrame, metric: str, axis: ArmAxis,
              colors: dict[str, tuple], *, key: str | None, base_value: object,
              slice_summary: pd.DataFrame | None = None, slice_seeds: pd.DataFrame | None = None,
              trials: pd.DataFrame | None = None, chosen: pd.DataFrame | None = None) -> Figure:
    """The isolation plot: left, each arm at its tuned values (final runs); right, on the same y axis,
    the untuned slice at the base values where it was run, else the tuning trials against ``key``
    (the chosen value starred, the base value dashed) with a note that the slice was not run."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    arms = list(tuned.index)
    _points(left, tuned, tuned_seeds, metric, axis, colors)
    _arm_axis(left, axis, arms)
    left.set_ylabel(metric)
    left.set_title(f"tuned: each arm at its best {key or 'nuisance values'}", fontsize=10)
    at = f"{key} = {fmt.num(base_value)}" if key is not None and base_value is not None else "the base values"
    if slice_summary is not None and slice_seeds is not None:
        _points(right, slice_summary, slice_seeds, metric, axis, colors)
        _arm_axis(right, axis, list(slice_summary.index))
        right.set_title(f"untuned: every arm at {at}", fontsize=10)
        return fig
    if trials is not None and key is not None and not trials.empty:
        for arm in arms:
            t = trials[trials["arm"] == arm]
            x = pd.to_numeric(t[key], errors="coerce").to_numpy(float)
            y = pd.to_numeric(t[metric], errors="coerce").to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            right.scatter(x[ok], y[ok], s=18, color=colors[arm], alpha=0.7, label=arm)
            if chosen is not None and arm in chosen.index and key in chosen.columns:
                best = t[pd.to_numeric(t[key], errors="coerce") == chosen.loc[arm, key]]
                if not best.empty:
                    right.scatter([chosen.loc[arm, key]], [pd.to_numeric(best[metric]).max()], marker="*", s=140,
                                  color=colors[arm], edgecolors="black", linewidths=0.6, zorder=3)
        values = pd.to_numeric(trials[key], errors="coerce").dropna()
        if len(values) and values.min() > 0 and values.max() >= 10 * values.min():
            right.set_xscale("log")
        if base_value is not None and isinstance(base_value, (int, float)):
            right.axvline(float(base_value), color="0.3", ls="--", lw=1)
            right.annotate(f"base {fmt.num(base_value)}", (float(base_value), 1), xycoords=("data", "axes fraction"),
                           xytext=(3, -12), textcoords="offset points", fontsize=8, color="0.3")
        right.set_xlabel(key)
        right.grid(True, alpha=0.3)
        right.legend(fontsize=8, loc="lower left")
        _metric_axis(right, metric)
    right.set_title(f"tuning trials (★ chosen); the untuned slice at {at} was not run", fontsize=10)
    return fig


def prob_better_matrix(matrix: pd.DataFrame, labels: dict[str, str], metric: str, name: str = "arm") -> Figure:
    """P(row arm beats column arm) as a heat map (blue: the row wins), each cell with its interval
    (or "all n pairs" where every pair agreed); bold where a verdict was reached (``VERDICT_RULE``)."""
    arms = list(matrix.index)
    n = len(arms)
    p = matrix["p"].to_numpy(float)
    low, high = matrix["low"].to_numpy(float), matrix["high"].to_numpy(float)
    pairs = matrix["n_pairs"].to_numpy(float)
    decision = matrix["decision"].to_numpy(object)
    fig = Figure(figsize=(2.2 + 1.45 * n, 1.6 + 1.1 * n), layout="constrained")
    ax = fig.subplots()
    import matplotlib

    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.93")  # the diagonal: no comparison
    im = ax.imshow(np.where(np.isfinite(p), p, np.nan), cmap=cmap, vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if i == j or not np.isfinite(p[i, j]):
                ax.text(j, i, "—", ha="center", va="center", color="0.5")
                continue
            decided = decision[i, j] in (A_BETTER, B_BETTER)
            n_ij = int(pairs[i, j]) if np.isfinite(pairs[i, j]) else 0
            # every pair agreed: the bootstrap "interval" is one point by construction; say the count
            below = (f"all {n_ij} pairs" if fmt.degenerate(low[i, j], high[i, j], n_ij)
                     else f"[{low[i, j]:.2f}, {high[i, j]:.2f}]")
            text = f"{p[i, j]:.2f}\n{below}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, fontweight="bold" if decided else "normal",
                    color="white" if abs(p[i, j] - 0.5) > 0.3 else "black")
    ticks = [labels.get(a, a) for a in arms]
    ax.set_xticks(range(n), ticks, rotation=20 if max(map(len, ticks), default=0) > 8 else 0, ha="right")
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel(f"column arm B ({name})" if name != "arm" else "column arm B")
    ax.set_ylabel(f"row arm A ({name})" if name != "arm" else "row arm A")
    fig.colorbar(im, ax=ax, fraction=0.046, label=f"P(A beats B) on {metric}")
    return fig


def budget_curves(curves: pd.DataFrame, arms: list[str], colors: dict[str, tuple], metric: str) -> Figure:
    """Expected best ``metric`` of n tuning trials against n, per arm, with a ±1 std band."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for arm in arms:
        c = curves[curves["arm"] == arm]
        if c.empty:
            continue
        n, m, s = (c[k].to_numpy(float) for k in ("n", "expected", "std"))
        ax.plot(n, m, "o-", ms=3, color=colors[arm], label=arm)
        ax.fill_between(n, m - s, m + s, color=colors[arm], alpha=0.15, linewidth=0)
    ax.set_xlabel("tuning trials n")
    ax.set_ylabel(f"expected best {metric}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _metric_axis(ax, metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def metric_by_keys(summary: pd.DataFrame, finals: pd.DataFrame, metric: str, x_key: str, line_keys: list[str]
                   ) -> Figure:
    """``metric`` (mean over seeds, 95% t-interval) against ``x_key``, one line per combination of
    ``line_keys``. ``summary``: analysis.arm_summary (index arm); ``finals``: final runs with the
    scientific keys as columns."""
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.subplots()
    arms = finals.groupby("arm", sort=False)[[x_key, *line_keys]].first()
    arms = arms[arms.index.isin(summary.index)]
    for group, rows in arms.groupby(line_keys, sort=False):
        group = group if isinstance(group, tuple) else (group,)
        rows = rows.assign(_x=pd.to_numeric(rows[x_key], errors="coerce")).sort_values("_x")
        mean = summary.loc[rows.index, f"{metric}_mean"].to_numpy(float)
        low = summary.loc[rows.index, f"{metric}_low"].to_numpy(float)
        high = summary.loc[rows.index, f"{metric}_high"].to_numpy(float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        label = ", ".join(f"{k}={fmt.num(v)}" for k, v in zip(line_keys, group,
                                                                                              strict=True))
        ax.errorbar(rows["_x"].to_numpy(float), mean, yerr=err, fmt="o-", ms=4, capsize=3, label=label)
    xs = pd.to_numeric(arms[x_key], errors="coerce").dropna()
    if len(xs) and xs.min() > 0 and xs.max() / xs.min() >= 10:
        ax.set_xscale("log")
    elif len(xs) and (xs == xs.round()).all():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_key)
    ax.set_ylabel(metric)
    _metric_axis(ax, metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------- the set


def study_figures(content: Content) -> list[Drawn]:
    """The figures of a study's report, in the order it shows them (see the module docstring)."""
    c, ctx = content, content.ctx
    m = ctx.metric
    colors = arm_colors(c.arms)
    labels = {a: c.axis.ticks.get(a, a) for a in c.arms}
    finals = c.results[(c.results["phase"] == "final") & (c.results["status"] == "complete")]
    drawn: list[Drawn] = []
    if not c.bands.empty:
        seeds = int(c.bands["n"].max())
        how = "running mean over the epoch's batches" if c.train_eval == "running" else "an eval pass after the epoch"
        drawn.append(Drawn("curves", "Learning curves per arm", (
            f"Completed final runs of each arm (up to {fmt.plural(seeds, 'seed')}): the line is the mean over seeds, "
            f"the band the min–max over seeds (an error bar where runs have one epoch). Train numbers are the "
            f"{how}; validation numbers an eval pass over the validation split."),
            curves_by_arm(c.bands, c.arms, colors, train_eval=c.train_eval)))
    shown = [x for x in (m, c.test_metric) if f"{x}_mean" in c.summary.columns and finals[x].notna().any()]
    if shown and not finals.empty:
        drawn.append(Drawn("scores", f"{m} against {c.axis.name}", (
            f"Final runs: each dot is a seed, the marker the mean over seeds with its 95% t-interval"
            f"{'; log axis' if c.axis.log else ''}. {c.test_metric} is each arm's final runs on the test set, "
            "which chose nothing."),
            scores_by_arm(c.summary, finals, shown, c.axis, colors)))
    layout = split_keys(ctx.scientific)
    if layout is not None and f"{m}_mean" in c.summary.columns and not finals.empty:
        x_key, line_keys = layout
        drawn.append(Drawn("by_keys", f"{m} against {x_key}, one line per {', '.join(line_keys)}", (
            f"Final runs: the mean {m} over seeds with its 95% t-interval, against {x_key}, one line per value of "
            f"{' and '.join(line_keys)}."),
            metric_by_keys(c.summary, finals, m, x_key, line_keys)))
    if c.tuned and not finals.empty:
        key = c.tuned_key
        slice_rows = c.results[(c.results["phase"] == "slice") & (c.results["status"] == "complete")]
        trials = c.results[c.results["phase"] == "tune"]
        right = ("the untuned slice: every arm's seeds at the base values" if c.slice_summary is not None
                 else f"each arm's tuning trials against {key}, the chosen value starred and the base value dashed; "
                      "the untuned slice at the base values was not run by this study")
        drawn.append(Drawn("isolation", "Isolation: tuned best per arm beside the base values", (
            f"Left: each arm's final runs at its tuned values (dots seeds, marker mean with 95% t-interval). "
            f"Right, on the same scale: {right}."),
            isolation(c.summary, finals, m, c.axis, colors, key=key, base_value=ctx.base.get(key) if key else None,
                      slice_summary=c.slice_summary, slice_seeds=slice_rows.assign(phase="final"), trials=trials,
                      chosen=c.chosen)))
    if len(c.ranked) >= 2 and not c.matrix.empty:
        drawn.append(Drawn("prob_better", f"P(A beats B) on {m}", (
            f"Each cell: the probability that a run of the row arm beats a run of the column arm on {m}, over seed "
            f"pairs, with its 95% bootstrap interval. Bold: a verdict (Bouthillier et al. 2021): {VERDICT_RULE}."),
            prob_better_matrix(c.matrix, labels, m, c.axis.name)))
    if c.tuned and not c.budget.empty:
        trials_per_arm = int(c.budget["trials"].max())
        drawn.append(Drawn("budget", "Expected best score against tuning budget", (
            f"Expected best {m} of n trials drawn from each arm's {trials_per_arm} tuning trials (Dodge et al. 2019), "
            "band ±1 std. A curve still rising at its right end says more trials could still raise that arm's best."),
            budget_curves(c.budget, c.arms, colors, m)))
    p = c.predictions
    if p is not None:
        who = f"{p.arm}'s best final run (seed {p.seed}, chosen {fmt.chosen_on(m)}: {m})"
        drawn.append(Drawn("gallery", "Misclassified test images of the best arm", (
            f"The first {len(p.wrong_true)} misclassified test images, in test-set order, of {who}, titled "
            f"predicted (true). That run classifies {fmt.value(p.accuracy, 'accuracy')} of the {p.n} test images "
            "correctly; its configuration was fixed before it was tested, so the test set chose nothing."),
            figures.failure_gallery(p.wrong_images, p.wrong_predicted, p.wrong_true, max_show=len(p.wrong_true) or 1,
                                    title=f"{p.arm}, seed {p.seed}: predicted (true)")))
        drawn.append(Drawn("confusion", "Test confusion matrix of the best arm", (
            f"Test-set counts of {who}: rows the true class, columns the predicted one; colour is the share "
            "of the true class."),
            figures.confusion_matrix(p.counts, title=f"{p.arm}, seed {p.seed}: test set")))
    assert {d.name for d in drawn} <= set(FIGURE_NAMES), "a new figure needs its name in FIGURE_NAMES"
    return drawn
