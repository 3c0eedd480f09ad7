"""What ``load_study`` checks beyond the shape of each table: the design's size, reserved and
overlapping keys, arm names, the metric against the split, the nuisance search, and every arm's RunSpec
and model at every bound of the search space. Each failure is one ``SpecError`` naming the study key.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from nnstudy.errors import SpecError
from nnstudy.spec import spec_error, user_key
from nnstudy.study.space import Choice, IntRange, NuisanceSpec
from nnstudy.study.study_spec import Arm, StudySpec, render_value
from nnstudy.study.study_spec import quote_key as _quote

__all__ = ["MAX_RUNS", "MAX_THREADS", "RESERVED", "check_study"]

#: The most runs one study's design may hold, and why: the whole design is planned in memory before a
#: run trains, and every run is a row in the store.
MAX_RUNS = 100_000
#: The most torch threads per run: more threads than a machine has cores only slow a run down.
MAX_THREADS = 1024
#: RunSpec keys the study sets itself, and why a study file may not.
RESERVED = {
    "seed": "run seeds are set by study.seeds (final runs) and nuisance.seed (tuning runs)",
    "test": "only final runs are tested; the phase sets it",
    "test_curve": "set study.test_curves: only final runs, whose configuration is fixed, see the test set",
    "threads": "set study.threads instead",
    "save_weights": "final runs always keep their weights",
}



def check_study(spec: StudySpec, source: str) -> None:
    """What pydantic cannot see in one table: the study's size, reserved and overlapping keys, the
    metric against the split, grid sizes, every arm's RunSpec and model at every bound of the search
    space, and the sampler's first round."""
    _check_size(spec, source)
    tables = [("base", k) for k in spec.base] + [("scientific", k) for k in spec.scientific]
    tables += [("scientific.zip", k) for k in spec.zipped]
    tables += [("nuisance", k) for k in (spec.nuisance.params if spec.nuisance else {})]
    for table, key in tables:
        root = key.split(".")[0]
        if root in RESERVED:
            raise SpecError(f"{source}: {table}.{_quote(key)}: {RESERVED[root]}")
        if table == "base" and root == "data":
            raise SpecError(f"{source}: base.data: put data settings in the [data] table")
    lengths = {k: len(v) for k, v in spec.zipped.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise SpecError(f"{source}: scientific.zip: its lists move together, so they need one length ({listed})")
    for k in spec.zipped:
        if k in spec.scientific:
            raise SpecError(f"{source}: scientific.zip.{_quote(k)}: also a key of [scientific]; "
                            "a key is one or the other")
    _check_names(spec, source)
    sci, nui = spec.scientific_keys(), list(spec.nuisance.params) if spec.nuisance else []
    for a, b in itertools.product(sci, nui):
        if a == b or a.startswith(b + ".") or b.startswith(a + "."):
            raise SpecError(f"{source}: nuisance.{_quote(b)}: also a scientific key ({a}); a key is one or the other")
    if spec.study.metric.startswith("val_") and spec.data.validation == 0:
        raise SpecError(f"{source}: study.metric = {spec.study.metric!r}: needs a validation split "
                        "(data.validation > 0); or rank by train_loss/train_accuracy")
    if spec.nuisance is not None:
        _check_nuisance(spec, spec.nuisance, source)
    _check_runs(spec, source)


def _grid_length(d: Any) -> int | None:
    """How many values a search space has on a grid (None: a range without ``points``), by arithmetic:
    nothing is listed, so a huge range costs nothing to refuse."""
    if isinstance(d, Choice):
        return len(d.choice)
    if isinstance(d, IntRange):
        return d.int_[1] - d.int_[0] + 1
    return d.points


def _check_size(spec: StudySpec, source: str) -> None:
    """Refuse a design too large to plan (``MAX_RUNS``) before any of it is listed, naming the key."""
    s, n = spec.study, spec.nuisance
    if s.threads > MAX_THREADS:
        raise SpecError(f"{source}: study.threads = {s.threads}: at most {MAX_THREADS}; more threads than "
                        "cores only slow a run down")
    arms = math.prod(len(v) for v in spec.scientific.values())
    arms *= len(next(iter(spec.zipped.values()))) if spec.zipped else 1
    trials = 0
    if n is not None:
        if n.sampler == "grid":
            for key, d in n.params.items():
                length = _grid_length(d)
                if length is not None and length > MAX_RUNS:
                    raise SpecError(f"{source}: nuisance.{_quote(key)}: a grid of {length:,} values; at most "
                                    f"{MAX_RUNS:,} runs in a study (the design is planned in memory)")
            lengths = [_grid_length(d) for d in n.params.values()]
            grid = math.prod(x for x in lengths if x is not None)
            trials = n.trials if n.trials is not None else grid
        else:
            trials = n.trials or 0
    finals = s.seeds * (2 if n is not None and n.slice else 1)
    total = arms * (trials + finals)
    if total > MAX_RUNS:
        if arms >= trials + finals:  # name the factor that makes it large
            key = f"scientific: {arms:,} arms"
        elif trials >= finals:
            key = f"nuisance.trials = {trials}"
        else:
            key = f"study.seeds = {s.seeds}"
        slice_ = " (finals and the untuned slice)" if n is not None and n.slice else ""
        raise SpecError(f"{source}: {key}: the design would have {total:,} runs ({arms:,} arms × ({trials:,} "
                        f"tuning + {finals:,} seeded{slice_})); at most {MAX_RUNS:,}: the whole design is planned "
                        "in memory before a run trains, and every run is a row in the store")


def _check_names(spec: StudySpec, source: str) -> None:
    """``labels``: beside exactly one scientific list, one distinct name per value; a value's
    ``name``: text, distinct within its list."""
    if spec.labels is not None:
        axes = spec.axes()  # a [scientific.zip] is one axis
        if len(axes) != 1:
            raise SpecError(f"{source}: scientific.labels: names the values of one scientific list, and there "
                            f"are {len(axes)}; name values with {{ name = \"...\" }} in a value's table")
        key, values = next(iter(axes.items()))
        if len(spec.labels) != len(values):
            raise SpecError(f"{source}: scientific.labels: {len(spec.labels)} names for the {len(values)} values of "
                            f"scientific.{_quote(key)}; give one name per value")
    lists = [("labels", spec.labels)] if spec.labels is not None else []
    for key, values in spec.scientific.items():
        names = [v["name"] for v in values if isinstance(v, Mapping) and "name" in v]
        if any(not isinstance(n, str) or not n for n in names):
            raise SpecError(f"{source}: scientific.{_quote(key)}: name must be text, e.g. name = \"wide\"")
        lists.append((_quote(key), names))
    for key, names in lists:
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise SpecError(f"{source}: scientific.{key}: the name {dup!r} is given twice; each arm needs its own")


def _check_nuisance(spec: StudySpec, n: NuisanceSpec, source: str) -> None:
    if n.seed < spec.study.seeds:
        raise SpecError(f"{source}: nuisance.seed = {n.seed}: must not be a final seed (0..{spec.study.seeds - 1}); "
                        "tuning and final runs use different seeds")
    if n.sampler == "grid":
        space = n.grid_space()
        if space is None:
            key = next(k for k, d in n.params.items() if d.grid() is None)
            raise SpecError(f"{source}: nuisance.{_quote(key)}: sampler 'grid' needs 'points' on a range, "
                            "e.g. { log = [0.001, 1.0], points = 7 }")
        size = math.prod(len(v) for v in space.values())
        if n.trials is not None and n.trials > size:
            raise SpecError(f"{source}: nuisance.trials = {n.trials}: the grid has only {size} points")
    else:
        if n.trials is None:
            raise SpecError(f"{source}: nuisance.trials: missing; how many tuning runs per arm")
        key = next((k for k, d in n.params.items() if getattr(d, "points", None) is not None), None)
        if key is not None:
            raise SpecError(f"{source}: nuisance.{_quote(key)}: 'points' is for sampler 'grid' (sampler is "
                            f"{n.sampler!r})")


def _check_runs(spec: StudySpec, source: str) -> None:
    """Build every arm's RunSpec, with each nuisance key at each of its bounds, and each model's
    layers for the dataset's images; the first failure names the study key that caused it."""
    from nnstudy.data import get_source
    from nnstudy.models import count_params

    params = spec.nuisance.params if spec.nuisance else {}
    first = {k: d.check_values()[0] for k, d in params.items()}
    variants = [(None, first)] + [(k, {**first, k: v}) for k, d in params.items() for v in d.check_values()[1:]]
    classes = get_source(spec.data.dataset).num_classes
    seen: dict[str, Arm] = {}
    for arm in spec.arms():
        tried: dict[str, dict[str, Any]] = {}  # this arm's runs at the bounds: identity → nuisance values
        # the untuned slice runs at the base values alone: a bad base value a nuisance key overrides
        # in every tuned run must be refused too, not met when the slice is built
        for nkey, values, final in ([(None, {}, False)] if params else []) + [(k, v, True) for k, v in variants]:
            try:
                run = spec.run_spec(arm, values, seed=0, final=final)
            except ValidationError as e:
                where, in_arm = user_key(e.errors()[0]["loc"]), f" (arm {arm.label})" if arm.values else ""
                raise SpecError(f"{source}: {_blame(spec, where, nkey, spec_error(e))}{in_arm}") from None
            if not final:
                continue
            try:
                count_params(run.model, (1, 28, 28), classes)
            except SpecError as e:
                raise SpecError(f"{source}: {_blame(spec, 'model', nkey, f'arm {arm.label}: {e}')}") from None
            if nkey is None:
                other = seen.setdefault(run.identity(), arm)
                if other is not arm:
                    raise SpecError(f"{source}: {_same_arms(spec, other, arm)}")
            elif arm.index == 0:
                earlier = tried.get(run.identity())
                if earlier is not None:
                    shown = ", ".join(render_value(v) for v in (earlier[nkey], values[nkey]))
                    raise SpecError(f"{source}: nuisance.{_quote(nkey)}: values {shown} give the same run "
                                    "(a value listed twice, or one a run does not see); each must differ")
            tried.setdefault(run.identity(), values)


def _same_arms(spec: StudySpec, a: Arm, b: Arm) -> str:
    """``scientific.key: ...`` for two arms whose runs are the same: the axis whose list holds them at
    different places (a value listed twice, ``[32, 32]``; or two a run reads as one, ``[0.1, 0.10]``)."""
    axes = [(f"scientific.{_quote(k)}", list(v)) for k, v in spec.scientific.items()]
    if spec.zipped:
        axes.append(("scientific.zip", [dict(zip(spec.zipped, t, strict=True))
                                         for t in zip(*spec.zipped.values(), strict=True)]))

    def places(index: int) -> list[int]:  # itertools.product order: the last axis varies fastest
        out = []
        for _, values in reversed(axes):
            index, place = divmod(index, len(values))
            out.append(place)
        return out[::-1]

    key, values, i, j = next((k, v, i, j) for (k, v), i, j in zip(axes, places(a.index), places(b.index), strict=True)
                             if i != j)
    return (f"{key}: values {render_value(values[i])} (#{i + 1}) and {render_value(values[j])} (#{j + 1}) give the "
            f"same runs (arms {a.label!r} and {b.label!r}); each value must differ as a run sees it")


def _blame(spec: StudySpec, key: str, nuisance_key: str | None, message: str) -> str:
    """``study_key: message`` for an error at RunSpec ``key``: the nuisance key being checked, else
    the scientific key that sets ``key`` (or a part of it), else [data] or [base]."""
    def covers(k: str) -> bool:
        return key == k or key.startswith((k + ".", k + "[")) or k.startswith(key + ".")

    if nuisance_key is not None and covers(nuisance_key):
        return f"nuisance.{_quote(nuisance_key)}: {message}"
    hit = next((k for k in spec.scientific if covers(k)), None)
    if hit is not None:
        return f"scientific.{_quote(hit)}: {message}"
    hit = next((k for k in spec.zipped if covers(k)), None)
    if hit is not None:
        return f"scientific.zip.{_quote(hit)}: {message}"
    if nuisance_key is not None:
        return f"nuisance.{_quote(nuisance_key)}: {message}"
    return message if key.startswith("data.") else f"base.{message}"
