"""Validation errors as one line the user can act on: pydantic's error path written as the user's
dotted key (``user_key``), a "did you mean" for a misspelt key (``did_you_mean``, ``fields_at``), and
the whole message (``one_line``). Generic over the root model: ``nnstudy.spec`` binds it to RunSpec,
``nnstudy.study.file`` uses the pieces for study keys.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from nnstudy.errors import SpecError

__all__ = ["did_you_mean", "fields_at", "one_line", "user_key"]

_UNION_TAGS = {"int", "float", "str", "bool", "list", "dict", "none"}


def user_key(loc: tuple[Any, ...]) -> str:
    """pydantic's error path as the user's dotted key: drop union branch tags (``constrained-int``,
    the model kind of a discriminated union), write list positions as ``[i]``."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if "[" in part or "-" in part or part in _UNION_TAGS:
            continue
        if i == 1 and loc[0] == "model" and part in {"linear", "mlp", "cnn", "vgg11"}:
            continue
        out += f".{part}" if out else part
    return out


def _shown(value: Any) -> str:
    """A value as the user wrote it in TOML: ``true``, not Python's ``True``; others by ``repr``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def did_you_mean(word: str, candidates: Any, prefix: str = "") -> str:
    """``"; did you mean optimizer.lr?"`` for the candidate closest to ``word`` (difflib), else ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def fields_at(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names of the spec model that ``loc`` (a pydantic error path, without its last part)
    points into: ``("optimizer",)`` → OptimSpec's; after a field holding a union of kinds (a
    discriminated union on ``kind``), the next part is the tag and picks that kind's fields."""
    model: Any = root
    kinds: dict[str, type[BaseModel]] = {}
    for part in loc:
        if isinstance(part, int) or not isinstance(model, type):
            continue
        if part in kinds:
            model, kinds = kinds[part], {}
            continue
        field = model.model_fields.get(part) if issubclass(model, BaseModel) else None
        if field is None:
            return []
        models = _models_in(field.annotation)
        if not models:
            return []
        model = models[0]
        if len(models) > 1:  # a union of kinds: the next part is the tag
            kinds = {str(m.model_fields["kind"].default): m for m in models if "kind" in m.model_fields}
            model = type(None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def one_line(err: ValidationError, source: str, root: type[BaseModel]) -> SpecError:
    """One line from a pydantic error of model ``root``: ``source: key = value: what is allowed``."""
    errors = err.errors()
    first = errors[0]
    key = user_key(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        parent = key.rpartition(".")[0]
        msg = "unknown key" + did_you_mean(str(first["loc"][-1]), fields_at(root, first["loc"][:-1]),
                                           prefix=f"{parent}." if parent else "")
    elif first["type"] == "union_tag_invalid":
        msg = "unknown model kind; allowed: linear, mlp, cnn, vgg11"
        key = f"{key}.kind" if key else "model.kind"
    value = first.get("input")
    same_key = [e for e in errors if user_key(e["loc"]) == key]
    if len(same_key) > 1:  # a union: say every alternative
        msg = "; or ".join(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in same_key))
    shown = "" if first["type"] in {"missing", "model_type"} or isinstance(value, dict) else f" = {_shown(value)}"
    where = f"{source}: " if source else ""
    rest = len({user_key(e["loc"]) for e in errors}) - 1
    more = f" (and {rest} more)" if rest else ""
    if not key:  # a whole-spec rule: its message names its keys
        return SpecError(f"{where}{msg}{more}")
    return SpecError(f"{where}{key}{shown}: {msg}{more}")


