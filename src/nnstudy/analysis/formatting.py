"""How numbers read in sentences: accuracies as percents, losses to 4 significant digits.

Every finding and check sentence goes through these helpers, so a number reads the same wherever it
appears. Accuracies are stored as fractions and shown as percents with 2 decimals; differences of
accuracies are percentage *points*. Other metrics (losses, seconds) get 4 significant digits;
hyperparameter values 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from nnstudy.metrics import is_accuracy  # noqa: F401 (fmt.is_accuracy: the formatters' rule, used beside them)

NA = "n/a"


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def value(x: float, metric: str) -> str:
    """One metric value: ``97.85%`` for an accuracy, ``0.1234`` for a loss."""
    if not _finite(x):
        return NA
    if is_accuracy(metric):
        return f"{100 * x:.2f}%"
    return f"{x:#.4g}".rstrip(".")  # 4 significant digits, trailing zeros kept: 0.1000


def diff(x: float, metric: str) -> str:
    """A signed difference: ``+0.75 points`` for accuracies, ``-0.01234`` for losses."""
    if not _finite(x):
        return NA
    return f"{100 * x:+.2f} points" if is_accuracy(metric) else f"{x:+.4g}"


def bare(x: float, metric: str) -> str:
    """A difference or spread without forced sign or unit: ``0.75`` (points) or ``-0.01234``."""
    if not _finite(x):
        return NA
    return f"{100 * x:.2f}" if is_accuracy(metric) else f"{x:.4g}"


def unit(metric: str) -> str:
    """The unit of ``bare``: `` points`` for accuracies, nothing otherwise."""
    return " points" if is_accuracy(metric) else ""


def interval(low: float, high: float, metric: str, *, as_diff: bool = False) -> str:
    """``[97.61%, 98.09%]``; with ``as_diff`` the bounds of a difference: ``[0.52, 0.98]``."""
    fmt = bare if as_diff else value
    return f"[{fmt(low, metric)}, {fmt(high, metric)}]"


def duration(seconds: float) -> str:
    """``8.4 s``, ``3 min 05 s``, ``2 h 14 min``: every duration the CLI and the report print."""
    if not _finite(seconds):
        return NA
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def prob(p: float) -> str:
    """A probability to 2 decimals."""
    return f"{p:.2f}" if _finite(p) else NA


def prob_interval(low: float, high: float) -> str:
    """Bounds of a probability: ``[0.62, 1.00]``."""
    return f"[{prob(low)}, {prob(high)}]"


def prob_evidence(p: float, low: float, high: float, n_pairs: int, who: str = "A") -> str:
    """P(A beats B) with what backs it: ``0.80 [0.40, 1.00] over 5 seed pairs``.

    Where every pair agrees (all won, all lost, all tied), the percentile bootstrap over the pairs is
    one point by construction ([1.00, 1.00] from 5 pairs as from 500), which reads as a certainty it
    is not; the count says it instead: ``1.00 (A better in all 5 seed pairs)``, ``who`` naming A.
    """
    pairs = plural(n_pairs, "seed pair")
    if n_pairs >= 2 and _finite(low) and low == high == p and p in (0.0, 0.5, 1.0):
        said = {1.0: "better in", 0.0: "worse in", 0.5: "tied in"}[float(p)]
        return f"{prob(p)} ({who} {said} all {pairs})"
    if n_pairs < 2 or not _finite(low):
        return f"{prob(p)} over {pairs} (no interval)"
    return f"{prob(p)} {prob_interval(low, high)} over {pairs}"


def degenerate(low: float, high: float, n_pairs: int) -> bool:
    """True where a P(A>B) interval is a single point because every seed pair agreed."""
    return n_pairs >= 2 and _finite(low) and low == high


def chosen_on(metric: str) -> str:
    """Where a metric chooses: ``on validation`` for ``val_*``, else the split it is measured on
    (``on the training loss``): a report never says "validation" for a training metric."""
    if metric.startswith("val_"):
        return "on validation"
    split, _, what = metric.partition("_")
    return f"on the {'training' if split == 'train' else split} {what}"


def num(x: Any) -> str:
    """A hyperparameter value: integers as they are, floats to 3 significant digits."""
    if isinstance(x, (bool, str)) or not _finite(x):
        return str(x)
    f = float(x)
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    return f"{f:.3g}"


def count(k: int, n: int) -> str:
    """``3 of 5 (60%)``."""
    return f"{k} of {n} ({100 * k / n:.0f}%)" if n else f"{k} of {n}"


def plural(n: int, word: str) -> str:
    """``1 seed``, ``5 seeds``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def join(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
