"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with the four real MNIST .gz files: ``$NNSTUDY_DATA`` when set, else
    ``<repo>/../shared/data/mnist``. Never copied into the repository."""
    env = os.environ.get("NNSTUDY_DATA")
    path = Path(env) if env else Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist"
    if not path.is_dir():
        pytest.fail(f"MNIST files not found at {path}; set NNSTUDY_DATA to the folder holding them")
    return path
