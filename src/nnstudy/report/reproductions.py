"""docs/reproductions.md from the stored studies: the notebooks' numbers beside nnstudy's.

    python -m nnstudy.report.reproductions --runs runs --out docs/reproductions.md \\
        [--claims docs/reproductions.toml] [--studies studies/notebooks] [--machine "..."]

``--claims`` (TOML, ``[[row]]`` tables) says, per question, what the notebook reported and concluded:

* ``study``: the study's name (its folder ``RUNS/<study>``, its file ``STUDIES/<study>.toml``);
  ``seed``: the notebook (``"000"``); ``what``: the number's name in a few words;
* ``metric``: the final-run metric compared (``test_accuracy``, ``train_loss``, ...) and ``arm``: the
  arm it is read from (an arm label, or ``"best"``: the best arm by the study's own metric; in a study
  of several scientific keys, answered per group as its report does (``analysis.split_keys``), the best
  arm within each group: the winning depth at each parameter budget, never one winner across them);
* ``notebook``: the notebook's reported value (accuracies as fractions; omit where it reports none);
* ``claim``: what the notebook concluded, checked against the stored runs:
  ``"value"`` (its number is reproduced: within ``tolerance``, default 0.01 = 1 point, of nnstudy's
  mean), ``"best"`` (``notebook_arm`` is the best arm), ``"better"`` (arm ``a`` beats arm ``b``), or
  ``"none"`` (nothing to check);
* ``per``: for ``arm = "best"`` in a study of several scientific keys, the key whose values form the
  groups (``"optimizer.weight_decay"``: the best shape with and without weight decay);
* ``phase``: ``"final"`` (default: the final runs) or ``"slice"``: the untuned slice's runs, every arm at
  the base nuisance values with the final seeds (seed 000's fixed lr 0.05), never tested, so with a
  validation or training metric;
* ``note``: what the notebook did that the study does not (known bugs, selection on the test set).

Every number is read from the stored runs: nnstudy's value is the mean with its 95% t-interval over the
arm's completed final runs (the only runs that see the test set); the holds/does-not-hold line applies
the verdict rule (``analysis.VERDICT_RULE``) or the tolerance to those numbers; a study stored with
other settings than its file in ``--studies`` (a reduced size, ``--set``) says which, and one stored before
its design was done says how many of its planned runs it holds; compute time is
the sum of the runs' wall times. A question whose study is not stored says so, with no number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from nnstudy import metrics
from nnstudy.analysis import formatting as fmt
from nnstudy.analysis import stats, tabular
from nnstudy.errors import NnstudyError, SpecError
from nnstudy.spec import load_toml

__all__ = ["Claim", "Row", "load_claims", "machine_name", "reduced", "row", "table", "main"]

CLAIMS = ("value", "best", "better", "none")


@dataclass(frozen=True)
class Claim:
    """One ``[[row]]`` of the claims file (see the module docstring)."""

    study: str
    seed: str
    what: str
    metric: str
    arm: str = "best"
    notebook: float | None = None
    claim: str = "none"
    notebook_arm: str | None = None
    a: str | None = None
    b: str | None = None
    tolerance: float = 0.01
    per: str | None = None
    phase: str = "final"
    note: str = ""


@dataclass(frozen=True)
class Row:
    """A rendered row: the cells of the table, and the seconds of compute behind them."""

    cells: list[str]
    seconds: float
    runs: int


def load_claims(path: str | Path) -> list[Claim]:
    """The ``[[row]]`` tables of a claims file; an unknown key or claim is a ``SpecError`` naming it."""
    raw = load_toml(path)
    rows = raw.get("row")
    if not isinstance(rows, list) or not rows:
        raise SpecError(f"{path}: no [[row]] tables")
    fields = set(Claim.__dataclass_fields__)
    out = []
    for i, r in enumerate(rows):
        unknown = sorted(set(r) - fields)
        if unknown:
            raise SpecError(f"{path}: row[{i}].{unknown[0]}: unknown key; allowed: {', '.join(sorted(fields))}")
        missing = [k for k in ("study", "seed", "what", "metric") if k not in r]
        if missing:
            raise SpecError(f"{path}: row[{i}].{missing[0]}: missing")
        if r.get("claim", "none") not in CLAIMS:
            raise SpecError(f"{path}: row[{i}].claim = {r['claim']!r}: allowed: {', '.join(CLAIMS)}")
        if r.get("phase", "final") not in ("final", "slice"):
            raise SpecError(f"{path}: row[{i}].phase = {r['phase']!r}: allowed: final, slice")
        if r.get("phase") == "slice" and str(r["metric"]).startswith("test_"):
            raise SpecError(f"{path}: row[{i}]: the untuned slice is never tested; give a validation or "
                            "training metric")
        if r.get("claim") == "better" and not (r.get("a") and r.get("b")):
            raise SpecError(f"{path}: row[{i}]: claim 'better' needs a and b (arm labels)")
        if r.get("claim") == "best" and not r.get("notebook_arm"):
            raise SpecError(f"{path}: row[{i}]: claim 'best' needs notebook_arm (the arm the notebook found best)")
        out.append(Claim(**{k: (str(v) if k == "seed" else v) for k, v in r.items()}))
    return out


def machine_name() -> str:
    """This machine in words: CPU model and core count (Linux), else the platform's processor name."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys down to values; a search space (``{ log = [...] }``) is one value."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not any(kind in v for kind in ("log", "uniform", "int", "choice")):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def reduced(stored: Mapping[str, Any], shipped: Mapping[str, Any]) -> list[str]:
    """``key=value`` for every setting where the stored study differs from its shipped file."""
    a, b = _flat(stored), _flat(shipped)
    return [f"{k}={fmt.num(a[k]) if not isinstance(a[k], (list, dict)) else a[k]}"
            for k in sorted(a) if a[k] != b.get(k)]


def _score(values: pd.Series, metric: str) -> str:
    mi = stats.mean_interval(values, bounds=stats.metric_bounds(metric))
    if mi.n == 0:
        return "no completed final run"
    if mi.n < 2:
        return f"{fmt.value(mi.mean, metric)} (1 seed, no interval)"
    return f"{fmt.value(mi.mean, metric)} {fmt.interval(mi.low, mi.high, metric)} over {fmt.plural(mi.n, 'seed')}"


def _per_group(study: Any, results: pd.DataFrame, c: Claim, metric: str, better: str) -> str | None:
    """A multi-key study's best arm within each group: ``at budget.params=25000: model.depth=1 0.2150
    [...] over 5 seeds; at ...``. The groups are the row's ``per`` key, else those of its report
    (``split_keys``); None for a study of one key."""
    from nnstudy.analysis.context import split_keys

    axes = study.spec.axes()
    if c.per is not None:
        if c.per not in axes or len(axes) < 2:
            raise SpecError(f"{c.study}: per = {c.per!r} is not one of several scientific keys: {', '.join(axes)}")
        groups, xs = [c.per], [k for k in axes if k != c.per]
    else:
        layout = split_keys(axes)
        if layout is None:
            return None
        xs, groups = [layout[0]], layout[1]
    if not len(results) or not all(k in results.columns for k in (*xs, *groups)):
        return None
    parts = []
    for values, rows in results.groupby(groups, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        ranked = stats.rank_arms(rows, metric, better)
        if not ranked:
            continue
        best = ranked[0][0]
        first = rows[rows["arm"] == best].iloc[0]
        where = ", ".join(f"{k}={fmt.num(v)}" for k, v in zip(groups, values, strict=True))
        who = ", ".join(f"{k}={fmt.num(first[k])}" for k in xs)
        parts.append(f"at {where}: {who} {_score(tabular.seed_values(rows, c.metric, best), c.metric)}")
    return "; ".join(parts) or None


def _verdict(results: pd.DataFrame, metric: str, better: str, a: str, b: str) -> tuple[str, stats.ProbBetter]:
    pb = stats.prob_better(tabular.seed_values(results, metric, a), tabular.seed_values(results, metric, b), better)
    return fmt.prob_evidence(pb.p, pb.low, pb.high, pb.n_pairs, a), pb


def _holds(c: Claim, results: pd.DataFrame, metric: str, better: str, arm: str) -> str:
    """The one line on whether the notebook's conclusion holds, from the stored numbers."""
    if c.claim == "value":
        if c.notebook is None:
            return "nothing to compare: the notebook reports no number"
        mi = stats.mean_interval(tabular.seed_values(results, c.metric, arm))
        if mi.n == 0:
            return "not checked: no completed final run"
        gap = abs(mi.mean - c.notebook)
        acc = fmt.is_accuracy(c.metric)
        size = f"{100 * gap:.2f} points" if acc else f"{gap:.4g}"
        tol = (f"{100 * c.tolerance:g} point{'' if 100 * c.tolerance == 1 else 's'}" if acc
               else f"{c.tolerance:g}")
        word = "reproduced" if gap <= c.tolerance else "not reproduced"
        return f"{word}: the notebook's number is {size} from nnstudy's mean (tolerance {tol})"
    if c.claim == "better":
        known = set(tabular.arms(results))
        if not {c.a, c.b} <= known:
            return f"not checked: arm {c.a if c.a not in known else c.b} is not in the stored study"
        ev, pb = _verdict(results, metric, better, c.a, c.b)
        if pb.decision == stats.A_BETTER:
            return f"holds: {c.a} beats {c.b} on {metric}, P = {ev}"
        if pb.decision == stats.B_BETTER:
            return f"reversed: {c.b} beats {c.a} on {metric}, P({c.a} beats {c.b}) = {ev}"
        return f"not shown: {c.a} and {c.b} cannot be told apart on {metric}, P = {ev}"
    if c.claim == "best":
        ranked = stats.rank_arms(results, metric, better)
        if not ranked:
            return "not checked: no completed final run"
        best = ranked[0][0]
        if len(ranked) < 2:
            return f"not checked: only {best} has final runs"
        if best != c.notebook_arm:
            if c.notebook_arm not in dict(ranked):
                return f"not checked: arm {c.notebook_arm} has no completed final run in the stored study"
            ev, pb = _verdict(results, metric, better, best, c.notebook_arm)
            told = "and beats it" if pb.decision == stats.A_BETTER else "though they cannot be told apart"
            return f"does not hold: the best arm on {metric} is {best}, not {c.notebook_arm}, {told} (P = {ev})"
        ev, pb = _verdict(results, metric, better, best, ranked[1][0])
        if pb.decision == stats.A_BETTER:
            return f"holds: {best} is the best arm on {metric} and beats the runner-up {ranked[1][0]}, P = {ev}"
        return (f"holds in part: {best} has the best mean {metric} but cannot be told apart from "
                f"{ranked[1][0]}, P = {ev}")
    return "no conclusion to check"


def row(c: Claim, runs: Path, studies: Path | None) -> Row:
    """One question's row, read from ``runs/<study>``."""
    from nnstudy.study import open_study

    nb = fmt.value(c.notebook, c.metric) if c.notebook is not None else "none reported"
    folder = runs / c.study
    if not (folder / "study.toml").is_file():
        return Row([c.seed, c.what, nb, f"not run here ({folder} has no stored study)", "—", "—", c.note], 0.0, 0)
    study = open_study(folder)
    # arms given by their label (``model={kind=cnn, ...}``) are read as the names the tables use
    names = {a.label: a.name for a in study.spec.arms()}
    c = replace(c, **{k: names.get(getattr(c, k), getattr(c, k)) for k in ("arm", "a", "b", "notebook_arm")})
    results = every = study.results()
    if c.phase == "slice":  # the untuned slice's runs (the base nuisance values, the final seeds), read as finals
        results = results[results["phase"] == "slice"].assign(phase="final") if len(results) else results
    metric = study.spec.study.metric
    better = metrics.direction(metric)
    arm = stats.rank_arms(results, metric, better)[0][0] if c.arm == "best" and len(results) else c.arm
    arm_known = arm in set(tabular.arms(results)) if len(results) else False
    value = _score(tabular.seed_values(results, c.metric, arm), c.metric) if arm_known else "no such arm"
    shown = f"{value} ({arm})" if c.arm == "best" else value
    if c.phase == "slice":
        shown += "; the untuned slice at the base values, not tested"
    grouped = _per_group(study, results, c, metric, better) if c.arm == "best" and c.claim == "none" else None
    if grouped is not None:  # the question is asked within each group: the best arm of each
        shown = f"the best mean {metric} in each group: {grouped}"
    holds = _holds(c, results, metric, better, arm) if arm_known or c.claim != "value" else "not checked"
    shipped = studies / f"{c.study}.toml" if studies is not None else None
    size = "full"
    if shipped is not None and shipped.is_file():
        diff = reduced(study.spec.raw, load_toml(shipped))
        size = "reduced: " + ", ".join(diff) if diff else "full (as shipped)"
    progress = study.progress()
    if progress["done"] < progress["total"]:  # a study stopped (or still running) before its design was done
        size += f"; unfinished: {progress['done']} of {progress['total']} planned runs stored"
    seconds = float(pd.to_numeric(every.get("seconds"), errors="coerce").sum()) if len(every) else 0.0
    return Row([c.seed, c.what, nb, shown, holds, size, c.note], seconds, len(every))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(claims: list[Claim], runs: Path, studies: Path | None, machine: str) -> str:
    """The whole document: the table, then the machine and the compute it took."""
    rows = [row(c, runs, studies) for c in claims]
    head = ["seed", "question", "notebook", "nnstudy (mean, 95% CI; final runs)", "notebook's conclusion",
            "size", "what the notebook did differently"]
    lines = [
        "# Reproductions: the seed notebooks' numbers beside nnstudy's",
        "",
        "Generated by `python -m nnstudy.report.reproductions` from the studies stored under "
        f"`{runs}` (do not edit by hand; rerun it). Each row is one question of `studies/notebooks/`: the "
        "number the notebook reported, nnstudy's mean with its 95% t-interval over the seeds of the arm's "
        "final runs (test metrics come only from final runs, whose configuration was fixed before they saw the "
        "test set), and whether the notebook's conclusion holds on those numbers (" + stats.VERDICT_RULE + "; a "
        "number is reproduced within the row's tolerance). `size` names every setting where the stored study "
        "differs from its shipped file.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    lines += ["| " + " | ".join(_cell(x) for x in r.cells) + " |" for r in rows]
    stored = {c.study: r for c, r in zip(claims, rows, strict=True) if r.runs}  # a study counts once
    total, n_runs = sum(r.seconds for r in stored.values()), sum(r.runs for r in stored.values())
    missing = sum(1 for r in rows if not r.runs)
    lines += [
        "",
        f"Machine: {machine}. Compute: {total:.1f} s of run wall time over {n_runs} runs in {len(stored)} stored "
        f"{'study' if len(stored) == 1 else 'studies'} ({missing} of {len(rows)} rows not run here). "
        f"Generated {dt.date.today().isoformat()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nnstudy.report.reproductions", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of stored study folders (runs)")
    p.add_argument("--claims", type=Path, default=Path("docs/reproductions.toml"), help="the notebooks' claims")
    p.add_argument("--studies", type=Path, default=Path("studies/notebooks"), help="the shipped study files")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: stdout)")
    p.add_argument("--machine", default=None, help="the machine the studies ran on (default: this one's CPU)")
    args = p.parse_args(argv)
    try:
        text = table(load_claims(args.claims), args.runs, args.studies, args.machine or machine_name())
    except NnstudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
