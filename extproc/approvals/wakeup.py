"""Word of a decision between the processes sharing one SQLite store (PostgreSQL has NOTIFY).

Each process binds a Unix datagram socket in one folder per store; a decision sends the
approval's id to every other socket there, and the process holding its request wakes it
at once instead of at its next poll. A lost word only delays a request (its waiter still
polls), so sending never blocks and never fails a decision.

The folder is `<temp>/tollgate-<uid>/<hash of the store's path>`, not beside the store: a
socket's path has at most 107 bytes, which a store's folder alone can exceed. It is the
user's own (0700): another user can neither listen nor send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("tollgate.approvals")

_MOST_BYTES = 256  # an approval id is ~19


def folder_for(store_path: Path) -> Path:
    """Where the processes of the SQLite store at `store_path` meet."""
    digest = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tollgate-{os.getuid()}" / digest


def _own_folder(path: Path) -> None:
    """Make `path` (and its parent) the user's alone, or raise OSError saying why not."""
    for folder in (path.parent, path):
        folder.mkdir(mode=0o700, exist_ok=True)
        found = folder.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() \
                or found.st_mode & 0o077:
            raise OSError(f"{folder} is not a folder of this user's alone")


class Siblings:
    """This process's socket among the store's others: `send` tells them, `on_word` hears."""

    def __init__(self, folder: Path, on_word: Callable[[str], None]) -> None:
        self._folder, self._on_word = folder, on_word
        self._path = folder / f"{os.getpid()}-{secrets.token_hex(3)}"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    @classmethod
    def open(cls, store_path: Path, on_word: Callable[[str], None]) -> Siblings | None:
        """Bound and heard on the running loop; None (logged: waiters poll) if it cannot be."""
        siblings = cls(folder_for(store_path), on_word)
        try:
            siblings._bind()
        except OSError as exc:
            siblings._socket.close()
            log.warning("approvals: decisions made by other processes on %s reach waiters "
                        "here only when they poll: %s", store_path, exc)
            return None
        asyncio.get_running_loop().add_reader(siblings._socket.fileno(), siblings._readable)
        return siblings

    def _bind(self) -> None:
        for attempt in range(3):
            _own_folder(self._folder)
            try:
                self._socket.bind(str(self._path))
                return
            except FileNotFoundError:  # the store's last other process removed the folder
                if attempt == 2:
                    raise

    def send(self, approval_id: str) -> None:
        """Tell every other process of the store; a socket nobody holds any more is removed."""
        word = approval_id.encode()
        for path in self._folder.iterdir():
            if path == self._path:
                continue
            try:
                self._socket.sendto(word, str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # its process is gone
            except OSError as exc:  # its queue is full, say: it polls
                log.debug("approvals: no word to %s: %s", path, exc)

    def _readable(self) -> None:
        while True:
            try:
                word = self._socket.recv(_MOST_BYTES)
            except BlockingIOError:
                return
            self._on_word(word.decode("ascii", "replace"))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self._path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: other processes of the store
            self._folder.rmdir()
