"""How a folder, a study file or a store URL leads to a study: ``open_study`` (a ``Study``, read
only), ``stored_study`` (the study file as stored), ``study_folder``, ``folder_url``. Light: a
missing folder or a wrong URL is answered before pandas or optuna load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nnstudy.errors import StoreError
from nnstudy.study.file import StudySpec, load_study
from nnstudy.study.store import STORE_FILE, Store, default_url

if TYPE_CHECKING:
    from nnstudy.study.reader import Study

def folder_url(folder: str | Path) -> str:
    """The store of a study folder: the URL it records (``store.url``, without a password), else
    its own SQLite file."""
    recorded = Path(folder) / STORE_FILE
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    return default_url(folder)


def study_folder(path: str | Path) -> Path:
    """A study folder from a folder, its ``study.toml``, or a study file (→ ``runs/<name>``)."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.name == "study.toml" and ((p.parent / "study.db").exists() or (p.parent / STORE_FILE).exists()):
        return p.parent
    if p.is_file():
        return Path("runs") / load_study(p).name
    raise StoreError(f"{p}: no such study folder or study file")


def stored_study(storage: str, name: str) -> StudySpec:
    """The study ``name`` as its file was stored in the store at ``storage`` (what ``nnstudy worker``
    runs). Read-only. Raises StoreError when the store cannot be used or holds no such study."""
    import tempfile

    from nnstudy.spec import dump_toml, load_toml

    store = Store(storage, readonly=True, study=name)
    if not store.has_study(name):
        known = store.study_names()
        raise StoreError(f"{store.where}: holds no study named {name!r}"
                         + (f"; studies there: {', '.join(known)}" if known else ""))
    attrs = store.study_attrs(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        if "nnstudy:raw" in attrs:
            path.write_text(dump_toml(attrs["nnstudy:raw"]), encoding="utf-8")
        else:  # stored before the tables were: the file as written
            path.write_text(attrs.get("nnstudy:text", ""), encoding="utf-8")
            path.write_text(dump_toml(load_toml(path)), encoding="utf-8")
        spec = load_study(path)
    spec._source = f"{attrs.get('nnstudy:source') or name} (as stored in {store.where})"
    spec._text = attrs.get("nnstudy:text", "")
    return spec


def open_study(path: str | Path | None = None, storage: str | None = None, name: str | None = None) -> Study:
    """The study in a folder (or of a study file: its folder ``runs/<name>/``), read with the study
    file as last run there (``<folder>/study.toml``, overrides applied) from the store the folder
    records; or, with ``storage`` and ``name`` and no folder, the study as stored there. Read-only.

    Raises StoreError when there is no study there or its database cannot be read.
    """
    if path is None:
        if storage is None or name is None:
            raise StoreError("give a study folder, or --storage URL and --study NAME")
        from nnstudy.study.reader import Study

        return Study(stored_study(storage, name), Path("runs") / name, storage)
    folder = study_folder(path)
    if not (folder / "study.toml").is_file():
        raise StoreError(f"{folder}: not a study folder (no study.toml; run the study first: nnstudy run STUDY.toml)")
    from nnstudy.study.reader import Study

    return Study(load_study(folder / "study.toml"), folder, storage)
