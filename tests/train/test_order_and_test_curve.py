"""Data order (``shuffle``) and per-epoch test curves (``test_curve``): issue 11, Build item 1.

The data orders are checked against a reference loop written here in plain torch (the notebooks'
way): the same initial weights, the same order of batches, torch.optim.SGD; every engine path a run
can take (the stacked fast path for MLPs, the module path for CNNs) must give its numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nnstudy
from nnstudy.data import load
from nnstudy.models import build_model
from nnstudy.spec import DataSpec, make_run_spec

DATA = DataSpec(per_class=20, validation=0.1)
MODELS = {
    "mlp": {"model": "mlp", "hidden": [16]},  # stacked fast path
    "cnn": {"model": "cnn", "channels": [4], "kernel": 3, "head": []},  # module path
}


def reference(spec, data, orders: list[torch.Tensor]) -> list[float]:
    """Per-epoch training loss (eval pass) of a plain torch loop over the batches in ``orders``."""
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, input_shape=(1, 28, 28), num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr)
    x, y, bs, out = data.train_x, data.train_y, spec.batch_size, []
    for order in orders:
        model.train()
        for i in range(0, len(y), bs):
            idx = order[i : i + bs]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out.append(float(F.cross_entropy(model(x), y)))
    return out


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("shuffle", ["once", "none", "epoch"])
def test_data_order_matches_a_plain_torch_loop(mnist_dir, kind, shuffle):
    data = load(DATA, data_dir=mnist_dir)
    opts = {**MODELS[kind], "optimizer": "sgd", "lr": 0.05, "batch_size": 16, "epochs": 3, "seed": 7,
            "train_eval": "full", "shuffle": shuffle, "threads": 1}
    spec = make_run_spec({"data": DATA.model_dump()}, opts)
    n = len(data.train_y)
    g = torch.Generator().manual_seed(7)
    if shuffle == "epoch":
        orders = [torch.randperm(n, generator=g) for _ in range(3)]
    elif shuffle == "once":
        orders = [torch.randperm(n, generator=g)] * 3  # drawn once, kept: no reshuffle between epochs
    else:
        orders = [torch.arange(n)] * 3  # the training split's file order
    got = nnstudy.train(spec, data, quiet=True).curves["train_loss"].to_numpy()
    np.testing.assert_allclose(got, reference(spec, data, orders), rtol=1e-4, atol=1e-5)
    if shuffle != "epoch":  # and a reshuffled reference is told apart: the test can fail
        other = reference(spec, data, [torch.randperm(n, generator=torch.Generator().manual_seed(1))] * 3)
        assert not np.allclose(got, other, rtol=1e-4, atol=1e-5)


def test_test_curve_is_recorded_per_epoch_and_ends_at_the_final_test_score(mnist_dir):
    data = load(DATA, data_dir=mnist_dir)
    r = nnstudy.train({"data": DATA.model_dump()}, data, model="mlp", hidden=[16], epochs=3, test=True,
                      test_curve=True, quiet=True)
    curves = r.curves
    assert list(curves.columns[-2:]) == ["test_loss", "test_accuracy"] and curves["test_accuracy"].notna().all()
    assert curves["test_accuracy"].iloc[-1] == pytest.approx(r.metrics["test_accuracy"])
    assert curves["test_loss"].iloc[-1] == pytest.approx(r.metrics["test_loss"], rel=1e-5)
    plain = nnstudy.train({"data": DATA.model_dump()}, data, model="mlp", hidden=[16], epochs=3, test=True, quiet=True)
    assert "test_loss" not in plain.curves.columns  # no test curve unless asked
    np.testing.assert_allclose(plain.curves["val_loss"], curves["val_loss"])  # and asking changes no number
    with pytest.raises(nnstudy.SpecError, match="test_curve needs test = true"):
        make_run_spec({}, {"test_curve": True})
