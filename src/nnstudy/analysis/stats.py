"""Statistics over seeds and trials: per-arm intervals, paired bootstrap, P(A>B), expected max.

Formulas (n seeds, confidence c, alpha = (1 - c) / 2):

* **Per-arm interval** (Student t): mean ± t_{1-alpha, n-1} · s / sqrt(n), with s the sample standard
  deviation (ddof = 1). Needs n >= 2; with n = 1 the interval is NaN, never zero-width.
* **Paired difference**: arms A and B are paired by seed (only seeds present in both); d_i = a_i - b_i,
  estimate mean(d). Percentile bootstrap (Efron & Tibshirani 1993): draw the n pairs with replacement
  B times, take mean(d) of each draw; the interval is the alpha and 1 - alpha quantiles of those B
  means. With few pairs (under ~10) the percentile interval is known to be too narrow: read it with
  the number of pairs next to it.
* **P(A>B)** (Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks",
  MLSys): the probability that a run of A beats a run of B, estimated over seed pairs as
  P = (1/n) · sum_i [1{a_i better than b_i} + 1/2 · 1{a_i = b_i}] ("better" is larger for
  direction ``max``, smaller for ``min``; ties count half), with the same percentile bootstrap over
  pairs. Decision: "A better" only where the lower bound is above 0.5, "B better" only where the upper
  bound is below 0.5, else "cannot be told apart". The paper also asks P > gamma (0.75) for a
  *meaningful* improvement; ``p`` is reported so a reader can apply it.
  One guard of ours: a percentile bootstrap over n pairs that A all wins is the single point 1.0,
  however small n is (the report then says "in all n pairs", not an interval). So no verdict is
  given below ``min_pairs``, by default the fewest pairs for which n wins out of n pass an exact
  one-sided sign test at level 1 - c: 0.5^n <= 1 - c, i.e. 5 pairs at c = 0.95 (0.5^5 = 0.031).
  ``VERDICT_RULE`` is this rule in the words every report, docstring and doc uses.
* **Expected maximum over n trials** (Dodge et al. 2019, "Show your work: improved reporting of
  experimental results", EMNLP): for the N observed trial scores sorted v_(1) <= ... <= v_(N), the
  best of n trials drawn with replacement from them has
  E[max_n] = sum_i v_(i) · [(i/N)^n - ((i-1)/N)^n]  and
  Var[max_n] = sum_i (v_(i) - E[max_n])^2 · [(i/N)^n - ((i-1)/N)^n].
  For direction ``min`` the scores are negated, so it is the expected best (lowest) loss.
* **Seeds needed** (rough): to detect a difference Delta between two arms with seed-to-seed standard
  deviation sd (normal approximation, two-sided level 1 - c, power 0.8):
  n ~= 2 · ((z_{1-alpha} + z_{power}) · sd / Delta)^2 per arm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special  # the quantiles scipy.stats' t and norm use, without its 0.4 s import

from nnstudy import metrics
from nnstudy.analysis import tabular
from nnstudy.analysis.context import check_direction, default_direction

A_BETTER = "A better"
B_BETTER = "B better"
UNDECIDED = "cannot be told apart"

#: The verdict rule, in the one wording that reports and docs use (``sign_test_min_pairs`` gives 5).
VERDICT_RULE = (
    "A is better than B only where the 95% interval of P(A beats B) lies above 0.5 and there are at "
    "least 5 seed pairs (5 of 5 won passes a one-sided sign test at 5%: 0.5^5 = 0.031); B is better "
    "only where it lies below 0.5; otherwise they cannot be told apart"
)

#: Bootstrap draws: at 10 000 the Monte Carlo error of a 2.5% quantile is a few % of the interval's
#: width, and a 10-arm matrix (45 pairs) still takes well under a second.
N_BOOT = 10_000

Values = pd.Series | Mapping[object, float] | Sequence[float] | np.ndarray


@dataclass(frozen=True)
class MeanInterval:
    """Mean of n values with its Student-t interval (NaN bounds where n < 2)."""

    n: int
    mean: float
    std: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    """mean(a - b) over seed pairs with its percentile bootstrap interval."""

    mean_diff: float
    low: float
    high: float
    n_pairs: int
    confidence: float


@dataclass(frozen=True)
class ProbBetter:
    """P(a run of A beats a run of B) over seed pairs, its bootstrap interval and the verdict."""

    p: float
    low: float
    high: float
    n_pairs: int
    min_pairs: int
    decision: str
    confidence: float


def metric_bounds(metric: str) -> tuple[float, float]:
    """The range a metric's values can take: accuracies [0, 1], losses [0, ∞), else unbounded."""
    return metrics.bounds(metric)


def mean_interval(
    values: Iterable[float], confidence: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> MeanInterval:
    """Mean, standard deviation (ddof=1) and t-interval of the finite ``values``. The interval is
    clipped to ``bounds`` (``metric_bounds``): with 2–3 seeds a t-interval can reach past 100%
    accuracy, and a value no run can have is no information."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return MeanInterval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if n == 1:
        return MeanInterval(1, mean, math.nan, math.nan, math.nan)
    std = float(v.std(ddof=1))
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * std / math.sqrt(n)
    lo, hi = bounds
    return MeanInterval(n, mean, std, max(mean - half, lo), min(mean + half, hi))


def arm_summary(results: pd.DataFrame, metrics: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per arm, over its completed final runs: n, mean, std and t-interval of every final metric.

    Returns one row per arm (index ``arm``, in the order arms first appear) with columns ``runs``
    (final runs), ``n`` (completed), ``diverged``, ``failed``, then for each metric ``{m}_n``,
    ``{m}_mean``, ``{m}_std``, ``{m}_low``, ``{m}_high``. ``metrics`` defaults to the final metrics that
    have at least one value (so no test columns where no run was tested). Raises ValueError for a
    metric that is not a column.
    """
    finals = tabular.phase_rows(results, "final")
    done = tabular.complete(finals)
    if metrics is None:
        metrics = [m for m in tabular.FINAL_METRICS if m in results.columns and done[m].notna().any()]
    tabular.require(results, ["arm", *metrics])
    rows = []
    for arm in tabular.arms(results):
        ran, ok = finals[finals["arm"] == arm], done[done["arm"] == arm]
        row: dict[str, object] = {
            "arm": arm,
            "runs": len(ran),
            "n": len(ok),
            "diverged": tabular.status_count(ran, "diverged"),
            "failed": tabular.status_count(ran, "failed"),
        }
        for m in metrics:
            mi = mean_interval(pd.to_numeric(ok[m], errors="coerce"), confidence, metric_bounds(m))
            row.update(
                {f"{m}_n": mi.n, f"{m}_mean": mi.mean, f"{m}_std": mi.std, f"{m}_low": mi.low, f"{m}_high": mi.high}
            )
        rows.append(row)
    columns = ["arm", "runs", "n", "diverged", "failed"]
    columns += [f"{m}_{s}" for m in metrics for s in ("n", "mean", "std", "low", "high")]
    return pd.DataFrame(rows, columns=columns).set_index("arm")


def rank_arms(
    results: pd.DataFrame, metric: str, direction: str | None = None, confidence: float = 0.95
) -> list[tuple[str, MeanInterval]]:
    """Arms with at least one completed final value of ``metric``, best mean first.

    Ties keep the order arms first appear in. Empty where ``metric`` is not a column.
    """
    direction = default_direction(metric) if direction is None else check_direction(direction)
    if metric not in results.columns:
        return []
    done = tabular.final_complete(results)
    ranked = []
    for arm in tabular.arms(results):
        values = pd.to_numeric(done.loc[done["arm"] == arm, metric], errors="coerce")
        mi = mean_interval(values, confidence, metric_bounds(metric))
        if mi.n:
            ranked.append((arm, mi))
    sign = -1.0 if direction == "max" else 1.0
    return sorted(ranked, key=lambda t: sign * t[1].mean)  # sorted() is stable


def _pairs(a: Values, b: Values) -> tuple[np.ndarray, np.ndarray]:
    """Align two arms' values: by key (seed) for Series/Mappings, else by position; drop non-finite."""
    if isinstance(a, (pd.Series, Mapping)) and isinstance(b, (pd.Series, Mapping)):
        sa, sb = pd.Series(a, dtype=float), pd.Series(b, dtype=float)
        sa, sb = sa[np.isfinite(sa.to_numpy())], sb[np.isfinite(sb.to_numpy())]
        sa, sb = sa.groupby(level=0).mean(), sb.groupby(level=0).mean()  # one value per seed
        both = sa.index.intersection(sb.index).sort_values()
        return sa.loc[both].to_numpy(), sb.loc[both].to_numpy()
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if len(x) != len(y):
        raise ValueError(
            f"positional values must have equal lengths, got {len(x)} and {len(y)}; "
            "pass Series indexed by seed to pair by seed"
        )
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _bootstrap_mean(x: np.ndarray, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(x), resampling the entries of x with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))  # (B, n): one resample per row
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_difference(
    a: Values, b: Values, n_boot: int = N_BOOT, confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """mean(a - b) over the seeds present in both, with a percentile bootstrap interval over pairs.

    ``a`` and ``b`` are per-seed values (Series indexed by seed, or Mappings seed -> value), or equal
    length sequences paired by position. Fewer than 2 pairs give NaN bounds.
    """
    x, y = _pairs(a, b)
    n = len(x)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0, confidence)
    d = x - y
    low, high = _bootstrap_mean(d, n_boot, confidence, seed) if n >= 2 else (math.nan, math.nan)
    return PairedDifference(float(d.mean()), low, high, n, confidence)


def sign_test_min_pairs(confidence: float = 0.95) -> int:
    """Fewest pairs for which winning all of them passes a one-sided sign test at level 1 − c.

    A verdict ("A is better") is a one-directional claim, so the test is one-sided: at 95%, 5
    pairs (0.5⁵ = 0.031 ≤ 0.05), which lets the common 5-seed study name a winner when every seed
    agrees, while 2–4 seeds, whose bootstrap interval can be [1, 1] by luck, never do.
    """
    alpha = 1 - confidence
    return max(2, math.ceil(math.log2(1 / alpha) - 1e-9))


def prob_better(
    a: Values,
    b: Values,
    direction: str = "max",
    n_boot: int = N_BOOT,
    confidence: float = 0.95,
    seed: int = 0,
    min_pairs: int | None = None,
) -> ProbBetter:
    """P(a run of A beats a run of B) over seed pairs (ties count half), with interval and verdict.

    ``direction`` says what "beats" means: ``"max"`` (accuracy) or ``"min"`` (loss). ``min_pairs``
    (default ``sign_test_min_pairs(confidence)``) is the fewest pairs a verdict other than "cannot be
    told apart" needs. Pairing as in ``paired_difference``.
    """
    sign = 1.0 if check_direction(direction) == "max" else -1.0
    need = sign_test_min_pairs(confidence) if min_pairs is None else int(min_pairs)
    x, y = _pairs(a, b)
    n = len(x)
    if n == 0:
        return ProbBetter(math.nan, math.nan, math.nan, 0, need, UNDECIDED, confidence)
    wins = (sign * (x - y) > 0) + 0.5 * (x == y)
    low, high = _bootstrap_mean(wins, n_boot, confidence, seed) if n >= 2 else (math.nan, math.nan)
    decision = UNDECIDED
    if n >= max(need, 2):
        decision = A_BETTER if low > 0.5 else B_BETTER if high < 0.5 else UNDECIDED
    return ProbBetter(float(wins.mean()), low, high, n, need, decision, confidence)


def pairwise(
    results: pd.DataFrame,
    metric: str,
    direction: str | None = None,
    n_boot: int = N_BOOT,
    confidence: float = 0.95,
    seed: int = 0,
    min_pairs: int | None = None,
) -> pd.DataFrame:
    """Every ordered pair of arms (A, B), A != B: paired difference and P(A beats B).

    Returns a long DataFrame with columns ``a``, ``b``, ``n_pairs``, ``diff``, ``diff_low``,
    ``diff_high`` (mean of A - B), ``p``, ``p_low``, ``p_high``, ``decision``. Each unordered pair is
    bootstrapped once and mirrored, so P(B beats A) = 1 - P(A beats B) and the bounds mirror too.
    """
    direction = default_direction(metric) if direction is None else check_direction(direction)
    names = tabular.arms(results)
    values = {arm: tabular.seed_values(results, metric, arm) for arm in names}
    flip = {A_BETTER: B_BETTER, B_BETTER: A_BETTER, UNDECIDED: UNDECIDED}
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d = paired_difference(values[a], values[b], n_boot, confidence, seed)
            p = prob_better(values[a], values[b], direction, n_boot, confidence, seed, min_pairs)
            rows.append((a, b, d.n_pairs, d.mean_diff, d.low, d.high, p.p, p.low, p.high, p.decision))
            rows.append(
                (b, a, d.n_pairs, -d.mean_diff, -d.high, -d.low, 1 - p.p, 1 - p.high, 1 - p.low, flip[p.decision])
            )
    columns = ["a", "b", "n_pairs", "diff", "diff_low", "diff_high", "p", "p_low", "p_high", "decision"]
    return pd.DataFrame(rows, columns=columns)


def prob_better_matrix(
    results: pd.DataFrame,
    metric: str,
    direction: str | None = None,
    n_boot: int = N_BOOT,
    confidence: float = 0.95,
    seed: int = 0,
    min_pairs: int | None = None,
) -> pd.DataFrame:
    """P(row arm beats column arm) for all arms, with intervals.

    Returns a DataFrame indexed by arm whose columns are a MultiIndex (field, arm) with fields ``p``,
    ``low``, ``high``, ``n_pairs``, ``decision``: ``m["p"]`` is the square matrix of P(row beats
    column), ``m["low"]``/``m["high"]`` its bounds. The diagonal is NaN (an arm is not compared with
    itself).
    """
    names = tabular.arms(results)
    pw = pairwise(results, metric, direction, n_boot, confidence, seed, min_pairs)
    fields = {"p": "p", "low": "p_low", "high": "p_high", "n_pairs": "n_pairs", "decision": "decision"}
    blocks = {}
    for name, column in fields.items():
        square = pw.pivot(index="a", columns="b", values=column) if len(pw) else pd.DataFrame()
        blocks[name] = square.reindex(index=names, columns=names)
    out = pd.concat(blocks, axis=1)
    out.index.name, out.columns.names = "arm", ["field", "arm"]
    return out


def expected_max(values: Iterable[float], n_max: int | None = None, direction: str = "max") -> pd.DataFrame:
    """Expected best score of n trials drawn from the observed ones, n = 1..n_max (Dodge et al. 2019).

    ``values``: the N trial scores (non-finite ones are dropped). ``n_max`` defaults to N; beyond N it
    extrapolates towards the best observed score. Returns a DataFrame with columns ``n``, ``expected``,
    ``var``, ``std``, ``trials`` (= N); empty if there is no finite score.
    """
    sign = 1.0 if check_direction(direction) == "max" else -1.0
    v = np.asarray(list(values), dtype=float)
    v = np.sort(sign * v[np.isfinite(v)])
    big_n = len(v)
    columns = ["n", "expected", "var", "std", "trials"]
    if big_n == 0:
        return pd.DataFrame(columns=columns)
    n = np.arange(1, (big_n if n_max is None else int(n_max)) + 1)
    i = np.arange(1, big_n + 1)
    # w[k, i] = P(the best of n[k] draws is the i-th smallest score): the max's probability mass
    w = (i[None, :] / big_n) ** n[:, None] - ((i[None, :] - 1) / big_n) ** n[:, None]
    mean = w @ v
    var = np.einsum("ki,ki->k", w, (v[None, :] - mean[:, None]) ** 2)
    return pd.DataFrame(
        {"n": n, "expected": sign * mean, "var": var, "std": np.sqrt(var), "trials": big_n}, columns=columns
    )


def expected_max_curves(
    results: pd.DataFrame, metric: str, direction: str | None = None, n_max: int | None = None
) -> pd.DataFrame:
    """``expected_max`` per arm over its tuning trials (rows of phase ``tune`` with a finite score).

    Every trial the tuner scored counts, whatever its status (a pruned trial's score is what the tuner
    saw); failed trials have no score. Returns a long DataFrame with columns ``arm``, ``n``,
    ``expected``, ``var``, ``std``, ``trials``; empty where there is no tune phase.
    """
    direction = default_direction(metric) if direction is None else check_direction(direction)
    tune = tabular.phase_rows(results, "tune")
    frames = []
    if len(tune):
        tabular.require(results, ["arm", metric])
        for arm in tabular.arms(tune):
            scores = pd.to_numeric(tune.loc[tune["arm"] == arm, metric], errors="coerce")
            curve = expected_max(scores, n_max, direction)
            if len(curve):
                frames.append(curve.assign(arm=arm))
    columns = ["arm", "n", "expected", "var", "std", "trials"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def seeds_needed(diff: float, sd: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Rough seeds per arm to detect ``diff`` given seed-to-seed ``sd``: 2·((z_{1-α} + z_power)·sd/diff)².

    A normal-approximation estimate for a two-sided test at level 1 - confidence; inf where diff is
    0, NaN where either input is not finite. Rounded up.
    """
    if not (math.isfinite(diff) and math.isfinite(sd)):
        return math.nan
    if diff == 0:
        return math.inf
    z = special.ndtri((1 + confidence) / 2) + special.ndtri(power)
    return float(math.ceil(2 * (z * sd / abs(diff)) ** 2))
