"""``build_model``: the architectures the specs describe, their initializations, their errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnstudy.errors import SpecError
from nnstudy.models import build_model, count_params, layers, summary
from nnstudy.spec import CNNSpec, LinearSpec, MLPSpec, VGG11Spec


def test_forward_gives_logits(case):
    spec, input_shape, num_classes = case
    model = build_model(spec, input_shape, num_classes)
    out = model(torch.randn(4, *input_shape))  # (B, C, H, W) -> (B, classes)
    assert out.shape == (4, num_classes) and out.dtype == torch.float32


def test_seed_003_cnn_is_exactly_its_layers():
    model = build_model(CNNSpec(channels=[32, 64], kernel=3, batchnorm=True, head=[128], dropout=0.2))
    expected = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )  # fmt: skip
    assert [repr(m) for m in model] == [repr(m) for m in expected]


def test_seed_003_mlp_is_exactly_its_layers():
    model = build_model(MLPSpec(hidden=[128, 64], batchnorm=True, dropout=[0.2, 0.0]))
    expected = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10),
    )  # fmt: skip
    assert [repr(m) for m in model] == [repr(m) for m in expected]


def test_mlp_layer_order_and_dropout_per_layer():
    model = build_model(MLPSpec(hidden=[64, 32], dropout=[0.3, 0.0], batchnorm=True, activation="tanh"))
    kinds = [type(m).__name__ for m in model]
    hidden1 = ["Linear", "BatchNorm1d", "Tanh", "Dropout"]
    hidden2 = ["Linear", "BatchNorm1d", "Tanh"]  # dropout 0: no layer
    assert kinds == ["Flatten", *hidden1, *hidden2, "Linear"]
    assert model.dropout1.p == 0.3


def test_identity_activation_adds_no_layer():
    model = build_model(MLPSpec(hidden=[16, 16], activation="identity"))
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear", "Linear", "Linear"]


def test_cnn_pools_and_padding():
    avg = build_model(CNNSpec(channels=[4], pool="avg", padding=0, kernel=5, conv_dropout=0.1, head=[]))
    assert [type(m).__name__ for m in avg] == ["Conv2d", "ReLU", "AvgPool2d", "Dropout", "Flatten", "Linear"]
    assert avg.conv1.padding == (0, 0) and avg.output.in_features == 4 * 12 * 12  # 28 -> 24 -> 12
    same = build_model(CNNSpec(channels=[4], kernel=5, pool="none", head=[]))
    assert same.conv1.padding == (2, 2) and same.output.in_features == 4 * 28 * 28


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own, the reference
@pytest.mark.parametrize("kernel", [2, 4])
def test_an_even_same_convolution_is_torchs_to_the_bit(kernel):
    """``models.build.Conv2d`` pads by hand what ``nn.Conv2d(padding="same")`` pads inside (the extra row and
    column on the bottom and right): the same outputs and gradients, bit for bit, and the same state."""
    torch.manual_seed(0)
    ours = build_model(CNNSpec(channels=[3], kernel=kernel, pool="none", head=[])).conv1
    theirs = torch.nn.Conv2d(1, 3, kernel, padding="same")
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(ours, torch.nn.Conv2d) and repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(4, 1, 9, 9, requires_grad=True)
    a, b = ours(x), theirs(x)
    assert a.shape == (4, 3, 9, 9) and torch.equal(a, b)
    grads = [torch.autograd.grad(out.square().sum(), (x, m.weight, m.bias)) for out, m in ((a, ours), (b, theirs))]
    assert all(torch.equal(g, h) for g, h in zip(*grads, strict=True))


def test_vgg11_keeps_four_pools_and_scales_widths():
    rows = layers(VGG11Spec(width=0.25))
    # 28 -> 14 -> 7 -> 3 -> 1
    assert [r.output_shape[1] for r in rows if r.kind == "MaxPool2d"] == [14, 7, 3, 1]
    assert [r.output_shape[0] for r in rows if r.kind == "Conv2d"] == [16, 32, 64, 64, 128, 128, 128, 128]
    tiny = [r.output_shape[0] for r in layers(VGG11Spec(width=0.01)) if r.kind == "Conv2d"]
    assert tiny == [1, 1, 3, 3, 5, 5, 5, 5]  # 0.64, 1.28, 2.56, 5.12 rounded, at least 1
    after_flatten = [r.kind for r in rows[[r.name for r in rows].index("flatten") + 1 :]]
    assert after_flatten == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]


def test_vgg11_head_has_no_batchnorm_and_honours_dropout():
    model = build_model(VGG11Spec(width=0.25, head=[64], dropout=0.0))
    names = list(dict(model.named_children()))
    assert names[-4:] == ["flatten", "fc1", "relu9", "output"]
    assert not any(isinstance(m, nn.Dropout) for m in model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in build_model(VGG11Spec(width=0.25, batchnorm=False)))


# ------------------------------------------------------------------------------------------- errors


def test_same_padding_keeps_the_size_for_even_kernels_and_pool_every_groups_blocks():
    # seed 003's Keras baseline: Conv2D(8, 2×2, same) ×2 → MaxPool → Flatten → Dense(10)
    spec = CNNSpec(channels=[8, 8], kernel=2, pool_every=2, head=[])
    model = build_model(spec)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert count_params(spec) == sum(p.numel() for p in model.parameters()) == 40 + 264 + 8 * 14 * 14 * 10 + 10


def test_mlp_batchnorm_per_layer_as_in_seed_002():
    model = build_model(MLPSpec(hidden=[512, 512], batchnorm=[False, True]))
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]


@pytest.mark.parametrize("describe", [build_model, count_params, layers, summary])
def test_too_many_pools_is_a_spec_error_naming_the_key(describe):
    with pytest.raises(SpecError, match=r"model\.channels = \[8, 8, 8, 8, 8\].* block 5 halves a 1×1"):
        describe(CNNSpec(channels=[8] * 5))


def test_kernel_larger_than_its_feature_map_is_a_spec_error():
    # 28 -> conv 20 -> pool 10 -> conv 2 -> pool 1 -> conv: 1 - 9 + 1 < 1
    with pytest.raises(SpecError, match=r"model\.kernel = 9 with model\.padding = 0: conv block 3"):
        build_model(CNNSpec(channels=[4, 4, 4], kernel=9, padding=0))


def test_vgg11_on_a_small_input_is_a_spec_error():
    with pytest.raises(SpecError, match=r"vgg11.*at least 16×16.*15×15"):
        build_model(VGG11Spec(width=0.25), input_shape=(1, 15, 15))
    smallest = build_model(VGG11Spec(width=0.25), input_shape=(1, 16, 16))
    assert smallest(torch.randn(2, 1, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("input_shape,num_classes", [((784,), 10), ((1, 0, 28), 10), ((1, 28, 28), 0)])
def test_bad_input_or_classes_is_a_spec_error(input_shape, num_classes):
    with pytest.raises(SpecError, match="input_shape|num_classes"):
        build_model(MLPSpec(), input_shape, num_classes)


def test_spec_errors_are_one_line():
    for spec in (CNNSpec(channels=[8] * 6), CNNSpec(kernel=29, padding=0)):
        with pytest.raises(SpecError) as err:
            build_model(spec)
        assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------- init


def _weights(model: nn.Module) -> list[nn.Module]:
    return [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_constant_init_sets_every_weight_and_bias():
    model = build_model(CNNSpec(channels=[4], batchnorm=True, head=[8], init="constant", init_value=0.25))
    for m in _weights(model):
        assert (m.weight == 0.25).all() and (m.bias == 0.25).all()
    assert (model.bn1.weight == 1).all() and (model.bn1.bias == 0).all()  # BN keeps its defaults


def test_normal_init_has_the_asked_std():
    model = build_model(MLPSpec(hidden=[1000], init="normal", init_std=0.05))
    w = model.fc1.weight  # 784,000 draws
    assert w.std().item() == pytest.approx(0.05, rel=0.1) and abs(w.mean().item()) < 0.005
    assert (model.fc1.bias == 0).all() and (model.output.bias == 0).all()


def test_xavier_init_is_uniform_with_glorot_bound():
    model = build_model(MLPSpec(hidden=[1000], init="xavier"))
    w = model.fc1.weight
    bound = math.sqrt(6 / (784 + 1000))
    assert w.abs().max().item() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert (model.fc1.bias == 0).all()


GAINS = [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("sigmoid", 1.0), ("gelu", math.sqrt(2))]


@pytest.mark.parametrize("activation,gain", GAINS)
def test_kaiming_init_uses_the_following_activations_gain(activation, gain):
    model = build_model(MLPSpec(hidden=[1000, 1000], activation=activation, init="kaiming"))
    assert model.fc1.weight.std().item() == pytest.approx(gain / math.sqrt(784), rel=0.05)
    assert model.fc2.weight.std().item() == pytest.approx(gain / math.sqrt(1000), rel=0.05)
    # the classifier has no activation after it: gain 1
    assert model.output.weight.std().item() == pytest.approx(1 / math.sqrt(1000), rel=0.1)
    assert all((m.bias == 0).all() for m in _weights(model))


def test_kaiming_init_of_convolutions_uses_fan_in():
    model = build_model(CNNSpec(channels=[64, 128], init="kaiming"))
    fan_in = 64 * 3 * 3
    assert model.conv2.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)


def test_default_init_is_torchs():
    torch.manual_seed(3)
    model = build_model(MLPSpec(hidden=[50]))
    torch.manual_seed(3)
    reference = nn.Linear(784, 50)  # fc1 is the first module that draws
    assert torch.equal(model.fc1.weight, reference.weight) and torch.equal(model.fc1.bias, reference.bias)


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming", "normal"])
@pytest.mark.parametrize(
    "spec", [LinearSpec(), MLPSpec(hidden=[32, 16], batchnorm=True), CNNSpec(channels=[4])]
)
def test_same_seed_same_weights_other_seed_other_weights(spec, init):
    spec = spec.model_copy(update={"init": init})

    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(spec).state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_build_takes_randomness_from_the_current_state_and_sets_none():
    torch.manual_seed(0)
    first, second = build_model(MLPSpec()), build_model(MLPSpec())  # no reseeding in between
    assert not torch.equal(first.fc1.weight, second.fc1.weight)
