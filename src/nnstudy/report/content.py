"""What a study's report says, computed once from its store: numbers, tables, notes. No drawing here.

``gather(study)`` reads the study (``Study.results()``, ``.curves()``, its stored records) and calls the
analysis (``nnstudy.analysis``) for everything statistical: findings, checks, per-arm intervals,
P(A>B), expected best score over trials, the curve bands (``analysis.curves``), and for the best run's
test predictions the study layer (``study.predictions``). What it adds is bookkeeping the figures and
tables need:

* ``bands``: learning curves of the completed final runs per arm and epoch: mean, min and max over
  seeds (the figures' band is min–max, so every seed lies inside it; ``analysis.curves``).
* ``axis``: where each arm sits on an x axis: the value of the single scientific key where it is a
  number (log scale where the values span a factor of 10 or more, all positive), else one slot per arm.
* ``predictions``: the best arm's best final run (by the study metric on validation; ties: lowest
  seed, the rule of ``Study.best_model``) evaluated on the test set, for the gallery and confusion
  matrix (``study.predictions``). The test set chooses nothing: the run's configuration was fixed before
  it was tested.
* provenance: the study file as given, each arm's final RunSpec, versions, machine, compute and wall time.

``slice`` rows: where the study layer stores an untuned slice (every arm at the base nuisance values,
phase ``slice``), ``slice_summary`` holds its per-arm intervals for the isolation plot; else None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nnstudy import analysis, metrics
from nnstudy.analysis.curves import curve_bands
from nnstudy.analysis.stats import N_BOOT
from nnstudy.errors import NnstudyError
from nnstudy.study.predictions import Predictions, best_predictions
from nnstudy.study.results import study_times

__all__ = ["ArmAxis", "Content", "gather", "study_context"]

#: Environment keys in the order the report lists them.
ENV_ORDER = ("nnstudy", "torch", "optuna", "python", "device", "gpu", "threads", "machine", "processor", "host")


@dataclass(frozen=True)
class ArmAxis:
    """Where each arm sits on a figure's x axis. ``positions``/``ticks``: arm label → x, tick text."""

    name: str
    positions: dict[str, float]
    ticks: dict[str, str]
    numeric: bool
    log: bool


@dataclass
class Content:
    """Everything a report shows, computed. Tables are the analysis' DataFrames; ``notes`` holds the
    reasons a part could not be shown (keyed by the part: ``gallery``, ``slice``, ``budget``).
    ``unplanned``: stored runs the study's design does not ask for (a study file or nnstudy version
    changed since they ran), which every table leaves out."""

    name: str
    question: str
    folder: str
    source: str
    study_text: str
    ctx: analysis.StudyContext
    results: pd.DataFrame
    curves: pd.DataFrame
    checks: list[analysis.Check]
    findings: list[analysis.Finding]
    ranked: list[tuple[str, analysis.MeanInterval]]
    summary: pd.DataFrame
    pairs: pd.DataFrame
    matrix: pd.DataFrame
    chosen: pd.DataFrame
    budget: pd.DataFrame
    bands: pd.DataFrame
    slice_summary: pd.DataFrame | None
    tuned_key: str | None
    axis: ArmAxis
    arms: list[str]
    run_specs: dict[str, Any]
    run_spec_notes: dict[str, str]
    train_eval: str
    predictions: Predictions | None
    environment: dict[str, list[str]]
    compute: dict[str, float]
    unplanned: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def tuned(self) -> bool:
        """Whether the study tuned nuisance values per arm."""
        return bool(self.ctx.search_space())

    @property
    def test_metric(self) -> str:
        """The test counterpart of the study metric (``test_accuracy`` for ``val_accuracy``)."""
        return "test_" + self.ctx.metric.split("_", 1)[-1]


# ------------------------------------------------------------------------------------------ context


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def study_context(spec: Any) -> analysis.StudyContext:
    """The ``StudyContext`` of a StudySpec: metric and direction, scientific values, search spaces,
    and the base values as the runs used them (the first arm's RunSpec at the base nuisance values,
    flattened to dotted keys, less the scientific keys), so an unset ``optimizer.lr`` reads as the
    RunSpec default the runs actually trained with."""
    nuisance = {}
    if spec.nuisance is not None:
        nuisance = {k: d.model_dump(by_alias=True, exclude_none=True) for k, d in spec.nuisance.params.items()}
    arms = spec.arms()
    try:
        base = _flatten(spec.run_spec(arms[0], {}, seed=0, final=True).model_dump(mode="json"))
    except ValueError:  # the base values alone need not form a valid run (a nuisance key may be required)
        base = _flatten(spec.base)
    scientific = spec.scientific_keys()
    base = {k: v for k, v in base.items() if not any(k == s or k.startswith(s + ".") for s in scientific)}
    return analysis.StudyContext(
        metric=spec.study.metric,
        direction=metrics.direction(spec.study.metric),
        scientific=spec.axes(),
        nuisance=nuisance,
        base=base,
        seeds=spec.study.seeds,
        epochs=base.get("epochs"),
        question=spec.study.question,
    )


def arm_axis(spec: Any) -> ArmAxis:
    """The x axis of the per-arm figures (see the module docstring)."""
    from nnstudy.study.file import render_value

    arms = spec.arms()
    keys = list(spec.axes())
    if len(keys) != 1:
        return ArmAxis("arm", {a.name: float(i) for i, a in enumerate(arms)}, {a.name: a.name for a in arms},
                       numeric=False, log=False)
    key = keys[0]
    values = [a.values[key] for a in arms]
    named = spec.labels is not None or any(isinstance(v, dict) for v in values)
    ticks = {a.name: a.name if named else render_value(a.values[key]) for a in arms}
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        return ArmAxis(key, {a.name: float(i) for i, a in enumerate(arms)}, ticks, numeric=False, log=False)
    lo, hi = min(values), max(values)
    log = lo > 0 and hi >= 10 * lo
    return ArmAxis(key, {a.name: float(v) for a, v in zip(arms, values, strict=True)}, ticks, numeric=True, log=log)


# ------------------------------------------------------------------------------------------- tables


def _slice_summary(results: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    rows = results[results["phase"] == "slice"]
    if rows.empty:
        return None
    return analysis.arm_summary(rows.assign(phase="final"), [metric])


def _tuned_key(ctx: analysis.StudyContext, results: pd.DataFrame) -> str | None:
    """The first numeric nuisance key with values in the results (what the tuning panel plots against)."""
    for key, (kind, _) in ctx.search_space().items():
        if kind != "choice" and key in results.columns:
            return key
    return None


# --------------------------------------------------------------------------------------- provenance


def _run_specs(results: pd.DataFrame, records: Mapping[str, Any], arms: list[str]) -> tuple[dict, dict]:
    """Each arm's final RunSpec (of its lowest seed; None before it has one) and a note saying how
    its final runs differ from one another."""
    from nnstudy.spec import RunSpec

    specs: dict[str, RunSpec | None] = {}
    notes: dict[str, str] = {}
    finals = results[results["phase"] == "final"]
    for arm in arms:
        rows = finals[finals["arm"] == arm].sort_values("seed")
        recs = [records[r] for r in rows["run"] if r in records]
        if not recs:
            specs[arm] = None
            notes[arm] = "no final run yet"
            continue
        specs[arm] = RunSpec.model_validate(recs[0].spec)
        seeds = [int(s) for s in rows["seed"]]
        same = all({**r.spec, "seed": 0} == {**recs[0].spec, "seed": 0} for r in recs)
        listed = ", ".join(map(str, seeds))
        notes[arm] = (f"seed {seeds[0]} shown; the arm's {len(recs)} final runs (seeds {listed}) differ only in seed"
                      if same else f"seed {seeds[0]} shown; the arm's final runs (seeds {listed}) differ beyond seed")
    return specs, notes


def _environment(records: list[Any], versions: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every distinct value of each environment key over the runs, with the study's recorded versions."""
    seen: dict[str, list[str]] = {}
    for key, value in versions.items():
        seen.setdefault(str(key), []).append(str(value))
    for rec in records:
        for key, value in (rec.environment or {}).items():
            values = seen.setdefault(str(key), [])
            if str(value) not in values:
                values.append(str(value))
    rank = {k: i for i, k in enumerate(ENV_ORDER)}
    return dict(sorted(seen.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


# ------------------------------------------------------------------------------------------- gather


def gather(study: Any, *, data_dir: str | None = None, gallery: bool = True, n_boot: int = N_BOOT
           ) -> Content:
    """Compute everything the report of ``study`` (a ``nnstudy.study.Study``) shows.

    ``gallery=False`` skips the test-set evaluation of the best run (no data loaded). Raises
    StoreError when the study's database cannot be read or holds no such study.
    """
    spec = study.spec
    attrs = study.store.study_attrs(spec.name)  # StoreError for a database without this study
    records_list = study.store.records(spec.name)
    records = {r.run: r for r in records_list}
    results, curves = study.results(), study.curves()
    ctx = study_context(spec)
    metric = ctx.metric
    checks = analysis.run_checks(results, curves, ctx, n_boot=n_boot)
    found = analysis.findings(results, curves, ctx, checks=checks, n_boot=n_boot)
    ranked = analysis.rank_arms(results, metric, ctx.better)
    arms = [a.name for a in spec.arms()]
    summary = analysis.arm_summary(results) if len(results) else pd.DataFrame()
    pairs = analysis.pairwise(results, metric, ctx.better, n_boot=n_boot) if len(results) else pd.DataFrame()
    matrix = analysis.prob_better_matrix(results, metric, ctx.better, n_boot=n_boot) if len(results) else None
    tuned = bool(ctx.search_space())
    chosen = analysis.chosen_values(results, ctx) if tuned and len(results) else pd.DataFrame()
    budget = analysis.expected_max_curves(results, metric, ctx.better) if len(results) else pd.DataFrame()
    specs, spec_notes = _run_specs(results, records, arms)
    notes: dict[str, str] = {}
    predictions = None
    if not ranked:
        notes["gallery"] = "no arm has a completed final run, so there is no best run to evaluate on the test set"
    elif not gallery:
        notes["gallery"] = "skipped (gallery=False)"
    else:
        try:
            predictions = best_predictions(study, ranked[0][0], data_dir)
        except NnstudyError as e:
            notes["gallery"] = f"the best run could not be evaluated on the test set: {e}"
    slice_summary = _slice_summary(results, metric) if len(results) else None
    if tuned and slice_summary is None:
        notes["slice"] = "the untuned slice (every arm at the base nuisance values) was not run by this study"
    if tuned and budget.empty:
        notes["budget"] = "no tuning trial has a score yet"
    first_spec = next((s for s in specs.values() if s is not None), None)
    train_eval = first_spec.train_eval if first_spec is not None else "running"
    return Content(
        name=spec.name,
        question=spec.study.question,
        folder=str(study.folder),
        source=str(attrs.get("nnstudy:source") or spec.source),
        study_text=str(attrs.get("nnstudy:text") or spec.text),
        ctx=ctx,
        results=results,
        curves=curves,
        checks=checks,
        findings=found,
        ranked=ranked,
        summary=summary,
        pairs=pairs,
        matrix=matrix if matrix is not None else pd.DataFrame(),
        chosen=chosen,
        budget=budget,
        bands=curve_bands(results, curves),
        slice_summary=slice_summary,
        tuned_key=_tuned_key(ctx, results) if tuned else None,
        axis=arm_axis(spec),
        arms=arms,
        run_specs=specs,
        run_spec_notes=spec_notes,
        train_eval=train_eval,
        predictions=predictions,
        environment=_environment(records_list, attrs.get("nnstudy:versions") or {}),
        compute=study_times(results, records_list),
        unplanned=len(set(records) - set(results["run"])),
        notes=notes,
    )
