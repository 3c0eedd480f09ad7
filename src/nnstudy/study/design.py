"""The design: which runs a study trains, as a pure function of the study file and the results so far.

* No ``[nuisance]``: every run is a *final* run: arms × seeds 0 .. seeds-1, tested, weights kept.
* With it, each arm is first *tuned*: ``trials`` runs (seed ``nuisance.seed``, never tested) whose
  nuisance values a sampler picks to optimize the study metric on validation; then the best tuning
  run's values are re-run with the final seeds 0 .. seeds-1: the arm's final runs, the only ones
  evaluated on the test set. Seeds are paired: every arm's finals use the same seed list.

Determinism (what resume and ``--workers`` rely on). An arm's sampler is an in-memory Optuna study
seeded from (``nuisance.seed``, arm label). Trials are asked in rounds of ``nuisance.parallel``: all
trials of a round are asked before any of them is told, and a round is told (in slot order) only
once all its runs have results. So round r's values depend only on the results of rounds < r, never
on which run finished first, how many workers there were, or whether the process was killed: on
resume the sampler is *replayed* (the same asks, the same tells from the store) and asks exactly what
an uninterrupted study asked. Nothing about a run in flight needs saving: it is simply asked again.

``ArmPlan.advance(lookup)`` walks an arm's stages (tuning rounds, then finals) as far as stored
results allow and returns the runs still to train. A later phase (issue 4's untuned slice at the base
values, say) is one more stage in that walk.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from optuna.samplers import GridSampler

from nnstudy.spec import RunSpec
from nnstudy.study._optuna import quiet_optuna, study_direction
from nnstudy.study.file import Arm, Choice, IntRange, LogRange, NuisanceSpec, StudySpec

__all__ = ["ArmPlan", "Outcome", "PlannedRun", "Tuner", "check_design", "plan_arms", "worst_value"]

Phase = Literal["tune", "final", "slice"]
PHASES: tuple[Phase, ...] = ("tune", "final", "slice")


class Outcome(Protocol):
    """What the design needs of a stored result (``store.Record`` has it)."""

    status: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    system_attrs: dict[str, Any]


@dataclass(frozen=True)
class PlannedRun:
    """One run of the design. ``slot`` numbers the runs of an (arm, phase): the tuning trial, or the
    index of the final seed. ``stage`` is the tuning round (finals: the number of rounds)."""

    arm: Arm
    phase: Phase
    slot: int
    stage: int
    params: dict[str, Any]
    spec: RunSpec
    prune: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def identity(self) -> str:
        return self.spec.identity()

    @property
    def order(self) -> tuple[int, int, int]:
        """Dispatch priority: stage by stage, and within one, slot-major across arms, so a study cut
        short by its budget has every arm equally far along (grid: seed 0 of every arm first)."""
        return (self.stage, self.slot, self.arm.index)


def worst_value(maximize: bool) -> float:
    """The value a diverged tuning run is told: worse than any real one, so it never wins, yet
    a COMPLETE trial, so the sampler learns to avoid its region (a FAIL trial it would ignore)."""
    return -math.inf if maximize else math.inf


def metric_value(outcome: Outcome, metric: str, maximize: bool) -> float | None:
    """The study metric of a complete run; the worst value for a diverged one; None otherwise."""
    if outcome.status == "diverged":
        return worst_value(maximize)
    v = outcome.metrics.get(metric)
    return v if outcome.status == "complete" and v is not None and math.isfinite(v) else None


def _encode(value: Any) -> Any:
    """Optuna's categories are scalars; a list or table choice is kept as its JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def distributions(n: NuisanceSpec) -> dict[str, Any]:
    """Optuna distributions of the search space (grid sampler: categorical over the grid points)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if n.sampler == "grid":
        space = n.grid_space() or {}
        return {k: CategoricalDistribution([_encode(v) for v in vs]) for k, vs in space.items()}
    out: dict[str, Any] = {}
    for k, d in n.params.items():
        if isinstance(d, Choice):
            out[k] = CategoricalDistribution([_encode(v) for v in d.choice])
        elif isinstance(d, IntRange):
            out[k] = IntDistribution(*d.int_)
        else:
            out[k] = FloatDistribution(*d.bounds, log=isinstance(d, LogRange))
    return out


def optuna_params(n: NuisanceSpec | None, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(encoded params, distributions) to record a run as an Optuna trial."""
    if n is None:
        return {}, {}
    return {k: _encode(v) for k, v in params.items()}, distributions(n)


class Tuner:
    """One arm's sampler: an in-memory Optuna study, asked round by round and told from results.

    Its seed comes from (``nuisance.seed``, arm label) so that arms are independent: adding an arm to
    a study does not change what the others ask.
    """

    def __init__(self, spec: StudySpec, arm: Arm):
        import optuna

        assert spec.nuisance is not None
        self.nuisance, self.metric, self.maximize = spec.nuisance, spec.study.metric, spec.study.maximize
        self.total = spec.trials
        digest = hashlib.sha256(f"{self.nuisance.seed}:{arm.label}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big") % (2**31)
        self.dists = distributions(self.nuisance)
        with quiet_optuna():
            self.study = optuna.create_study(direction=study_direction(self.maximize),
                                             sampler=self._sampler(seed))
        self.asked = 0
        self._open: list[Any] = []  # the asked, not yet told trials of the current round

    def _sampler(self, seed: int):
        import optuna.samplers as s

        kind = self.nuisance.sampler
        if kind == "grid":
            space = {k: list(d.choices) for k, d in self.dists.items()}
            return _GridSampler(space, seed=seed)
        if kind == "random":
            return s.RandomSampler(seed=seed)
        if kind == "qmc":
            return s.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
        # constant_liar: trials asked together in a round avoid each other's points
        return s.TPESampler(seed=seed, constant_liar=True)

    @property
    def rounds(self) -> int:
        return math.ceil(self.total / self.nuisance.parallel)

    def ask_round(self) -> list[dict[str, Any]]:
        """The nuisance values of the next round's trials (decoded: lists are lists again)."""
        n = min(self.nuisance.parallel, self.total - self.asked)
        with quiet_optuna():
            self._open = [self.study.ask(self.dists) for _ in range(n)]
        self.asked += n
        return [{k: _decode(self.dists[k], t.params[k]) for k in self.dists} for t in self._open]

    def tell_round(self, outcomes: list[Outcome]) -> None:
        """Tell the open round its results, in slot order."""
        from optuna.trial import TrialState

        assert len(outcomes) == len(self._open)
        with quiet_optuna():
            for trial, out in zip(self._open, outcomes, strict=True):
                for step, value in intermediate_values(out, self.metric).items():
                    trial.report(value, step)
                for k, v in out.system_attrs.items():  # the pruner's rungs, for the next rounds' pruning
                    self.study._storage.set_trial_system_attr(trial._trial_id, k, v)
                value = metric_value(out, self.metric, self.maximize)
                if out.status == "pruned":
                    self.study.tell(trial, state=TrialState.PRUNED)
                elif value is None:
                    self.study.tell(trial, state=TrialState.FAIL)
                else:
                    self.study.tell(trial, value)
        self._open = []

    def snapshot(self) -> list[Any]:
        """The finished trials (FrozenTrial copies): what a pruner in a worker compares against."""
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=True, states=(TrialState.COMPLETE, TrialState.PRUNED))


class _GridSampler(GridSampler):
    """Optuna's GridSampler stops ``study.optimize`` when the grid is used up, which raises under
    ask-and-tell; here ``trials`` (at most the grid size) is what ends the search."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        pass


def _decode(dist: Any, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution) and isinstance(value, str):
        return json.loads(value) if value[:1] in "[{" else value
    return value


def intermediate_values(out: Outcome, metric: str) -> dict[int, float]:
    """The study metric after each epoch (finite values only), keyed by epoch: Optuna's steps."""
    return {int(r["epoch"]): float(r[metric]) for r in out.history
            if r.get(metric) is not None and math.isfinite(r[metric])}


class ArmPlan:
    """Where one arm stands. ``planned`` lists every run decided so far, in order; ``chosen`` the
    nuisance values its finals use (None before tuning ends, or when no tuning run completed)."""

    def __init__(self, spec: StudySpec, arm: Arm):
        self.spec, self.arm = spec, arm
        self.tuner = Tuner(spec, arm) if spec.nuisance is not None else None
        self.planned: list[PlannedRun] = []
        self.current: list[PlannedRun] | None = None
        self.tuned: list[tuple[PlannedRun, Outcome]] = []
        self.chosen: dict[str, Any] | None = None if self.tuner else {}
        self.finals_planned = False
        self.slice_planned = False
        self.done = False

    def advance(self, lookup: Callable[[str], Outcome | None]) -> list[PlannedRun]:
        """The runs of the current stage without a stored result, after moving past every stage whose
        runs all have one. Empty once the arm is done."""
        while not self.done:
            if self.current is None:
                self.current = self._next_stage()
                if self.current is None:
                    self.done = True
                    break
                self.planned += self.current
            pending = [r for r in self.current if lookup(r.identity) is None]
            if pending:
                return pending
            if self.current and self.current[0].phase == "tune":
                outcomes = [lookup(r.identity) for r in self.current]
                self.tuned += zip(self.current, outcomes, strict=True)  # type: ignore[arg-type]
                assert self.tuner is not None
                self.tuner.tell_round(outcomes)  # type: ignore[arg-type]
            self.current = None
        return []

    def _next_stage(self) -> list[PlannedRun] | None:
        t = self.tuner
        if t is not None and t.asked < t.total:
            stage, first = t.asked // t.nuisance.parallel, t.asked
            values = t.ask_round()
            prune = self._prune_context(t)
            return [self._run("tune", first + i, stage, p, t.nuisance.seed, prune) for i, p in enumerate(values)]
        if self.finals_planned:
            return self._slice_stage()
        self.finals_planned = True
        if t is not None:
            self.chosen = self._best()
            if self.chosen is None:  # every tuning run failed or diverged: nothing to re-run
                return []
        stage = t.rounds if t else 0
        return [self._run("final", s, stage, self.chosen or {}, s) for s in range(self.spec.study.seeds)]

    def _slice_stage(self) -> list[PlannedRun] | None:
        """The untuned slice (``nuisance.slice``): the final seeds at the base nuisance values."""
        t = self.tuner
        if t is None or not t.nuisance.slice or self.slice_planned:
            return None
        self.slice_planned = True
        base = self.spec.run_spec(self.arm, {}, seed=0, final=False).model_dump(mode="json")
        params = {k: _dotted(base, k) for k in t.nuisance.params}
        return [self._run("slice", s, t.rounds + 1, params, s) for s in range(self.spec.study.seeds)]

    def _prune_context(self, t: Tuner) -> dict[str, Any] | None:
        if t.nuisance.pruner == "none":
            return None
        return {"pruner": t.nuisance.pruner, "metric": t.metric, "maximize": t.maximize, "trials": t.snapshot()}

    def _best(self) -> dict[str, Any] | None:
        """The nuisance values of the best complete tuning run (ties: the earliest trial)."""
        study = self.spec.study
        scored = [(metric_value(o, study.metric, study.maximize), r) for r, o in self.tuned if o.status == "complete"]
        scored = [(v, r) for v, r in scored if v is not None]
        if not scored:
            return None
        sign = -1.0 if study.maximize else 1.0
        return min(scored, key=lambda vr: (sign * vr[0], vr[1].slot))[1].params

    def _run(self, phase: Phase, slot: int, stage: int, params: dict[str, Any], seed: int,
             prune: dict[str, Any] | None = None) -> PlannedRun:
        spec = self.spec.run_spec(self.arm, params, seed=seed, final=phase == "final")
        return PlannedRun(self.arm, phase, slot, stage, dict(params), spec, prune)

    @property
    def nominal(self) -> int:
        """Runs this arm will have when done: trials + seeds (+ seeds for the untuned slice; fewer
        finals when no tuning run completes)."""
        t, seeds = self.tuner, self.spec.study.seeds
        return (t.total + seeds * t.nuisance.slice if t else 0) + seeds


def _dotted(tree: Mapping[str, Any], key: str) -> Any:
    """``tree["optimizer"]["lr"]`` for ``key = "optimizer.lr"``."""
    for part in key.split("."):
        tree = tree[part]
    return tree


def plan_arms(spec: StudySpec, lookup: Callable[[str], Outcome | None]) -> list[ArmPlan]:
    """Every arm's plan, advanced as far as the stored results allow (resume = this, then run)."""
    plans = [ArmPlan(spec, arm) for arm in spec.arms()]
    for p in plans:
        p.advance(lookup)
    return plans


def check_design(spec: StudySpec) -> None:
    """Plan the first arm's first stage as the runner will (its sampler asked for the first round,
    each run's RunSpec built), so that a search space the sampler cannot use is refused while nothing
    is written yet. ``load_study`` calls this last. Raises SpecError naming the nuisance table."""
    from pydantic import ValidationError

    from nnstudy.errors import SpecError
    from nnstudy.spec import spec_error

    arms = spec.arms()
    if spec.nuisance is None or not arms:
        return
    try:
        ArmPlan(spec, arms[0]).advance(lambda _: None)
    except ValidationError as e:
        raise SpecError(f"{spec.source}: nuisance: a value its sampler asked for: {spec_error(e)}") from None
    except (ValueError, ArithmeticError) as e:  # Optuna refusing a distribution, an overflow in a sampler
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SpecError(f"{spec.source}: nuisance: sampler {spec.nuisance.sampler!r} cannot search this space: "
                        f"{reason}") from None
