"""Model specs every test in tests/models runs over: each kind, each option, odd inputs."""

from __future__ import annotations

import pytest

from nnstudy.spec import CNNSpec, LinearSpec, MLPSpec, VGG11Spec

#: Seed 003's CNN: conv(32)-BN-ReLU-pool, conv(64)-BN-ReLU-pool, dense 128-BN-ReLU-dropout 0.2, dense 10.
SEED_003_CNN = CNNSpec(channels=[32, 64], kernel=3, batchnorm=True, head=[128], dropout=0.2)

MNIST = ((1, 28, 28), 10)

#: (id, spec, input_shape, num_classes)
CASES = [
    ("linear", LinearSpec(), *MNIST),
    ("linear-tanh", LinearSpec(activation="tanh"), *MNIST),
    ("mlp-300", MLPSpec(hidden=[300]), *MNIST),
    ("mlp-50x3", MLPSpec(hidden=[50, 50, 50]), *MNIST),
    (
        "mlp-4-dropouts-bn",
        MLPSpec(hidden=[512, 256, 128, 64], dropout=[0.2, 0.0, 0.1, 0.5], batchnorm=True),
        *MNIST,
    ),
    ("mlp-2-dropout", MLPSpec(hidden=[64, 32], dropout=0.3), *MNIST),
    ("mlp-512x2-bn", MLPSpec(hidden=[512, 512], batchnorm=True), *MNIST),
    ("mlp-seed003", MLPSpec(hidden=[128, 64], batchnorm=True, dropout=[0.2, 0.0]), *MNIST),
    *[
        (f"mlp-{a}", MLPSpec(hidden=[32, 16], activation=a), *MNIST)
        for a in ("relu", "tanh", "sigmoid", "gelu", "identity")
    ],
    ("mlp-rgb-100", MLPSpec(hidden=[40]), (3, 32, 32), 100),
    ("cnn-seed003", SEED_003_CNN, *MNIST),
    ("cnn-defaults", CNNSpec(), *MNIST),
    ("cnn-nopool-nohead", CNNSpec(channels=[8], pool="none", head=[]), *MNIST),
    (
        "cnn-avg-pad0-k5-heads",
        CNNSpec(
            channels=[8, 16],
            kernel=5,
            padding=0,
            pool="avg",
            head=[32, 16],
            dropout=[0.1, 0.0],
            conv_dropout=0.25,
        ),
        *MNIST,
    ),
    (
        "cnn-pad1-bn-gelu",
        CNNSpec(channels=[4, 8, 16], kernel=3, padding=1, batchnorm=True, activation="gelu"),
        *MNIST,
    ),
    (
        "cnn-lenet-tanh",
        CNNSpec(channels=[6, 16], kernel=5, padding=0, pool="avg", head=[120, 84], activation="tanh"),
        *MNIST,
    ),
    ("cnn-k2-pad0", CNNSpec(channels=[8, 8], kernel=2, padding=0), *MNIST),
    ("cnn-k2-same-keras", CNNSpec(channels=[8, 8], kernel=2, pool_every=2, head=[]), *MNIST),  # seed 003's Keras CNN
    (
        "cnn-k7-same-identity",
        CNNSpec(channels=[8], kernel=7, pool="none", activation="identity", head=[16]),
        *MNIST,
    ),
    ("cnn-rgb-100", CNNSpec(channels=[8, 16], batchnorm=True), (3, 32, 32), 100),
    ("vgg11-0.25", VGG11Spec(width=0.25), *MNIST),
    ("vgg11-0.25-nobn", VGG11Spec(width=0.25, batchnorm=False), *MNIST),
    ("vgg11-1.0", VGG11Spec(width=1.0), *MNIST),
    ("vgg11-1.0-nobn", VGG11Spec(width=1.0, batchnorm=False), *MNIST),
    ("vgg11-0.1-onehead", VGG11Spec(width=0.1, head=[64], dropout=0.0), *MNIST),
    ("vgg11-rgb-32", VGG11Spec(width=0.25), (3, 32, 32), 100),
]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request):
    """``(spec, input_shape, num_classes)`` for one entry of ``CASES``."""
    return request.param[1:]
