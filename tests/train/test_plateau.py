"""The plateau schedule through ``nnstudy.train``: the recorded learning rates are torch's
ReduceLROnPlateau applied to the run's own validation losses, on the stacked MLP path and on the
module path (a CNN)."""

from __future__ import annotations

import pytest
import torch

import nnstudy

BASE = {"per_class": 30, "validation": 0.01, "epochs": 6, "batch_size": 32}
PLATEAU = {"schedule": {"name": "plateau", "patience": 0, "factor": 0.1}}


def expected_rates(lr: float, val_losses: list[float]) -> list[float]:
    """Each epoch's rate under torch's ReduceLROnPlateau(patience=0, factor=0.1), stepped with the
    validation loss after every epoch."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    rates = []
    for loss in val_losses:
        rates.append(opt.param_groups[0]["lr"])
        ref.step(loss)
    return rates


@pytest.mark.parametrize("model", [
    {"model": "mlp", "hidden": [32], "optimizer": "sgd", "lr": 1.0},  # stacked fast path
    {"model": "cnn", "channels": [4], "head": [16], "optimizer": "sgd", "lr": 0.5},  # module path
])
def test_plateau_lowers_the_rate_when_validation_loss_stops_improving(tiny_data, model):
    r = nnstudy.train(PLATEAU, data=tiny_data, **BASE, **model)
    curves = r.curves
    assert len(curves) == BASE["epochs"] and r.status == "complete"
    rates = list(curves["lr"])
    assert rates == pytest.approx(expected_rates(model["lr"], list(curves["val_loss"])), rel=1e-9)
    assert rates[0] == model["lr"] and min(rates) < model["lr"]  # it did lower the rate
