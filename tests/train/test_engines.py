"""The epoch driver over both engines: one feature test run on each, the torch module engine's packed
CNN lanes against the same CNNs alone, and what each engine refuses."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import nnstudy
from nnstudy.errors import SpecError
from nnstudy.models import build_model
from nnstudy.spec import RunSpec, make_run_spec
from nnstudy.train import evaluate, train
from nnstudy.train.packed import engine_for, pack_key, train_packed

ENGINES = ["stacked", "modules"]
CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
#: seed 003's Keras CNN: two 8-filter 2×2 "same" convolutions, one max-pool, a dense softmax
KERAS_CNN = {"kind": "cnn", "channels": [8, 8], "kernel": 2, "pool_every": 2, "head": []}


def spec(over: dict | None = None, model: dict | None = None, **kw) -> RunSpec:
    base = {"data": {"per_class": 30, "validation": 0.01}, "model": model or {"kind": "mlp", "hidden": [32]},
            "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 32, "epochs": 3}
    return make_run_spec(make_run_spec(base, kw), overrides=over or {})


def plateau_rates(lr: float, val_losses: list[float]) -> list[float]:
    """Each epoch's rate under torch's ReduceLROnPlateau(patience=0, factor=0.5)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    rates = []
    for loss in val_losses:
        rates.append(opt.param_groups[0]["lr"])
        ref.step(loss)
    return rates


@pytest.mark.parametrize("engine", ENGINES)
def test_driver_semantics_reach_every_engine(tiny_data, engine):
    """Early stopping with restore, train-eval, the plateau rate, saved weights and the step events:
    written once in the driver, the same on either engine."""
    stopping = {"early_stopping": {"metric": "val_loss", "patience": 2, "min_delta": 100.0},
                "schedule": {"name": "plateau", "patience": 0, "factor": 0.5}}
    events: list[tuple[str, dict]] = []
    s = spec(stopping, epochs=10, save_weights=True, train_eval="full", test=True)
    r = train(s, tiny_data, engine=engine, callback=lambda e, i: events.append((e, i)))
    assert r.early_stopped and len(r.history) == 3 and r.best_epoch == 1
    assert [row["lr"] for row in r.history] == pytest.approx(plateau_rates(0.1, [row["val_loss"] for row in r.history]))
    assert r.metrics["val_loss"] == r.history[0]["val_loss"]
    model = build_model(s.model)
    model.load_state_dict(r.state_dict)  # the restored (first) epoch's weights
    loss, acc, pred = evaluate(model, tiny_data.val_x, tiny_data.val_y)
    assert loss == pytest.approx(r.history[0]["val_loss"], rel=1e-5) and (pred.numpy() == r.val_pred).mean() > 0.99
    assert r.confusion["test"].sum() == 10_000 and 0 <= r.metrics["test_accuracy"] <= 1
    assert [i["epoch"] for e, i in events if e == "epoch"] == [1, 2, 3]
    assert {i["steps"] for e, i in events if e == "step"} == {10}


@pytest.mark.parametrize("engine", ENGINES)
def test_both_engines_agree_on_an_mlp(tiny_data, engine):
    """Same initial weights and data order, the same arithmetic up to float rounding."""
    s = spec(hidden=[32, 16], optimizer="adam", lr=1e-3, schedule="cosine")
    a, b = train(s, tiny_data, engine=engine), train(s, tiny_data, engine="stacked")
    for x, y in zip(a.history, b.history, strict=True):
        assert x["lr"] == y["lr"]
        for k in CURVES:
            assert x[k] == pytest.approx(y[k], rel=1e-3, abs=2 / 300), k
    assert a.params == b.params and a.train_flops == b.train_flops


def test_packed_cnn_lanes_equal_the_cnns_alone(tiny_data):
    """Seeds, learning rates and weight decays of one CNN as lanes of one vmap program. A lane's
    optimizer step is the run's own (per-lane torch.optim), but its forward and backward pass run as
    grouped convolutions, and its loss is a mean over its lane of the pack's loss tensor: both sum in
    another order than the run alone, so the gradients differ in the last bits at every step and SGD
    carries that on. Hence equal within float tolerance, relative 1e-3 on the losses after two
    epochs, not bitwise."""
    specs = [spec(model=KERAS_CNN, epochs=2, seed=0),
             spec(model=KERAS_CNN, epochs=2, seed=1, lr=0.05, weight_decay=1e-3, save_weights=True),
             spec(model=KERAS_CNN, epochs=1, seed=2, lr=0.2, schedule="step", step_size=1, gamma=0.5)]
    got = train_packed(specs, tiny_data, engine="modules")
    for g, s in zip(got, specs, strict=True):
        want = train(s, tiny_data)
        assert g.environment["packed"] == len(specs) and "packed" not in want.environment
        assert len(g.history) == len(want.history) == s.epochs
        for a, b in zip(g.history, want.history, strict=True):
            assert a["lr"] == b["lr"]
            for k in ("train_loss", "val_loss"):
                assert a[k] == pytest.approx(b[k], rel=1e-3), (k, a[k], b[k])
            for k in ("train_accuracy", "val_accuracy"):
                assert a[k] == pytest.approx(b[k], abs=3 / 300)  # a sample or two may flip
        assert (g.val_pred != want.val_pred).mean() < 0.01 and g.params == want.params == 15_994
    assert got[1].state_dict.keys() == build_model(specs[1].model).state_dict().keys()


def test_cnn_lanes_with_dropout_or_batch_norm_train_alone(tiny_data):
    for kw in ({"dropout": 0.2, "head": [8]}, {"batchnorm": True}):
        s = spec(model={**KERAS_CNN, **kw})
        assert pack_key(s) is None
        with pytest.raises(SpecError, match="trains it alone"):
            train_packed([s, spec(model={**KERAS_CNN, **kw}, seed=1)], tiny_data, engine="modules")


def test_an_engine_that_cannot_train_the_run_says_why_in_one_line(tiny_data):
    cnn = spec(model=KERAS_CNN)
    for s, engine, why in [(cnn, "stacked", "model kind 'cnn'"), (spec(optimizer="rmsprop", lr=1e-3), "stacked",
                           "optimizer 'rmsprop'"), (spec(batchnorm=True), "stacked", "batch norm")]:
        with pytest.raises(SpecError, match=f"engine = 'stacked' cannot train this run: {why}") as e:
            train(s, tiny_data, engine=engine)
        assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match="engine = 'gpu': allowed: auto, stacked, modules"):
        nnstudy.train(data=tiny_data, engine="gpu", per_class=30, validation=0.01)
    assert engine_for(cnn).name == "modules" and engine_for(spec()).name == "stacked"


def test_the_function_nnstudy_train_reaches_the_package_modules():
    code = ("import nnstudy, nnstudy.train.packed; import nnstudy.train.driver as d; "
            "assert callable(nnstudy.train) and nnstudy.train.packed.train_packed and nnstudy.train.mfu.mfu "
            "and d.fit; from nnstudy.train import train; assert train.__module__ == 'nnstudy.train.loop'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_module_engine_path_is_the_one_a_user_can_ask_for(tiny_data):
    r = nnstudy.train(data=tiny_data, engine="modules", per_class=30, validation=0.01, epochs=1, hidden=[16])
    assert r.status == "complete" and math.isfinite(r.metrics["val_loss"])
    torch.manual_seed(0)  # the caller's RNG is left alone by the module engine too
    expected = torch.rand(2)
    torch.manual_seed(0)
    nnstudy.train(data=tiny_data, engine="modules", per_class=30, validation=0.01, epochs=1, dropout=0.3)
    assert torch.equal(torch.rand(2), expected)
