"""What ``run_study`` checks and loads before it trains anything: the data of every arm (located and
verified without torch, then loaded once), whether the study may be joined, and the study file it
writes into the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnstudy.errors import StoreError
from nnstudy.spec import DataSpec, dump_toml
from nnstudy.study import _worker
from nnstudy.study.file import StudySpec
from nnstudy.study.store import Store

__all__ = ["check_joined", "datasets", "locate", "preload", "write_study_toml"]


def check_joined(store: Store, spec: StudySpec) -> None:
    """A study already in the store with a different file (after ``--set``) may not be joined while
    workers run it: they would train another design into the same store. With none alive, the
    stored file is replaced (resuming with more seeds, say, as on one machine)."""
    from nnstudy.study._claims import workers as registered

    if not store.has_study(spec.name):
        return
    stored = store.study_attrs(spec.name).get("nnstudy:spec")
    if stored is None or stored == spec.model_dump(mode="json", by_alias=True):
        return
    alive = [w for w in store.run(lambda: registered(store.engine, spec.name, spec.study.heartbeat)) if w.alive]
    if alive:
        hosts = ", ".join(sorted({f"{w.host} pid {w.pid}" for w in alive}))
        raise StoreError(f"{store.where}: study {spec.name!r} is running on {len(alive)} worker(s) ({hosts}) "
                         f"with a different study file than {spec.source}; use the file it was started with, "
                         f"or join with: nnstudy worker --storage URL --study {spec.name}")


def datasets(spec: StudySpec) -> list[DataSpec]:
    """The data of the study's arms, each once (in the order of the arms)."""
    first = {k: d.check_values()[0] for k, d in (spec.nuisance.params.items() if spec.nuisance else [])}
    return list(dict.fromkeys(spec.run_spec(arm, first, 0, True).data for arm in spec.arms()))


def locate(spec: StudySpec, data_dir: str | None) -> None:
    """Find and verify every dataset's files (``nnstudy.data.locate``: no torch), so that a missing
    or corrupt file is one line within a second; ``preload`` then reads them."""
    from nnstudy.data.sources import locate as locate_files

    for dataset in dict.fromkeys(d.dataset for d in datasets(spec)):
        locate_files(dataset, data_dir)


def preload(spec: StudySpec, data_dir: str | None) -> dict[DataSpec, Any]:
    """Load every dataset the arms use, here, now: a missing or corrupt dataset fails before anything
    is written; the runner's own process keeps them for in-process runs. Returns each one's
    ``packed.DataShape`` (training images, image shape, classes: what sizes a pack)."""
    from nnstudy.data import load
    from nnstudy.train.packed import DataShape

    shapes = {}
    for data in datasets(spec):
        splits = load(data, data_dir=data_dir)
        _worker.remember_splits(data, splits)
        shapes[data] = DataShape.of(splits)
    return shapes


def write_study_toml(spec: StudySpec, folder: Path) -> None:
    """The study as run: the file's tables after ``--set``, reloadable with ``nnstudy run``."""
    head = (f"# nnstudy study, from {spec.source}\n"
            "# the study as last run in this folder; `nnstudy run` this file resumes it\n\n")
    (folder / "study.toml").write_text(head + dump_toml(spec.raw), encoding="utf-8")
