"""The IDX file format of MNIST and its siblings, read into uint8 tensors.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in row-major order. The MNIST family only uses the
unsigned-byte type (code 0x08): images are (N, 28, 28), labels (N,). Files may be gzip-compressed,
which is recognised by the gzip magic bytes (1f 8b), not by the file name, because copies renamed
by hand or by other tools are common.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from nnstudy.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["read_idx", "is_gzip", "read_bytes"]

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
#: The IDX type codes, for saying which one a file has when it is not unsigned byte.
TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
              0x0D: "float32", 0x0E: "float64"}
MAX_DIMS = 4  # the MNIST family uses 1 (labels) and 3 (images); more means a damaged header


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


#: Decompressed files that were just checksummed (``nnstudy.data.locate``), kept for the read that
#: follows (``load``): a file is gunzipped once, not once to verify and again to read. Keyed by the
#: file's version (resolved path, inode, size, mtime); an entry is dropped when it is read.
_UNPACKED: dict[tuple[str, int, int, int], bytes] = {}


def _version(p: Path) -> tuple[str, int, int, int]:
    st = p.stat()
    return str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns


def gunzip_for_reading(path: str | Path) -> bytes:
    """The gzip file's decompressed bytes, kept for this file version's next ``read_bytes``.

    Raises:
        OSError (gzip.BadGzipFile included), EOFError, zlib.error: as ``gzip.decompress``.
    """
    p = Path(path)
    key = _version(p)
    data = gzip.decompress(p.read_bytes())
    _UNPACKED[key] = data
    return data


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip.

    Raises:
        DataError: the file cannot be read, or is gzip but does not decompress (truncated, bad CRC).
    """
    p = Path(path)
    try:
        kept = _UNPACKED.pop(_version(p), None) if _UNPACKED else None
        if kept is not None:
            return kept
        blob = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot read: {e.strerror or e}") from None
    if blob[:2] != GZIP_MAGIC:
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{p}: corrupt gzip data ({e})") from None


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (raw or gzip) into a uint8 tensor of the shape its header declares.

    Returns:
        uint8 tensor: (N, 28, 28) for an image file, (N,) for a label file.

    Raises:
        DataError: naming the file and what is wrong: unreadable, bad gzip, bad magic, a type other
        than unsigned byte, a header that is cut short, or a size that does not match the dims.
    """
    import torch

    p = Path(path)
    data = read_bytes(p)
    if len(data) < 4:
        raise DataError(f"{p}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise DataError(f"{p}: not an IDX file: magic number starts with {zero.hex()}, expected 0000")
    if code != UBYTE:
        kind = TYPE_NAMES.get(code, "unknown")
        raise DataError(f"{p}: IDX type code 0x{code:02x} ({kind}); only 0x08 (unsigned byte) is supported")
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{p}: IDX header declares {ndim} dimensions; expected 1 to {MAX_DIMS}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{p}: IDX header cut short: {len(data)} bytes, the {ndim} dims need {header}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise DataError(
            f"{p}: IDX size mismatch: header declares {'x'.join(map(str, dims))} = {expected} values, "
            f"the file holds {len(data) - header}"
        )
    if expected == 0:  # torch.frombuffer refuses an empty count
        return torch.empty(dims, dtype=torch.uint8)
    # bytearray: torch.frombuffer wants a writable buffer; the tensor shares its memory (no copy).
    buf = bytearray(data)
    return torch.frombuffer(buf, dtype=torch.uint8, count=expected, offset=header).reshape(dims)
