"""The best final run of an arm evaluated on its test set: what a report's gallery of misclassified
images and its confusion matrix show. The test set chooses nothing here: the run was chosen on
validation (``Study.best_run``) and its configuration fixed before it was tested."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GALLERY_SIZE", "Predictions", "best_predictions"]

#: Misclassified test images kept for the gallery: one row of the figure.
GALLERY_SIZE = 12


@dataclass(frozen=True)
class Predictions:
    """Test-set predictions of one final run. ``wrong_*``: the first misclassified test images (uint8
    (k, 28, 28)), their predicted and true classes; ``counts``: (C, C) confusion, rows true class."""

    arm: str
    run: str
    seed: int
    n: int
    accuracy: float
    stored_accuracy: float
    wrong_images: np.ndarray
    wrong_predicted: np.ndarray
    wrong_true: np.ndarray
    counts: np.ndarray


def best_predictions(study: Any, arm: str, data_dir: str | None = None) -> Predictions:
    """Evaluate ``arm``'s best final run (``Study.best_run``) on the test set of its data.

    Raises NnstudyError (StoreError, DataError, SpecError) when the weights or the data cannot be had.
    """
    import torch

    from nnstudy.data import load
    from nnstudy.spec import RunSpec

    best = study.best_run(arm)
    run = RunSpec.model_validate(best.spec)
    model = study.load_model(best)
    data = load(run.data, data_dir=data_dir)
    with torch.no_grad():
        x = data.test_x.cpu()
        pred = torch.cat([model(x[i : i + 2000]).argmax(1) for i in range(0, len(x), 2000)]).numpy()
    true = data.test_y.cpu().numpy()
    k = data.num_classes
    counts = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    wrong = np.flatnonzero(pred != true)[:GALLERY_SIZE]
    images = data.images("test")[torch.as_tensor(wrong, dtype=torch.long)].numpy()
    stored = best.metrics.get("test_accuracy")
    return Predictions(arm=arm, run=best.run, seed=int(best.seed), n=len(true),
                       accuracy=float((pred == true).mean()),
                       stored_accuracy=math.nan if stored is None else float(stored), wrong_images=images,
                       wrong_predicted=pred[wrong], wrong_true=true[wrong], counts=counts)
