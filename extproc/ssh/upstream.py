"""The gateway's own connection to a host: its key, the host's key pinned.

The agent never holds the key the host trusts, nor chooses what host key to accept:
each target names its host's key (`ssh.host_key`) or a known_hosts file, and a host that
shows another key is not reached. Keys are read once per process (`Keys`), not per
connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh

from extproc.config import SshTarget, Target


class UpstreamError(Exception):
    """The host could not be reached as configured (the message says why)."""


class Keys:
    """The targets' keys and pinned host keys, read at start."""

    def __init__(self, targets: list[Target], resolve: Callable[[Path], Path]) -> None:
        self._client: dict[str, asyncssh.SSHKey] = {}
        self._known: dict[str, Any] = {}
        for target in targets:
            settings = target.ssh
            if settings is None:
                continue
            path = resolve(settings.key_file)
            try:
                self._client[target.name] = asyncssh.read_private_key(path)
            except (OSError, asyncssh.KeyImportError) as exc:
                raise ValueError(f"target {target.name}: ssh.key_file {path}: {exc}") from None
            self._known[target.name] = _known_hosts(target.name, settings, resolve)

    async def connect(self, target: Target) -> asyncssh.SSHClientConnection:
        """A connection to `target`'s host as its account, or UpstreamError."""
        settings = target.ssh
        assert settings is not None
        host, port = settings.address
        try:
            return await asyncio.wait_for(asyncssh.connect(
                host, port, username=settings.user, client_keys=[self._client[target.name]],
                known_hosts=self._known[target.name], agent_path=None, agent_forwarding=False,
                config=None, password_auth=False, kbdint_auth=False, gss_auth=False,
                preferred_auth="publickey"), settings.connect_timeout_seconds)
        except TimeoutError:
            raise UpstreamError(f"no answer from {host}:{port} within "
                                f"{settings.connect_timeout_seconds:g} s") from None
        except asyncssh.HostKeyNotVerifiable:
            raise UpstreamError(f"{host}:{port} showed a host key other than the one "
                                "pinned for this target (ssh.host_key)") from None
        except asyncssh.PermissionDenied:
            raise UpstreamError(f"{host}:{port} refused the gateway's key for "
                                f"{settings.user}") from None
        except (OSError, asyncssh.Error) as exc:
            raise UpstreamError(f"{host}:{port}: {exc}") from None


def _known_hosts(name: str, settings: SshTarget, resolve: Callable[[Path], Path]) -> Any:
    """What asyncssh checks the host's key against: the pinned key as the only trusted
    one, or the known_hosts file's entries for the host."""
    if settings.host_key is not None:
        try:
            key = asyncssh.import_public_key(settings.host_key)
        except asyncssh.KeyImportError as exc:
            raise ValueError(f"target {name}: ssh.host_key: {exc}") from None
        return ([key], [], [])
    assert settings.host_keys_file is not None
    path = resolve(settings.host_keys_file)
    try:
        return asyncssh.read_known_hosts(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"target {name}: ssh.host_keys_file {path}: {exc}") from None


def bounded(remote: asyncssh.SSHClientProcess[bytes]) -> asyncssh.SSHClientProcess[bytes]:
    """`remote`, whose output the host can send no faster than tollgate relays it.

    asyncssh (2.24.1) re-opens a channel's whole receive window each time it hands a
    piece of buffered data to its reader, however much more it still holds: a host
    faster than tollgate (masking reads at tens of MB/s) refills the window on every
    pause and resume, and the buffer grows with the output (a 150 MB `cat` held ~130 MB
    here). Counting what the channel still holds as window in use keeps it to one
    window, as SSH's flow control means it to be."""
    channel = remote.channel
    deliver = channel._deliver_data

    def deliver_counting_held(data: bytes, datatype: Any) -> None:
        held = sum(len(piece) for piece, _ in channel._recv_buf)
        channel._recv_window += held
        try:
            deliver(data, datatype)
        finally:
            channel._recv_window -= held

    channel._deliver_data = deliver_counting_held  # type: ignore[method-assign]
    return remote
