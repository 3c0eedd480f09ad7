"""Checksums of dataset files, computed once per file version per process.

Hashing the MNIST training images means reading ~50 MB (and gunzipping them when compressed), and a
study calls ``locate`` once per run: the digests are kept in-process, keyed by the file's resolved
path, inode, size and modification time, so a file is hashed again only when it changed. A gzip file's
decompressed bytes are kept for the read that follows the check (``idx.read_bytes``).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nnstudy.data.idx import gunzip_for_reading, is_gzip
from nnstudy.errors import DataError

__all__ = ["Checksum", "file_digest", "check"]

CHUNK = 1 << 20
_DIGESTS: dict[tuple[str, int, int, int, str, str], str] = {}


@dataclass(frozen=True)
class Checksum:
    """An expected digest: hashlib's ``algorithm`` over the file's ``of`` bytes.

    ``uncompressed`` digests hold whether the file is stored raw or re-gzipped (as MNIST's SHA-256
    are); ``compressed`` ones (the MD5 that Fashion-MNIST and KMNIST publish for their .gz files)
    only verify the exact published .gz file.
    """

    algorithm: Literal["sha256", "md5"]
    digest: str
    of: Literal["uncompressed", "compressed"]

    def describe(self) -> str:
        return f"{self.algorithm} of the {self.of} bytes"


def file_digest(path: str | Path, algorithm: str, of: str) -> str:
    """Hex digest of the file's bytes: gunzipped first when ``of == "uncompressed"`` and the file is
    gzip, as stored when ``of == "compressed"``. Cached per (path, inode, size, mtime).

    Raises:
        DataError: a compressed digest is asked of a file that is not gzip (its compressed bytes do
        not exist), or the gzip data does not decompress (the message says "corrupt").
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, algorithm, of)
    if key in _DIGESTS:
        return _DIGESTS[key]
    gz = is_gzip(p)
    if of == "compressed" and not gz:
        raise DataError(
            f"{p}: cannot verify an uncompressed file: the checksum on record is the {algorithm} of "
            "the published .gz file; use that file"
        )
    h = hashlib.new(algorithm, usedforsecurity=False)
    try:
        if gz and of == "uncompressed":
            h.update(gunzip_for_reading(p))  # kept for the load that follows: one gunzip, not two
        else:
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    h.update(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"corrupt file {p}: its gzip data does not decompress ({e})") from None
    _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def check(path: str | Path, checksum: Checksum) -> str | None:
    """None when the file matches ``checksum``; otherwise why not, as one phrase.

    Raises:
        DataError: as ``file_digest``.
    """
    got = file_digest(path, checksum.algorithm, checksum.of)
    if got == checksum.digest:
        return None
    return f"checksum mismatch: {checksum.describe()} is {got}, expected {checksum.digest}"
