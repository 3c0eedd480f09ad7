"""``StudySpec``: a study file's tables as frozen pydantic models (``[study]``, ``[data]``, ``[base]``,
``[scientific]``, ``[nuisance]``), and its arms (``Arm``, their names). Build one with
``nnstudy.study.file.load_study``, which validates it completely; import the names from there.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from nnstudy import metrics
from nnstudy._types import FiniteFloat, Int, PosInt
from nnstudy.flags import LIST_KEYS
from nnstudy.spec import DataSpec, RunSpec, apply_overrides
from nnstudy.study.space import NuisanceSpec

__all__ = ["METRICS", "TABLES", "Arm", "StudySection", "StudySpec", "quote_key", "render_value", "value_names",
           "without_name"]

#: Metrics a study can rank runs by, and whether larger is better.
METRICS: dict[str, bool] = {m: metrics.maximize(m) for m in metrics.RANKED}
TABLES = ("study", "data", "base", "scientific", "nuisance")


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



def quote_key(key: str) -> str:
    """A RunSpec key as a study file writes it: bare when it can be, else quoted (``"optimizer.lr"``)."""
    return json.dumps(key) if not key.replace("_", "").isalnum() else key
