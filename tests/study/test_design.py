"""The design, without training: simulated results stand in for runs, so every order of completion,
every interruption point and every sampler can be tried in milliseconds."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest
from studyfiles import GRID, TINY, TUNED

from nnstudy.study import load_study
from nnstudy.study.design import PlannedRun, plan_arms


@dataclass
class Fake:
    """A stored result as the design reads it."""

    status: str
    metrics: dict
    history: list = field(default_factory=list)
    system_attrs: dict = field(default_factory=dict)


def score(run: PlannedRun) -> Fake:
    """Validation accuracy peaks at lr = 0.1 (tanh arm: 0.3); every run is complete."""
    peak = 0.3 if "tanh" in run.arm.label else 0.1
    acc = 0.9 - 0.1 * abs(math.log10(run.spec.optimizer.lr / peak)) + 0.001 * run.spec.seed
    return Fake("complete", {"val_accuracy": acc}, [{"epoch": 1, "val_accuracy": acc}])


def simulate(spec, result=score, rng: random.Random | None = None, restart_every: int | None = None):
    """Drive the design to its end, completing pending runs in random order and batch sizes (as any
    number of workers would) and, with ``restart_every``, rebuilding the plans from the store (as a
    killed and resumed runner would). Returns (plans, store)."""
    store: dict[str, Fake] = {}
    plans = plan_arms(spec, store.get)
    done = 0
    while True:
        pending = {r.identity: r for p in plans for r in p.advance(store.get)}
        if not pending:
            return plans, store
        batch = list(pending.values())
        if rng is not None:
            rng.shuffle(batch)
            batch = batch[: rng.randint(1, len(batch))]
        for run in batch:
            store[run.identity] = result(run)
            done += 1
            if restart_every and done % restart_every == 0:
                plans = plan_arms(spec, store.get)


def runs_of(plans) -> list[tuple[str, str, int, int, str]]:
    return [(r.arm.label, r.phase, r.slot, r.spec.seed, r.identity) for p in plans for r in p.planned]


def test_grid_is_arms_times_seeds_all_final_tested_and_paired(study_file):
    spec = load_study(study_file(GRID))
    plans, store = simulate(spec)
    runs = [r for p in plans for r in p.planned]
    assert len(runs) == len(store) == 2 * 2
    assert all(r.phase == "final" and r.spec.test and r.spec.save_weights for r in runs)
    seeds = {p.arm.label: [r.spec.seed for r in p.planned] for p in plans}
    assert seeds == {"model.activation=relu": [0, 1], "model.activation=tanh": [0, 1]}


def test_tuned_study_tunes_then_reruns_the_best_with_fresh_seeds(study_file):
    spec = load_study(study_file(TUNED.replace("trials = 3", "trials = 8")))
    plans, store = simulate(spec)
    for plan in plans:
        tune = [r for r in plan.planned if r.phase == "tune"]
        final = [r for r in plan.planned if r.phase == "final"]
        assert len(tune) == 8 and len(final) == 2
        assert all(not r.spec.test and r.spec.seed == spec.nuisance.seed for r in tune)
        assert [r.spec.seed for r in final] == [0, 1] and all(r.spec.test for r in final)
        best = max(tune, key=lambda r: store[r.identity].metrics["val_accuracy"])
        assert plan.chosen == best.params and all(r.params == best.params for r in final)
        assert {r.spec.optimizer.lr for r in final} == {best.params["optimizer.lr"]}
        untuned = [r for r in plan.planned if r.phase == "slice"]  # the fixed-base slice
        assert [r.spec.seed for r in untuned] == [0, 1] and not any(r.spec.test for r in untuned)
        base_lr = spec.run_spec(plan.arm, {}, seed=0, final=False).optimizer.lr
        assert {r.spec.optimizer.lr for r in untuned} == {base_lr} and untuned[0].params == {"optimizer.lr": base_lr}
    assert len(store) == sum(p.nominal for p in plans) == 2 * (8 + 2 + 2)


def test_the_untuned_slice_can_be_switched_off(study_file):
    spec = load_study(study_file(TUNED + "slice = false\n"))
    plans, store = simulate(spec)
    assert not [r for p in plans for r in p.planned if r.phase == "slice"]
    assert len(store) == sum(p.nominal for p in plans) == 2 * (3 + 2)


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "grid"])
def test_any_completion_order_and_any_interruption_give_the_same_runs(study_file, sampler):
    """What --workers N and kill -9 + resume rely on: the design depends on results, not on timing."""
    extra = 'sampler = "grid"\n' if sampler == "grid" else f'sampler = "{sampler}"\n'
    text = TUNED.replace("trials = 3", "trials = 7") + extra
    if sampler == "grid":
        text = text.replace("log = [0.01, 1.0] }", "log = [0.01, 1.0], points = 7 }")
    spec = load_study(study_file(text))
    reference = runs_of(simulate(spec)[0])
    for seed in range(4):
        rng = random.Random(seed)
        assert runs_of(simulate(spec, rng=rng, restart_every=rng.randint(1, 5))[0]) == reference


def test_rounds_ask_different_values_and_arms_search_independently(study_file):
    spec = load_study(study_file(TUNED.replace("trials = 3", "trials = 6")))
    plans, _ = simulate(spec)
    lrs = {p.arm.label: [r.params["optimizer.lr"] for r in p.planned if r.phase == "tune"] for p in plans}
    assert all(len(set(v)) == 6 for v in lrs.values())
    assert lrs["model.activation=relu"] != lrs["model.activation=tanh"]
    # adding an arm changes nothing for the others (each arm's sampler is seeded by its own label)
    wider = load_study(study_file(TUNED.replace("trials = 3", "trials = 6").replace('"tanh"]', '"tanh", "gelu"]'),
                                  name="wider"))
    lrs2 = {p.arm.label: [r.params["optimizer.lr"] for r in p.planned if r.phase == "tune"]
            for p in simulate(wider)[0]}
    assert {k: lrs2[k] for k in lrs} == lrs


def test_grid_sampler_visits_every_point_once(study_file):
    text = TUNED.replace("trials = 3", 'sampler = "grid"')
    text = text.replace("log = [0.01, 1.0] }", "log = [0.01, 1.0], points = 5 }")
    spec = load_study(study_file(text))
    assert spec.trials == 5
    plans, _ = simulate(spec)
    for p in plans:
        lrs = sorted(r.params["optimizer.lr"] for r in p.planned if r.phase == "tune")
        assert lrs == pytest.approx([0.01, 0.01 * 10**0.5, 0.1, 0.1 * 10**0.5, 1.0])


def test_a_diverged_tuning_run_never_wins(study_file):
    spec = load_study(study_file(TUNED))

    def result(run: PlannedRun) -> Fake:
        lr = run.spec.optimizer.lr
        if run.phase == "tune" and lr == max_lr[run.arm.label]:  # the largest rate diverges...
            return Fake("diverged", {"val_accuracy": 0.99})  # ...after a last epoch that looked great
        return score(run)

    first = plan_arms(spec, {}.get)
    max_lr = {p.arm.label: max(r.spec.optimizer.lr for r in p.planned) for p in first}
    plans, store = simulate(spec, result)
    for p in plans:
        assert p.chosen["optimizer.lr"] != max_lr[p.arm.label]


def test_an_arm_whose_tuning_runs_all_fail_has_no_finals_and_the_others_go_on(study_file):
    spec = load_study(study_file(TUNED))

    def result(run: PlannedRun) -> Fake:
        return Fake("failed", {}) if "tanh" in run.arm.label else score(run)

    plans, store = simulate(spec, result)
    relu, tanh = plans
    assert tanh.done and tanh.chosen is None and not [r for r in tanh.planned if r.phase == "final"]
    assert relu.chosen is not None and len([r for r in relu.planned if r.phase == "final"]) == 2


def test_without_scientific_keys_there_is_one_arm(study_file):
    spec = load_study(study_file(TINY))
    plans, store = simulate(spec)
    assert [p.arm.label for p in plans] == ["base"] and len(store) == 2
