"""Spec files as TOML: reading one (bounded, every failure one ``SpecError`` line naming the file),
parsing it, writing a spec dict back (``dump_toml``), and dotted ``--set`` overrides.

Used by run specs (``nnstudy.spec``) and study files (``nnstudy.study.file``) alike; imports no spec.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnstudy.errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MAX_FILE_BYTES", "apply_overrides", "dump_toml", "load_toml", "parse_override", "parse_toml",
           "read_text"]

#: The largest spec file read (run config or study file), and why: a study file is copied into its
#: database and both reports; the ones in studies/ are under 2 KB.
MAX_FILE_BYTES = 1 << 20


def read_text(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A spec file's text; every way it cannot be had is a ``SpecError`` naming the file: missing, a
    folder, unreadable, larger than ``max_bytes``, not UTF-8."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise SpecError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{p}: is a folder, not a TOML file") from None
    except OSError as e:
        raise SpecError(f"{p}: cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise SpecError(f"{p}: larger than {max_bytes >> 10} KiB: a spec file is copied into the study's "
                        "database and both reports (a real one is a few KB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "TOML files are UTF-8") from None


def parse_toml(text: str, source: str | Path) -> dict[str, Any]:
    """TOML text as a dict; a syntax error (or nesting too deep to read) is a ``SpecError``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{source}: malformed TOML: {e}") from None
    except RecursionError:
        raise SpecError(f"{source}: malformed TOML: arrays or tables nested too deeply") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file (``read_text``, ``parse_toml``): every problem is a ``SpecError`` naming it."""
    return parse_toml(read_text(path), path)

def parse_override(text: str) -> tuple[str, Any]:
    """``"optimizer.lr=0.1"`` → ``("optimizer.lr", 0.1)``. Values are read as TOML (numbers, lists,
    booleans, inline tables); anything that is not valid TOML is taken as a string."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected KEY=VALUE, for example optimizer.lr=0.1")
    key, _, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not key:
        raise SpecError(f"--set {text!r}: empty key")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def apply_overrides(
    raw: Mapping[str, Any], overrides: Mapping[str, Any], source: str = "--set"
) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key set. Intermediate tables are created as needed;
    setting a key below a non-table value is a ``SpecError``. Whether the key exists is checked
    later by validation, which names it."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node: dict[str, Any] = out
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise SpecError(f"{source}: {dotted}: {where} is {child!r}, not a table")
            node = child
        node[parts[-1]] = value
    return out


def dump_toml(d: Mapping[str, Any]) -> str:
    """A small TOML writer for spec dictionaries (scalars, lists of scalars, nested tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for name, table in tables:
        sub = dump_toml(table)
        # nested tables get dotted headers
        body, nested = [], []
        for line in sub.rstrip("\n").split("\n"):  # not splitlines: a string may hold U+2028 or U+0085
            (nested if line.startswith("[") or nested else body).append(line)
        lines.append("")
        lines.append(f"[{_toml_key(name)}]")
        lines.extend(body)
        for line in nested:
            if line.startswith("["):
                line = f"[{_toml_key(name)}.{line[1:]}"
            lines.append(line)
    return "\n".join(lines).strip() + "\n"


def _toml_key(k: str) -> str:
    bare = k.isascii() and k.replace("_", "").replace("-", "").isalnum()  # TOML's bare keys: A-Z a-z 0-9 _ -
    return k if bare else _toml_string(k)


def _toml_string(s: str) -> str:
    """A TOML basic string: JSON's escapes, except that characters beyond U+FFFF stay as they are (JSON
    would write surrogate pairs, which TOML refuses) and DEL is escaped (TOML refuses it raw)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
