"""Parameter counts and FLOPs from the spec, checked against torch: ``sum(p.numel())`` for the
counts, ``torch.utils.flop_counter.FlopCounterMode`` and hand formulas for the FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nnstudy.errors import SpecError
from nnstudy.models import (
    build_model,
    count_params,
    forward_flops,
    layers,
    mlp_params,
    mlp_params_of_widths,
    train_flops,
)
from nnstudy.spec import CNNSpec, LinearSpec, MLPSpec


def test_count_equals_torch(case):
    spec, input_shape, num_classes = case
    model = build_model(spec, input_shape, num_classes)
    assert count_params(spec, input_shape, num_classes) == sum(p.numel() for p in model.parameters())


def test_per_layer_counts_equal_torch(case):
    spec, input_shape, num_classes = case
    model = build_model(spec, input_shape, num_classes)
    for info in layers(spec, input_shape, num_classes):
        module = model.get_submodule(info.name)
        assert type(module).__name__ == info.kind
        assert info.params == sum(p.numel() for p in module.parameters()), info.name


def test_forward_flops_equal_torch_flop_counter(case):
    # FlopCounterMode counts 2 FLOPs per multiply-add of matmuls and convolutions, nothing else:
    # the convention of forward_flops.
    spec, input_shape, num_classes = case
    model = build_model(spec, input_shape, num_classes).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(2, *input_shape))  # a batch of 2
    assert counter.get_total_flops() == 2 * forward_flops(spec, input_shape, num_classes)


@pytest.mark.parametrize(
    "spec,expected",
    [
        (LinearSpec(), 7_850),
        (MLPSpec(hidden=[300]), 238_510),
        (MLPSpec(hidden=[50, 50, 50]), 44_860),
        (MLPSpec(hidden=[63]), 50_095),
    ],
)
def test_known_counts(spec, expected):
    assert count_params(spec) == expected == sum(p.numel() for p in build_model(spec).parameters())


def test_mlp_params_known_values():
    assert mlp_params(1, 300) == 238_510
    assert mlp_params(3, 50) == 44_860
    assert mlp_params(1, 63) == 50_095


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("m", [1, 7, 50, 300])
def test_mlp_params_closed_form(k, m):
    # DESIGN.md section 5: Parameters(k, m) = (k−1)m² + (794+k)m + 10
    expected = (k - 1) * m * m + (794 + k) * m + 10
    assert mlp_params(k, m) == expected == count_params(MLPSpec(hidden=[m] * k))
    assert mlp_params(k, m) == mlp_params_of_widths([m] * k)


def test_mlp_params_other_sizes():
    rgb = count_params(MLPSpec(hidden=[40, 40]), input_shape=(3, 32, 32), num_classes=100)
    assert mlp_params(2, 40, n_in=3 * 32 * 32, n_out=100) == rgb


@pytest.mark.parametrize("widths", [[300], [128, 64], [512, 256, 128, 64], [5, 500, 5]])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_params_of_widths(widths, batchnorm):
    assert mlp_params_of_widths(widths, batchnorm=batchnorm) == count_params(
        MLPSpec(hidden=widths, batchnorm=batchnorm)
    )


def test_mlp_params_of_no_widths_is_softmax_regression():
    assert mlp_params_of_widths([]) == count_params(LinearSpec()) == 7_850


EMPTY = [lambda: mlp_params(0, 10), lambda: mlp_params(2, 0), lambda: mlp_params_of_widths([3, 0])]


@pytest.mark.parametrize("call", EMPTY)
def test_mlp_params_rejects_empty_layers(call):
    with pytest.raises(SpecError, match=">= 1"):
        call()


def test_linear_and_mlp_flops_are_two_per_multiply_add():
    assert forward_flops(LinearSpec()) == 2 * 784 * 10
    spec = MLPSpec(hidden=[300, 100], batchnorm=True, dropout=0.5)  # BN, ReLU, dropout: not counted
    assert forward_flops(spec) == 2 * (784 * 300 + 300 * 100 + 100 * 10)


def test_conv_flops_formula():
    # 2·Cin·Cout·k²·Hout·Wout per conv layer
    spec = CNNSpec(channels=[16], kernel=5, padding=0, pool="none", head=[])  # 28 -> 24
    rows = {r.name: r for r in layers(spec)}
    assert rows["conv1"].flops == 2 * 1 * 16 * 5 * 5 * 24 * 24
    assert rows["output"].flops == 2 * (16 * 24 * 24) * 10
    assert forward_flops(spec) == rows["conv1"].flops + rows["output"].flops
    seed_003 = {r.name: r for r in layers(CNNSpec(channels=[32, 64], kernel=3, batchnorm=True, head=[128]))}
    assert seed_003["conv2"].flops == 2 * 32 * 64 * 3 * 3 * 14 * 14  # after one pool: 14×14
    assert seed_003["fc1"].flops == 2 * 3136 * 128


def test_train_flops_are_three_forwards(case):
    spec, input_shape, num_classes = case
    assert train_flops(spec, input_shape, num_classes) == 3 * forward_flops(spec, input_shape, num_classes)


def test_counting_builds_nothing_and_draws_no_randomness():
    torch.manual_seed(0)
    count_params(CNNSpec()), forward_flops(CNNSpec()), layers(MLPSpec())
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))
