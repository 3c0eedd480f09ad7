"""What the analysis needs to know about a study besides its results: ``StudyContext``.

The study layer builds one from its StudySpec; tests build one by hand. Keys are dotted RunSpec paths
(``"optimizer.lr"``, ``"batch_size"``, ``"model.activation"``), the same names as the result columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nnstudy import metrics

#: Search-space kinds a nuisance entry may have: ``{"log": [lo, hi]}`` and so on.
SPACE_KINDS = ("log", "uniform", "int", "choice")


def default_direction(metric: str) -> str:
    """``"min"`` for losses, ``"max"`` otherwise (``nnstudy.metrics.direction``)."""
    return metrics.direction(metric)


def check_direction(direction: str) -> str:
    """Return ``direction`` if it is ``"max"`` or ``"min"``; raise ValueError otherwise."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    return direction


@dataclass(frozen=True)
class StudyContext:
    """A study's question and design, as the analysis reads them.

    Attributes:
        metric: the result column the arms are ranked by (chosen on validation, e.g. ``val_accuracy``).
        direction: ``"max"`` or ``"min"``; None infers it from the metric's name (losses are minimized).
        scientific: the compared keys and their values (one arm per combination).
        nuisance: keys re-tuned within every arm and their search spaces, each ``{"log": [lo, hi]}``,
            ``{"uniform": [lo, hi]}``, ``{"int": [lo, hi]}`` or ``{"choice": [...]}`` (or pydantic
            models that dump to these). Entries that are not a search space (the study file's
            ``trials``, ``sampler``) are ignored.
        base: the fixed hyperparameters, flattened to dotted keys (``{"optimizer.lr": 0.05}``).
        seeds: final runs per arm the study asked for (None: unknown).
        epochs: epochs per run the study asked for (None: unknown).
        question: the study's question, in the author's words.
    """

    metric: str = "val_accuracy"
    direction: str | None = None
    scientific: Mapping[str, list[Any]] = field(default_factory=dict)
    nuisance: Mapping[str, Any] = field(default_factory=dict)
    base: Mapping[str, Any] = field(default_factory=dict)
    seeds: int | None = None
    epochs: int | None = None
    question: str = ""

    def __post_init__(self) -> None:
        direction = default_direction(self.metric) if self.direction is None else self.direction
        object.__setattr__(self, "direction", check_direction(direction))

    @property
    def better(self) -> str:
        """The direction, never None (``__post_init__`` filled it in)."""
        assert self.direction is not None
        return self.direction

    def search_space(self) -> dict[str, tuple[str, list[Any]]]:
        """The nuisance keys that are search spaces: ``{key: (kind, values)}``.

        Raises ValueError for a numeric range that is not two increasing numbers.
        """
        space: dict[str, tuple[str, list[Any]]] = {}
        for key, spec in self.nuisance.items():
            if hasattr(spec, "model_dump"):  # the study layer's LogRange/UniformRange/IntRange/Choice
                spec = spec.model_dump()
            if not isinstance(spec, Mapping):
                continue
            kinds = [k for k in SPACE_KINDS if k in spec]
            if not kinds:
                continue
            kind, values = kinds[0], list(spec[kinds[0]])
            if kind != "choice" and (len(values) != 2 or not float(values[0]) < float(values[1])):
                raise ValueError(f"nuisance {key!r}: {kind} range must be [low, high] with low < high, got {values!r}")
            space[str(key)] = (kind, values)
        return space


def split_keys(scientific: dict[str, list]) -> tuple[str, list[str]] | None:
    """For a study of two or more scientific keys: (x key, group keys), where x is the numeric key
    with the most values (the last listed of equals) and the groups are the other (scalar-valued)
    keys, as in seed 001's "loss against depth, one curve per parameter budget". None for fewer than
    two keys or no numeric one."""

    def numeric(values: list) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)

    candidates = [k for k, vs in scientific.items() if numeric(vs) and len(vs) > 1]
    if len(scientific) < 2 or not candidates:
        return None
    # ties go to the key listed last: the file's innermost loop ("model.depth" after "budget.params")
    x = max(candidates, key=lambda k: (len(scientific[k]), list(scientific).index(k)))
    groups = [k for k in scientific if k != x]
    if not all(isinstance(v, (int, float, str, bool)) for k in groups for v in scientific[k]):
        return None
    return x, groups
