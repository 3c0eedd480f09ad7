from __future__ import annotations

import gzip

import pytest
import torch

from nnstudy.data import read_idx
from nnstudy.errors import DataError


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("train-images-idx3-ubyte", (60000, 28, 28)),
        ("train-labels-idx1-ubyte", (60000,)),
        ("t10k-images-idx3-ubyte", (10000, 28, 28)),
        ("t10k-labels-idx1-ubyte", (10000,)),
    ],
)
def test_real_files_gz_and_raw_agree(mnist_dir, mnist_raw, name, shape):
    gz = read_idx(mnist_dir / f"{name}.gz")
    raw = read_idx(mnist_raw / name)
    assert gz.dtype == torch.uint8 and tuple(gz.shape) == shape
    assert torch.equal(gz, raw)
    if "labels" in name:
        assert set(gz.unique().tolist()) == set(range(10))
    else:
        assert int(gz.max()) == 255 and int(gz.min()) == 0


def test_gzip_is_recognised_by_content_not_name(mnist_dir, tmp_path):
    disguised = tmp_path / "labels.bin"
    disguised.write_bytes((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert read_idx(disguised).shape == (10000,)


def _idx(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


@pytest.mark.parametrize(
    ("blob", "expect"),
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc", "magic number starts with 1234"),
        (_idx(0x0D, (2,), bytes(8)), "type code 0x0d (float32)"),
        (bytes([0, 0, 8, 0]), "declares 0 dimensions"),
        (bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big"), "header cut short"),
        (_idx(0x08, (2, 3), bytes(5)), "2x3 = 6 values, the file holds 5"),
        (_idx(0x08, (4,), bytes(7)), "4 = 4 values, the file holds 7"),
        (b"\x1f\x8b" + b"definitely not deflate data", "corrupt gzip data"),
        (gzip.compress(_idx(0x08, (100,), bytes(100)))[:-12], "corrupt gzip data"),
    ],
    ids=["short", "magic", "dtype", "no-dims", "header", "truncated", "trailing", "bad-gzip", "cut-gzip"],
)
def test_malformed_files_raise_one_line_naming_the_file(tmp_path, blob, expect):
    path = tmp_path / "bad-idx-file"
    path.write_bytes(blob)
    with pytest.raises(DataError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg and expect in msg and "\n" not in msg


def test_handmade_file_reads_back(tmp_path):
    path = tmp_path / "small"
    path.write_bytes(_idx(0x08, (2, 3), bytes(range(6))))
    assert read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]
    path.write_bytes(gzip.compress(_idx(0x08, (0, 28, 28), b"")))
    assert read_idx(path).shape == (0, 28, 28)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")
