"""Store URLs: how one is shown (never with its password), which driver it takes, and what a database
server's error means (away for a moment: wait; silent: already waited; anything else: say it now)."""

from __future__ import annotations

import os

__all__ = ["db_timeout", "engine_url", "redact", "scrub", "trouble", "without_password"]


def db_timeout() -> float:
    """Seconds a database server may take to answer (``NNSTUDY_DB_TIMEOUT``, default 30)."""
    try:
        return max(1.0, float(os.environ.get("NNSTUDY_DB_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def _secrets(url: str) -> list[str]:
    """The password in ``url`` (user:password@ or ?password=), as written and percent-decoded."""
    import re
    from urllib.parse import unquote

    found = re.findall(r"//[^/@:]*:([^@]*)@", url) + re.findall(r"[?&]password=([^&]*)", url)
    return [x for p in found if p for x in dict.fromkeys((p, unquote(p)))]


def scrub(text: str, url: str) -> str:
    """``text`` with every form of ``url``'s password replaced by ``***``."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def without_password(url: str) -> str:
    """``url`` without its password (user:password@, ``?password=``); the server finds it again in
    ``~/.pgpass`` or ``PGPASSWORD``."""
    import re

    shown = re.sub(r"(//[^/@:]*):[^@]*@", r"\1@", url)
    return re.sub(r"([?&])password=[^&]*&?", r"\1", shown).rstrip("?&")


def redact(url: str) -> str:
    """``url`` as it may be shown: a SQLite URL as its file's path; a server URL without its password
    and without the driver name (``postgresql+psycopg`` → ``postgresql``)."""
    import re

    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return re.sub(r"^(\w+)\+\w+://", r"\1://", without_password(url))


#: What a database server that is away says (refused, restarting, cut off): worth waiting for.
_AWAY = ("connection refused", "could not connect", "server closed the connection", "terminating connection",
         "the database system is starting up", "the database system is shutting down", "connection is closed",
         "connection reset", "consuming input failed", "ssl syscall", "no route to host", "connection not open",
         "the connection is lost", "server conn crashed")
#: What one that does not answer says: already waited for, so not retried.
_SILENT = ("timeout expired", "timed out", "connection timeout")


def trouble(e: BaseException | None) -> str | None:
    """``"away"`` (a server refusing or restarting), ``"silent"`` (one that did not answer in time),
    or None (a bad password, query or file: no point in waiting), from an exception and its causes."""
    while e is not None:
        text = str(e).lower()
        if any(s in text for s in _SILENT):
            return "silent"
        if any(s in text for s in _AWAY):
            return "away"
        e = e.__cause__ or e.__context__
    return None


def engine_url(url: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver, psycopg2; where only psycopg 3 (this
    project's ``postgres`` extra) is installed, use it."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg2") is None \
                and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
