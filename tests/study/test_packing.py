"""The runner packs same-shape ready runs into one ``train_packed`` call: the stored table is the one the
same study stores run by run (``study.pack = false``) and with ``--workers 2``; pruned runs, weights and
failures stay per run; runs with no fast path (a CNN) still go one by one."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from studyfiles import TINY, TUNED

from nnstudy.study import _worker, load_study, open_study, run_study
from nnstudy.study.design import plan_arms
from nnstudy.study.results import TIMING_COLUMNS
from nnstudy.study.runner import _Runner
from nnstudy.train.packed import MAX_LANES

#: 2 arms × (3 tuning trials in rounds of 2 + 3 final seeds + 3 untuned slice seeds) = 18 runs.
SEEDED = TUNED.replace("seeds = 2", "seeds = 3")
PRUNED = (TUNED.replace("trials = 3", 'trials = 12\npruner = "median"').replace("parallel = 2", "parallel = 4")
          .replace("epochs = 1", "epochs = 3").replace("log = [0.01, 1.0]", "log = [0.0001, 3.0]")
          .replace("seeds = 2", "seeds = 1").replace('["relu", "tanh"]', '["relu"]'))
CNN = TINY.replace('{ kind = "mlp", hidden = [16] }', '{ kind = "cnn", channels = [4], head = [] }')


def study(root, text: str, name: str, mnist_dir, workers: int = 1, pack: bool | None = None):
    """Run ``text`` in ``root/name``; returns the folder."""
    path = root / f"{name}.toml"
    path.write_text(text)
    overrides = [] if pack is None else [("study.pack", pack)]
    run_study(load_study(path, overrides), root / name, workers=workers, quiet=True, data_dir=mnist_dir)
    return root / name


def table(folder) -> pd.DataFrame:
    """results.csv without the columns that measure the machine."""
    return pd.read_csv(folder / "results.csv").drop(columns=list(TIMING_COLUMNS))


def records(folder) -> dict[str, object]:
    return {r.run: r for r in open_study(folder).store.records(open_study(folder).spec.name)}


def same_runs(a, b) -> None:
    """Same results.csv (but timing), and per run the same metrics, curves and final weights."""
    pd.testing.assert_frame_equal(table(a), table(b))
    ra, rb = records(a), records(b)
    assert ra.keys() == rb.keys()
    for run, x in ra.items():
        y = rb[run]
        assert (x.status, x.metrics, x.epochs_run, x.best_epoch) == (y.status, y.metrics, y.epochs_run, y.best_epoch)
        assert [{k: v for k, v in h.items() if k != "seconds"} for h in x.history] == [
            {k: v for k, v in h.items() if k != "seconds"} for h in y.history]
    weights = sorted(p.name for p in (a / "runs").glob("*.pt"))
    assert weights and weights == sorted(p.name for p in (b / "runs").glob("*.pt"))
    for name in weights:
        wa, wb = torch.load(a / "runs" / name), torch.load(b / "runs" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, mnist_dir):
    """The tuned 3-seed study stored with packing (one worker) and without: (packed, alone) folders."""
    root = tmp_path_factory.mktemp("packing")
    return study(root, SEEDED, "packed", mnist_dir), study(root, SEEDED, "alone", mnist_dir, pack=False)


def test_packed_study_stores_exactly_what_the_study_run_by_run_stores(seeded):
    packed, alone = seeded
    same_runs(packed, alone)
    sizes = {r.run: r.environment.get("packed", 1) for r in records(packed).values()}
    assert len(sizes) == 2 * (3 + 3 + 3) and max(sizes.values()) > 1  # tuning rounds of 2, 3 seeds
    assert all("packed" not in r.environment for r in records(alone).values())
    frame = open_study(packed).results()
    assert (frame["status"] == "complete").all() and frame["test_accuracy"].notna().sum() == 6
    finals = [r for r in records(packed).values() if r.phase == "final"]
    assert all(r.environment["packed"] == 3 and r.weights for r in finals)
    # a packed run's seconds are its share of the pack: they add up to the study's time, not n times it
    assert all(0 < r.seconds and 0 < r.train_seconds <= r.seconds for r in records(packed).values())


@pytest.mark.slow
def test_two_workers_pack_and_store_what_one_worker_stores(seeded, tmp_path, mnist_dir):
    packed, _ = seeded
    two = study(tmp_path, SEEDED, "two", mnist_dir, workers=2)
    same_runs(two, packed)
    assert max(r.environment.get("packed", 1) for r in records(two).values()) > 1


def test_a_pruned_run_inside_a_pack_is_stored_pruned(tmp_path, mnist_dir):
    folder = study(tmp_path, PRUNED, "pruned", mnist_dir)
    frame = open_study(folder).results()
    pruned = frame[frame["status"] == "pruned"]
    assert len(pruned) >= 1 and (pruned["epochs_run"] < 3).all() and (pruned["trial"] >= 4).all()
    recs = records(folder)
    for run in pruned["run"]:
        rec = recs[run]
        assert rec.environment["packed"] == 4 and len(rec.history) == rec.epochs_run and rec.error is None
        assert rec.metrics["val_accuracy"] == rec.history[-1]["val_accuracy"]
    assert frame[frame["phase"] == "final"]["optimizer.lr"].item() not in set(pruned["optimizer.lr"])
    pd.testing.assert_frame_equal(table(folder), table(study(tmp_path, PRUNED, "one-by-one", mnist_dir, pack=False)))


def test_a_cnn_study_still_trains_one_run_at_a_time(tmp_path, mnist_dir, monkeypatch):
    sizes = []
    real = _worker.execute

    def execute(task, progress=None):
        sizes.append(len(task["runs"]))
        return real(task, progress)

    monkeypatch.setattr(_worker, "execute", execute)
    folder = study(tmp_path, CNN + '\n[scientific]\n"optimizer.lr" = [0.05, 0.1]\n', "cnn", mnist_dir)
    assert sizes == [1, 1, 1, 1]
    recs = records(folder).values()
    assert len(recs) == 4 and all(r.status == "complete" and "packed" not in r.environment for r in recs)


def test_a_pack_that_raises_fails_every_run_in_it_and_the_study_goes_on(tmp_path, mnist_dir, monkeypatch):
    packed = sys.modules["nnstudy.train.packed"]
    real = packed.train_packed

    def train_packed(specs, data=None, **kw):
        if len(specs) > 1 and specs[0].model.activation == "tanh":
            raise MemoryError("the tanh pack does not fit")
        return real(specs, data, **kw)

    monkeypatch.setattr(packed, "train_packed", train_packed)
    folder = study(tmp_path, TUNED, "failing", mnist_dir)
    recs = [r for r in records(folder).values() if r.status == "failed"]
    assert recs and all(r.arm == "model.activation=tanh" and r.error == "MemoryError: the tanh pack does not fit"
                        and "MemoryError" in r.traceback and r.environment["packed"] > 1 for r in recs)
    frame = open_study(folder).results()
    assert (frame[frame["arm"] == "model.activation=relu"]["status"] == "complete").all()


# ---------------------------------------------------------------------------------- the grouping


class _Study:
    """What ``_Runner.packs`` reads of a runner: the study spec and each dataset's training size."""

    def __init__(self, spec):
        self.spec, self.n_train = spec, {}


def packs(tmp_path, text: str, idle: int, *overrides) -> list[list[tuple[str, int]]]:
    """The packs the runner would send to ``idle`` workers for a fresh study: (arm, seed) per run."""
    path = tmp_path / "s.toml"
    path.write_text(text)
    spec = load_study(path, list(overrides))
    queue = sorted((r for p in plan_arms(spec, {}.get) for r in p.planned), key=lambda r: r.order)
    return [[(r.arm.label.split("=")[-1], r.spec.seed) for r in pack]
            for pack in _Runner.packs(_Study(spec), queue, idle)]  # type: ignore[arg-type]


GRID5 = TINY.replace("seeds = 2", "seeds = 5") + '\n[scientific]\n"model.activation" = ["relu", "tanh"]\n'
ONE_ARM = TINY.replace("seeds = 2", "seeds = 5")


def test_same_shape_runs_are_grouped_and_split_over_the_idle_workers(tmp_path):
    relu, tanh = [[(a, s) for s in range(5)] for a in ("relu", "tanh")]
    assert packs(tmp_path, GRID5, 1) == [relu]
    assert packs(tmp_path, GRID5, 2) == [relu, tanh]
    assert packs(tmp_path, GRID5, 3) == [relu[:3], relu[3:], tanh]
    assert packs(tmp_path, GRID5, 4) == [relu[:3], relu[3:], tanh[:3], tanh[3:]]
    assert packs(tmp_path, GRID5, 0) == []
    assert packs(tmp_path, ONE_ARM, 2) == [[("base", s) for s in range(3)], [("base", 3), ("base", 4)]]
    assert packs(tmp_path, ONE_ARM, 8) == [[("base", s)] for s in range(5)]
    assert packs(tmp_path, GRID5, 3, ("study.pack", False)) == [[("relu", 0)], [("tanh", 0)], [("relu", 1)]]


def test_a_pack_holds_at_most_max_lanes_runs_and_no_run_without_a_fast_path(tmp_path):
    many = packs(tmp_path, TINY.replace("seeds = 2", f"seeds = {MAX_LANES + 3}"), 1)
    assert [len(p) for p in many] == [MAX_LANES]
    assert [len(p) for p in packs(tmp_path, TINY.replace("seeds = 2", f"seeds = {MAX_LANES + 3}"), 2)] == [MAX_LANES, 3]
    assert packs(tmp_path, CNN, 1) == [[("base", 0)]] and packs(tmp_path, CNN, 4) == [[("base", 0)], [("base", 1)]]
