"""``summary``: Keras-like rows whose shapes are those torch computes, and the printed table."""

from __future__ import annotations

import io

import torch
from rich.console import Console
from rich.table import Table

from nnstudy.models import build_model, count_params, format_shape, forward_flops, summary
from nnstudy.spec import CNNSpec, LinearSpec, MLPSpec


def test_rows_are_the_built_layers_with_their_real_output_shapes(case):
    spec, input_shape, num_classes = case
    model = build_model(spec, input_shape, num_classes).eval()
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:
            seen[name] = tuple(output.shape)

        return hook

    for name, module in model.named_children():
        module.register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.randn(4, *input_shape))
    rows = summary(spec, input_shape, num_classes).rows
    assert [r.name for r in rows] == list(seen)
    for r in rows:
        assert (4, *r.output_shape) == seen[r.name], r.name


def test_totals(case):
    spec, input_shape, num_classes = case
    s = summary(spec, input_shape, num_classes)
    assert s.total_params == s.trainable_params == count_params(spec, input_shape, num_classes)
    assert s.non_trainable_params == 0
    assert s.forward_flops == forward_flops(spec, input_shape, num_classes)
    assert s.train_flops == 3 * s.forward_flops


def test_text_table_is_keras_like():
    text = str(summary(MLPSpec(hidden=[300])))
    lines = text.splitlines()
    assert lines[0] == "Model: mlp, input (None, 1, 28, 28), 10 classes"
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "FLOPs"]
    assert lines[5].split() == ["fc1", "(Linear)", "(None,", "300)", "235,500", "470,400"]
    assert "Total params: 238,510" in lines and "Trainable params: 238,510" in lines
    assert "Non-trainable params: 0" in lines
    assert str(summary(LinearSpec())).count("Total params: 7,850") == 1


def test_docstring_example_is_what_summary_prints():
    from nnstudy.models.summary import __doc__ as doc

    example = doc.split("::", 1)[1]
    shown = example.split("\n\n")[1]  # the indented block after "::"
    assert "\n".join(line[4:] for line in shown.splitlines()) == str(summary(MLPSpec(hidden=[300])))


def test_conv_shapes_are_written_like_keras():
    assert format_shape((300,)) == "(None, 300)"
    assert format_shape((32, 28, 28)) == "(None, 32, 28, 28)"
    text = str(summary(CNNSpec(channels=[32, 64], kernel=3, batchnorm=True, head=[128], dropout=0.2)))
    assert "conv1 (Conv2d)" in text and "(None, 32, 28, 28)" in text and "(None, 64, 7, 7)" in text
    assert "Total params: 422,090" in text


def test_rich_table_has_a_row_per_layer_and_the_totals():
    s = summary(MLPSpec(hidden=[300]))
    table = s.to_rich()
    assert isinstance(table, Table) and table.row_count == len(s.rows)
    out = io.StringIO()
    Console(file=out, width=120).print(table)
    assert "238,510" in out.getvalue() and "(None, 300)" in out.getvalue()
