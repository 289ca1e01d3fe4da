"""What an SSH request means: `input.ssh`, read from what the SSH front saw.

The front (extproc/ssh/) turns each thing an agent asks of a host — a command to run
(`exec`), an interactive shell, a line typed into it, a file operation of SFTP, a
forwarding — into a request whose body names it; this reads that body into the policy's
`input.ssh`: the host and account it would act as, and for a command line what the shell
reader makes of it (every argv, wrappers and nested scripts unwrapped; what only running
it can tell, `opaque`; the files its redirections write). The reader is the one tool calls
and `kubectl exec` are judged by, so a command is judged the same wherever it comes from.
"""

from __future__ import annotations

from typing import Any

from extproc.codecs.message import Request
from extproc.config import Target
from extproc.interpret import _Plain
from extproc.interpret import shell as shell_reader

# What the front may ask about, as input.ssh.request.
REQUESTS = frozenset({"exec", "shell", "line", "sftp", "forward", "subsystem"})


class Ssh(_Plain):
    """input.ssh for one ssh target (its host and account are fixed per target)."""

    key = "ssh"

    def __init__(self, target: Target) -> None:
        settings = target.ssh
        assert settings is not None
        host, port = settings.address
        self._static = {"target": target.name, "host": host, "port": port,
                        "user": settings.user}

    def request(self, request: Request) -> dict[str, Any]:
        body = request["body"] if isinstance(request["body"], dict) else {}
        kind = body.get("request")
        if kind not in REQUESTS:
            raise ValueError(f"not an SSH request: {kind!r}")
        command = body.get("command")
        # An exec's channel is its commands' stdin, which tollgate passes unread: a shell
        # or interpreter fed from it (`ssh host sh < script.sh`) runs a script nobody saw.
        reading = (shell_reader.read(command, stdin=kind == "exec",
                                     interactive=kind == "line")
                   if isinstance(command, str) else shell_reader.Reading())
        return {
            **self._static,
            "request": kind,
            "session_id": request["headers"].get("x-session-id"),
            "pty": bool(body.get("pty")),
            "command": command if isinstance(command, str) else None,
            "argv": reading.commands[0] if reading.commands else [],
            "commands": reading.commands,
            "opaque": reading.opaque,
            "writes": reading.writes,
            "readable": body.get("readable", True) is not False,
            "sftp": body.get("sftp"),
            "forward": body.get("forward"),
            "subsystem": body.get("subsystem"),
        }

    @staticmethod
    def attributes(meaning: dict[str, Any], _request: Request | None) -> dict[str, Any]:
        found = {"tollgate.ssh.request": meaning["request"]}
        if meaning["argv"]:
            found["tollgate.ssh.program"] = meaning["argv"][0]
        if meaning["sftp"]:
            found["tollgate.ssh.sftp.operation"] = meaning["sftp"].get("operation")
        return found
