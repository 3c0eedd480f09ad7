"""Output folders checked before work starts: a folder nnstudy will write into must be a folder (or
creatable as one) that this process can write in, or the command stops with one line naming it,
before it trains anything or writes anything."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nnstudy.errors import PathError, os_error

__all__ = ["check_folder"]


def check_folder(path: str | Path, what: str = "") -> None:
    """Raise ``PathError`` unless ``path`` is a folder this process can create files in, or could be
    created as one (its nearest existing ancestor is such a folder). A probe file is created and
    removed, so a read-only mount, a full quota or missing permission (root included) shows now.
    ``what`` (``--dir``, ``--out``) is added to the message."""
    p = Path(path)
    named = f" ({what})" if what else ""
    probe = p
    while not probe.exists():
        if probe.is_symlink():
            raise PathError(f"{probe}{named}: a symbolic link to nowhere ({os.readlink(probe)})")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        needed = "" if probe == p else f" that {p} would be created in"
        raise PathError(f"{probe}{named}: is a file, not a folder{needed}")
    try:
        fd, name = tempfile.mkstemp(prefix=".nnstudy-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        e.filename = None  # the probe's name means nothing to the user: name the folder
        raise os_error(f"{probe}{named}", e) from None
