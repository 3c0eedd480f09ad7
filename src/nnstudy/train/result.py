"""What one run gives back: curves, final metrics, flags, and optionally weights and predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nnstudy import metrics
from nnstudy.spec import RunSpec

__all__ = ["RunResult", "EPOCH_COLUMNS", "METRICS", "TEST_CURVE_COLUMNS"]

#: One row per epoch, in this order. ``val_*`` are NaN without a validation split; ``test_*`` are
#: there only with ``spec.test_curve`` (``TEST_CURVE_COLUMNS``).
EPOCH_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
)
TEST_CURVE_COLUMNS = ("test_loss", "test_accuracy")

#: Final metrics a run can carry. Accuracies are fractions in [0, 1]; ``test_*`` only when asked.
METRICS = metrics.FINAL


@dataclass
class RunResult:
    """The outcome of ``train(spec)``.

    Attributes:
        spec: the RunSpec that produced it (its ``identity()`` names the run).
        history: one dict per epoch with the keys of ``EPOCH_COLUMNS``.
        metrics: final metrics (see ``METRICS``): those of the last epoch, or of the best epoch when
            early stopping restored its weights; ``test_*`` present only when ``spec.test``.
        status: "complete", or "diverged" when the loss became NaN/inf or exceeded ``spec.max_loss``.
        early_stopped: training ended before ``spec.epochs`` because the monitored metric stalled.
        best_epoch: the epoch whose weights the model holds at the end (1-based): the last, unless
            early stopping restored an earlier one. ``summary()["best_val_epoch"]`` is the epoch
            with the highest validation accuracy, which may be another.
        params, train_flops: parameter count; training FLOPs of the whole run (3 × forward per sample).
        train_seconds, seconds: time in optimizer steps (throughput and MFU are over it); wall time
            of the whole call (``seconds`` is what a study sums into its compute time).
        confusion: ``{"val": (C, C) int array, "test": ...}``, rows true class, columns predicted.
        val_pred: predicted class of every validation image (int64, aligned with the split's order).
        test_pred: same for the test set, when ``spec.test``.
        state_dict: final weights (CPU tensors) when ``spec.save_weights``; else None.
        environment: device, threads, library versions.
    """

    spec: RunSpec
    history: list[dict[str, float]]
    metrics: dict[str, float]
    status: Literal["complete", "diverged"] = "complete"
    early_stopped: bool = False
    best_epoch: int | None = None
    params: int = 0
    train_flops: float = 0.0
    train_seconds: float = 0.0
    seconds: float = 0.0
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    val_pred: np.ndarray | None = None
    test_pred: np.ndarray | None = None
    state_dict: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def curves(self):
        """Per-epoch metrics as a pandas DataFrame (one row per epoch, columns ``EPOCH_COLUMNS``, then
        ``TEST_CURVE_COLUMNS`` where the run recorded a test curve)."""
        import pandas as pd

        extra = list(TEST_CURVE_COLUMNS) if self.spec.test_curve else []
        return pd.DataFrame(self.history, columns=[*EPOCH_COLUMNS, *extra])

    def achieved_flops_per_second(self) -> float:
        return self.train_flops / self.train_seconds if self.train_seconds > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: identity, status, flags, final metrics under their names, cost."""
        out: dict[str, Any] = {
            "run": self.spec.identity(),
            "status": self.status,
            "epochs_run": len(self.history),
            "early_stopped": self.early_stopped,
            "best_epoch": self.best_epoch,
            "best_val_epoch": best_val_epoch(self.history),
        }
        out.update({k: _clean(v) for k, v in self.metrics.items()})
        out.update(
            {
                "params": self.params,
                "train_flops": self.train_flops,
                "train_seconds": round(self.train_seconds, 4),
                "seconds": round(self.seconds, 4),
                "flops_per_second": _clean(self.achieved_flops_per_second()),
                "train_eval": self.spec.train_eval,
            }
        )
        out["environment"] = self.environment
        return out

    def plot(self, path: str | None = None):
        """Learning curves (loss and accuracy, train and validation) as a matplotlib Figure;
        saved to ``path`` when given."""
        from nnstudy.report.figures import learning_curves

        return learning_curves(self.curves, title=_describe(self.spec), path=path, train_eval=self.spec.train_eval)

    def __repr__(self) -> str:
        m = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items() if isinstance(v, float))
        return f"RunResult({self.spec.identity()}, {self.status}, epochs={len(self.history)}, {m})"


def best_val_epoch(history: list[dict[str, float]]) -> int | None:
    """The epoch (1-based) with the highest validation accuracy, the first of equals; None without a
    validation split."""
    scores = [(h["val_accuracy"], int(h["epoch"])) for h in history
              if isinstance(h.get("val_accuracy"), float) and math.isfinite(h["val_accuracy"])]
    if not scores:
        return None
    top = max(a for a, _ in scores)
    return next(e for a, e in scores if a == top)


def _clean(v: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _describe(spec: RunSpec) -> str:
    m = spec.model
    shape = {
        "mlp": lambda: "mlp " + "-".join(str(h) for h in getattr(m, "hidden", [])),
        "cnn": lambda: "cnn " + "-".join(str(c) for c in getattr(m, "channels", [])),
    }.get(m.kind, lambda: m.kind)()
    return f"{shape}, {spec.optimizer.name} lr={spec.optimizer.lr:g}, batch {spec.batch_size}, seed {spec.seed}"
