"""Study files: the question, its arms, its nuisance search space, seeds and budget (DESIGN.md §7).

A study file is TOML with five tables::

    [study]       name, question, metric, seeds, threads, max_runs, max_minutes, pack, retries, heartbeat
    [data]        DataSpec fields (one validation split for the whole study)
    [base]        RunSpec fields, except data, seed, test, threads, save_weights
    [scientific]  "dotted.key" = [values...]     one arm per element of the product, in file order
    [scientific.zip]  "dotted.key" = [values...]  lists of one length whose values move together: one
                                 axis of the product (seed 000's batch size with its training set size)
    [nuisance]    "dotted.key" = { log = [lo, hi] } | { uniform = [lo, hi] } | { int = [lo, hi] }
                                 | { choice = [...] };  trials, sampler, pruner, seed, parallel

``load_study(path, overrides)`` reads the file, applies ``--set`` overrides, and validates it
*completely*: the file's own shape (pydantic), then every arm's RunSpec with the nuisance values at
each bound of their ranges (so a dotted key must name a real field for the model kind in use), then
each arm's model against the dataset's image shape. Every mistake is one ``SpecError`` line naming the
file and the study key, e.g. ``studies/x.toml: scientific."optimizer.lr": optimizer.lr = 0: ...``.
A StudySpec that ``load_study`` returns therefore expands into RunSpecs without error.

This module reads a study file and words its errors; the models live in ``study_spec.py`` (StudySpec,
its arms) and ``space.py`` (the nuisance search space), the checks beyond one table's shape in
``_checks.py``. Every name is importable from here.
"""


from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nnstudy.errors import SpecError
from nnstudy.spec import apply_overrides, did_you_mean, fields_at, parse_toml, read_text
from nnstudy.study._checks import MAX_RUNS, MAX_THREADS, RESERVED, check_study
from nnstudy.study.space import (
    NUISANCE_SETTINGS,
    Choice,
    Distribution,
    IntRange,
    LogRange,
    NuisanceSpec,
    UniformRange,
)
from nnstudy.study.study_spec import METRICS, TABLES, Arm, StudySection, StudySpec, render_value
from nnstudy.study.study_spec import quote_key as _quote

__all__ = [
    "METRICS",
    "Arm",
    "Choice",
    "Distribution",
    "IntRange",
    "LogRange",
    "NuisanceSpec",
    "StudySection",
    "StudySpec",
    "UniformRange",
    "apply_study_overrides",
    "load_study",
    "render_value",
    # limits and table names, from the modules that hold them
    "MAX_RUNS",
    "MAX_THREADS",
    "NUISANCE_SETTINGS",
    "RESERVED",
    "TABLES",
]

# ----------------------------------------------------------------------------------------- loading


def load_study(path: str | Path, overrides: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> StudySpec:
    """Read, override and completely validate a study file.

    ``overrides``: dotted keys as ``--set`` gives them: ``base.epochs``, ``study.seeds``,
    ``scientific.batch_size``, ``scientific.optimizer.lr`` (everything after ``scientific.`` or
    ``nuisance.`` is one RunSpec key), ``nuisance.trials``.

    Raises:
        SpecError: one line naming the file and the study key (malformed TOML, unknown key, wrong
            type, empty list, bad range, a dotted key that names no RunSpec field, a model that does
            not fit the images, ...).
    """
    source = str(path)
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    text = read_text(path)
    raw = apply_study_overrides(parse_toml(text, path), items, source)
    if items:
        source += " with --set " + " ".join(f"{k}={json.dumps(v)}" for k, v in items)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as e:
        raise _study_error(e, source) from None
    spec._source, spec._raw, spec._text = source, raw, text
    check_study(spec, source)
    from nnstudy.study.design import check_design  # the design imports this module: import late

    check_design(spec)
    return spec


def apply_study_overrides(raw: Mapping[str, Any], items: Sequence[tuple[str, Any]], source: str) -> dict[str, Any]:
    """``raw`` with each ``--set`` key applied. Under ``scientific`` and ``nuisance`` the rest of the
    key is one RunSpec key (quotes optional): ``scientific.optimizer.lr`` sets ``"optimizer.lr"``."""
    out = apply_overrides(raw, {})
    for key, value in items:
        table, _, rest = key.partition(".")
        if table in ("scientific", "nuisance") and rest:
            if not isinstance(out.setdefault(table, {}), dict):
                raise SpecError(f"{source}: --set {key}: {table} is not a table")
            node = out[table]
            if table == "scientific" and rest.startswith("zip."):  # scientific.zip.batch_size=[...]
                node, rest = node.setdefault("zip", {}), rest[4:]
                if not isinstance(node, dict):
                    raise SpecError(f"{source}: --set {key}: scientific.zip is not a table")
            node[rest.strip('"')] = value
        else:
            out = apply_overrides(out, {key: value}, source=f"{source}: --set")
    return out


def _study_key(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as the study file's key: ``scientific."optimizer.lr"``."""
    if not loc:
        return "(top level)"
    head, rest = str(loc[0]), list(loc[1:])
    if head == "zipped":
        return "scientific.zip" + (f".{_quote(str(rest[0]))}" if rest else "")
    if head in ("scientific", "nuisance") and rest:
        if head == "nuisance" and rest[0] == "params":
            rest = rest[1:]
        if rest and (head == "scientific" or rest[0] not in NUISANCE_SETTINGS):
            return f"{head}.{_quote(str(rest[0]))}"  # the search space or list as a whole
    key = head
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _study_error(err: ValidationError, source: str) -> SpecError:
    """One line from pydantic's errors about the study file itself."""
    first = err.errors()[0]
    key, value, msg = _study_key(first["loc"]), first.get("input"), first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        loc, parent = first["loc"], key.rpartition(".")[0]
        if len(loc) == 1:
            msg = f"unknown table{did_you_mean(str(loc[0]), TABLES)}; allowed: {', '.join(TABLES)}"
        else:
            msg = "unknown key" + did_you_mean(str(loc[-1]), fields_at(StudySpec, loc[:-1]), f"{parent}.")
    table = first["type"] == "extra_forbidden" and len(first["loc"]) == 1
    shown = "" if first["type"] == "missing" or table or value == {} else f" = {_show(value)}"
    return SpecError(f"{source}: {key}{shown}: {msg}")


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_quote(str(k))} = {_show(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if isinstance(value, (list, str, bool)) or value is None else repr(value)

