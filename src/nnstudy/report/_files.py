"""The files a report owns, and writing them without touching anyone else's (DESIGN.md §10).

A report writes ``report.html``, ``report.md`` and ``figures/NAME.png``, ``figures/NAME.svg`` into one
folder, and records each file it wrote, with the SHA-256 of what it wrote, in ``MANIFEST`` in that
folder. A file is the report's only while it is listed there *and* still holds those bytes, so:

* a file the report would write that exists and is not its own (a user's ``figures/fig1.png`` of the
  same name, a ``report.md`` written by hand, a report the user edited) is refused, with one line and
  no file written; ``force=True`` (``--force``) replaces it;
* a figure an earlier report drew and this one does not is removed only if it is still the report's;
  anything else in ``figures/`` is left alone (``notes`` says what);
* nothing is followed out of the folder: a ``figures/`` that is a symbolic link is refused (with or
  without force), a file is replaced by a rename (which replaces a link rather than writing through
  it), and files are read and created with ``O_NOFOLLOW``.

Writing is crash-safe: before the first file is replaced the manifest lists both the old and the new
hash of every file, so a report killed half-way leaves files the next report still owns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

from nnstudy._paths import check_folder
from nnstudy.errors import PathError, os_error

__all__ = ["MANIFEST", "ReportFiles"]

MANIFEST = ".report-manifest.json"
#: The report's documents, and every figure it can draw by file name (``figures/NAME.png``, ``.svg``):
#: what ``nnstudy run`` checks, before training, that no file of someone else's stands in the way of.
DOCUMENTS = ("report.html", "report.md")
FIGURE_NAMES = ("curves", "scores", "by_keys", "isolation", "prob_better", "budget", "gallery", "confusion")
#: Paths (relative to the report folder) a manifest may name; anything else in one is ignored.
_OWNABLE = re.compile(r"^(report\.html|report\.md|index\.html|figures/[A-Za-z0-9_][A-Za-z0-9_.-]*\.(png|svg))$")


def _read(path: Path) -> bytes | None:
    """The bytes of a regular file at ``path`` (a link is not followed: None), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ReportFiles:
    """The report files of ``folder``: what the manifest says the report owns, checked and written."""

    def __init__(self, folder: str | Path, force: bool = False):
        self.folder, self.force = Path(folder), force
        self.figures = self.folder / "figures"
        self.notes: list[str] = []

    # ------------------------------------------------------------------------------------- reading

    def _manifest(self) -> dict[str, list[str]]:
        raw = _read(self.folder / MANIFEST)
        try:
            entries = json.loads(raw) if raw is not None else {}
        except ValueError:
            entries = {}
        if not isinstance(entries, dict):
            return {}
        out = {}
        for rel, hashes in entries.items():
            hashes = [hashes] if isinstance(hashes, str) else hashes
            if isinstance(rel, str) and _OWNABLE.match(rel) and isinstance(hashes, list):
                out[rel] = [h for h in hashes if isinstance(h, str)]
        return out

    def _owned(self, rel: str, manifest: dict[str, list[str]]) -> bool | None:
        """None: nothing at ``rel``; True: the report's own file; False: someone else's (or a link)."""
        path = self.folder / rel
        if not os.path.lexists(path):
            return None
        data = _read(path)
        return data is not None and _digest(data) in manifest.get(rel, [])

    def check(self, rels: list[str]) -> dict[str, list[str]]:
        """Refuse (``PathError``, one line) what writing ``rels`` would do to files that are not the
        report's; returns the manifest. Writes nothing."""
        if self.figures.is_symlink():
            raise PathError(f"{self.figures}: is a symbolic link (to {os.readlink(self.figures)}); the report "
                            f"writes only inside {self.folder}: remove the link, or write elsewhere with --out")
        for p in (self.folder, self.figures):
            if p.exists() and not p.is_dir():
                raise PathError(f"{p}: is a file, not a folder")
        manifest = self._manifest()
        foreign = [rel for rel in rels if self._owned(rel, manifest) is False]
        if foreign and not self.force:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise PathError(f"{self.folder / foreign[0]}{more}: exists and was not written by nnstudy's report "
                            "(or was changed since); left alone: move it away, write elsewhere with --out, "
                            "or pass --force to replace it")
        if foreign:
            self.notes.append(f"replaced (--force): {', '.join(foreign)}")
        return manifest

    # ------------------------------------------------------------------------------------- writing

    def write(self, files: dict[str, bytes], prune: bool = True) -> None:
        """Write ``files`` (relative path → bytes); remove the report's own figures it no longer draws;
        record the new manifest. ``notes`` then says what was left alone. ``prune=False`` (the index
        of ``nnstudy report --all``) writes ``files`` alone: no ``figures/``, nothing else removed."""
        rels = list(files)
        bad = [r for r in rels if not _OWNABLE.match(r)]
        assert not bad, f"not a report file: {bad}"
        manifest = self.check(rels)
        try:
            (self.figures if prune else self.folder).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(self.figures, e) from None
        new = {rel: [_digest(data)] for rel, data in files.items()}
        # while writing, both versions of every file are the report's (a crash leaves nothing orphaned)
        self._save({**manifest, **{rel: manifest.get(rel, []) + new[rel] for rel in new}})
        for rel, data in files.items():
            self._replace(self.folder / rel, data)
        if not prune:
            self._save({**manifest, **new})
            return
        for rel in sorted(manifest.keys() - new.keys()):
            if rel.startswith("figures/") and self._owned(rel, manifest):  # drawn before, not now
                try:
                    (self.folder / rel).unlink()
                except OSError as e:
                    raise os_error(self.folder / rel, e, "cannot remove") from None
        kept = {rel: h for rel, h in manifest.items() if not rel.startswith("figures/") and rel not in new}
        self._save({**kept, **new})  # a file changed since an earlier report wrote it is someone else's now
        others = sorted(p.name for p in self._listing() if f"figures/{p.name}" not in new)
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            self.notes.append(f"{self.figures}: left alone {len(others)} file(s) the report did not write: {shown}")

    def _listing(self) -> list[Path]:
        try:
            return list(self.figures.iterdir())
        except OSError:
            return []

    def _save(self, manifest: dict[str, list[str]]) -> None:
        text = json.dumps(dict(sorted(manifest.items())), indent=1) + "\n"
        self._replace(self.folder / MANIFEST, text.encode())

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        """Write ``data`` to a new file beside ``path`` and rename it over ``path`` (atomic; a link at
        ``path`` is replaced, never written through)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if os.path.lexists(tmp):  # left by a killed report (a link there is removed, not followed)
                os.unlink(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise os_error(path, e) from None


def check_report_folder(folder: str | Path, force: bool = False) -> None:
    """Raise the ``PathError`` that writing a report into ``folder`` would raise, without computing or
    writing anything: what ``nnstudy run`` checks before it trains."""
    rels = [*DOCUMENTS, *(f"figures/{n}.{fmt}" for n in FIGURE_NAMES for fmt in ("png", "svg"))]
    ReportFiles(folder, force=force).check(rels)
    check_folder(folder)
    if Path(folder, "figures").is_dir():
        check_folder(Path(folder, "figures"))
