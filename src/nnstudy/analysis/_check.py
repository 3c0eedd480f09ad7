"""The ``Check`` record shared by the methodology checks (``checks`` and ``_curve_checks``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WARNING = "warning"
INFO = "info"


@dataclass(frozen=True)
class Check:
    """One methodology finding: ``sentence`` states it with the values in ``numbers``.

    ``severity`` is ``"warning"`` (the answer may be wrong or incomplete) or ``"info"`` (worth
    knowing, expected by design).
    """

    name: str
    severity: str
    sentence: str
    numbers: dict[str, Any] = field(default_factory=dict)
