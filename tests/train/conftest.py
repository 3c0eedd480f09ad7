from __future__ import annotations

import pytest

from nnstudy.spec import DataSpec


@pytest.fixture(scope="session")
def tiny_data(mnist_dir):
    """300 training images (30 per class), 600 validation images: one epoch takes milliseconds."""
    from nnstudy.data import load

    return load(DataSpec(per_class=30, validation=0.01), data_dir=str(mnist_dir), download=False)
