"""The error hierarchy: every mistake a user can make is one of these.

The CLI turns any ``NnstudyError`` into one line on stderr and exit code 2, without a traceback.
Anything else escaping the library is our bug, and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

__all__ = ["NnstudyError", "SpecError", "DataError", "StoreError", "PathError", "os_error", "path_errors"]


#: Every character ``str.splitlines`` breaks at, written as its escape: a user's value quoted in a
#: message (a key holding a newline, say) must not break the one line.
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class NnstudyError(Exception):
    """Base of all user-facing errors. ``str(err)`` is one line: where, what, what is allowed (a line
    break inside a quoted value is shown as its escape, ``\\n``)."""

    def __str__(self) -> str:
        return super().__str__().translate(_LINE_BREAKS)


class SpecError(NnstudyError, ValueError):
    """A run or study specification is invalid (bad key, type, value, impossible budget)."""


class DataError(NnstudyError):
    """A dataset is missing, corrupt (checksum), or cannot be fetched from any source."""


class StoreError(NnstudyError):
    """A study store (SQLite file or PostgreSQL server) is missing, corrupt or unreachable."""


class PathError(NnstudyError):
    """A file or folder nnstudy must write cannot be used: not writable, a file where a folder belongs,
    a full disk, a symbolic link out of the folder, or a user's file the report will not replace."""


#: What an OS error means for the user, where ``strerror`` alone does not say it.
_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "no permission to write here",
    errno.EPERM: "no permission to write here",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
}


def os_error(path: str | Path, err: OSError, doing: str = "cannot write") -> PathError:
    """One line from an ``OSError``: ``path: doing: what happened (strerror)``. The path is the one
    named by the error when it has one (the file that failed), else ``path``."""
    where = err.filename if isinstance(err.filename, str) and err.filename else str(path)
    text = err.strerror or type(err).__name__
    hint = _HINTS.get(err.errno or -1)
    return PathError(f"{where}: {doing}: {hint} ({text})" if hint else f"{where}: {doing}: {text}")


@contextlib.contextmanager
def path_errors(path: str | Path, doing: str = "cannot write") -> Iterator[None]:
    """Turn any ``OSError`` inside into ``os_error(path, ...)``: one line naming the path."""
    try:
        yield
    except OSError as e:
        raise os_error(path, e, doing) from None
