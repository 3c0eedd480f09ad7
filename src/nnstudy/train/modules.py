"""The torch module engine: any model ``build_model`` makes, trained by autograd and ``torch.optim``.

One lane is the model itself: channels-last for convolutional models (oneDNN's convolutions, batch
norm and pooling run on NHWC without reordering; seed 003's CNN: 87 -> 64 ms per step on one core,
measured), a ReLU that directly precedes a max-pool applied after it (``execution_order``: the same
numbers, bit for bit, on a quarter of the elements), bf16 autocast where asked, and the run's own
``torch.optim`` optimizer (fused kernels for SGD, Adam and AdamW). Dropout draws from torch's RNG,
which the driver seeds with the run's seed.

Several lanes (``lane_key``: the same model but for its initialization, no batch norm, no dropout)
run as one program: each lane keeps its own parameters and optimizer (so every lane's update is the
arithmetic of the run alone, with its own hyperparameters), and the forward pass is
``torch.func.vmap`` of ``functional_call`` over the lanes' stacked parameters, which batches a
convolution as one grouped convolution. A grouped convolution sums in another order than a single
one, so a packed lane agrees with the run alone within float tolerance, not bitwise
(tests/train/test_engines.py). Evaluation is lane by lane with the run's own modules, in batches
bounded by ``EVAL_BYTES``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from nnstudy.spec import RunSpec
from nnstudy.train._env import EVAL_BATCH, eval_batch
from nnstudy.train.engine import Hyper
from nnstudy.train.optim import build_optimizer

__all__ = ["TorchModules", "evaluate", "execution_order"]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, autocast: Any = None, batch: int = EVAL_BATCH
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy (fraction) and predictions (int64, shape (N,)) of ``model`` on (x, y),
    in eval mode, in batches of ``batch``. Empty inputs give NaN metrics."""
    if len(y) == 0:
        return math.nan, math.nan, torch.empty(0, dtype=torch.long)
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    preds = []
    for i in range(0, len(y), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        with autocast or contextlib.nullcontext():
            out = model(xb)
        loss += F.cross_entropy(out.float(), yb, reduction="sum")
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    model.train(was_training)
    acc = (pred == y).double().mean().item()
    return loss.item() / len(y), acc, pred.cpu()


def execution_order(model: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same layers, run with every ReLU that directly precedes a max-pool moved after it.

    ``maxpool(relu(v)) == relu(maxpool(v))`` exactly (ReLU is monotone), and the gradients agree
    too: both reach the window's first maximum when it is positive, and nothing otherwise. The ReLU
    and its backward then touch a quarter of the elements (seed 003's first feature map:
    128 × 32 × 28 × 28 per step). Layers are shared with ``model``: its names, parameters and
    ``state_dict`` are unchanged; returns ``model`` itself when there is nothing to move.
    """
    items = list(model.named_children())
    moved = False
    for i in range(len(items) - 1):
        (_, a), (_, b) = items[i], items[i + 1]
        if type(a) is torch.nn.ReLU and isinstance(b, torch.nn.MaxPool2d):
            items[i], items[i + 1] = items[i + 1], items[i]
            moved = True
    if not moved:
        return model
    return torch.nn.Sequential(OrderedDict(items))


class TorchModules:
    """The ``Engine`` of every model and optimizer: torch modules, autograd, ``torch.optim``."""

    name: ClassVar[str] = "modules"
    kinds: ClassVar[tuple[str, ...]] = ("linear", "mlp", "cnn", "vgg11")
    optimizers: ClassVar[tuple[str, ...]] = ("sgd", "adam", "adamw", "rmsprop", "adadelta")
    batchnorm: ClassVar[bool] = True

    @classmethod
    def lane_key(cls, spec: RunSpec) -> str | None:
        """The model but for its initialization; None with batch norm or dropout (batch statistics,
        and masks drawn from torch's RNG, are per program, not per lane)."""
        m = spec.model
        if m.kind == "linear":
            return None  # the stacked engine packs these
        drops = [*m.dropouts(), getattr(m, "conv_dropout", 0.0)] if hasattr(m, "dropouts") else []
        norms = m.batchnorms() if hasattr(m, "batchnorms") else [getattr(m, "batchnorm", False)]
        if any(drops) or any(norms):
            return None
        return m.model_dump_json(exclude={"init", "init_std", "init_value"})

    @classmethod
    def lane_bytes(cls, spec: RunSpec, n_train: int, input_shape: Sequence[int], num_classes: int) -> int:
        """Parameters, gradients and optimizer state (4 copies, fp32), and every layer's output for
        the batch, kept for the backward pass, with its gradient."""
        from nnstudy.models import count_params, layers

        bs = spec.batch_size if spec.batch_size != "full" else n_train
        acts = sum(math.prod(layer.output_shape) for layer in layers(spec.model, tuple(input_shape), num_classes))
        return 4 * (4 * count_params(spec.model, tuple(input_shape), num_classes) + 2 * bs * acts)

    def __init__(self, specs: list[RunSpec], models: list[torch.nn.Module], dropout_seeds: list[int],
                 data: Any, device: torch.device):
        conv = any(isinstance(m, torch.nn.Conv2d) for m in models[0].modules())
        self.fmt = torch.channels_last if conv else torch.contiguous_format
        self.models = [m.to(device, memory_format=self.fmt) for m in models]
        self.nets = [execution_order(m) for m in self.models]
        self.opts = [build_optimizer(s.optimizer, m.parameters()) for s, m in zip(specs, self.models, strict=True)]
        spec0 = specs[0]
        self.amp = torch.autocast(device.type, dtype=torch.bfloat16) if spec0.precision == "bf16" else None
        self.eval_batch = eval_batch(spec0, data)
        self.data, self.device = data, device
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.loss_sum = self.correct = torch.empty(0)
        if len(models) > 1:  # one program for all lanes: the modules' structure, no storage of its own
            self._shape = copy.deepcopy(self.nets[0]).to("meta")
            self._vmapped = torch.func.vmap(lambda p, xb: torch.func.functional_call(self._shape, p, (xb,)))

    @property
    def R(self) -> int:
        return len(self.models)

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._splits:
            xs, ys = getattr(self.data, f"{name}_x"), getattr(self.data, f"{name}_y")
            self._splits[name] = xs.to(self.device).contiguous(memory_format=self.fmt), ys.to(self.device)
        return self._splits[name]

    def start_epoch(self, steps: int, batch: int) -> None:
        self.loss_sum = torch.zeros(self.R, dtype=torch.float64, device=self.device)
        self.correct = torch.zeros(self.R, dtype=torch.long, device=self.device)
        for m in self.models:
            m.train()

    def step(self, i: int, idx: torch.Tensor, B: int, hyper: Sequence[Hyper]) -> None:
        x, y = self._split("train")
        for opt, h in zip(self.opts, hyper, strict=True):
            for g in opt.param_groups:
                g["lr"] = h["lr"]
        xb = x.index_select(0, idx).contiguous(memory_format=self.fmt)
        yb = y.index_select(0, idx)
        with self.amp or contextlib.nullcontext():
            if self.R == 1:
                out = self.nets[0](xb).unsqueeze(0)  # (1, B, C)
            else:
                params = {k: torch.stack([dict(n.named_parameters())[k] for n in self.nets])
                          for k, _ in self.nets[0].named_parameters()}
                out = self._vmapped(params, xb.view(self.R, B, *xb.shape[1:]))  # (R, B, C)
        yb = yb.view(self.R, B)
        if self.R == 1:
            loss = F.cross_entropy(out[0].float(), yb[0]).unsqueeze(0)
        else:
            loss = F.cross_entropy(out.float().flatten(0, 1), yb.flatten(), reduction="none").view(self.R, B).mean(1)
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        for opt in self.opts:
            opt.step()
        self.loss_sum += loss.detach() * B
        self.correct += (out.detach().argmax(2) == yb).sum(1)

    def end_epoch(self) -> tuple[np.ndarray, np.ndarray]:
        return self.loss_sum.cpu().numpy(), self.correct.cpu().numpy()

    def predict(self, split: str, lanes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        x, y = self._split(split)
        out = [evaluate(self.nets[r], x, y, autocast=self.amp, batch=self.eval_batch) for r in lanes]
        if not out:
            return np.zeros(0), np.zeros(0), torch.empty(0, len(y), dtype=torch.long)
        return (np.array([o[0] for o in out]), np.array([o[1] for o in out]), torch.stack([o[2] for o in out]))

    def snapshot(self, lane: int) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.models[lane].state_dict())

    def restore(self, lane: int, state: dict[str, torch.Tensor]) -> None:
        self.models[lane].load_state_dict(state)

    def select(self, keep: Sequence[int]) -> None:
        self.models, self.nets, self.opts = ([xs[i] for i in keep] for xs in (self.models, self.nets, self.opts))

    def state_dict(self, lane: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.models[lane].state_dict().items()}
