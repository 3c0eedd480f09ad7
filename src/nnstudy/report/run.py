"""The folder of one run: what ``nnstudy train --out DIR`` leaves behind.

::

    DIR/spec.toml        the RunSpec, with the threads it ran on (``nnstudy train --config DIR/spec.toml``
                         reruns it exactly)
    DIR/metrics.csv      one row per epoch
    DIR/summary.json     final metrics under their names, status, flags, cost, environment
    DIR/curves.png       learning curves
    DIR/failures.png     misclassified validation images, "predicted (true)"
    DIR/confusion.png    validation confusion matrix, where there is a validation split (and
                         confusion_test.png with --test)
    DIR/weights.pt       final state_dict, when save_weights
    DIR/predictions.npz  validation (and test) predictions with their indices, when save_predictions
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nnstudy.report import figures
from nnstudy.train.result import RunResult

__all__ = ["write_run_folder"]


def write_run_folder(result: RunResult, data: Any, out: str | Path) -> Path:
    """Write every artifact of ``result`` into ``out`` (created; existing files replaced)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = result.spec
    if spec.threads is None and result.environment.get("threads"):
        # the threads it ran on, so that the stored spec reruns it the same on a machine of other cores
        spec = spec.model_copy(update={"threads": result.environment["threads"]})
    (out / "spec.toml").write_text(spec.to_toml())
    result.curves.to_csv(out / "metrics.csv", index=False)
    (out / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    result.plot(path=out / "curves.png")
    if result.val_pred is not None and len(result.val_pred):
        true = data.val_y.cpu().numpy()
        figures.failure_gallery(
            data.images("val").numpy(), result.val_pred, true,
            title="misclassified validation images: predicted (true)", path=out / "failures.png",
        )
    for split, counts in result.confusion.items():
        if not np.asarray(counts).sum():  # validation = 0: no images, no matrix to draw
            continue
        name = "confusion.png" if split == "val" else f"confusion_{split}.png"
        figures.confusion_matrix(counts, title=f"{split} confusion", path=out / name)
    if result.state_dict is not None:
        import torch

        torch.save(result.state_dict, out / "weights.pt")
    if result.spec.save_predictions and result.val_pred is not None:
        arrays = {"val_pred": result.val_pred, "val_true": data.val_y.cpu().numpy(),
                  "val_index": data.val_index.cpu().numpy()}
        if result.test_pred is not None:
            arrays.update(test_pred=result.test_pred, test_true=data.test_y.cpu().numpy())
        np.savez_compressed(out / "predictions.npz", **arrays)
    return out
