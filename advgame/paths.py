"""Output directories checked up front, so that a bad one is one line naming it, not a traceback later."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path


def writable_dir_problem(path: Path | str) -> str | None:
    """None if `path` is a directory this process can write into, or one it can create; else one line saying
    why. Creates nothing: a probe file is written into `path`, or into its nearest existing ancestor, and
    removed at once."""
    path = Path(path)
    try:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            blocker = "it" if existing == path else existing
            return f"cannot write to {path}: {blocker} exists and is not a directory"
        probe = existing / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ValueError) as err:  # ValueError: an embedded NUL byte
        return f"cannot write to {path}: {describe_os_error(err)}"
    return None


def describe_os_error(err: BaseException) -> str:
    """One line for an OSError ('No space left on device' rather than a traceback)."""
    if isinstance(err, OSError):
        text = err.strerror or os.strerror(err.errno) if err.errno else str(err)
        if err.errno == errno.ENOSPC:
            text = "no space left on device"
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"{text}{where}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__
