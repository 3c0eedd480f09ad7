"""``load`` on the real MNIST files: split, subsets, normalizations, determinism."""

from __future__ import annotations

import pytest
import torch

from nnstudy.data import STANDARD_STATS, Splits, load, read_idx
from nnstudy.errors import SpecError
from nnstudy.spec import DataSpec

TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "train_index", "val_index", "mean", "std")


@pytest.fixture(scope="session")
def labels(mnist_dir) -> torch.Tensor:
    """The training file's labels, int64 (60000,)."""
    return read_idx(mnist_dir / "train-labels-idx1-ubyte.gz").long()


@pytest.fixture(scope="session")
def loader(mnist_dir):
    """``loader(**DataSpec fields)`` → Splits from the real files, never from the network."""

    def load_spec(**fields) -> Splits:
        return load(DataSpec(**fields), data_dir=mnist_dir, download=False)

    return load_spec


@pytest.fixture(scope="session")
def default(loader) -> Splits:
    return loader()


def test_default_shapes_and_types(default):
    assert len(default.train_y) == 54000 and len(default.val_y) == 6000 and len(default.test_y) == 10000
    for split in ("train", "val", "test"):
        x, y = getattr(default, f"{split}_x"), getattr(default, f"{split}_y")
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (1, 28, 28) and len(x) == len(y)
        assert y.dtype == torch.int64
    assert default.input_shape == (1, 28, 28) and default.num_classes == 10
    assert default.dataset == "mnist" and default.normalize == "standardize" and default.spec == DataSpec()
    assert "train 54000, val 6000, test 10000" in repr(default)


def test_split_is_stratified_disjoint_and_covers_the_training_file(default, labels):
    val, train = default.val_index, default.train_index
    per_class = torch.bincount(labels, minlength=10)
    in_val = torch.bincount(labels[val], minlength=10)
    assert bool(((in_val - 0.1 * per_class).abs() <= 1).all())
    assert torch.equal(torch.sort(torch.cat([val, train])).values, torch.arange(60000))
    assert torch.equal(default.val_y, labels[val]) and torch.equal(default.train_y, labels[train])


def test_same_spec_gives_identical_tensors_another_seed_another_split(default, loader):
    again = loader()
    for name in TENSORS:
        assert torch.equal(getattr(default, name), getattr(again, name)), name
    other = loader(split_seed=1)
    assert len(other.val_index) == 6000 and not torch.equal(other.val_index, default.val_index)


def test_no_validation_gives_empty_tensors(loader):
    s = loader(validation=0.0, normalize="unit")
    assert tuple(s.val_x.shape) == (0, 1, 28, 28) and tuple(s.val_y.shape) == (0,) and len(s.val_index) == 0
    assert len(s.train_y) == 60000


def test_per_class_keeps_exactly_k_and_leaves_validation_alone(default, loader, labels):
    small, large = loader(per_class=30), loader(per_class=60)
    assert torch.bincount(small.train_y, minlength=10).tolist() == [30] * 10
    assert torch.bincount(large.train_y, minlength=10).tolist() == [60] * 10
    assert torch.equal(small.val_index, default.val_index)
    assert set(small.train_index.tolist()) <= set(large.train_index.tolist())  # nested subsets
    assert set(small.train_index.tolist()) <= set(default.train_index.tolist())


def test_fraction_is_stratified(default, loader):
    s = loader(fraction=0.25)
    assert len(s.train_y) == 13500
    full = torch.bincount(default.train_y, minlength=10)
    assert bool(((torch.bincount(s.train_y, minlength=10) - 0.25 * full).abs() <= 1).all())


def test_limit_is_stratified_and_at_most_n(default, loader):
    s = loader(limit=1000)
    full = torch.bincount(default.train_y, minlength=10)
    assert len(s.train_y) == 1000
    assert bool(((torch.bincount(s.train_y, minlength=10) - 1000 * full / 54000).abs() <= 1).all())
    assert len(loader(limit=100000, validation=0.5).train_y) == 30000


def test_subsets_combine_in_order(loader):
    s = loader(per_class=100, fraction=0.5, limit=300)
    assert torch.bincount(s.train_y, minlength=10).tolist() == [30] * 10


def test_per_class_beyond_a_class_is_a_clear_error(loader, labels):
    with pytest.raises(SpecError, match=r"data.per_class = 6000: class 5 has only 48\d\d training images"):
        loader(per_class=6000)


def test_test_split_is_the_whole_test_file(default, mnist_dir):
    assert torch.equal(default.test_y, read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz").long())


@pytest.mark.parametrize("normalize", ["none", "unit", "center", "standardize", "per-pixel"])
def test_images_undo_the_normalization_exactly(loader, mnist_dir, normalize):
    s = loader(normalize=normalize, per_class=50)
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    assert torch.equal(s.images("train"), raw[s.train_index])
    assert torch.equal(s.images("val"), raw[s.val_index])
    assert torch.equal(s.images("test"), read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz"))


def test_fixed_normalizations_have_their_ranges(loader):
    none, unit, center = (loader(normalize=n, per_class=100) for n in ("none", "unit", "center"))
    assert float(none.train_x.max()) == 255.0 and torch.equal(none.train_x, none.train_x.round())
    assert float(unit.train_x.min()) == 0.0 and float(unit.train_x.max()) == 1.0
    assert float(center.test_x.min()) == -0.5 and float(center.test_x.max()) == 0.5
    assert torch.allclose(center.val_x, unit.val_x - 0.5, atol=1e-6)


def test_standardize_gives_mean_0_std_1_on_the_training_part(default):
    assert abs(float(default.train_x.mean())) < 0.05 and abs(float(default.train_x.std()) - 1) < 0.05


def test_mnist_standard_constants_match_the_training_file(mnist_dir):
    x = read_idx(mnist_dir / "train-images-idx3-ubyte.gz").double() / 255
    mean, std = STANDARD_STATS["mnist"]
    assert abs(float(x.mean()) - mean) < 5e-5 and abs(float(x.std()) - std) < 5e-5


def test_per_pixel_is_standard_per_pixel_with_a_floored_std(loader):
    s = loader(normalize="per-pixel", per_class=200)
    mean, std = s.train_x[:, 0].mean(0), s.train_x[:, 0].std(0, correction=0)
    assert float(mean.abs().max()) < 1e-4
    floored = s.std[0] == s.std.min()
    assert int(floored.sum()) > 0 and bool((std[~floored] - 1).abs().max() < 1e-4)
    assert bool((std[floored] < 1).all())
    assert float(s.val_x.abs().max()) < 50  # stray border pixels stay bounded


#: In a fresh process: nnstudy.data.load as a user calls it (it verifies the files' checksums, then
#: reads them), counting how often the gzip files are decompressed and streamed.
COUNT_GUNZIPS = """
import gzip, sys
calls = {"decompress": 0, "open": 0}
decompress, gzip_file = gzip.decompress, gzip.GzipFile.__init__
def counted(*a, **k):
    calls["decompress"] += 1
    return decompress(*a, **k)
def opened(self, *a, **k):
    calls["open"] += 1
    gzip_file(self, *a, **k)
gzip.decompress, gzip.GzipFile.__init__ = counted, opened
import nnstudy.data
from nnstudy.spec import DataSpec
splits = nnstudy.data.load(DataSpec(per_class=5), data_dir=sys.argv[1], download=False)
print(len(splits.train_y), len(splits.test_y), calls["decompress"], calls["open"])
"""


def test_each_gzip_file_is_decompressed_once_to_verify_and_read_it(mnist_dir):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", COUNT_GUNZIPS, str(mnist_dir)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["50", "10000", "4", "0"]  # four files: each gunzipped once, none twice
