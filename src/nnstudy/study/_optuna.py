"""Optuna, quietly: its INFO log line per study and trial and its experimental-feature warnings
would drown the study's own progress display."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet_optuna", "study_direction"]


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns about experimental features; a study's own
    progress display says what matters. Restores Optuna's verbosity afterwards."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol.*")
            yield
    finally:
        optuna.logging.set_verbosity(level)


def study_direction(maximize: bool) -> Any:
    """Optuna's ``StudyDirection`` for a study whose metric is better larger (``maximize``, from
    ``nnstudy.metrics.maximize`` via ``StudySection.maximize``) or smaller."""
    import optuna

    d = optuna.study.StudyDirection
    return d.MAXIMIZE if maximize else d.MINIMIZE
