"""``load(spec) -> Splits``: the images a run trains, validates and tests on, as float tensors.

The raw uint8 files are read once per process (a study loads the same data for many runs); each
``load`` then selects its split and subset by index and converts to float32 once, with vectorized
tensor operations. Every normalization is ``x = (raw - mean) / std`` with ``mean``/``std`` in raw pixel
units (0..255), kept on the ``Splits`` so that ``Splits.images`` can give back the exact uint8 images.
Same spec, same files → bit-identical tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nnstudy.data._split import split_and_thin, test_subset
from nnstudy.data.idx import read_idx
from nnstudy.data.sources import DatasetSource, get_source, locate
from nnstudy.errors import DataError
from nnstudy.spec import DataSpec

__all__ = ["Splits", "load", "STANDARD_STATS"]

#: normalize="standardize": mean and std over all pixels of the 60000 training images, 0..1 scale.
#: MNIST's are the customary constants; tests/data recomputes them from the file. The Fashion-MNIST
#: and KMNIST files were not available when this was written, so theirs are quoted, not recomputed:
#: Fashion-MNIST 0.2860402 / 0.3530239 as computed in public training code (also quoted as mean
#: 72.9404/255, and as 0.28604 / 0.35302); KMNIST 0.1918 / 0.3483, the values most KMNIST code uses
#: (one script quotes 0.1904 / 0.3475; the publisher gives none). "per-pixel" needs no constants.
STANDARD_STATS: dict[str, tuple[float, float]] = {
    "mnist": (0.1307, 0.3081),
    "fashion-mnist": (0.2860, 0.3530),
    "kmnist": (0.1918, 0.3483),
}
#: per-pixel: a pixel's std is floored at this fraction of the overall std (and at one grey level),
#: because MNIST's border pixels are constant in the training part: dividing by their ~0 std would
#: turn one stray grey pixel of a validation image into a value of thousands.
PER_PIXEL_STD_FLOOR = 0.1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == has no single truth value
class Splits:
    """A dataset cut as a ``DataSpec`` says, normalized, on one device.

    ``*_x`` are float32 (N, 1, 28, 28), ``*_y`` int64 (N,). ``train_index``/``val_index`` (int64,
    sorted) are the rows of the training file in each part, the record of the split; the test part
    is the whole test file, or with ``test_per_class`` the rows ``test_index`` of it. ``mean``/``std``
    (float32, broadcastable to (1, 28, 28), raw 0..255 units) are the normalization:
    ``x = (raw - mean) / std``. ``images(split)`` inverts it for drawing.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_index: torch.Tensor
    val_index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    dataset: str
    normalize: str
    spec: DataSpec
    test_index: torch.Tensor | None = None

    def images(self, split: str) -> torch.Tensor:
        """The raw images of a split ("train", "val" or "test") as uint8 (N, 28, 28), undoing the
        normalization exactly (its float error is far below half a grey level)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
        x = getattr(self, f"{split}_x")[:, 0]
        return (x * self.std + self.mean).round_().clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s} {len(getattr(self, f'{s}_y'))}" for s in SPLITS)
        return (f"Splits({self.dataset}, normalize={self.normalize}: {sizes}; {self.input_shape}, "
                f"{self.num_classes} classes, {self.train_x.device})")


# (dataset, ((path, size, mtime_ns), ...)) → (train images, train labels, test images, test labels)
_RAW: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _read_raw(src: DatasetSource, paths: dict[str, Path]) -> tuple[torch.Tensor, ...]:
    """The four files as tensors, checked for consistency; read once per process and file version.

    Returns:
        train images uint8 (N, 28, 28), train labels int64 (N,), the same for the test file.
    """
    stats = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values())
    key = (src.name, stats)
    if key not in _RAW:
        tensors = []
        for part in ("train", "test"):
            img_path, lab_path = paths[f"{part}_images"], paths[f"{part}_labels"]
            images, labels = read_idx(img_path), read_idx(lab_path)
            if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
                raise DataError(f"{img_path}: images of shape {tuple(images.shape)}, expected (N, 28, 28)")
            if labels.shape != images.shape[:1]:
                raise DataError(
                    f"{lab_path}: {tuple(labels.shape)} labels for {len(images)} images in {img_path}"
                )
            if len(labels) and int(labels.max()) >= src.num_classes:
                top = int(labels.max())
                raise DataError(f"{lab_path}: label {top}; {src.name} has {src.num_classes} classes")
            tensors += [images, labels.long()]
        _RAW[key] = tuple(tensors)  # type: ignore[assignment]
    return _RAW[key]


def _normalization(kind: str, dataset: str, train_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std), float32 in raw pixel units, for ``x = (raw - mean) / std``.

    ``train_raw``: the training part's uint8 images (N, 28, 28), used by "per-pixel" only.
    """
    if kind == "per-pixel":
        xf = train_raw.to(torch.float32)
        std, mean = torch.std_mean(xf, dim=0, correction=0)  # (28, 28) each
        floor = max(PER_PIXEL_STD_FLOOR * float(xf.std(correction=0)), 1.0)
        return mean.unsqueeze(0), std.clamp(min=floor).unsqueeze(0)
    if kind == "standardize":
        m, s = STANDARD_STATS[dataset]
        mean, std = 255.0 * m, 255.0 * s
    else:
        mean, std = {"none": (0.0, 1.0), "unit": (0.0, 255.0), "center": (127.5, 255.0)}[kind]
    return torch.full((1, 1, 1), mean), torch.full((1, 1, 1), std)


def _normalized(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """float32 (N, 1, 28, 28) from uint8 (N, 28, 28); ``to`` makes a new tensor, so in place is safe."""
    return raw.to(torch.float32).sub_(mean).div_(std).unsqueeze(1)


def load(
    spec: DataSpec,
    data_dir: str | Path | None = None,
    download: bool = True,
    device: str | torch.device = "cpu",
) -> Splits:
    """Load the dataset of ``spec``, split, thinned and normalized (DESIGN.md §4).

    The validation split is stratified by class, drawn from the training file with ``spec.split_seed``;
    ``validation = 0`` gives empty validation tensors. ``per_class``, then ``fraction``, then ``limit``
    thin the training part only, after the split. The test file is used whole, unless
    ``test_per_class`` keeps that many images of each class.

    Args:
        spec: which dataset, split, subset and normalization.
        data_dir, download: where to look first, and whether the network may be used (see ``locate``).
        device: where the returned tensors live.

    Raises:
        DataError: the files cannot be found, are corrupt, or are not MNIST-shaped.
        SpecError: the subset asks for more images than a class has, or keeps none.
    """
    src = get_source(spec.dataset)
    train_raw, train_labels, test_raw, test_labels = _read_raw(src, locate(spec.dataset, data_dir, download))
    val_index, train_index = split_and_thin(train_labels, spec, src.num_classes)
    test_index = test_subset(test_labels, spec, src.num_classes)
    if test_index is not None:
        test_raw, test_labels = test_raw[test_index], test_labels[test_index]
    train_part = train_raw[train_index]
    mean, std = _normalization(spec.normalize, spec.dataset, train_part)
    device = torch.device(device)
    return Splits(
        train_x=_normalized(train_part, mean, std).to(device),
        train_y=train_labels[train_index].to(device),
        val_x=_normalized(train_raw[val_index], mean, std).to(device),
        val_y=train_labels[val_index].to(device),
        test_x=_normalized(test_raw, mean, std).to(device),
        test_y=test_labels.to(device, copy=True),  # not the cached tensor itself
        train_index=train_index.to(device),
        val_index=val_index.to(device),
        mean=mean.to(device),
        std=std.to(device),
        num_classes=src.num_classes,
        input_shape=(1, 28, 28),
        dataset=spec.dataset,
        normalize=spec.normalize,
        spec=spec,
        test_index=None if test_index is None else test_index.to(device),
    )
