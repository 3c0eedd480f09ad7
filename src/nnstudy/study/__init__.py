"""Studies: a question as a file, expanded into runs, trained, stored, and read back as tables.

    >>> spec = load_study("studies/quickstart.toml")          # validates everything, or SpecError
    >>> run_study(spec)                                        # trains what is missing, in runs/quickstart/
    >>> study = open_study("runs/quickstart")                  # or the .toml: its folder runs/<name>/
    >>> study.results(); study.curves(); study.status(); study.best_model("model.activation=tanh")
    >>> study.workers(); study.progress()                     # who is training it now, how fast
    >>> stored_study("postgresql://host/db", "batch-size")    # a study as its file was stored

``Study.results()`` (one row per stored run, in design order: arm by arm, tuning trials then finals;
the schema the analysis and report build on; keep it stable):

=================  ======================================================================
run                the RunSpec identity (16 hex digits): the run's name everywhere
arm                the arm's name, e.g. ``batch_size=32``, ``mlp [100]`` or the study file's own (``Arm``)
phase              ``tune`` (chooses nuisance values; never tested), ``final`` (seeds 0..n-1, tested) or
                   ``slice`` (tuned studies: seeds 0..n-1 at the base nuisance values, untuned, not tested)
trial              the run's number within its (arm, phase): tuning trial, or final seed index
seed               the run's seed (tuning runs: ``nuisance.seed``)
status             ``complete``, ``diverged``, ``pruned`` or ``failed``
<dotted key>       one column per scientific key, then per nuisance key (``optimizer.lr``), with the
                   value the run used (as written in the study file)
train_loss ...     ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``,
                   ``test_accuracy``: final metrics (accuracy as a fraction); NaN where absent: test
                   metrics exist only for complete final runs
epochs_run         epochs trained (fewer than asked: diverged, pruned or early-stopped)
best_epoch         the epoch whose weights the run kept (the last, unless early stopping restored one)
best_val_epoch     the epoch with the highest validation accuracy (None without validation)
early_stopped      bool
train_seconds      time in optimizer steps; ``seconds``: the run's wall time (its whole training call;
                   machine-dependent). A study's compute time is the sum of ``seconds``, its wall
                   time the span from the first run's start to the last run's end (``Study.times``)
params             parameter count
error              failed runs: ``ExceptionType: message``; else None
=================  ======================================================================

``Study.curves()``: one row per run and epoch: ``run``, ``arm``, ``phase``, ``seed``, then the
trainer's ``EPOCH_COLUMNS`` (``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
``val_accuracy``, ``lr``, ``seconds``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnstudy._lazy import exports

if TYPE_CHECKING:
    from nnstudy.study.file import StudySpec, load_study
    from nnstudy.study.handle import open_study, stored_study
    from nnstudy.study.reader import Study
    from nnstudy.study.runner import RunSummary, run_study

__all__ = ["RunSummary", "Study", "StudySpec", "load_study", "open_study", "run_study", "stored_study"]

# imported on first use (nnstudy/_lazy.py): reading a study file (``nnstudy run`` on a bad file,
# ``nnstudy status``) loads neither torch nor optuna; running one does
__getattr__ = exports(__name__, {".file": ["StudySpec", "load_study"], ".runner": ["RunSummary", "run_study"],
                                 ".reader": ["Study"],
                                 ".handle": ["folder_url", "open_study", "stored_study", "study_folder"]})
