"""The report's bookkeeping and drawing on small synthetic tables (no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnstudy.analysis import arm_summary
from nnstudy.analysis.curves import curve_bands
from nnstudy.report import figures
from nnstudy.report.content import arm_axis, study_context
from nnstudy.report.study_figures import arm_colors, curves_by_arm, isolation

HEAD = """
[study]
name = "s"

[base]
model = { kind = "mlp", hidden = [16] }
"""


@pytest.fixture
def study_spec(tmp_path):
    from nnstudy.study import load_study

    def load(body: str):
        path = tmp_path / "s.toml"
        path.write_text(HEAD + body)
        return load_study(path)

    return load


@pytest.mark.parametrize(("body", "name", "numeric", "log", "ticks"), [
    ("[scientific]\nbatch_size = [32, 128, 512]\n", "batch_size", True, True, ["32", "128", "512"]),
    ("[scientific]\nepochs = [2, 4, 8]\n", "epochs", True, False, ["2", "4", "8"]),
    ('[scientific]\n"model.activation" = ["relu", "tanh"]\n', "model.activation", False, False, ["relu", "tanh"]),
    ('[scientific]\nepochs = [1, 2]\n"model.activation" = ["relu"]\n', "arm", False, False,
     ["epochs=1, model.activation=relu", "epochs=2, model.activation=relu"]),
])
def test_arm_axis_is_the_scientific_value_where_there_is_one(study_spec, body, name, numeric, log, ticks):
    axis = arm_axis(study_spec(body))
    assert (axis.name, axis.numeric, axis.log, list(axis.ticks.values())) == (name, numeric, log, ticks)


def test_study_context_reads_the_learning_rate_the_runs_used_and_every_search_space(study_spec):
    ctx = study_context(study_spec('[scientific]\nbatch_size = [32, 64]\n\n[nuisance]\n'
                                   '"optimizer.weight_decay" = { log = [1e-5, 1e-2] }\n'
                                   '"optimizer.momentum" = { uniform = [0.0, 0.9] }\nepochs = { int = [1, 3] }\n'
                                   'trials = 2\n'))
    assert ctx.base["optimizer.lr"] == 0.01  # not in the file: RunSpec's default, which the runs trained with
    assert "batch_size" not in ctx.base and ctx.base["model.hidden"] == [16]
    assert {k: kind for k, (kind, _) in ctx.search_space().items()} == {
        "optimizer.weight_decay": "log", "optimizer.momentum": "uniform", "epochs": "int"}


def _finals(values: dict[str, list[float]], phase: str = "final") -> pd.DataFrame:
    rows = [{"run": f"{arm}/{phase}/{s}", "arm": arm, "phase": phase, "seed": s, "status": "complete",
             "val_accuracy": v} for arm, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_curve_bands_are_mean_min_max_over_completed_final_seeds():
    results = _finals({"a": [0.5, 0.7], "b": [0.6, 0.6]})
    results.loc[1, "status"] = "diverged"  # a/final/1 is left out
    curves = pd.DataFrame([{"run": r, "arm": r.split("/")[0], "epoch": e, "val_accuracy": 0.1 * e + i}
                           for i, r in enumerate(results["run"]) for e in (1, 2)])
    bands = curve_bands(results, curves).set_index(["arm", "epoch"])
    assert list(bands.loc[("a", 2), ["mean", "low", "high", "n"]]) == pytest.approx([0.2, 0.2, 0.2, 1])
    assert list(bands.loc[("b", 1), ["mean", "low", "high", "n"]]) == pytest.approx([2.6, 2.1, 3.1, 2])


def test_isolation_draws_the_untuned_slice_where_the_study_ran_it(study_spec):
    axis = arm_axis(study_spec("[scientific]\nbatch_size = [32, 512]\n"))
    arms = list(axis.positions)
    tuned = _finals({arms[0]: [0.97, 0.98, 0.975], arms[1]: [0.96, 0.965, 0.97]})
    sliced = _finals({arms[0]: [0.95, 0.96, 0.955], arms[1]: [0.80, 0.82, 0.81]}, phase="slice")
    fig = isolation(arm_summary(tuned, ["val_accuracy"]), tuned, "val_accuracy", axis, arm_colors(arms),
                    key="optimizer.lr", base_value=0.05,
                    slice_summary=arm_summary(sliced.assign(phase="final"), ["val_accuracy"]), slice_seeds=sliced)
    left, right = fig.axes
    assert right.get_title() == "untuned: every arm at optimizer.lr = 0.05"
    assert left.get_xscale() == right.get_xscale() == "log"
    assert left.get_ylim() == right.get_ylim()  # one scale, so the slice's drop reads against the tuned arms


def test_isolation_says_when_the_slice_was_not_run(study_spec):
    axis = arm_axis(study_spec("[scientific]\nbatch_size = [32, 512]\n"))
    arms = list(axis.positions)
    tuned = _finals({arms[0]: [0.97, 0.98], arms[1]: [0.96, 0.97]})
    trials = pd.DataFrame({"arm": arms * 3, "optimizer.lr": [0.01, 0.02, 0.1, 0.2, 0.5, 0.9],
                           "val_accuracy": [0.9, 0.91, 0.95, 0.96, 0.5, 0.6]})
    chosen = pd.DataFrame({"optimizer.lr": [0.1, 0.2]}, index=arms)
    fig = isolation(arm_summary(tuned, ["val_accuracy"]), tuned, "val_accuracy", axis, arm_colors(arms),
                    key="optimizer.lr", base_value=0.05, trials=trials, chosen=chosen)
    right = fig.axes[1]
    assert "the untuned slice at optimizer.lr = 0.05 was not run" in right.get_title()
    assert right.get_xscale() == "log" and right.get_xlabel() == "optimizer.lr"


def test_one_epoch_curves_draw_error_bars_and_one_legend_entry_per_arm():
    bands = pd.DataFrame([{"arm": arm, "metric": m, "epoch": 1, "mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}
                          for arm in ("a", "b") for m in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")])
    fig = curves_by_arm(bands, ["a", "b"], arm_colors(["a", "b"]))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    assert all(len(ax.containers) == 2 for ax in fig.axes)  # an error bar per arm in every panel


def test_export_is_deterministic_png_and_svg():
    counts = np.diag([5, 6, 7])
    png, svg = figures.export(figures.confusion_matrix(counts), "png", "svg")
    assert png[:4] == b"\x89PNG" and b"<svg" in svg
    assert figures.export(figures.confusion_matrix(counts), "svg", "png") == (svg, png)


def test_export_crops_each_format_as_a_tight_savefig_would():
    """export lays the figure out and crops it once for both formats: the PNG is the size a
    savefig(bbox_inches="tight") gives, to a pixel, and nothing drawn is cut off."""
    import io

    from PIL import Image

    bands = pd.DataFrame([{"arm": arm, "metric": m, "epoch": e, "mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}
                          for arm in ("a", "b") for e in (1, 2)
                          for m in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")])
    tight = io.BytesIO()
    curves_by_arm(bands, ["a", "b"], arm_colors(["a", "b"])).savefig(tight, format="png", dpi=figures.DPI,
                                                                     bbox_inches="tight")
    png, svg = figures.export(curves_by_arm(bands, ["a", "b"], arm_colors(["a", "b"])), "png", "svg")
    want, got = Image.open(tight).size, Image.open(io.BytesIO(png)).size
    assert all(abs(w - g) <= 2 for w, g in zip(want, got, strict=True)), (want, got)
    assert 'width="' in svg.decode() and b"Date" not in svg
