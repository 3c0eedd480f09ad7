"""The stacked engine's hand-written backward pass against autograd over the same ``nn.Sequential``:
several shapes, every activation, dropout on (the same masks applied on both sides)."""

from __future__ import annotations

import pytest
import torch

from nnstudy.models import build_model
from nnstudy.spec import make_run_spec
from nnstudy.train._lanes import Lanes

ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "identity"]


def lanes_and_models(data, hidden, activation, dropout, R=3, batch=32):
    specs = [make_run_spec({"data": {"per_class": 30, "validation": 0.01}, "model": {
        "kind": "mlp" if hidden else "linear", **({"hidden": hidden, "activation": activation, "dropout": dropout}
                                                   if hidden else {})}, "batch_size": batch, "seed": r})
             for r in range(R)]
    models = []
    for s in specs:
        torch.manual_seed(s.seed)
        models.append(build_model(s.model))
    return Lanes(specs, models, [100 + r for r in range(R)], data, torch.device("cpu")), models


SHAPES = [([32], 0.0), ([64, 16], 0.5), ([20, 20, 20], 0.2)]
CASES = [([], "identity", 0.0)] + [(h, a, d) for h, d in SHAPES for a in ACTIVATIONS]


@pytest.mark.parametrize("hidden,activation,dropout", CASES)
def test_stacked_gradients_equal_autograd(tiny_data, activation, hidden, dropout):
    """Relative error of every weight and bias gradient under 1e-5 (float32), for each lane."""
    lanes, models = lanes_and_models(tiny_data, hidden, activation, dropout)
    R, B = lanes.R, 32
    x = tiny_data.train_x.reshape(len(tiny_data.train_y), -1)
    y = tiny_data.train_y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[: R * B]
    nll, hits = torch.zeros(R), torch.zeros(R, B, dtype=torch.bool)
    lanes.forward_backward(x, y, idx, B, nll, hits)
    bufs = lanes.buffers(B)
    for r, model in enumerate(models):
        xb, yb = x[idx[r * B:(r + 1) * B]], y[idx[r * B:(r + 1) * B]]
        masks = iter([bufs.mask[i][r].t() for i in sorted(bufs.mask)])  # (B, width): the masks the lanes drew
        layer = 0
        h = xb
        for module in model.children():
            if isinstance(module, torch.nn.Dropout):
                if layer - 1 in bufs.mask:
                    h = h * next(masks)
                continue
            h = module(h)
            if isinstance(module, torch.nn.Linear):
                layer += 1
        loss = torch.nn.functional.cross_entropy(h, yb)
        model.zero_grad()
        loss.backward()
        assert float(-nll[r]) / B == pytest.approx(loss.item(), rel=1e-5)
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        want = [t.grad for m in linears for t in (m.weight, m.bias)]
        for got, ref in zip(lanes.grads.lane(r), want, strict=True):
            err = (got - ref).norm() / ref.norm().clamp_min(1e-12)
            assert err < 1e-5, (r, err.item())
