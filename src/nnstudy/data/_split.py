"""Seeded selection of indices: the validation split, the training subsets and the test subset.

One mechanism serves them all. A seeded random permutation of the training file gives every image a
priority; a class-wise quota is then filled with the highest-priority images of each class. The
stratified validation split takes the first quota; the subsets (``per_class``, ``fraction``,
``limit``) take theirs from what remains, in the same order. So a smaller subset is always contained
in a larger one (learning curves compare nested sets, not unrelated draws), and the validation split
does not depend on the subset. ``select = "first"`` makes the priority the file order instead (seed
002's ``[subset_idx][:600]``). The other splits: ``random`` holds out the last part of the same seeded
permutation, unstratified (exactly torch's ``random_split`` with that seed: seed 000's), and ``last``
the file's last images (Keras's ``validation_split``: seed 003's). All of it is vectorized.
"""

from __future__ import annotations

import torch

from nnstudy.errors import SpecError
from nnstudy.spec import DataSpec

__all__ = ["apportion", "rank_in_class", "take", "split_and_thin", "test_subset"]


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
    n = len(labels)
    generator = torch.Generator().manual_seed(spec.split_seed)
    order = torch.randperm(n, generator=generator)
    if spec.split == "stratified":
        counts = torch.bincount(labels, minlength=num_classes)
        in_val = take(order, labels, apportion(counts, round(spec.validation * n)))
        val_index, rest = order[in_val], order[~in_val]  # rest keeps its priority order
    elif spec.split == "random":  # torch.utils.data.random_split(..., [n - k, k], generator=seed)
        k = n - int(n * (1 - spec.validation))
        val_index, rest = order[n - k:], order[: n - k]
    else:  # "last": Keras's validation_split, x[int(n * (1 - v)):]
        cut = int(n * (1 - spec.validation))
        val_index, rest = torch.arange(cut, n), order[order < cut]
    if spec.select == "first":
        rest = torch.sort(rest).values  # priority in file order: "the first N of each class"

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


def test_subset(labels: torch.Tensor, spec: DataSpec, num_classes: int) -> torch.Tensor | None:
    """The indices (sorted) of ``spec.test_per_class`` test images of each class, chosen as
    ``spec.select`` says (seeded by ``split_seed``, or the first in file order); None: the whole file.

    Raises:
        SpecError: a class has fewer test images than asked for.
    """
    if spec.test_per_class is None:
        return None
    counts = torch.bincount(labels, minlength=num_classes)
    poorest = int(torch.argmin(counts))
    if spec.test_per_class > counts[poorest]:
        most = int(counts[poorest])
        raise SpecError(f"data.test_per_class = {spec.test_per_class}: class {poorest} has only {most} test "
                        f"images in {spec.dataset}; at most {most} is possible")
    if spec.select == "first":
        order = torch.arange(len(labels))
    else:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(spec.split_seed))
    keep = order[take(order, labels, torch.full_like(counts, spec.test_per_class))]
    return torch.sort(keep).values
