"""Figures (matplotlib): drawing only, from numbers computed elsewhere.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so drawing needs no display,
leaves no figure open in pyplot's global list, and does not switch the backend of the notebook that
imports it. Each function returns the Figure and, given ``path``, saves it there (format from the
suffix). ``export`` renders a Figure to PNG and SVG bytes: the one way reports write figures.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["DPI", "confusion_matrix", "export", "failure_gallery", "learning_curves"]

#: Resolution of PNG figures: sharp on a laptop screen at 100% zoom, a few hundred kB at most.
DPI = 110

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"


def export(fig: Figure, *fmts: str) -> tuple[bytes, ...]:
    """``fig`` as bytes in each of ``fmts`` (``"png"``, ``"svg"``), cropped to its content. The layout
    and the crop are computed once and shared by every format: each ``savefig(bbox_inches="tight")``
    lays the figure out and draws it twice, and the report's figures cost most of its time. The figure
    keeps that layout afterwards (its layout engine is set to none). The SVG carries no date and a fixed
    id salt, so the same figure gives the same bytes (reports diff cleanly).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()  # runs the layout engine (constrained layout) once
    crop = fig.get_tightbbox(renderer).padded(matplotlib.rcParams["savefig.pad_inches"])
    fig.set_layout_engine("none")  # laid out: every format draws this same layout
    out = []
    for fmt in fmts:
        buf = io.BytesIO()
        if fmt == "svg":
            with matplotlib.rc_context({"svg.hashsalt": "nnstudy"}):
                fig.savefig(buf, format="svg", bbox_inches=crop, metadata={"Date": None})
        else:
            fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches=crop)
        out.append(buf.getvalue())
    return tuple(out)


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


def learning_curves(curves, *, title: str = "", path: str | Path | None = None, train_eval: str = "running"):
    """Loss and accuracy against epoch, train and validation, side by side.

    ``curves`` is a DataFrame with the columns of ``nnstudy.train.EPOCH_COLUMNS``. The train label
    says how the training numbers were measured (running mean over batches, or a full eval pass).
    """
    fig = Figure(figsize=(10, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    how = "running mean" if train_eval == "running" else "eval pass"
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(curves["epoch"], curves[f"train_{metric}"], "o-", ms=3, color=TRAIN_COLOR, label=f"train ({how})")
        if curves[f"val_{metric}"].notna().any():
            ax.plot(curves["epoch"], curves[f"val_{metric}"], "o-", ms=3, color=VAL_COLOR, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    losses = curves[["train_loss", "val_loss"]].to_numpy().ravel()
    losses = losses[np.isfinite(losses)]
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 20:  # log only when it helps
        ax_loss.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def failure_gallery(
    images: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray,
    *,
    max_show: int = 10,
    title: str = "",
    path: str | Path | None = None,
):
    """The first ``max_show`` misclassified images in a row, each titled "predicted (true)"
    as seed 000's ``show_failures`` draws them. ``images`` (N, H, W) any real dtype."""
    wrong = np.flatnonzero(predicted != true)[:max_show]
    n = max(len(wrong), 1)
    fig = Figure(figsize=(1.1 * n, 1.5))
    axes = fig.subplots(1, n, squeeze=False)
    for ax in axes[0]:
        ax.axis("off")
    for ax, i in zip(axes[0], wrong, strict=False):  # fewer errors than panels is fine
        ax.imshow(images[i], cmap="gray")
        ax.set_title(f"{predicted[i]} ({true[i]})", fontsize=10)
    if len(wrong) == 0:
        axes[0][0].text(0.5, 0.5, "no errors", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10, y=1.08)
    return _finish(fig, path)


def confusion_matrix(counts: np.ndarray, *, title: str = "", path: str | Path | None = None):
    """A (C, C) confusion matrix (rows true, columns predicted) as a heat map with counts."""
    k = counts.shape[0]
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.subplots()
    # colour by row share so that rare errors are visible next to the large diagonal
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for r in range(k):
        for c in range(k):
            if counts[r, c]:
                ax.text(c, r, str(counts[r, c]), ha="center", va="center", fontsize=7,
                        color="white" if share[r, c] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _finish(fig, path)
