"""A database failure as one line: what happened (disk full, file deleted, server unreachable), by the
words of the driver's own error found under Optuna's and SQLAlchemy's wrappers."""

from __future__ import annotations

from pathlib import Path

from nnstudy.errors import StoreError
from nnstudy.study._urls import scrub

__all__ = ["original_text", "store_error"]


#: What a database error means, by the words of its original message (SQLite's, psycopg's).
_HAPPENED = (
    ("database or disk is full", "the disk is full"),
    ("no space left", "the disk is full"),
    ("disk quota", "the disk quota is used up"),
    ("readonly database", "the database or its folder is read-only"),
    ("read-only", "the database or its folder is read-only"),
    ("unable to open database file", "the database file cannot be opened or created (its folder is missing or "
                                     "not writable)"),
    ("no such table", "the database file was deleted or replaced while in use"),
    ("disk i/o error", "the disk failed to read or write (or the file was deleted while in use)"),
    ("database is locked", "another process holds the database locked"),
    ("connection refused", "the database server is unreachable"),
    ("could not connect", "the database server is unreachable"),
    ("could not translate host name", "the database server is unreachable"),
    ("server closed the connection", "the database server closed the connection (stopped or restarted?)"),
    ("terminating connection", "the database server closed the connection (stopped or restarted?)"),
    ("connection timeout", "the database server is unreachable"),
    ("timeout expired", "the database server is unreachable"),
)


def original_text(err: BaseException) -> str:
    """The first line of the driver's own error under Optuna's and SQLAlchemy's wrappers."""
    original = err
    seen = set()
    while original is not None and id(original) not in seen:  # Optuna's wrapper → SQLAlchemy's → the driver's
        seen.add(id(original))
        if getattr(original, "orig", None) is not None:
            original = original.orig
            break
        nxt = original.__cause__ or original.__context__
        if nxt is None:
            break
        original = nxt
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


def store_error(where: str, err: BaseException, file: Path | None = None, url: str = "") -> StoreError:
    """One line for a database failure: what happened (disk full, file deleted, server unreachable),
    then the original error text. Optuna wraps the driver's error in its own ("An exception is raised
    during the commit ..."), which names none of these: the driver's is found under it. ``file``: the
    SQLite file, whose absence is then what happened. ``url``: its password is removed from the text."""
    text = scrub(original_text(err), url) if url else original_text(err)
    lower = text.lower()
    happened = next((h for words, h in _HAPPENED if words in lower), None)
    if file is not None and not file.exists():
        happened = "the database file was deleted"
    said = f"{happened}: {text}" if happened else text
    return StoreError(f"{where}: cannot use the study database: {said}")
