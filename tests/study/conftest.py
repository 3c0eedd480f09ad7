"""Tiny studies on real MNIST: 20-50 images per class, one or two epochs, small MLPs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def study_file(tmp_path):
    """Write a study file: ``study_file(text, name="study")`` → its path."""

    def write(text: str, name: str = "study") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def offline(mnist_dir, monkeypatch):
    """Real MNIST from the shared folder, and no network: a missing file fails fast."""
    monkeypatch.setenv("NNSTUDY_DATA", str(mnist_dir))
    monkeypatch.setenv("NNSTUDY_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setenv("NNSTUDY_NPM", "")
    return mnist_dir


def nnstudy_env(mnist_dir: Path) -> dict[str, str]:
    return {**os.environ, "NNSTUDY_DATA": str(mnist_dir), "NNSTUDY_MIRRORS": "http://127.0.0.1:9/",
            "NNSTUDY_NPM": ""}


@pytest.fixture(scope="session")
def cli(mnist_dir):
    """``cli(*args, cwd=...)``: ``python -m nnstudy ARGS`` in a subprocess, as a user runs it;
    ``cli.popen(...)`` starts it without waiting."""

    class Cli:
        env = nnstudy_env(mnist_dir)

        def __call__(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
            """No wall-clock limit: a slow machine is slower, not wrong (pytest-timeout guards hangs)."""
            return subprocess.run([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=self.env, text=True,
                                  capture_output=True)

        def popen(self, *args: str, cwd: Path, **kw) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "nnstudy", *args], cwd=cwd, env=self.env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    return Cli()
