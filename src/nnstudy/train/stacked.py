"""The stacked MLP engine: R same-shape linear models or MLPs as stacked tensors (``_lanes.Lanes``).

Runs that share a model shape (hidden widths and activation; ``lane_key``) but differ in seed,
learning rate, weight decay, momentum, dropout rates, initialization, schedule or epochs are lanes of
one program: layer l's weights of every lane live in one ``(R, out, in)`` tensor, and a training step
is one ``baddbmm``/``bmm`` per matmul for all R lanes, written out by hand into preallocated buffers
(no autograd graph, no module calls), then one optimizer update for the pack. One run is R = 1 of the
same code, so a packed run and the same run alone share every kernel: bitwise equal with one thread,
within float tolerance with more (a multi-threaded batched matmul splits its work by R).

Dropout masks come from each lane's own generator (seeded by the driver from the run's seed), one
``rand(B, width)`` per dropout layer and step, kept where ``u >= p`` and scaled by ``1 / (1 - p)``
(``nn.Dropout``'s expectation), so that a lane sees the masks it would see alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from nnstudy.spec import RunSpec
from nnstudy.train._lanes import Lanes, mlp_shape
from nnstudy.train.engine import Hyper

__all__ = ["StackedMLP"]


class StackedMLP:
    """The ``Engine`` of linear models and MLPs without batch norm, trained with SGD, Adam or AdamW."""

    name: ClassVar[str] = "stacked"
    kinds: ClassVar[tuple[str, ...]] = ("linear", "mlp")
    optimizers: ClassVar[tuple[str, ...]] = ("sgd", "adam", "adamw")
    batchnorm: ClassVar[bool] = False

    @classmethod
    def lane_key(cls, spec: RunSpec) -> tuple[tuple[int, ...], str]:
        """Hidden widths and activation: dropout rates, initialization and hyperparameters are per lane."""
        return mlp_shape(spec)

    @classmethod
    def lane_bytes(cls, spec: RunSpec, n_train: int, input_shape: Sequence[int], num_classes: int) -> int:
        """Weights, gradients and optimizer state (4 copies, fp32), and the step buffers (input batch,
        3 buffers per hidden layer, logits)."""
        hidden, _ = mlp_shape(spec)
        widths = (math.prod(input_shape), *hidden, num_classes)
        params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
        bs = spec.batch_size if spec.batch_size != "full" else n_train
        return 4 * (4 * params + bs * (widths[0] + 3 * sum(hidden) + 3 * widths[-1]))

    def __init__(self, specs: list[RunSpec], models: list[torch.nn.Module], dropout_seeds: list[int],
                 data: Any, device: torch.device):
        self.lanes = Lanes(specs, models, dropout_seeds, data, device)
        self.models = list(models)  # their modules name the saved weights
        self.data, self.device = data, device
        n = len(data.train_y)
        self._splits = {"train": (data.train_x.reshape(n, -1).to(device, self.lanes.cdt), data.train_y.to(device))}
        self.nll = self.hits = torch.empty(0)

    @property
    def R(self) -> int:
        return self.lanes.R

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._splits:
            xs, ys = getattr(self.data, f"{name}_x"), getattr(self.data, f"{name}_y")
            features = self._splits["train"][0].shape[1]
            self._splits[name] = xs.reshape(len(ys), features).to(self.device, self.lanes.cdt), ys.to(self.device)
        return self._splits[name]

    def start_epoch(self, steps: int, batch: int) -> None:
        # per step and lane: summed log-likelihood and right answers, added up once at the end
        self.nll = torch.zeros(steps, self.R, device=self.device)
        self.hits = torch.zeros(steps, self.R, batch, dtype=torch.bool, device=self.device)

    def step(self, i: int, idx: torch.Tensor, B: int, hyper: Sequence[Hyper]) -> None:
        x, y = self._splits["train"]
        self.lanes.forward_backward(x, y, idx, B, self.nll[i], self.hits[i, :, :B])
        self.lanes.update(list(hyper))

    def end_epoch(self) -> tuple[np.ndarray, np.ndarray]:
        loss_sum = -self.nll.double().sum(0)  # (R,)
        return loss_sum.cpu().numpy(), self.hits.sum((0, 2)).cpu().numpy()

    def predict(self, split: str, lanes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        return self.lanes.predict(*self._split(split), list(lanes))

    def snapshot(self, lane: int) -> list[torch.Tensor]:
        return self.lanes.lane_state(lane)

    def restore(self, lane: int, state: list[torch.Tensor]) -> None:
        self.lanes.load_lane(lane, state)

    def select(self, keep: Sequence[int]) -> None:
        self.lanes.select(list(keep))
        self.models = [self.models[i] for i in keep]

    def state_dict(self, lane: int) -> dict[str, torch.Tensor]:
        """The lane's weights under the names of the run's ``nn.Sequential`` (``fc1.weight``...)."""
        model = self.models[lane]
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for p, t in zip((p for m in linears for p in (m.weight, m.bias)), self.lanes.lane_state(lane),
                            strict=True):
                p.copy_(t)
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
