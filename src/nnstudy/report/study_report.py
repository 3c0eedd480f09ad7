"""``StudyReport``: a study's report, computed once, written as HTML, Markdown and figures.

::

    FOLDER/report.html        one self-contained page: figures embedded, tables sortable, no network
    FOLDER/report.md          the same sections in Markdown, linking figures/*.png
    FOLDER/figures/NAME.png   every figure, and NAME.svg beside it
    FOLDER/.report-manifest.json   the files the report wrote (it replaces or removes only those)

>>> report = StudyReport(open_study("runs/batch-size"))   # doctest: +SKIP
>>> report.findings[0].sentence; report.checks             # the answer first, then the checks
>>> report.write()                                          # into the study folder; returns report.html
>>> report                                                  # in Jupyter: the report inline
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from nnstudy.analysis import Check, Finding
from nnstudy.analysis.stats import N_BOOT
from nnstudy.report import figures as _figures
from nnstudy.report import render
from nnstudy.report._files import ReportFiles, check_report_folder
from nnstudy.report.content import Content, gather
from nnstudy.report.study_figures import study_figures

__all__ = ["StudyReport", "check_report_folder", "write_report"]

class StudyReport:
    """The report of ``study`` (a ``nnstudy.study.Study``, e.g. from ``open_study``).

    Everything is computed on construction (findings, checks, statistics, the best run's test
    predictions) and figures are drawn on first use; the report does not change if the study does
    (make a new one). ``data_dir``: where the dataset is, for the test-set gallery (default: as
    ``nnstudy.data.load`` looks). ``gallery=False`` skips the gallery and confusion matrix.

    Raises:
        StoreError: the study's database is missing, corrupt, or holds no such study.
    """

    def __init__(self, study: Any, *, data_dir: str | Path | None = None, gallery: bool = True,
                 n_boot: int = N_BOOT):
        self.study = study
        self.write_notes: list[str] = []
        self.content: Content = gather(study, data_dir=str(data_dir) if data_dir else None, gallery=gallery,
                                       n_boot=n_boot)

    @property
    def findings(self) -> list[Finding]:
        """The answer first, then the test score, spread, tuned values and warnings (``analysis.findings``)."""
        return self.content.findings

    @property
    def checks(self) -> list[Check]:
        """Every methodology check that found something, warnings first (``analysis.run_checks``)."""
        return self.content.checks

    @cached_property
    def figures(self) -> list[render.Figure]:
        """The figures, rendered to PNG and SVG."""
        out = []
        for d in study_figures(self.content):
            out.append(render.Figure(d.name, d.title, d.caption, *_figures.export(d.figure, "png", "svg")))
        return out

    @cached_property
    def _view(self) -> dict[str, Any]:
        return render.view(self.content, self.figures)

    def html(self, standalone: bool = True) -> str:
        """The report as one self-contained HTML page (or, ``standalone=False``, its body alone)."""
        return render.html(self._view, standalone=standalone)

    def markdown(self) -> str:
        """The report as Markdown; figures linked as ``figures/<name>.png``."""
        return render.markdown(self._view)

    def write(self, folder: str | Path | None = None, *, force: bool = False) -> Path:
        """Write report.html, report.md and figures/*.png, *.svg into ``folder`` (default: the study's
        folder); returns the path of report.html. Only the report's own files (``_files.MANIFEST``)
        are replaced, and its own figures no longer drawn removed; ``write_notes`` then says what it
        left alone.

        Raises:
            PathError: one of those files exists and is not the report's (``force``: replace it),
                ``figures/`` is a symbolic link, or the folder cannot be written (nothing is written
                then, except where the disk filled up mid-way).
        """
        folder = Path(folder) if folder is not None else Path(self.study.folder)
        files = {f"figures/{f.name}.{fmt}": getattr(f, fmt) for f in self.figures for fmt in ("png", "svg")}
        files["report.md"] = self.markdown().encode("utf-8")
        files["report.html"] = self.html().encode("utf-8")
        writer = ReportFiles(folder, force=force)
        writer.write(files)
        self.write_notes = writer.notes
        return folder / "report.html"

    def _repr_html_(self) -> str:
        return self.html(standalone=False)

    def __repr__(self) -> str:
        answer = self.findings[0].sentence if self.findings else "no findings"
        return f"StudyReport({self.content.name!r}: {answer})"


def write_report(study: Any, folder: str | Path | None = None, *, data_dir: str | Path | None = None,
                 force: bool = False) -> Path:
    """Compute ``study``'s report and write it into ``folder`` (default: the study folder); returns
    the path of report.html (``StudyReport.write``)."""
    return StudyReport(study, data_dir=data_dir).write(folder, force=force)
