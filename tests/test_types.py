"""Every number field of every spec uses the shared types (issue 13): a float field added later that is
declared ``float`` instead of ``FiniteFloat`` would take ``inf``, and an ``int`` would take ``true``."""

from __future__ import annotations

import typing

import pytest
from pydantic import AllowInfNan, BaseModel

import nnstudy.spec as run_spec
import nnstudy.spec_tables as run_spec_tables
import nnstudy.study.file as study_file
import nnstudy.study.space as study_space
import nnstudy.study.study_spec as study_spec
from nnstudy._types import FiniteFloat, Int


def _models() -> list[type[BaseModel]]:
    found = []
    for module in (run_spec, run_spec_tables, study_file, study_spec, study_space):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                found.append(value)
    return found


def _bare(tp, metadata=()) -> list[str]:
    """The bare ``float``/``int`` in a type (not inside the shared Annotated types)."""
    if tp is float:
        return [] if any(isinstance(m, AllowInfNan) and not m.allow_inf_nan for m in metadata) else ["float"]
    if tp is int:
        shared = any(getattr(m, "func", None) is not None or getattr(m, "strict", False) for m in metadata)
        return [] if shared else ["int"]  # Int's validator, or strict (which refuses booleans too)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *meta = typing.get_args(tp)
        return _bare(inner, (*metadata, *meta))
    return [x for arg in typing.get_args(tp) for x in _bare(arg)]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_number_field_is_finite_and_refuses_booleans(model):
    bare = {name: _bare(f.annotation, tuple(f.metadata)) for name, f in model.model_fields.items()}
    bare = {k: v for k, v in bare.items() if v}
    assert not bare, f"declare float fields FiniteFloat and int fields Int (nnstudy._types): {bare}"


def test_the_types_refuse_what_lax_pydantic_takes():
    from pydantic import TypeAdapter, ValidationError

    for tp, bad in ((FiniteFloat, [float("inf"), float("nan"), True, 10**400]), (Int, [True, 2**63])):
        for value in bad:
            with pytest.raises(ValidationError):
                TypeAdapter(tp).validate_python(value)
    assert TypeAdapter(FiniteFloat).validate_python(1) == 1.0 and TypeAdapter(Int).validate_python(3) == 3
