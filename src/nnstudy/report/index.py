"""``nnstudy report --all DIR``: every study's report under DIR, and one page that links them.

A study folder is any folder under DIR holding a ``study.toml`` (what ``nnstudy run`` writes). Each
gets its own report (``StudyReport.write``: report.html, report.md, figures/); ``DIR/index.html`` then
lists them in name order: the study, its question, its answer (the first finding, the same sentence
as the report's), runs stored, and how many warnings its checks raised. The index is written like the
reports themselves (``_files``): a user's ``index.html`` there is refused unless ``force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnstudy.errors import PathError
from nnstudy.report._files import ReportFiles

__all__ = ["IndexEntry", "study_folders", "write_all"]


@dataclass(frozen=True)
class IndexEntry:
    """One row of the index: where the study's report is (``href``, relative to DIR) and what it says."""

    name: str
    question: str
    answer: str
    runs: str
    warnings: int
    href: str


def study_folders(root: str | Path) -> list[Path]:
    """The study folders under ``root`` (``root`` itself included), sorted by path.

    Raises:
        PathError: ``root`` is not a folder, or holds no study.
    """
    root = Path(root)
    if not root.is_dir():
        raise PathError(f"{root}: not a folder; --all takes a folder of study folders (e.g. runs)")
    found = sorted({p.parent for p in root.rglob("study.toml") if p.is_file()})
    if not found:
        raise PathError(f"{root}: no study folder under it (a folder with the study.toml that nnstudy run writes)")
    return found


def write_all(root: str | Path, *, data_dir: str | Path | None = None, force: bool = False) -> tuple[Path, list[str]]:
    """Write every study's report under ``root`` and ``root/index.html``; returns the index's path and
    one line per study (what ``nnstudy report --all`` prints)."""
    from nnstudy import __version__
    from nnstudy.report.render import _env
    from nnstudy.report.study_report import StudyReport, check_report_folder
    from nnstudy.study import open_study

    root = Path(root)
    folders = study_folders(root)
    files = ReportFiles(root, force=force)
    files.check(["index.html"])
    for folder in folders:  # refuse before writing any of them
        check_report_folder(folder, force=force)
    entries, lines = [], []
    for folder in folders:
        study = open_study(folder)
        report = StudyReport(study, data_dir=data_dir)
        path = report.write(force=force)
        results = report.content.results
        done = int((results["status"] == "complete").sum()) if len(results) else 0
        answer = report.findings[0].sentence if report.findings else "no answer yet"
        warnings = sum(c.severity == "warning" for c in report.checks)
        entries.append(IndexEntry(study.spec.name, study.spec.study.question, answer, f"{done} of {len(results)}",
                                  warnings, path.relative_to(root).as_posix()))
        lines.append(f"{study.spec.name}: {done} of {len(results)} runs complete, "
                     f"{warnings} warning{'s' if warnings != 1 else ''}; {path}")
    html = _env().get_template("index.html.j2").render(title=root.resolve().name or str(root), root=str(root),
                                                        studies=entries, version=__version__)
    files.write({"index.html": html.encode()}, prune=False)
    return root / "index.html", lines
