"""Development secrets kept in files under the data dir: written once, readable by the owner
only, never replaced (the key of a process that lost the race to create it is dropped)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_secret_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` with mode 0600 in a 0700 directory, atomically; when the
    file exists already (another process won the race), it is kept as it is."""
    ensure_private_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(descriptor, content)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # atomic, and never replaces an existing file
        _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def ensure_private_directory(directory: Path) -> None:
    """Create ``directory`` (mode 0700) when missing."""
    if directory.is_dir():
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
