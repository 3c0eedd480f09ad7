"""A study's nuisance search space: the ``[nuisance]`` table and its distributions (``{ log = [lo, hi] }``,
``{ uniform = ... }``, ``{ int = ... }``, ``{ choice = [...] }``), each with the values a study is
validated at (``check_values``) and its grid (sampler ``grid``). Import them from ``nnstudy.study.file``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from nnstudy._types import FiniteFloat, Int, NonNegInt, PosInt

__all__ = ["NUISANCE_SETTINGS", "Choice", "Distribution", "IntRange", "LogRange", "NuisanceSpec", "UniformRange"]

#: The keys of [nuisance] that are settings of the search, not search spaces.
NUISANCE_SETTINGS = ("trials", "sampler", "pruner", "seed", "parallel", "slice")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

