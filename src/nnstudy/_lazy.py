"""Package attributes imported on first use (PEP 562).

A package's ``__init__`` names what it exports and the module each name lives in; nothing is imported
until a name is read. So ``nnstudy --help``, a bad study file or ``nnstudy status`` on a missing folder
answer without loading torch, pandas or optuna, and a database server that does not answer is said
without torch or pandas (tests/test_startup.py, benchmarks/startup.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, Iterable[str]], modules: Iterable[str] = ()) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``names`` maps a module (relative, ``".loop"``) to
    the names imported from it on first use; ``modules`` are submodules that are attributes too
    (``nnstudy.train.packed``). A name read once is kept in the package."""
    where = {name: module for module, these in names.items() for name in these}
    submodules = frozenset(modules)
    for name, module in where.items():
        # a name its own module is called by (models.summary.summary): importing that module binds
        # the module over the name (the import system sets it on the package), so it is imported now
        if module.rsplit(".", 1)[-1] == name:
            setattr(sys.modules[package], name, getattr(importlib.import_module(module, package), name))

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
        elif name in submodules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
