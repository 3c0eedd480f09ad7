"""The order in which a run visits its training images, epoch by epoch (``RunSpec.shuffle``).

* ``epoch`` (the default): a fresh permutation every epoch, ``randperm`` from the run's own
  ``torch.Generator().manual_seed(spec.seed)`` (so the order depends on the seed alone, never on what
  else trains in the process or the pack);
* ``once``: the first of those permutations, kept for every epoch: no reshuffle between epochs, as a
  DataLoader without ``shuffle=True`` over a ``random_split`` does (seed 000);
* ``none``: the training split in file order (``Splits.train_index`` is sorted), every epoch.

Every trainer asks ``EpochOrder.next`` once per epoch, so the three are one mechanism.
"""

from __future__ import annotations

import torch

from nnstudy.spec import RunSpec

__all__ = ["EpochOrder"]


class EpochOrder:
    """A run's data order: ``next(n)`` gives the (n,) int64 permutation of its next epoch, on the CPU."""

    def __init__(self, spec: RunSpec):
        self.mode = spec.shuffle
        self.generator = torch.Generator().manual_seed(spec.seed)  # its own stream, on the CPU
        self._kept: torch.Tensor | None = None

    def next(self, n: int) -> torch.Tensor:
        if self.mode == "none":
            return torch.arange(n)
        if self.mode == "once":
            if self._kept is None or len(self._kept) != n:
                self._kept = torch.randperm(n, generator=self.generator)
            return self._kept
        return torch.randperm(n, generator=self.generator)
