"""Files written whole and with their mode from the first byte: keys and what a login
keeps, never readable by others even for a moment, never seen half written."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False) -> None:
    """`data` as `path`: written into a new file beside it made with `mode` (0600: its
    owner's alone; the umask cannot widen it, and it is set again so none narrows a
    public file), flushed to disk, then moved into place. Given `exclusive`, it is put
    there only if no file is (FileExistsError otherwise: of two processes making the same
    key at once, the first one's stays). A missing folder is made 0700. Raises OSError."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fresh = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(fresh, path)  # fails, rather than replaces, when `path` exists
        else:
            os.replace(fresh, path)
    finally:
        fresh.unlink(missing_ok=True)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`, however many writes it takes; raises OSError."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def sync_folder(folder: Path) -> None:
    """A file made, renamed or deleted in `folder`, made durable. Raises OSError."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
