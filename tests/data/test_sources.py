"""The local sources (explicit folder, cache), verification, ``fetch`` into a folder, ``info``."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from nnstudy.data import DATASETS, FILE_KEYS, fetch, get_source, info, locate
from nnstudy.errors import DataError, SpecError

MNIST_FILES = tuple(f.name for f in DATASETS["mnist"].files)
SHA = {f.name: f.checksum.digest for f in DATASETS["mnist"].files}


def copy_files(src: Path, dest: Path, names=MNIST_FILES, suffix: str = "") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / f"{name}{suffix}", dest / f"{name}{suffix}")
    return dest


def flip_byte(path: Path, at: int | None = None) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_real_files_verify(mnist_dir):
    paths = locate("mnist", mnist_dir, download=False)
    assert list(paths) == list(FILE_KEYS)
    assert paths["train_images"] == mnist_dir / "train-images-idx3-ubyte.gz"
    assert all(p.is_file() for p in paths.values())


def test_raw_files_verify_and_are_preferred_to_gz(mnist_dir, mnist_raw, tmp_path):
    folder = copy_files(mnist_raw, tmp_path / "d")
    copy_files(mnist_dir, folder, suffix=".gz")
    paths = locate("mnist", folder, download=False)
    assert paths["test_labels"] == folder / "t10k-labels-idx1-ubyte"


@pytest.mark.parametrize("layout", [".", "mnist", "MNIST/raw"])
def test_accepted_folder_layouts(mnist_dir, tmp_path, layout):
    copy_files(mnist_dir, tmp_path / "root" / layout, suffix=".gz")
    paths = locate("mnist", tmp_path / "root", download=False)
    assert paths["train_labels"] == tmp_path / "root" / layout / "train-labels-idx1-ubyte.gz"


def test_nnstudy_data_is_the_default_folder(mnist_dir, monkeypatch):
    monkeypatch.setenv("NNSTUDY_DATA", str(mnist_dir))
    assert locate("mnist", download=False)["test_images"].parent == mnist_dir


@pytest.mark.parametrize("source", ["raw", "gz"])
def test_corrupt_file_in_explicit_folder_is_an_error_even_with_a_good_cache(
    mnist_dir, mnist_raw, tmp_path, source
):
    copy_files(mnist_dir, tmp_path / "cache" / "mnist", suffix=".gz")  # a good copy elsewhere
    suffix = ".gz" if source == "gz" else ""
    folder = copy_files(mnist_dir if source == "gz" else mnist_raw, tmp_path / "d", suffix=suffix)
    bad = folder / f"train-labels-idx1-ubyte{suffix}"
    flip_byte(bad)  # in a gzip file, the flipped byte breaks the deflate stream or its CRC
    with pytest.raises(DataError) as err:
        locate("mnist", folder, download=False)
    msg = str(err.value)
    assert msg.startswith(f"corrupt file {bad}: ") and "\n" not in msg


def test_corrupt_raw_file_reports_expected_and_actual_sha256(mnist_raw, tmp_path):
    folder = copy_files(mnist_raw, tmp_path / "d")
    flip_byte(folder / "t10k-labels-idx1-ubyte", at=500)
    with pytest.raises(DataError) as err:
        locate("mnist", folder, download=False)
    msg = str(err.value)
    assert msg.startswith(f"corrupt file {folder / 't10k-labels-idx1-ubyte'}: checksum mismatch: sha256")
    assert f"expected {SHA['t10k-labels-idx1-ubyte']}" in msg
    assert "nnstudy data fetch mnist" in msg


def test_incomplete_explicit_folder_is_an_error_not_a_fallback(mnist_dir, tmp_path, serve, mnist_gz, monkeypatch):
    mirror = serve(mnist_gz)
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url)
    folder = copy_files(mnist_dir, tmp_path / "d", names=MNIST_FILES[:3], suffix=".gz")
    with pytest.raises(DataError) as err:
        locate("mnist", folder)
    msg = str(err.value)
    assert "incomplete folder" in msg and "t10k-labels-idx1-ubyte" in msg and "3 of the 4" in msg
    assert mirror.requests == []


def test_files_found_in_explicit_folder_never_touch_the_network(mnist_dir, serve, mnist_gz, monkeypatch):
    mirror = serve(mnist_gz)
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url)
    locate("mnist", mnist_dir, download=True)
    assert mirror.requests == []


def test_another_datasets_files_in_a_shared_folder_are_passed_over(mnist_dir):
    with pytest.raises(DataError) as err:
        locate("fashion-mnist", mnist_dir, download=False)
    msg = str(err.value)
    assert "corrupt" not in msg and "are mnist's" in msg and msg.startswith("fashion-mnist: cannot find")


def test_wrong_files_in_a_dataset_folder_are_corrupt(mnist_dir, tmp_path):
    copy_files(mnist_dir, tmp_path / "d" / "fashion-mnist", suffix=".gz")
    with pytest.raises(DataError, match=r"corrupt file .*checksum mismatch: md5 of the compressed bytes"):
        locate("fashion-mnist", tmp_path / "d", download=False)


def test_raw_file_cannot_be_verified_against_a_checksum_of_the_gz(mnist_raw, tmp_path):
    copy_files(mnist_raw, tmp_path / "d" / "KMNIST" / "raw")
    with pytest.raises(DataError, match="cannot verify an uncompressed file"):
        locate("kmnist", tmp_path / "d", download=False)


def test_verification_is_cached_per_file_version(mnist_raw, tmp_path):
    folder = copy_files(mnist_raw, tmp_path / "d")
    locate("mnist", folder, download=False)
    labels = folder / "train-labels-idx1-ubyte"
    before = labels.stat()
    flip_byte(labels, at=200)  # same inode and size; restore the mtime: the cached digest answers
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    locate("mnist", folder, download=False)
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))  # a new version
    with pytest.raises(DataError, match="corrupt"):
        locate("mnist", folder, download=False)


def test_cache_is_the_second_source(mnist_dir, tmp_path):
    cache = copy_files(mnist_dir, tmp_path / "cache" / "mnist", suffix=".gz")
    (tmp_path / "empty").mkdir()
    paths = locate("mnist", tmp_path / "empty", download=False)
    assert {p.parent for p in paths.values()} == {cache}


def test_cache_dir_follows_xdg_when_nnstudy_cache_is_unset(monkeypatch, tmp_path):
    from nnstudy.data import cache_dir

    monkeypatch.delenv("NNSTUDY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nnstudy"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "nnstudy"


def test_not_found_without_download_lists_places_and_how_to_supply(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError) as err:
        locate("mnist", tmp_path / "nothing", download=False)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (f"folder {tmp_path / 'nothing'}: 0 of the 4 files", f"cache {tmp_path / 'cache' / 'mnist'}",
                 "download=False", "nnstudy data fetch mnist", "--data-dir DIR", "NNSTUDY_DATA"):
        assert part in msg


def test_unknown_dataset_is_a_spec_error():
    with pytest.raises(SpecError, match="unknown dataset 'cifar'; allowed: mnist, fashion-mnist, kmnist"):
        get_source("cifar")


def test_fetch_completes_an_explicit_folder_from_the_cache(mnist_dir, tmp_path):
    copy_files(mnist_dir, tmp_path / "cache" / "mnist", suffix=".gz")
    folder = copy_files(mnist_dir, tmp_path / "d", names=MNIST_FILES[:2], suffix=".gz")
    paths = fetch("mnist", folder)
    assert paths["train_images"] == folder / "train-images-idx3-ubyte.gz"
    assert paths["test_images"] == folder / "mnist" / "t10k-images-idx3-ubyte.gz"
    assert locate("mnist", folder, download=False) == paths


def test_info_reports_each_dataset(mnist_dir, tmp_path):
    rows = {r["dataset"]: r for r in info(mnist_dir)}
    assert list(rows) == list(DATASETS)
    assert rows["mnist"]["where"] == str(mnist_dir) and rows["mnist"]["note"] == "verified"
    assert rows["mnist"]["size"].endswith(" MB")
    assert rows["kmnist"]["where"] == "not found"
    folder = copy_files(mnist_dir, tmp_path / "d", suffix=".gz")
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x07")  # valid gzip, wrong content
    bad = {r["dataset"]: r for r in info(folder)}["mnist"]
    assert bad["where"] == "error" and "corrupt" in bad["note"]
