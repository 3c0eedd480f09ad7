"""Packing policy, in one place: which engine trains a run, which runs may share one program, how a
group is cut into packs, and ``train_packed``, which trains a pack with the epoch driver.

* ``engine_for``: the stacked MLP engine where it applies (``fast_path_reason`` is None: linear
  models and MLPs without batch norm, trained with SGD, Adam or AdamW), else the torch module
  engine; an engine asked for by name that cannot train the run gives one line saying why.
* ``pack_key``: runs with equal keys can be trained as one pack: same engine, dataset, model shape
  (the engine's ``lane_key``), batch size, optimizer kind, precision, device and threads. Free per
  run: seed, initialization, dropout rates (stacked engine), optimizer hyperparameters, schedule,
  epochs, early stopping, ``train_eval``, ``test``, ``max_loss``, what to save. On a CPU a study
  keeps the module engine's runs alone (see ``pack_key``); ``train_packed(..., engine="modules")``
  packs them where asked.
* ``packable``: groups of equal keys in order of first appearance, at most ``MAX_LANES`` runs and
  ``PACK_MEMORY`` bytes each (sized from the data's shape); ``assign``: the packs for idle workers.

A packed run gives the numbers it gives alone (tests/train/test_packed.py, test_engines.py); its
``seconds`` are its share of the pack's wall time and ``environment["packed"]`` the pack's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple, TypeVar

import torch

from nnstudy.errors import SpecError
from nnstudy.spec import RunSpec
from nnstudy.train import driver
from nnstudy.train._env import Callback, check_data, resolve_device, run_environment, run_threads
from nnstudy.train.engine import unsupported
from nnstudy.train.modules import TorchModules
from nnstudy.train.result import RunResult
from nnstudy.train.stacked import StackedMLP

__all__ = ["ENGINES", "MAX_LANES", "PACK_MEMORY", "DataShape", "assign", "engine_for", "fast_path_reason",
           "pack_key", "packable", "train_packed"]

#: Most runs in one pack. Past a dozen or two lanes the batched matmuls are large enough to run at
#: the machine's rate, and a larger pack only delays the first results.
MAX_LANES = 32
#: Bytes a pack may use for its weights, optimizer state and step buffers (full-batch runs are big).
PACK_MEMORY = 2 * 1024**3
#: The engines, by the name ``engine=`` takes.
ENGINES: dict[str, type] = {"stacked": StackedMLP, "modules": TorchModules}
#: Fields of a pack key, in the order errors name them.
_PACK_FIELDS = ("engine", "data", "model shape", "batch_size", "optimizer", "precision", "device", "threads")

T = TypeVar("T")


class DataShape(NamedTuple):
    """What sizes a pack: training images, one image's shape, classes."""

    n_train: int = 60_000
    input_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10

    @classmethod
    def of(cls, splits: Any) -> DataShape:
        return cls(len(splits.train_y), tuple(splits.input_shape), splits.num_classes)


def fast_path_reason(spec: RunSpec) -> str | None:
    """None when the stacked MLP engine trains ``spec``; else why it cannot (for messages)."""
    return unsupported(StackedMLP, spec)


def engine_for(spec: RunSpec, engine: str = "auto") -> type:
    """The engine that trains ``spec``: ``engine`` by name, or with "auto" the stacked MLP engine
    where it applies, else the module engine.

    Raises:
        SpecError: an unknown name, or an engine that cannot train the run (the line says why).
    """
    if engine == "auto":
        engine = "stacked" if fast_path_reason(spec) is None else "modules"
    if engine not in ENGINES:
        raise SpecError(f"engine = {engine!r}: allowed: auto, {', '.join(ENGINES)}")
    cls = ENGINES[engine]
    reason = fast_path_reason(spec) if cls is StackedMLP else unsupported(cls, spec)
    if reason is not None:
        raise SpecError(f"engine = {engine!r} cannot train this run: {reason}")
    return cls


def _key(spec: RunSpec, cls: type) -> tuple[Any, ...] | None:
    lanes = cls.lane_key(spec)
    if lanes is None:
        return None
    return (cls.name, spec.data, lanes, spec.batch_size, spec.optimizer.name, spec.precision, spec.device,
            spec.threads)


def pack_key(spec: RunSpec) -> Hashable | None:
    """Runs with equal keys are trained as one pack by a study; None: the run trains alone."""
    cls = engine_for(spec)
    if cls is TorchModules and resolve_device(spec.device).type == "cpu":
        # a study's runs have one thread each by default, and packed module lanes on one thread are not
        # measured by benchmarks/run.py (W5 measures two threads: docs/trainer.md), so they train alone
        return None
    return _key(spec, cls)


def packable(specs: Sequence[RunSpec], max_lanes: int = MAX_LANES, shape: DataShape | None = None
             ) -> list[list[RunSpec]]:
    """Split ``specs`` into groups that ``train_packed`` trains together, in order of first
    appearance; a run with no pack key is a group of its own.

    Args:
        specs: runs to train.
        max_lanes: most runs per group.
        shape: the data's size and shape, to bound a pack's memory (None: 60,000 MNIST images).

    Returns:
        The groups; every spec appears in exactly one.
    """
    shape = shape or DataShape()
    groups: dict[Any, list[list[RunSpec]]] = {}
    order: list[list[RunSpec]] = []
    for s in specs:
        key = pack_key(s)
        if key is None:
            order.append([s])
            continue
        cap = max(1, min(max_lanes, PACK_MEMORY // max(engine_for(s).lane_bytes(s, *shape), 1)))
        chunks = groups.setdefault(key, [])
        if not chunks or len(chunks[-1]) >= cap:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(s)
    return order


def assign(items: Sequence[T], spec_of: Callable[[T], RunSpec], idle: int,
           shape_of: Callable[[RunSpec], DataShape | None] = lambda _: None) -> list[list[T]]:
    """The tasks for ``idle`` free workers from ``items`` (in dispatch order): at most ``idle`` lists,
    each trained as one pack (or alone, a list of one).

    Items with equal ``pack_key`` form a group, in order of first appearance, cut into the chunks
    ``packable`` allows. The first ``idle`` chunks are sent; with fewer chunks than idle workers, the
    chunks with the most runs per worker are split into near-equal parts until every worker has one
    or every part is one run.
    """
    if idle < 1 or not items:
        return []
    groups: dict[Any, list[T]] = {}
    for i, item in enumerate(items):
        groups.setdefault(pack_key(spec_of(item)) or ("alone", i), []).append(item)
    chunks: list[list[T]] = []
    for group in groups.values():
        rest = iter(group)  # packable keeps the order, and one key's chunks are consecutive
        sizes = [len(c) for c in packable([spec_of(r) for r in group], MAX_LANES, shape_of(spec_of(group[0])))]
        chunks += [[next(rest) for _ in range(n)] for n in sizes]
        if len(chunks) >= idle:
            break
    chunks = chunks[:idle]
    parts = [1] * len(chunks)
    for _ in range(idle - len(chunks)):
        i = max(range(len(chunks)), key=lambda i: len(chunks[i]) / parts[i])
        if len(chunks[i]) <= parts[i]:
            break
        parts[i] += 1
    return [piece for chunk, n in zip(chunks, parts, strict=True) for piece in _split(chunk, n)]


def _split(items: list[T], n: int) -> list[list[T]]:
    """``items`` in ``n`` consecutive parts whose sizes differ by at most one (the larger first)."""
    q, r = divmod(len(items), n)
    bounds = [i * q + min(i, r) for i in range(n + 1)]
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def train_packed(
    specs: Sequence[RunSpec],
    data: Any = None,
    *,
    data_dir: str | None = None,
    callbacks: Sequence[Callback | None] | None = None,
    engine: str = "stacked",
) -> list[RunResult | Exception]:
    """Train ``specs`` as one pack and return one result per spec, in order.

    Args:
        specs: runs that can share a pack (use ``packable`` to group them).
        data: the ``Splits`` of their common ``data`` spec; loaded when None.
        data_dir: where the dataset files are, when ``data`` is None.
        callbacks: one ``Callback`` (or None) per spec: the same events ``train`` sends.
        engine: "stacked" (MLPs, the default), "modules" (any model; lanes without batch norm and
            dropout), or "auto" (the engine ``engine_for`` picks for the first run).

    Returns:
        ``RunResult`` for each run; where a run's callback raised an ``Exception`` (a pruner that
        stops the run), that exception instead, and the run left the pack at that point.

    Raises:
        SpecError: an empty list, a run the engine cannot train, runs that cannot share a pack (the
            message names the first field in which they differ), or callbacks of the wrong length.
        DataError: the dataset cannot be found or is corrupt.
    """
    specs = list(specs)
    cls = _check_packable(specs, engine)
    if callbacks is not None and len(callbacks) != len(specs):
        raise SpecError(f"train_packed: {len(callbacks)} callbacks for {len(specs)} runs")
    results, _ = run_lanes(specs, data, cls, data_dir, list(callbacks or [None] * len(specs)))
    for r in results:
        if isinstance(r, RunResult):
            r.environment["packed"] = len(specs)
    return results


def run_lanes(specs: list[RunSpec], data: Any, cls: type, data_dir: str | None,
              callbacks: list[Callback | None]) -> tuple[list[RunResult | Exception], Any]:
    """The driver over ``specs`` as lanes of ``cls``, with the data loaded, threads set and restored,
    and each result's share of the wall time and its environment filled in."""
    from nnstudy.data import load

    check_data(specs[0], data, "train_packed" if len(specs) > 1 else "train")
    t_start = time.perf_counter()
    device = resolve_device(specs[0].device)
    if data is None:
        data = load(specs[0].data, data_dir=data_dir)
    threads_before = torch.get_num_threads()
    threads = run_threads(specs[0], data, device, lanes=len(specs))
    torch.set_num_threads(threads)
    try:
        results = driver.fit(specs, data, cls, device, callbacks)
    finally:
        torch.set_num_threads(threads_before)
    share = (time.perf_counter() - t_start) / len(specs)
    env = run_environment(device, threads)
    for r in results:
        if isinstance(r, RunResult):
            r.seconds = share
            r.environment = dict(env)
    return results, data


def _check_packable(specs: list[RunSpec], engine: str) -> type:
    if not specs:
        raise SpecError("train_packed: no runs given")
    cls = None
    for i, s in enumerate(specs):
        try:
            cls = engine_for(s, engine if engine != "auto" else engine_for(specs[0]).name)
        except SpecError as e:
            reason = str(e).split(": ", 1)[1]
            raise SpecError(f"train_packed: run {i} ({s.identity()}) cannot be packed: {reason}") from None
    assert cls is not None
    keys = [_key(s, cls) for s in specs]
    if len(specs) > 1 and keys[0] is None:
        raise SpecError(f"train_packed: run 0 ({specs[0].identity()}) cannot be packed: the {cls.name} engine "
                        "trains it alone (batch norm, or dropout)")
    for i, key in enumerate(keys[1:], start=1):
        if key != keys[0]:
            field = next(f for f, a, b in zip(_PACK_FIELDS, keys[0], key or (None,) * 8, strict=True) if a != b)
            raise SpecError(
                f"train_packed: runs 0 and {i} differ in {field}: they cannot share a pack; "
                "group runs with packable() first"
            )
    return cls
