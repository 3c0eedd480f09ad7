"""Stratified, seeded selection of indices: the validation split and the training subsets.

One mechanism serves both. A seeded random permutation of the training file gives every image a
priority; a class-wise quota is then filled with the highest-priority images of each class. The
validation split takes the first quota; the subsets (``per_class``, ``fraction``, ``limit``) take
theirs from what remains, in the same order. So a smaller subset is always contained in a larger one
(learning curves compare nested sets, not unrelated draws), and the validation split does not depend
on the subset. All of it is vectorized: no Python loop over images.
"""

from __future__ import annotations

import torch

from nnstudy.errors import SpecError
from nnstudy.spec import DataSpec

__all__ = ["apportion", "rank_in_class", "take", "split_and_thin"]


def apportion(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Split ``total`` among classes in proportion to ``counts`` (int64, (C,)), by largest
    remainders, in exact integer arithmetic: each quota is within 1 of ``total * count / sum``, they
    add up to ``total``, and ties go to the lower class index.

    Returns:
        int64 (C,) quotas, none above its class count when ``total <= counts.sum()``.
    """
    n = int(counts.sum())
    if n == 0:
        return torch.zeros_like(counts)
    scaled = counts * total
    quota, remainder = scaled // n, scaled % n
    left = total - int(quota.sum())
    order = torch.argsort(-remainder, stable=True)
    quota[order[:left]] += 1
    return quota


def rank_in_class(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For labels listed in priority order, (N,) int64: each item's position among its class."""
    order = torch.argsort(labels, stable=True)  # grouped by class, priority order kept within
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    ranks = torch.empty_like(labels)
    ranks[order] = torch.arange(len(labels)) - starts[labels[order]]
    return ranks


def take(order: torch.Tensor, labels: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """Mask over ``order`` (indices in priority order) of the first ``quota[c]`` items of each class."""
    ordered_labels = labels[order]
    return rank_in_class(ordered_labels, len(quota)) < quota[ordered_labels]


def split_and_thin(
    labels: torch.Tensor, spec: DataSpec, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation indices and the (thinned) training indices into the training file.

    Args:
        labels: (N,) int64 labels of the training file.
        spec: ``validation`` and ``split_seed`` make the split; ``per_class``, then ``fraction``,
            then ``limit`` thin the training part.

    Returns:
        (val_index, train_index): int64, sorted ascending, disjoint.

    Raises:
        SpecError: ``per_class`` exceeds what a class has, or no training image is left.
    """
    generator = torch.Generator().manual_seed(spec.split_seed)
    order = torch.randperm(len(labels), generator=generator)
    counts = torch.bincount(labels, minlength=num_classes)
    in_val = take(order, labels, apportion(counts, round(spec.validation * len(labels))))
    val_index, rest = order[in_val], order[~in_val]  # rest keeps its priority order

    counts = torch.bincount(labels[rest], minlength=num_classes)
    where = f"{spec.dataset} after a validation split of {spec.validation:g} (split_seed {spec.split_seed})"
    quota = counts.clone()
    if spec.per_class is not None:
        poorest = int(torch.argmin(counts))
        if spec.per_class > counts[poorest]:
            raise SpecError(
                f"data.per_class = {spec.per_class}: class {poorest} has only {int(counts[poorest])} "
                f"training images in {where}; at most {int(counts[poorest])} is possible"
            )
        quota = torch.full_like(counts, spec.per_class)
    if spec.fraction is not None:
        total = round(spec.fraction * int(quota.sum()))
        if total == 0:
            raise SpecError(f"data.fraction = {spec.fraction:g} of {int(quota.sum())} training images "
                            f"({where}) keeps none; use a larger fraction")
        quota = apportion(quota, total)
    if spec.limit is not None and spec.limit < int(quota.sum()):
        quota = apportion(quota, spec.limit)
    train_index = rest[take(rest, labels, quota)]
    if len(train_index) == 0:
        raise SpecError(f"data.validation = {spec.validation:g} leaves no training images in {spec.dataset}")
    return torch.sort(val_index).values, torch.sort(train_index).values
