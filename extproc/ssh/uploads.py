"""The files an agent uploaded over SFTP in this connection, remembered for its commands.

Ansible uploads each module as a file and runs it with a command (`python3
…/AnsiballZ_ping.py`) that says nothing of what it does. The SFTP relay hands each file
it saw uploaded whole, in order from its first byte, to `remember` (read by
interpret.ansible.read_upload: a module and its arguments, a shell script's text, or
unreadable); an exec's request carries what it remembers of the files its command names
(`for_command`), which interpret/ssh.py reads into input.ssh.

A file is believed only while it is what was uploaded: any SFTP operation of the session
that may change it (an open to write, a removal, a rename of it or of a folder above it,
a setstat, a link's new name) forgets it, and before a command that runs one is decided
and again before the host runs it, the file is read back from the host and its SHA-256
compared (`still_there`): what else changed it (a command, another session, the host) is
forgotten, and the command is judged without it. Bounded: the last MAX_FILES files, each
of at most ansible.MAX_BYTES.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncssh

from extproc.interpret.ansible import MAX_BYTES, Upload

MAX_FILES = 64
# A shell script's text rides in the exec's request (and its record) up to this size;
# beyond, the script is unreadable.
MAX_SCRIPT = 256 * 1024

Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


class Uploads:
    """One connection's uploaded files: the host's path -> what the file is."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, Upload] = OrderedDict()
        self.cwd: str | None = None  # the SFTP session's starting directory (an exec's)

    def remember(self, path: str, upload: Upload) -> None:
        self._files.pop(path, None)
        self._files[path] = carried(upload)
        while len(self._files) > MAX_FILES:
            self._files.popitem(last=False)

    def forget(self, path: str) -> None:
        """`path` and whatever is under it (a folder removed or renamed)."""
        folder = path.rstrip("/") + "/"
        for known in [p for p in self._files if p == path or p.startswith(folder)]:
            del self._files[known]

    def for_command(self, command: str) -> dict[str, Upload]:
        """The files `command` may run: those whose name it holds (interpret/ssh.py
        decides which it runs)."""
        return {path: upload for path, upload in self._files.items()
                if posixpath.basename(path) in command}

    async def still_there(self, connect: Connect, files: dict[str, Upload]) -> dict[str, Upload]:
        """Of `files`, those the host still holds as uploaded (read back, SHA-256
        compared); the others are forgotten."""
        if not files:
            return files
        kept: dict[str, Upload] = {}
        try:
            async with (await connect()).start_sftp_client() as host:
                for path, upload in files.items():
                    if await _digest(host, path) == upload["sha256"]:
                        kept[path] = upload
                    else:
                        self.forget(path)
        except (OSError, asyncssh.Error):
            return {}
        return kept


def carried(upload: Upload) -> Upload:
    """`upload` as an exec's request carries it: a shell script's text only up to
    MAX_SCRIPT bytes, beyond which the script is unreadable."""
    if upload.get("kind") == "shell" and len(upload.get("text", "")) > MAX_SCRIPT:
        return {"sha256": upload["sha256"], "size": upload["size"], "kind": "unreadable",
                "why": f"a script of more than {MAX_SCRIPT} bytes"}
    return upload


async def _digest(host: asyncssh.SFTPClient, path: str) -> str | None:
    try:
        async with host.open(path, "rb", encoding=None) as file:
            data = await file.read(MAX_BYTES + 1)
    except asyncssh.SFTPError:
        return None
    assert isinstance(data, bytes)
    return hashlib.sha256(data).hexdigest()
