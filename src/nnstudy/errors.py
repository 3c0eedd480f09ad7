"""The error hierarchy: every mistake a user can make is one of these.

The CLI turns any ``NnstudyError`` into one line on stderr and exit code 2, without a traceback.
Anything else escaping the library is our bug, and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["NnstudyError", "SpecError", "DataError", "StoreError"]


class NnstudyError(Exception):
    """Base of all user-facing errors. ``str(err)`` is one line: where, what, what is allowed."""


class SpecError(NnstudyError, ValueError):
    """A run or study specification is invalid (bad key, type, value, impossible budget)."""


class DataError(NnstudyError):
    """A dataset is missing, corrupt (checksum), or cannot be fetched from any source."""


class StoreError(NnstudyError):
    """A study store (SQLite file or PostgreSQL server) is missing, corrupt or unreachable."""
