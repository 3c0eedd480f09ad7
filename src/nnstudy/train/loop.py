"""``train(spec, data) -> RunResult``: one run, which is the epoch driver (``driver.py``) with one lane.

The engine is the one ``packed.engine_for`` picks (the stacked MLP engine for linear models and MLPs
without batch norm trained with SGD, Adam or AdamW; the torch module engine for everything else),
or the one named by ``engine``. A run trained alone and the same run in a pack take the same driver
and the same engine, so they give the same numbers (tests/train/test_packed.py, test_engines.py).
Dropout masks differ between the engines: the stacked engine draws each run's masks from a generator
of its own (so that a packed run sees the masks it would see alone); the module engine from torch's
RNG, seeded from the run's seed.

Speed (docs/performance.md has the measurements): the split lives on the device as one float tensor,
batches are one gather of rows, with no per-sample Python and no DataLoader; evaluation runs in large
batches (smaller for wide activations); losses and counts accumulate on the device and are read once
per epoch. With ``threads`` unset, a run whose optimizer step is small uses one thread
(``_env.run_threads``).
"""

from __future__ import annotations

from typing import Any

from nnstudy.spec import RunSpec
from nnstudy.train import packed
from nnstudy.train._env import Callback, resolve_device
from nnstudy.train.modules import evaluate, execution_order
from nnstudy.train.result import RunResult

__all__ = ["Callback", "evaluate", "execution_order", "resolve_device", "train"]


def train(
    spec: RunSpec,
    data: Any = None,
    *,
    data_dir: str | None = None,
    callback: Callback | None = None,
    engine: str = "auto",
) -> RunResult:
    """Train one model as ``spec`` says and return its ``RunResult``.

    Args:
        spec: the run.
        data: a ``nnstudy.data.Splits`` for ``spec.data``; loaded (and cached per process) when None.
            Passing it lets a study load the data once for many runs.
        data_dir: where the dataset files are, when ``data`` is None (else the usual source chain).
        callback: progress events, see ``Callback``; an exception it raises stops the run and is raised.
        engine: "auto" (``packed.engine_for``), "stacked" or "modules".

    Raises:
        DataError: the dataset cannot be found or is corrupt. SpecError: an impossible request
        (a model that does not fit the input, CUDA asked for where there is none, an engine that
        cannot train the run).
    """
    cls = packed.engine_for(spec, engine)
    (result,), _ = packed.run_lanes([spec], data, cls, data_dir, [callback])
    if isinstance(result, Exception):  # the callback stopped the run (a pruner)
        raise result
    return result
