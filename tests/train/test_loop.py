"""The trainer on a tiny real-MNIST subset: semantics of every number, determinism, flags."""

from __future__ import annotations

import math

import pytest
import torch

from nnstudy.models import build_model
from nnstudy.spec import RunSpec, make_run_spec
from nnstudy.train import evaluate, train


def spec(**kw) -> RunSpec:
    base = {"data": {"per_class": 30, "validation": 0.01}, "model": {"kind": "mlp", "hidden": [32]},
            "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 32, "epochs": 3}
    return make_run_spec(base, kw)


def test_same_spec_gives_identical_numbers(tiny_data):
    s = spec(dropout=0.2, seed=3)
    a, b = train(s, tiny_data), train(s, tiny_data)
    assert a.history and [{k: v for k, v in r.items() if k != "seconds"} for r in a.history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in b.history]
    assert (a.val_pred == b.val_pred).all()


def test_another_seed_gives_other_numbers(tiny_data):
    a, b = train(spec(seed=0), tiny_data), train(spec(seed=1), tiny_data)
    assert a.history[-1]["train_loss"] != b.history[-1]["train_loss"]


def test_callers_random_state_is_untouched(tiny_data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(spec(epochs=1), tiny_data)
    assert torch.equal(torch.rand(3), expected)


def test_curves_have_every_column_and_accuracies_are_fractions(tiny_data):
    r = train(spec(), tiny_data)
    df = r.curves
    assert list(df["epoch"]) == [1, 2, 3]
    for col in ("train_accuracy", "val_accuracy"):
        assert ((df[col] >= 0) & (df[col] <= 1)).all()
    assert (df["seconds"] > 0).all() and (df["lr"] == 0.1).all()
    assert r.metrics["val_loss"] == df["val_loss"].iloc[-1]
    assert r.status == "complete" and r.params == 784 * 32 + 32 + 32 * 10 + 10
    assert r.train_flops > 0 and r.summary()["val_accuracy"] == r.metrics["val_accuracy"]


def test_full_train_eval_is_an_eval_pass_over_the_training_split(tiny_data):
    r = train(spec(train_eval="full", dropout=0.5, save_weights=True), tiny_data)
    model = build_model(r.spec.model)
    model.load_state_dict(r.state_dict)
    loss, acc, _ = evaluate(model, tiny_data.train_x, tiny_data.train_y)
    assert r.history[-1]["train_loss"] == pytest.approx(loss, rel=1e-6)
    assert r.history[-1]["train_accuracy"] == pytest.approx(acc)
    # running mean (dropout on, weights moving) differs from the eval pass
    run = train(spec(dropout=0.5), tiny_data)
    assert run.history[-1]["train_loss"] != pytest.approx(loss, rel=1e-3)


def test_validation_metrics_are_an_eval_pass(tiny_data):
    r = train(spec(save_weights=True, batchnorm=True), tiny_data)
    model = build_model(r.spec.model)
    model.load_state_dict(r.state_dict)
    loss, acc, pred = evaluate(model, tiny_data.val_x, tiny_data.val_y)
    assert r.metrics["val_loss"] == pytest.approx(loss, rel=1e-6)
    assert (pred.numpy() == r.val_pred).all()
    assert r.confusion["val"].sum() == len(tiny_data.val_y)
    assert r.confusion["val"].trace() == round(acc * len(tiny_data.val_y))


def test_full_batch_takes_one_step_per_epoch(tiny_data):
    events = []
    r = train(spec(batch_size="full", epochs=2), tiny_data, callback=lambda e, i: events.append((e, i)))
    steps = [i["steps"] for e, i in events if e == "step"]
    assert steps and set(steps) == {1}
    assert len(r.history) == 2


def test_test_metrics_only_when_asked(tiny_data):
    without = train(spec(epochs=1), tiny_data)
    assert not any(k.startswith("test_") for k in without.metrics) and "test" not in without.confusion
    with_test = train(spec(epochs=1, test=True), tiny_data)
    assert 0 <= with_test.metrics["test_accuracy"] <= 1 and with_test.confusion["test"].sum() == 10_000


@pytest.mark.parametrize("kw", [{"lr": 1e6, "init": "normal", "init_std": 10.0}, {"max_loss": 1e-3}])
def test_divergence_stops_the_run(tiny_data, kw):
    r = train(spec(epochs=5, **kw), tiny_data)
    assert r.status == "diverged" and r.diverged
    assert len(r.history) < 5
    assert r.val_pred is None  # no predictions from a diverged model


def test_early_stopping_restores_the_best_epoch(tiny_data):
    # min_delta so large that no epoch after the first counts as an improvement
    stopping = {"metric": "val_loss", "patience": 2, "min_delta": 100.0}
    run = make_run_spec(spec(epochs=10, save_weights=True), overrides={"early_stopping": stopping})
    r = train(run, tiny_data)
    assert r.early_stopped and len(r.history) == 3 and r.best_epoch == 1
    assert r.metrics["val_loss"] == r.history[0]["val_loss"]
    model = build_model(r.spec.model)
    model.load_state_dict(r.state_dict)
    loss, _, _ = evaluate(model, tiny_data.val_x, tiny_data.val_y)
    assert loss == pytest.approx(r.history[0]["val_loss"], rel=1e-6)


def test_schedule_is_applied_and_recorded(tiny_data):
    r = train(spec(schedule="step", step_size=1, gamma=0.5, epochs=3), tiny_data)
    assert [row["lr"] for row in r.history] == pytest.approx([0.1, 0.05, 0.025])


@pytest.mark.parametrize("kind", [{"model": "linear"}, {"model": "cnn", "channels": [4], "head": [8]},
                                  {"model": "mlp", "hidden": [16, 16], "batchnorm": True}])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "rmsprop", "adadelta"])
def test_every_model_and_optimizer_trains(tiny_data, kind, opt):
    lr = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}[opt]
    base = {"data": {"per_class": 30, "validation": 0.01}, "optimizer": {"name": opt, "lr": lr},
            "batch_size": 30, "epochs": 3}
    r = train(make_run_spec(base, {**kind, "weight_decay": 1e-4}), tiny_data)
    assert r.status == "complete"
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"] or r.history[-1]["val_accuracy"] > 0.3


def test_threads_are_restored(tiny_data):
    before = torch.get_num_threads()
    r = train(spec(epochs=1, threads=1), tiny_data)
    assert torch.get_num_threads() == before and r.environment["threads"] == 1


def test_bf16_precision_trains(tiny_data):
    r = train(spec(precision="bf16", epochs=2), tiny_data)
    assert r.status == "complete" and math.isfinite(r.metrics["val_loss"])


def test_python_api_with_short_names(tiny_data):
    import nnstudy

    r = nnstudy.train(data=tiny_data, model="mlp", hidden=16, optimizer="adam", lr=1e-3, epochs=1,
                      per_class=30, validation=0.01)
    assert r.spec.model.hidden == [16] and r.spec.optimizer.name == "adam"
    assert list(r.curves.columns)[:3] == ["epoch", "train_loss", "train_accuracy"]
    fig = r.plot()
    assert len(fig.axes) == 2
    with pytest.raises(nnstudy.SpecError, match="unknown option 'lrate'"):
        nnstudy.train(data=tiny_data, lrate=0.1)


def test_data_loaded_for_another_data_spec_is_refused(tiny_data):
    from nnstudy.errors import SpecError

    with pytest.raises(SpecError, match="loaded for"):
        train(spec(per_class=60, epochs=1), tiny_data)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_relu_after_max_pool_is_the_same_function_and_gradient(tiny_data, batchnorm):
    """execution_order moves ReLU behind the max-pool: outputs and every gradient bitwise equal."""
    from nnstudy.train.loop import execution_order

    torch.manual_seed(0)
    m = build_model(make_run_spec({"model": {"kind": "cnn", "channels": [8, 16], "batchnorm": batchnorm,
                                               "head": [32]}}).model)
    net = execution_order(m)
    names = [n for n, _ in net.named_children()]
    assert names != [n for n, _ in m.named_children()]  # something moved
    assert names.index("maxpool1") < names.index("relu1")
    assert net.state_dict().keys() == m.state_dict().keys()
    x = tiny_data.train_x[:64] - 0.5  # negative inputs too: windows whose maximum is below zero
    grads = []
    for f in (m, net):
        f.zero_grad()
        out = f(x)
        F = torch.nn.functional
        F.cross_entropy(out, tiny_data.train_y[:64]).backward()
        grads.append((out.detach().clone(), [p.grad.clone() for p in m.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1], strict=True))


def test_models_without_relu_before_a_pool_run_as_built():
    from nnstudy.train.loop import execution_order

    m = build_model(make_run_spec({"model": {"kind": "cnn", "channels": [8], "activation": "tanh"}}).model)
    assert execution_order(m) is m

