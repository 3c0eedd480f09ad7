"""The test run's last lines say what did not run: the acceptance group (left out of the default run)
and tests deselected by -k, in one process and under pytest-xdist alike (its workers collect and
deselect; the controller prints). Skipped groups (no PostgreSQL, no Chromium) print their reason the
same way (``tests/conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_summary_names_the_acceptance_tests_and_the_deselected_ones(workers):
    one = "does_not_exist and NNSTUDY_DATA and run"  # one fast test of the file, the rest deselected
    p = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e/test_train_cli.py", "-k", one,
                        "-p", "no:cacheprovider", *workers], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    tail = p.stdout[p.stdout.index("tests that did not run"):]
    assert "not run: 3 acceptance tests (minutes each on all of MNIST; run them with: python -m pytest " \
           "-m acceptance)" in tail, tail
    assert "tests deselected by -k/-m" in tail and "1 passed" in p.stdout, tail


def test_the_readme_command_with_nnstudy_data_relative_to_the_repository_works(mnist_dir):
    """The README runs ``NNSTUDY_DATA=../shared/data/mnist python -m pytest`` from the repository root,
    and the tests start nnstudy in temporary folders: the relative folder must reach them as the same
    folder (it did not: 29 tests failed with 'NNSTUDY_DATA=../shared/data/mnist: does not exist')."""
    relative = Path(os.path.relpath(mnist_dir.resolve(), ROOT))
    assert not relative.is_absolute()
    p = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider",
                        "tests/e2e/test_train_cli.py::test_no_validation_split_draws_no_empty_validation_plots"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NNSTUDY_DATA": str(relative)})
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr
