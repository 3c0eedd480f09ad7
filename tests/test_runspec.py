"""RunSpec: validation messages, overrides, identity, TOML round trip, parameter budgets."""

from __future__ import annotations

import pytest

from nnstudy.errors import SpecError
from nnstudy.models import build_model
from nnstudy.spec import RunSpec, apply_overrides, load_run_spec, make_run_spec, parse_override


@pytest.mark.parametrize(
    "shortcuts,expected",
    [
        ({"model": "transformer"}, "x.toml: model.kind: unknown model kind; allowed: linear, mlp, cnn, vgg11"),
        ({"lr": -1}, "x.toml: optimizer.lr = -1: Input should be greater than 0"),
        ({"batch_size": 0}, "x.toml: batch_size = 0: Input should be greater than 0; or Input should be 'full'"),
        ({"hidden": [0]}, "x.toml: model.hidden[0] = 0: Input should be greater than 0"),
        ({"dropout": [0.1, 0.2]}, "x.toml: model: dropout has 2 values but hidden has 1 layers"),
    ],
)
def test_errors_are_one_line_naming_file_key_and_value(shortcuts, expected):
    with pytest.raises(SpecError) as err:
        make_run_spec(None, shortcuts, source="x.toml")
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_unknown_keys_are_named_at_every_level():
    for raw, key in [({"bogus": 1}, "bogus"), ({"model": {"kind": "mlp", "widths": [3]}}, "model.widths"),
                     ({"optimizer": {"learning_rate": 0.1}}, "optimizer.learning_rate")]:
        with pytest.raises(SpecError, match=rf"^f\.toml: {key} = .*: unknown key$"):
            make_run_spec(raw, source="f.toml")


def test_overrides_parse_toml_values_and_reach_nested_keys():
    assert parse_override("optimizer.lr=0.1") == ("optimizer.lr", 0.1)
    assert parse_override("model.hidden=[50, 50]") == ("model.hidden", [50, 50])
    assert parse_override("data.normalize=center") == ("data.normalize", "center")
    raw = apply_overrides({"optimizer": {"name": "sgd"}}, {"optimizer.lr": 0.5, "data.limit": 10})
    assert raw == {"optimizer": {"name": "sgd", "lr": 0.5}, "data": {"limit": 10}}
    with pytest.raises(SpecError, match="epochs is 3, not a table"):
        apply_overrides({"epochs": 3}, {"epochs.x": 1})
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        parse_override("optimizer.lr")


def test_changing_the_model_kind_drops_the_other_kinds_fields():
    base = make_run_spec(None, {"hidden": [30, 30]})
    assert make_run_spec(base, {"model": "linear"}).model.kind == "linear"


def test_identity_ignores_where_and_what_to_keep_but_not_what_is_computed():
    a = RunSpec()
    assert a.identity() == make_run_spec(a, {"device": "cpu", "threads": 1, "save_weights": True}).identity()
    assert a.identity() != make_run_spec(a, {"lr": 0.02}).identity()
    assert a.identity() != make_run_spec(a, {"seed": 1}).identity()
    assert len(a.identity()) == 16


def test_toml_round_trip(tmp_path):
    spec = make_run_spec(None, {"model": "cnn", "channels": [8, 16], "batchnorm": True, "dropout": 0.2,
                                "schedule": "onecycle", "batch_size": "full", "early_stopping": 3})
    path = tmp_path / "run.toml"
    path.write_text(spec.to_toml())
    assert load_run_spec(path) == spec


def test_budget_solves_the_widths_and_equals_torch():
    spec = make_run_spec(None, {"budget_params": 50_000, "depth": 1})
    assert spec.model.hidden == [63]  # seed 001: 795 m + 10 nearest 50,000
    assert sum(p.numel() for p in build_model(spec.model).parameters()) == 50_095
    deep = make_run_spec(spec, {"shape": "decreasing", "depth": 3})
    widths = deep.model.hidden
    assert len(widths) == 3 and widths == sorted(widths, reverse=True)
    count = sum(p.numel() for p in build_model(deep.model).parameters())
    assert abs(count - 50_000) / 50_000 < 0.05
    assert RunSpec.model_validate(deep.model_dump()) == deep  # a dumped spec re-solves to itself


@pytest.mark.parametrize(
    "shortcuts,needle",
    [
        ({"depth": 3}, "need budget.params"),
        ({"budget_params": 50_000}, "needs model.depth"),
        ({"budget_params": 100, "depth": 1}, "smaller than the smallest network"),
        ({"budget_params": 50_000, "depth": 2, "model": "cnn"}, "needs model.kind = 'mlp'"),
    ],
)
def test_impossible_budgets_are_spec_errors(shortcuts, needle):
    with pytest.raises(SpecError, match=needle):
        make_run_spec(None, shortcuts)
