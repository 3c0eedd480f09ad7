"""Packed runs against the same runs trained alone, and the fast path against the module path."""

from __future__ import annotations

import math

import pytest
import torch

from nnstudy.errors import SpecError
from nnstudy.models import build_model
from nnstudy.spec import RunSpec, make_run_spec
from nnstudy.train import evaluate, packed, train
from nnstudy.train.packed import fast_path_reason, packable, train_packed

CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def spec(**kw) -> RunSpec:
    base = {"data": {"per_class": 30, "validation": 0.01}, "model": {"kind": "mlp", "hidden": [32, 16]},
            "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 32, "epochs": 3}
    return make_run_spec(base, kw)


def assert_same_run(got, want, rtol=1e-4):
    """Same curves within float tolerance; same length, status and flags."""
    assert got.status == want.status and len(got.history) == len(want.history)
    assert got.best_epoch == want.best_epoch and got.early_stopped == want.early_stopped
    for a, b in zip(got.history, want.history, strict=True):
        assert a["epoch"] == b["epoch"] and a["lr"] == pytest.approx(b["lr"])
        for k in CURVES:
            if math.isnan(b[k]):
                assert math.isnan(a[k])
            elif k.endswith("accuracy"):
                assert a[k] == pytest.approx(b[k], abs=2 / 300), k  # a sample or two may flip
            else:
                assert a[k] == pytest.approx(b[k], rel=rtol, abs=1e-6), (k, a[k], b[k])
    assert got.metrics.keys() == want.metrics.keys()


MIXES = {
    "sgd": [dict(lr=0.1), dict(lr=0.03, seed=1), dict(lr=0.1, weight_decay=1e-3, seed=2),
            dict(lr=0.05, momentum=0.9, seed=3), dict(lr=0.05, momentum=0.5, nesterov=True, seed=4),
            dict(lr=0.1, dropout=0.5, seed=5), dict(lr=0.1, dropout=[0.2, 0.0], seed=6)],
    "adam": [dict(lr=1e-3), dict(lr=3e-3, seed=1), dict(lr=1e-3, weight_decay=1e-2, seed=2),
             dict(lr=1e-3, dropout=0.3, seed=3), dict(lr=2e-3, init="kaiming", seed=4)],
    "adamw": [dict(lr=1e-3, weight_decay=0.1), dict(lr=1e-3, weight_decay=0.0, seed=1),
              dict(lr=2e-3, weight_decay=0.05, dropout=[0.0, 0.4], seed=2)],
}


@pytest.mark.parametrize("opt", list(MIXES))
def test_packed_runs_equal_the_same_runs_alone(tiny_data, opt):
    specs = [spec(optimizer=opt, **kw) for kw in MIXES[opt]]
    got = train_packed(specs, tiny_data)
    for g, s in zip(got, specs, strict=True):
        want = train(s, tiny_data)
        assert_same_run(g, want)
        assert (g.val_pred != want.val_pred).mean() < 0.01
        assert g.environment["packed"] == len(specs) and g.params == want.params
        assert g.train_flops == want.train_flops


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("hidden", [[32, 16], [300]])
def test_with_one_thread_a_packed_run_is_bitwise_the_run_alone(tiny_data, opt, hidden):
    """Every kernel sees the same shapes and values lane by lane; only a multi-threaded batched matmul
    splits its work by the number of lanes (and then agrees within float tolerance, tested above).
    784-300-10 has 238,510 parameters per lane: not a multiple of the vector width, so a lane's
    elements sit at other vector positions in a pack than alone (the elementwise updates must not care)."""
    mixes = MIXES[opt][:5] if opt == "sgd" else MIXES[opt][:3]  # SGD: with a Nesterov lane among others
    specs = [spec(threads=1, optimizer=opt, hidden=hidden, **kw) for kw in mixes] + \
        [spec(threads=1, optimizer=opt, hidden=hidden, dropout=0.5, seed=9)]
    for g, s in zip(train_packed(specs, tiny_data), specs, strict=True):
        want = train(s, tiny_data)
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in g.history] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in want.history]
        assert (g.val_pred == want.val_pred).all() and g.metrics == want.metrics


def test_lanes_that_stop_early_leave_the_pack_and_the_others_go_on(tiny_data):
    stopping = {"metric": "val_loss", "patience": 1, "min_delta": 100.0}
    specs = [
        spec(epochs=4),
        spec(epochs=2, seed=1),  # fewer epochs
        make_run_spec(spec(epochs=4, seed=2, save_weights=True), overrides={"early_stopping": stopping}),
        spec(epochs=4, lr=1e6, init="normal", init_std=10.0, seed=3),  # diverges
        spec(epochs=4, schedule="step", step_size=1, gamma=0.5, seed=4, test=True),
    ]
    got = train_packed(specs, tiny_data)
    assert [len(r.history) for r in got] == [4, 2, 2, len(got[3].history), 4]
    assert got[3].status == "diverged" and len(got[3].history) < 4
    assert got[2].early_stopped and got[2].best_epoch == 1
    for g, s in zip(got, specs, strict=True):
        assert_same_run(g, train(s, tiny_data))
    assert 0 <= got[4].metrics["test_accuracy"] <= 1 and got[4].confusion["test"].sum() == 10_000


def test_saved_weights_are_the_runs_own_model(tiny_data):
    specs = [spec(save_weights=True, seed=s, dropout=0.2) for s in range(3)]
    for r in train_packed(specs, tiny_data):
        model = build_model(r.spec.model)
        model.load_state_dict(r.state_dict)
        loss, acc, pred = evaluate(model, tiny_data.val_x, tiny_data.val_y)
        assert loss == pytest.approx(r.metrics["val_loss"], rel=1e-5)
        assert (pred.numpy() == r.val_pred).mean() > 0.99


@pytest.mark.parametrize("kw", [
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3},
    {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2},
    {"model": "linear", "optimizer": "sgd", "lr": 0.1},
    {"activation": "tanh"}, {"activation": "sigmoid", "lr": 0.5}, {"activation": "gelu"}, {"activation": "identity"},
    {"batch_size": "full", "lr": 0.5, "epochs": 4},
    {"train_eval": "full", "dropout": 0.3},
])
def test_fast_path_equals_the_module_path(tiny_data, monkeypatch, kw):
    """Same initial weights, data order and (without dropout) the same arithmetic as torch's modules."""
    s = spec(**kw)
    fast = train(s, tiny_data)
    monkeypatch.setattr(packed, "fast_path_reason", lambda _: "forced")
    slow = train(s, tiny_data)
    if s.model.kind == "mlp" and any(s.model.dropouts()):
        # masks are drawn differently; only train_eval="full" makes both pure eval passes comparable
        assert fast.history[0]["train_accuracy"] == pytest.approx(slow.history[0]["train_accuracy"], abs=0.1)
        return
    assert_same_run(fast, slow, rtol=1e-3)


def test_bf16_packed_equals_bf16_alone(tiny_data):
    specs = [spec(precision="bf16", lr=lr, seed=i) for i, lr in enumerate((0.05, 0.1, 0.2))]
    for g, s in zip(train_packed(specs, tiny_data), specs, strict=True):
        assert_same_run(g, train(s, tiny_data), rtol=1e-3)


def test_a_callback_that_raises_stops_only_its_run(tiny_data):
    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_after_first(event, info):
        if event == "epoch":
            seen.append(info["epoch"])
            raise Stop

    specs = [spec(seed=s) for s in range(3)]
    got = train_packed(specs, tiny_data, callbacks=[None, stop_after_first, None])
    assert isinstance(got[1], Stop) and seen == [1]
    assert_same_run(got[2], train(specs[2], tiny_data))
    with pytest.raises(Stop):  # a lone run raises, as the module path does
        train(specs[1], tiny_data, callback=stop_after_first)


def test_packable_groups_by_shape_and_keeps_the_rest_alone():
    a = [spec(lr=lr) for lr in (0.01, 0.1)]
    b = [spec(hidden=[64], seed=s) for s in range(3)]
    cnn = spec(model="cnn", channels=[4], head=[8])
    bn = spec(batchnorm=True)
    groups = packable([a[0], b[0], cnn, a[1], b[1], bn, b[2]])
    assert groups == [[a[0], a[1]], [b[0], b[1], b[2]], [cnn], [bn]]
    assert packable(b, max_lanes=2) == [[b[0], b[1]], [b[2]]]
    assert fast_path_reason(cnn) and fast_path_reason(bn) and fast_path_reason(spec(optimizer="rmsprop"))
    assert fast_path_reason(a[0]) is None


def test_runs_that_cannot_share_a_pack_are_refused(tiny_data):
    with pytest.raises(SpecError, match="differ in batch_size"):
        train_packed([spec(), spec(batch_size=64)], tiny_data)
    with pytest.raises(SpecError, match="differ in model shape"):
        train_packed([spec(), spec(hidden=[8])], tiny_data)
    with pytest.raises(SpecError, match="cannot be packed: model kind 'cnn'"):
        train_packed([spec(model="cnn", channels=[4], head=[8])], tiny_data)
    with pytest.raises(SpecError, match="no runs"):
        train_packed([], tiny_data)
    with pytest.raises(SpecError, match="loaded for"):
        train_packed([spec(per_class=60)], tiny_data)


def test_packing_leaves_the_callers_random_state_alone(tiny_data):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train_packed([spec(dropout=0.5, seed=s, epochs=1) for s in range(2)], tiny_data)
    assert torch.equal(torch.rand(3), expected)
