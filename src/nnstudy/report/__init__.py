"""Reports: figures and documents rendered from computed numbers (``analysis`` computes, this draws).

* ``StudyReport(study)``: a study's report, computed once: ``.findings``, ``.checks``, ``.figures``,
  ``.html()``, ``.markdown()``, ``.write(folder)``; shown inline in Jupyter.
* ``write_report(study, folder=None) -> Path``: compute and write report.html, report.md and
  figures/*.png, *.svg (what ``nnstudy report`` and the end of ``nnstudy run`` call), replacing only
  files the report wrote itself (``_files``); ``check_report_folder`` checks that before a study runs.
* ``figures``: single-run figures (learning curves, misclassified images, confusion matrix);
  ``study_figures``: a study's figures; ``run.write_run_folder``: one run's folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnstudy._lazy import exports

if TYPE_CHECKING:
    from nnstudy.report._files import check_report_folder
    from nnstudy.report.study_report import StudyReport, write_report

# imported on first use (nnstudy/_lazy.py)
__getattr__ = exports(__name__, {
    "._files": ["check_report_folder"],
    ".study_report": ["StudyReport", "write_report"],
})

__all__ = ["StudyReport", "check_report_folder", "write_report"]
