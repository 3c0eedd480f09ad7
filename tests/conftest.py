"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After pytest's own summary: one line per group of tests that did not run, with why and what
    installs it, so that a machine without PostgreSQL or Chromium cannot pass while testing less unseen."""
    yield
    lines = [f"skipped: {n} test{'s' * (n > 1)}: {reason}" for reason, n in skipped_groups(terminalreporter)]
    deselected = terminalreporter.stats.get("deselected", [])
    acceptance = sum(1 for item in deselected if item.get_closest_marker("acceptance"))
    if acceptance:
        lines.append(f"not run: {acceptance} acceptance test{'s' * (acceptance > 1)} "
                     "(minutes each on all of MNIST; run them with: python -m pytest -m acceptance)")
    if len(deselected) > acceptance:
        lines.append(f"not run: {len(deselected) - acceptance} tests deselected by -k/-m")
    if lines:
        terminalreporter.write_sep("-", "tests that did not run")
        for line in lines:
            terminalreporter.write_line(line)


def skipped_groups(terminalreporter) -> list[tuple[str, int]]:
    """(reason, count) of the skipped tests, largest group first; a reason is the skip's message."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        counts[reason] = counts.get(reason, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with the four real MNIST .gz files: ``$NNSTUDY_DATA`` when set, else
    ``<repo>/../shared/data/mnist``. Never copied into the repository."""
    env = os.environ.get("NNSTUDY_DATA")
    path = Path(env) if env else Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist"
    if not path.is_dir():
        pytest.fail(f"MNIST files not found at {path}; set NNSTUDY_DATA to the folder holding them")
    return path


def _postgres_binaries() -> tuple[str, str] | None:
    """(initdb, postgres) from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    import glob
    import shutil

    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return initdb, postgres
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return found[-1], str(Path(found[-1]).with_name("postgres"))
    return None


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the session: initdb into a temporary folder, listening on
    127.0.0.1 only, trust authentication, stopped at the end. Yields a SQLAlchemy URL for a fresh
    database. As root, the server runs as the ``postgres`` user (PostgreSQL refuses root)."""
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    initdb, postgres = binaries
    # not under pytest's tmp tree: that is private to the current user, and the server may run as another
    base = Path(tempfile.mkdtemp(prefix="nnstudy-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "nnstudy", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [*as_user, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(sockets)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import psycopg

    deadline = time.monotonic() + 600  # a hang guard: a busy machine starts it slower, not never
    while True:
        try:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=nnstudy dbname=postgres", autocommit=True) as c:
                c.execute("CREATE DATABASE nnstudy_test")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("PostgreSQL did not start within 10 minutes")
            time.sleep(0.3)
    try:
        yield f"postgresql+psycopg://nnstudy@127.0.0.1:{port}/nnstudy_test"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)
