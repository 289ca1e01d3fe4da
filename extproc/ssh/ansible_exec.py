"""What Ansible asks of an exec that the SSH front answers as a host reached directly
would: its defaults (`ansible -m ping`, no settings) work through the gateway.

- The home: Ansible asks for the home of the account it logged in as with `echo ~USER`
  (its sh plugin's expand_user, run as `/bin/sh -c 'echo ~USER && sleep 0'`), USER
  being the gateway's login name, which names no account on the host (the host would
  echo `~web-1` back, and Ansible would make its temporary folder under a folder of that
  name). That exact text is run asking for `~`, the home of the account the session runs
  as: what the login stands for (`home_probe`).
- Pipelining: a module's payload comes on the exec's stdin (`/bin/sh -c '/usr/bin/python3
  && sleep 0'`). When a Python interpreter is the one command the channel (without a
  terminal) feeds, the front reads the channel up to its end before the decision
  (`read_program`), and the exec is judged by the payload as it is by an uploaded file
  (interpret/ssh.py's run_stdin); the host then gets those bytes and the end.
- fetch: the stat module's checksum is the host file's, and a copy the policy masks
  differs from it, which fetch reports as a bare "checksum mismatch". The front reads the
  file first (for itself), masks it as the SFTP download will, and gives the stat's
  answer the masked copy's checksum, with a line saying so (`masked_fetch`); the stat of a
  file that cannot be served masked is refused, saying why.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import asyncssh

from extproc.interpret import shell as shell_reader
from extproc.interpret.ansible import MAX_BYTES
from extproc.interpret.ssh import loads_other_code, stdin_program
from extproc.masking import Masker, MaskSpec
from extproc.ssh.uploads import Connect
from extproc.terminal.files import Unmaskable, mask_file
from extproc.terminal.relay import READ_SIZE

# Ansible's question for a home, the whole text: `echo ~USER`, then ` && sleep 0`, then
# `EXECUTABLE -c '…'` (a user name as its _USER_HOME_PATH_RE takes one unquoted).
_HOME_PROBE = re.compile(r"(?P<shell>(?:/[\w.-]+)*/?(?:sh|bash|dash) -c ')?echo "
                         r"~(?P<user>[_.A-Za-z0-9][-_.A-Za-z0-9]*)(?: && sleep 0)?(?P<end>'?)")
# How long an exec whose Python reads its program from the channel waits for the end of
# it before it is decided without it (Ansible sends the payload and its end at once).
PROGRAM_SECONDS = 10.0


def home_probe(command: str, login: str | None) -> str | None:
    """`command` as the host is to run it when it is Ansible's question for the home of
    `login` (the gateway's login name): the same text asking for `~`; None for any
    other command."""
    m = _HOME_PROBE.fullmatch(command)
    if m is None or login is None or m["user"] != login or bool(m["shell"]) != bool(m["end"]):
        return None
    return command[:m.start("user") - 1] + "~" + command[m.end("user"):]


def fed_program(command: str) -> bool:
    """Whether `command` runs what its channel sends as a Python program (pipelining)."""
    return not loads_other_code(command) and stdin_program(
        shell_reader.read(command, stdin=True), command) is not None


async def read_program(process: asyncssh.SSHServerProcess[bytes]) -> tuple[bytes, bool]:
    """What the agent's channel sends, up to its end, ansible.MAX_BYTES and
    PROGRAM_SECONDS: the bytes read, and whether they are all it sends."""
    loop = asyncio.get_running_loop()
    until = loop.time() + PROGRAM_SECONDS
    data = bytearray()
    while len(data) <= MAX_BYTES:
        try:
            chunk = await asyncio.wait_for(process.stdin.read(READ_SIZE), until - loop.time())
        except (TimeoutError, asyncssh.TerminalSizeChanged, asyncssh.SignalReceived,
                asyncssh.BreakReceived):
            break
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


@dataclass(frozen=True, slots=True)
class MaskedFetch:
    """Ansible's fetch of a file the policy masks: the SHA-1 the host's stat module gives
    (`host`) and the masked copy's (`masked`; None: it cannot be served masked), and the
    line the agent is shown after the module's JSON (Ansible shows it as a warning)."""

    host: str | None
    masked: str | None
    note: str

    def answer(self, stdout: bytes) -> bytes:
        """The stat module's answer with the masked copy's checksum for the host's."""
        if self.host is None or self.masked is None:
            return stdout
        return stdout.replace(self.host.encode(), self.masked.encode())


async def masked_fetch(meaning: Any, spec: MaskSpec, masker: Masker, connect: Connect,
                       cwd: str | None, masked_max: int) -> MaskedFetch | None:
    """What fetch is to see when the exec runs its stat of a file (`follow`,
    `get_checksum`) whose download the policy masks; None for any other exec or a file
    the mask leaves as it is. The file is read here, by the gateway for itself (nothing of
    it goes to the agent), and masked as the SFTP download masks it."""
    modules = meaning.get("ansible") if isinstance(meaning, dict) else None
    stat = next((m["args"] for m in modules or () if m.get("module") == "ansible.builtin.stat"
                 and m["args"].get("follow") is True and m["args"].get("get_checksum")
                 and isinstance(m["args"].get("path"), str)), None)
    if stat is None:
        return None
    path = named = stat["path"]
    if path.startswith("~/") and cwd is not None:
        path = posixpath.join(cwd, path[2:])
    elif not path.startswith("/") and cwd is not None:
        path = posixpath.join(cwd, path)
    try:
        async with (await connect()).start_sftp_client() as host:
            attrs = await host.stat(path)
            if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                return None
            if (attrs.size or 0) > masked_max:
                raise Unmaskable(f"{attrs.size} bytes, more than the {masked_max} a masked "
                                 "download reads (ssh.sftp_masked_max_bytes)")
            async with host.open(path, "rb", encoding=None) as file:
                data = await file.read(masked_max)
        assert isinstance(data, bytes)
        masked, _ = await asyncio.to_thread(mask_file, masker, spec, data)
    except Unmaskable as exc:
        return MaskedFetch(None, None, (
            f"Ansible's fetch of {named} is refused: the policy masks what this host "
            f"sends, and this file cannot be served masked ({exc})"))
    except (OSError, asyncssh.Error):
        return None
    if masked == data:
        return None
    return MaskedFetch(
        hashlib.sha1(data).hexdigest(), hashlib.sha1(masked).hexdigest(),
        f"tollgate: masks secrets in {named} when it is downloaded: the copy fetched "
        "through tollgate has them as `*`, and the checksum given is that copy's")
