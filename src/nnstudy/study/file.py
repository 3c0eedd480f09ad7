"""Study files: the question, its arms, its nuisance search space, seeds and budget (DESIGN.md §7).

A study file is TOML with five tables::

    [study]       name, question, metric, seeds, threads, max_runs, max_minutes, pack, retries, heartbeat
    [data]        DataSpec fields (one validation split for the whole study)
    [base]        RunSpec fields, except data, seed, test, threads, save_weights
    [scientific]  "dotted.key" = [values...]     one arm per element of the product, in file order
    [scientific.zip]  "dotted.key" = [values...]  lists of one length whose values move together: one
                                 axis of the product (seed 000's batch size with its training set size)
    [nuisance]    "dotted.key" = { log = [lo, hi] } | { uniform = [lo, hi] } | { int = [lo, hi] }
                                 | { choice = [...] };  trials, sampler, pruner, seed, parallel

``load_study(path, overrides)`` reads the file, applies ``--set`` overrides, and validates it
*completely*: the file's own shape (pydantic), then every arm's RunSpec with the nuisance values at
each bound of their ranges (so a dotted key must name a real field for the model kind in use), then
each arm's model against the dataset's image shape. Every mistake is one ``SpecError`` line naming the
file and the study key, e.g. ``studies/x.toml: scientific."optimizer.lr": optimizer.lr = 0: ...``.
A StudySpec that ``load_study`` returns therefore expands into RunSpecs without error.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, model_validator

from nnstudy import metrics
from nnstudy._types import FiniteFloat, Int, NonNegInt, PosInt
from nnstudy.errors import SpecError
from nnstudy.flags import LIST_KEYS
from nnstudy.spec import (
    DataSpec,
    RunSpec,
    apply_overrides,
    did_you_mean,
    fields_at,
    parse_toml,
    read_text,
    spec_error,
    user_key,
)

__all__ = [
    "METRICS",
    "Arm",
    "Choice",
    "Distribution",
    "IntRange",
    "LogRange",
    "NuisanceSpec",
    "StudySection",
    "StudySpec",
    "UniformRange",
    "apply_study_overrides",
    "load_study",
    "render_value",
]

#: Metrics a study can rank runs by, and whether larger is better.
METRICS: dict[str, bool] = {m: metrics.maximize(m) for m in metrics.RANKED}
TABLES = ("study", "data", "base", "scientific", "nuisance")
NUISANCE_SETTINGS = ("trials", "sampler", "pruner", "seed", "parallel", "slice")
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


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudySection(_Spec):
    """The ``[study]`` table."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100,
                      description="letters, digits, '.', '_', '-': it names the folder runs/<name>/")
    question: str = ""
    metric: Literal["val_accuracy", "val_loss", "train_accuracy", "train_loss"] = "val_accuracy"
    # 3: the fewest that give a mean and a spread; the report says when too few to separate arms.
    seeds: PosInt = Field(3, description="final runs per arm, with seeds 0 .. seeds-1 in every arm")
    # 1: float results depend on the intra-op thread count (measured: 1 vs 2 threads differ in the last
    # bits of the weights), so it is a property of the study, not of --workers; one thread per process
    # and one process per core is also the fastest layout for small models (DESIGN.md §9).
    threads: PosInt = Field(1, description="torch threads of every run")
    max_runs: PosInt | None = Field(None, description="stop once the store holds this many runs")
    max_minutes: FiniteFloat | None = Field(None, gt=0, description="stop dispatching after this long (per invocation)")
    # strict: a TOML boolean only ("yes" or 1 is a mistake worth one line, not a guess)
    pack: bool = Field(True, strict=True, description="train same-shape runs as one packed program (same numbers)")
    # 2: a run whose worker died (killed, out of memory, a machine lost) is started at most 3 times; one
    # that kills its worker every time is then recorded failed with the reason, and the study goes on.
    retries: Int = Field(2, ge=0, description="times a run whose worker died is started again")
    # 10 s: one small UPDATE per worker per beat; a dead worker's runs are released after 3 missed beats.
    heartbeat: FiniteFloat = Field(10.0, gt=0, le=3600, description="seconds between a worker's beats in the store")
    # final runs only: their configuration is fixed before they see the test set, so a curve chooses nothing
    test_curves: bool = Field(False, strict=True, description="final runs also record the test set after every epoch")

    @property
    def maximize(self) -> bool:
        return METRICS[self.metric]


# ------------------------------------------------------------------------------------ distributions


class _Range(_Spec):
    """A numeric range ``[lo, hi]``; ``points`` makes it a grid of that many values (sampler grid)."""

    points: Int | None = Field(None, ge=2, description="grid sampler: this many values, ends included")

    @property
    def bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _ordered(self):
        lo, hi = self.bounds
        if not lo < hi:
            raise ValueError(f"range [{lo}, {hi}]: needs lo < hi")
        if not math.isfinite(hi - lo):
            raise ValueError(f"range [{lo}, {hi}]: too wide (hi - lo is not a finite float)")
        return self

    def check_values(self) -> list[Any]:
        """Values to validate the RunSpec with: the two ends."""
        return list(self.bounds)


class LogRange(_Range):
    """``{ log = [lo, hi] }``: sampled uniformly in log space; ``0 < lo < hi``."""

    log: tuple[FiniteFloat, FiniteFloat]

    @property
    def bounds(self) -> tuple[float, float]:
        return self.log

    @model_validator(mode="after")
    def _positive(self) -> LogRange:
        if self.log[0] <= 0:
            raise ValueError(f"log range [{self.log[0]}, {self.log[1]}]: needs 0 < lo < hi")
        return self

    def grid(self) -> list[float] | None:
        if self.points is None:
            return None
        lo, hi = math.log(self.log[0]), math.log(self.log[1])
        return [float(math.exp(lo + (hi - lo) * i / (self.points - 1))) for i in range(self.points)]


class UniformRange(_Range):
    """``{ uniform = [lo, hi] }``: sampled uniformly."""

    uniform: tuple[FiniteFloat, FiniteFloat]

    @property
    def bounds(self) -> tuple[float, float]:
        return self.uniform

    def grid(self) -> list[float] | None:
        if self.points is None:
            return None
        lo, hi = self.uniform
        return [lo + (hi - lo) * i / (self.points - 1) for i in range(self.points)]


class IntRange(_Spec):
    """``{ int = [lo, hi] }``: an integer in ``lo..hi``, both included."""

    int_: tuple[Int, Int] = Field(alias="int")

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if not self.int_[0] < self.int_[1]:
            raise ValueError(f"int range [{self.int_[0]}, {self.int_[1]}]: needs lo < hi")
        return self

    def check_values(self) -> list[Any]:
        return list(self.int_)

    def grid(self) -> list[int]:
        return list(range(self.int_[0], self.int_[1] + 1))


class Choice(_Spec):
    """``{ choice = [a, b, ...] }``: one of the values (any TOML values: numbers, strings, lists)."""

    choice: list[Any] = Field(min_length=1)

    def check_values(self) -> list[Any]:
        return list(self.choice)

    def grid(self) -> list[Any]:
        return list(self.choice)


def _kind(raw: Any) -> str | None:
    """The search-space kind of a TOML table (validation) or of a model (serialization)."""
    if isinstance(raw, BaseModel):
        return {LogRange: "log", UniformRange: "uniform", IntRange: "int", Choice: "choice"}.get(type(raw))
    if isinstance(raw, Mapping):
        return next((k for k in ("log", "uniform", "int", "choice") if k in raw), None)
    return None


Distribution = Annotated[
    Annotated[LogRange, Tag("log")] | Annotated[UniformRange, Tag("uniform")]
    | Annotated[IntRange, Tag("int")] | Annotated[Choice, Tag("choice")],
    Discriminator(_kind, custom_error_type="distribution", custom_error_message=(
        "expected a search space: { log = [lo, hi] }, { uniform = [lo, hi] }, { int = [lo, hi] } "
        "or { choice = [...] }")),
]


class NuisanceSpec(_Spec):
    """The ``[nuisance]`` table: hyperparameters re-tuned inside every arm, chosen on validation.

    ``seed`` is the run seed of every tuning run. It is deliberately not one of the final seeds
    (0 .. seeds-1): a final run never repeats a tuning run, so the winner's luck on its tuning seed
    does not flow into the numbers the arms are compared on. It also seeds the sampler, together
    with the arm's label, so each arm's search is reproducible on its own.

    ``slice``: after its finals, every arm is also run *untuned*, at the base values of the nuisance
    keys, with the final seeds (not tested): the fixed-base slice the report draws beside the tuned
    comparison, so that what tuning changed (the confound of comparing at one learning rate) is visible.

    ``parallel``: trials asked per round. Rounds make the search independent of ``--workers``: the
    trials of a round are asked together from the results of the earlier rounds only, so 1 or 8
    workers ask the same trials (and a resumed study the same as an uninterrupted one).
    """

    params: dict[str, Distribution] = Field(min_length=1)
    trials: PosInt | None = Field(None, description="tuning runs per arm (grid: default all points)")
    sampler: Literal["grid", "random", "qmc", "tpe"] = "tpe"
    pruner: Literal["none", "median", "asha"] = "none"
    seed: NonNegInt = 1000
    parallel: PosInt = 4
    slice: bool = Field(True, description="also run every arm untuned, at the base values, with the final seeds")

    @model_validator(mode="before")
    @classmethod
    def _split_settings(cls, raw: Any) -> Any:
        """Search spaces (every key that is not a setting) go under ``params``."""
        if not isinstance(raw, Mapping) or "params" in raw:
            return raw
        settings = {k: v for k, v in raw.items() if k in NUISANCE_SETTINGS}
        return {**settings, "params": {k: v for k, v in raw.items() if k not in NUISANCE_SETTINGS}}

    def grid_space(self) -> dict[str, list[Any]] | None:
        """Every key's grid values, or None when some range has no ``points``."""
        space = {k: d.grid() for k, d in self.params.items()}
        return None if any(v is None for v in space.values()) else space  # type: ignore[return-value]


# --------------------------------------------------------------------------------------- the study


class StudySpec(_Spec):
    """A validated study. Build it with ``load_study`` (which checks every arm's RunSpec too)."""

    study: StudySection
    data: DataSpec = Field(default_factory=DataSpec)
    base: dict[str, Any] = Field(default_factory=dict)
    scientific: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    #: ``[scientific.zip]``: keys whose i-th values go together, one axis of the product after the others.
    zipped: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    nuisance: NuisanceSpec | None = None
    #: ``labels = [...]`` in [scientific], beside its one list: the arms' names (see ``Arm``)
    labels: list[Annotated[str, Field(min_length=1)]] | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _arm_labels(cls, raw: Any) -> Any:
        """``labels`` is written in [scientific] (beside the list it names) but is not a scientific key."""
        if isinstance(raw, Mapping) and "labels" in raw:
            raise ValueError("labels: unknown key; write labels = [...] in [scientific], beside the list it names")
        if isinstance(raw, Mapping) and isinstance(raw.get("scientific"), Mapping) and "labels" in raw["scientific"]:
            sci = dict(raw["scientific"])
            return {**raw, "scientific": sci, "labels": sci.pop("labels")}
        return raw

    @model_validator(mode="before")
    @classmethod
    def _zip_table(cls, raw: Any) -> Any:
        """``[scientific.zip]`` is read into ``zipped`` (a study file has no top-level ``zipped``)."""
        if not isinstance(raw, Mapping):
            return raw
        if "zipped" in raw:
            raise ValueError("zipped: unknown table; write [scientific.zip]")
        sci = raw.get("scientific")
        if isinstance(sci, Mapping) and "zip" in sci:
            rest = {k: v for k, v in sci.items() if k != "zip"}
            return {**raw, "scientific": rest, "zipped": sci["zip"]}
        return raw

    def scientific_keys(self) -> list[str]:
        """Every scientific key: the product's, then the zipped ones."""
        return [*self.scientific, *self.zipped]

    def axes(self) -> dict[str, list[Any]]:
        """The compared keys and their values, one entry per axis of the product: a zip is its first
        key (the others ride along); what the analysis and the figures lay the arms out by."""
        out = {k: [without_name(x) for x in v] for k, v in self.scientific.items()}
        if self.zipped:
            first = next(iter(self.zipped))
            out[first] = list(self.zipped[first])
        return out

    _source: str = PrivateAttr("")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _text: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """The file it was read from (with ``--set`` overrides, if any, after it)."""
        return self._source

    @property
    def text(self) -> str:
        """The study file's text, as read."""
        return self._text

    @property
    def raw(self) -> dict[str, Any]:
        """The study as written (after overrides), without defaults filled in: what ``study.toml`` keeps."""
        return self._raw

    @property
    def name(self) -> str:
        return self.study.name

    def arms(self) -> list[Arm]:
        """One arm per element of the product of the scientific lists, in file order; a
        ``[scientific.zip]`` is one more axis whose i-th element sets every zipped key's i-th value.
        Each arm has its name (``Arm``)."""
        keys: list[Any] = list(self.scientific)
        axes = [[without_name(v) for v in vs] for vs in self.scientific.values()]
        labels = self.labels if len(self.axes()) == 1 else None
        names = [value_names(k, vs, labels) for k, vs in self.scientific.items()]
        if self.zipped:
            keys.append(tuple(self.zipped))
            axes.append(list(zip(*self.zipped.values(), strict=True)))
            parts = list(zip(*(value_names(k, vs) for k, vs in self.zipped.items()), strict=True))
            names.append(labels if labels is not None and not self.scientific else [", ".join(p) for p in parts])
        combos = itertools.product(*(range(len(axis)) for axis in axes)) if keys else [()]
        arms = []
        for i, idx in enumerate(combos):
            chosen: dict[str, Any] = {}
            for key, axis, j in zip(keys, axes, idx, strict=True):
                value = axis[j]
                chosen.update(zip(key, value, strict=True) if isinstance(key, tuple) else [(key, value)])
            arms.append(Arm(i, chosen, [n[j] for n, j in zip(names, idx, strict=True)]))
        if len({a.name for a in arms}) < len(arms):  # names that do not tell arms apart: the labels do
            for a in arms:
                a.name = a.label
        return arms

    @property
    def trials(self) -> int:
        """Tuning runs per arm (0 without nuisance)."""
        if self.nuisance is None:
            return 0
        if self.nuisance.trials is not None:
            return self.nuisance.trials
        grid = self.nuisance.grid_space() or {}
        return math.prod(len(v) for v in grid.values())

    def run_spec(self, arm: Arm, params: Mapping[str, Any], seed: int, final: bool) -> RunSpec:
        """The RunSpec of one run: base, then the arm's values, then the nuisance values; final runs
        are tested and keep their weights. Raises ValidationError (``load_study`` has ruled it out)."""
        dotted = {**arm.values, **params}
        for key in LIST_KEYS & dotted.keys():
            if not isinstance(dotted[key], list):  # "model.hidden" = [100, 300]: one layer each
                dotted[key] = [dotted[key]]
        raw = apply_overrides({**self.base, "data": self.data.model_dump(mode="json")}, dotted, source=self._source)
        raw.update(seed=seed, test=final, save_weights=final, threads=self.study.threads,
                   test_curve=final and self.study.test_curves)
        return RunSpec.model_validate(raw)


class Arm:
    """One combination of scientific values.

    ``name`` is what every table, figure and sentence calls it: the study file's (``labels = [...]``
    beside a single scientific list, or ``name = "..."`` inside a value's table), else a short name
    made of what differs between the arms: ``batch_size=32``, ``linear`` and ``mlp [100]`` for
    ``model = [{kind = "linear"}, {kind = "mlp", hidden = [100]}]``; several keys joined by ", ".
    ``label`` (``batch_size=32``, ``model={kind=mlp, hidden=[100]}``) is the arm's stable key in the
    store and in its sampler's seed: renaming an arm changes no run.
    """

    def __init__(self, index: int, values: dict[str, Any], parts: Sequence[str] | None = None):
        """``parts``: the name's part per axis of the product (default: the label's)."""
        self.index, self.values = index, values
        self.label = ", ".join(f"{k}={render_value(v)}" for k, v in values.items()) or "base"
        self.name = ", ".join(parts) if parts else self.label

    def __repr__(self) -> str:
        return f"Arm({self.index}, {self.name!r})"


def without_name(v: Any) -> Any:
    """A scientific value without its ``name`` (which names the arm and is no RunSpec key)."""
    return {k: x for k, x in v.items() if k != "name"} if isinstance(v, Mapping) else v


def value_names(key: str, values: Sequence[Any], labels: Sequence[str] | None = None) -> list[str]:
    """Each value's part of its arm's name: ``labels`` when given, else a table's own ``name``, else
    what differs between the key's values: a table's entries that differ (``mlp [100]``; ``kind``
    first), a plain value as ``key=value``."""
    if labels is not None:
        return list(labels)
    tables = [without_name(v) for v in values if isinstance(v, Mapping)]
    differ = [k for k in dict.fromkeys(k for t in tables for k in t)
              if len({render_value(t.get(k)) if k in t else None for t in tables}) > 1]
    differ.sort(key=lambda k: k != "kind")
    out = []
    for v in values:
        if isinstance(v, Mapping) and isinstance(v.get("name"), str):
            out.append(v["name"])
        elif isinstance(v, Mapping):
            t = without_name(v)
            parts = [render_value(t[k]) for k in differ if k in t] or [render_value(t.get("kind", t))]
            out.append(" ".join(parts))
        else:
            out.append(f"{key}={render_value(v)}")
    return out


def render_value(v: Any) -> str:
    """A value as a label shows it: ``0.1``, ``tanh``, ``[50, 50]``, ``{kind=mlp, hidden=[100]}``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(render_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}={render_value(x)}" for k, x in v.items()) + "}"
    return str(v)


# ----------------------------------------------------------------------------------------- loading


def load_study(path: str | Path, overrides: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> StudySpec:
    """Read, override and completely validate a study file.

    ``overrides``: dotted keys as ``--set`` gives them: ``base.epochs``, ``study.seeds``,
    ``scientific.batch_size``, ``scientific.optimizer.lr`` (everything after ``scientific.`` or
    ``nuisance.`` is one RunSpec key), ``nuisance.trials``.

    Raises:
        SpecError: one line naming the file and the study key (malformed TOML, unknown key, wrong
            type, empty list, bad range, a dotted key that names no RunSpec field, a model that does
            not fit the images, ...).
    """
    source = str(path)
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    text = read_text(path)
    raw = apply_study_overrides(parse_toml(text, path), items, source)
    if items:
        source += " with --set " + " ".join(f"{k}={json.dumps(v)}" for k, v in items)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as e:
        raise _study_error(e, source) from None
    spec._source, spec._raw, spec._text = source, raw, text
    _check(spec, source)
    from nnstudy.study.design import check_design  # the design imports this module: import late

    check_design(spec)
    return spec


def apply_study_overrides(raw: Mapping[str, Any], items: Sequence[tuple[str, Any]], source: str) -> dict[str, Any]:
    """``raw`` with each ``--set`` key applied. Under ``scientific`` and ``nuisance`` the rest of the
    key is one RunSpec key (quotes optional): ``scientific.optimizer.lr`` sets ``"optimizer.lr"``."""
    out = apply_overrides(raw, {})
    for key, value in items:
        table, _, rest = key.partition(".")
        if table in ("scientific", "nuisance") and rest:
            if not isinstance(out.setdefault(table, {}), dict):
                raise SpecError(f"{source}: --set {key}: {table} is not a table")
            node = out[table]
            if table == "scientific" and rest.startswith("zip."):  # scientific.zip.batch_size=[...]
                node, rest = node.setdefault("zip", {}), rest[4:]
                if not isinstance(node, dict):
                    raise SpecError(f"{source}: --set {key}: scientific.zip is not a table")
            node[rest.strip('"')] = value
        else:
            out = apply_overrides(out, {key: value}, source=f"{source}: --set")
    return out


def _quote(key: str) -> str:
    return json.dumps(key) if not key.replace("_", "").isalnum() else key


def _study_key(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as the study file's key: ``scientific."optimizer.lr"``."""
    if not loc:
        return "(top level)"
    head, rest = str(loc[0]), list(loc[1:])
    if head == "zipped":
        return "scientific.zip" + (f".{_quote(str(rest[0]))}" if rest else "")
    if head in ("scientific", "nuisance") and rest:
        if head == "nuisance" and rest[0] == "params":
            rest = rest[1:]
        if rest and (head == "scientific" or rest[0] not in NUISANCE_SETTINGS):
            return f"{head}.{_quote(str(rest[0]))}"  # the search space or list as a whole
    key = head
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _study_error(err: ValidationError, source: str) -> SpecError:
    """One line from pydantic's errors about the study file itself."""
    first = err.errors()[0]
    key, value, msg = _study_key(first["loc"]), first.get("input"), first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        loc, parent = first["loc"], key.rpartition(".")[0]
        if len(loc) == 1:
            msg = f"unknown table{did_you_mean(str(loc[0]), TABLES)}; allowed: {', '.join(TABLES)}"
        else:
            msg = "unknown key" + did_you_mean(str(loc[-1]), fields_at(StudySpec, loc[:-1]), f"{parent}.")
    table = first["type"] == "extra_forbidden" and len(first["loc"]) == 1
    shown = "" if first["type"] == "missing" or table or value == {} else f" = {_show(value)}"
    return SpecError(f"{source}: {key}{shown}: {msg}")


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_quote(str(k))} = {_show(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if isinstance(value, (list, str, bool)) or value is None else repr(value)


def _check(spec: StudySpec, source: str) -> None:
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
