"""Fixtures shared by every test package."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# pytest-xdist: the workers share the machine's cores, so each worker's torch, and every nnstudy
# process a test starts, gets its share of threads rather than all of them (two two-thread processes
# on two cores wait at each other's OpenMP barriers: the suite took longer with more workers). A
# value the user set is kept.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

# The README's test command gives NNSTUDY_DATA relative to the repository root; the nnstudy
# processes the tests start run in temporary folders, so they get the same folder as an absolute path.
if os.environ.get("NNSTUDY_DATA"):
    os.environ["NNSTUDY_DATA"] = os.path.abspath(os.environ["NNSTUDY_DATA"])

_DESELECTED = pytest.StashKey[dict]()


def _deselected(config) -> dict:
    """``{"acceptance": n, "other": n}``: the tests deselected by -m/-k, as this process counted them
    or, under pytest-xdist, as the workers did (each worker collects every test; the first one's)."""
    return config.stash.setdefault(_DESELECTED, {})


def pytest_deselected(items):
    if items:
        counts = _deselected(items[0].config)
        for item in items:
            kind = "acceptance" if item.get_closest_marker("acceptance") else "other"
            counts[kind] = counts.get(kind, 0) + 1


def pytest_collection_modifyitems(config, items):
    """The tests marked slow first, each group in its own order (a stable sort, the same in every
    pytest-xdist worker): the run ends on short tests, so no worker sits idle while another finishes
    a long one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)  # an xdist worker: tell the controller
    if workeroutput is not None:
        workeroutput["nnstudy_deselected"] = dict(_deselected(session.config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # the xdist controller hears a worker's counts
    counts = getattr(node, "workeroutput", {}).get("nnstudy_deselected")
    if counts is not None and not _deselected(node.config):
        _deselected(node.config).update(counts)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After pytest's own summary: one line per group of tests that did not run, with why and what
    installs it, so that a machine without PostgreSQL or Chromium cannot pass while testing less unseen."""
    yield
    lines = [f"skipped: {n} test{'s' * (n > 1)}: {reason}" for reason, n in skipped_groups(terminalreporter)]
    counts = _deselected(config)
    acceptance, other = counts.get("acceptance", 0), counts.get("other", 0)
    if acceptance:
        lines.append(f"not run: {acceptance} acceptance test{'s' * (acceptance > 1)} "
                     "(minutes each on all of MNIST; run them with: python -m pytest -m acceptance)")
    if other:
        lines.append(f"not run: {other} test{'s' * (other > 1)} deselected by -k/-m")
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
def made_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``made_once(name, make)``: the folder ``make(folder)`` filled, made once for the whole test run.
    Under pytest-xdist the first worker to ask makes it, under a lock, and the others wait for it and
    get the same folder (pytest-xdist's recipe: the workers' temporary folders share a parent), so a
    study that several workers' tests read is trained once, not once per worker. What it holds is
    read only: a test that writes copies it first."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

    def get(name: str, make: Callable[[Path], None]) -> Path:
        folder = root / f"made-once-{name}"
        with open(root / f"made-once-{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (folder / ".made").exists():  # not yet, or a make that failed half-way
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                make(folder)
                (folder / ".made").touch()
        return folder

    return get


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


class Postgres:
    """A real PostgreSQL server in a temporary folder, on 127.0.0.1 only, trust authentication (plus a
    user with a password, ``secret_user``/``SECRET``, for the tests of wrong passwords). As root it
    runs as the ``postgres`` user (PostgreSQL refuses root). ``url`` is a database of its own for the
    session; ``new_database()`` makes another (a test that must not see others' studies)."""

    SECRET = "s3cret-Pa55"

    def __init__(self):
        import shutil
        import socket
        import subprocess
        import tempfile

        binaries = _postgres_binaries()
        if binaries is None:
            pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
        self.initdb, self.postgres = binaries
        # not under pytest's tmp tree: that is private to the current user, and the server may run as another
        self.base = Path(tempfile.mkdtemp(prefix="nnstudy-pg-"))
        self.data, self.sockets = self.base / "data", self.base / "sockets"
        self.sockets.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockets, "postgres")
        subprocess.run([*self.as_user, self.initdb, "-D", str(self.data), "-U", "nnstudy", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True)
        # the password user authenticates by password; everyone else is trusted
        hba = self.data / "pg_hba.conf"
        hba.write_text("host all secret_user 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = None
        self.start()
        self.execute(f"CREATE USER secret_user PASSWORD '{self.SECRET}' CREATEDB")
        self.url = self.new_database("nnstudy_test")
        self._n = 0

    def start(self) -> None:
        import subprocess
        import time

        import psycopg

        self.server = subprocess.Popen(
            [*self.as_user, self.postgres, "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.sockets)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600  # a hang guard: a busy machine starts it slower, not never
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=nnstudy dbname=postgres").close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    self.server.kill()
                    pytest.fail("PostgreSQL did not start within 10 minutes")
                time.sleep(0.2)

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the server: sessions are ended, not waited for)."""
        import signal
        import subprocess

        try:
            os.kill(self.postmaster_pid(), signal.SIGINT)
        except (OSError, ValueError):
            self.server.terminate()
        try:
            self.server.wait(timeout=600)  # a hang guard only
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the server and its sessions: connections open, nothing answers (a hung machine)."""
        import signal

        self.frozen = self.backends()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT them, and runuser, which stops itself when its child stops (as su does)."""
        import signal

        for pid in [*self.frozen, self.server.pid]:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def backends(self) -> list[int]:
        """The server process and its children (the sessions, background workers)."""
        pid = self.postmaster_pid()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, kids)]

    def postmaster_pid(self) -> int:
        """The server process itself (under runuser, a child of the Popen)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=nnstudy dbname=postgres", autocommit=True) as c:
            c.execute(sql)

    def new_database(self, name: str | None = None) -> str:
        if name is None:
            self._n += 1
            name = f"nnstudy_t{self._n}"
        self.execute(f"CREATE DATABASE {name}")
        self.execute(f"GRANT ALL ON DATABASE {name} TO secret_user")
        self.execute(f"ALTER DATABASE {name} OWNER TO secret_user")
        return f"postgresql+psycopg://nnstudy@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (``Postgres``), stopped at the end."""
    server = Postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres):
    """A SQLAlchemy URL for a database of the session's PostgreSQL server."""
    return postgres.url
