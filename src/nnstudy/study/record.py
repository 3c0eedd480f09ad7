"""One finished run as the study store keeps it (``Record``: a trial's user attrs), and ``json_safe``,
which makes a value storable (JSON has no NaN). Import them from ``nnstudy.study.store``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Record", "json_safe"]


@dataclass
class Record:
    """One finished run as stored (trial user attrs). ``status``: complete, diverged, failed or
    pruned. ``metrics``/``history`` hold None where a number is NaN (JSON has no NaN)."""

    run: str
    arm: str
    phase: str
    slot: int
    stage: int
    seed: int
    params: dict[str, Any]
    spec: dict[str, Any]
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict[str, float | None]] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    epochs_run: int = 0
    best_epoch: int | None = None
    early_stopped: bool = False
    n_params: int = 0
    train_seconds: float = 0.0
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_shape: list[int] = field(default_factory=list)
    num_classes: int = 0
    system_attrs: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""

    def to_attrs(self) -> dict[str, Any]:
        return {k: json_safe(v) for k, v in asdict(self).items() if k != "system_attrs"}

    @classmethod
    def from_trial(cls, trial: Any) -> Record:
        names = {f.name for f in fields(cls)}
        attrs = {k: v for k, v in trial.user_attrs.items() if k in names}
        rungs = {k: v for k, v in trial.system_attrs.items() if k.startswith("completed_rung")}  # ASHA's
        return cls(**attrs, system_attrs=rungs)


def json_safe(v: Any) -> Any:
    """``v`` with every NaN or infinity (nested in dicts and lists) replaced by None: JSON has neither."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return v
