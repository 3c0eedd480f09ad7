"""Reports: figures and documents rendered from computed numbers (``analysis`` computes, this draws)."""

from __future__ import annotations

__all__: list[str] = []
