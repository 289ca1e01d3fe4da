"""The SSH front: where agents' ssh, scp, sftp, paramiko, asyncssh and Fabric log in.

    client ─TCP─► Envoy (tcp_proxy) ─► this worker's port (asyncssh server)
      user name     → the target (`match.login`): `ssh web-1@gateway`
      password      → the agent's token, verified as Envoy would (issuer, audience, keys)
      certificate   → one `tollgate ssh login` issued from a token (signed by ssh's
                      user CA for tollgate's principal, carrying the token's verified
                      claims: certificates.py)
      exec          → commands.run_exec: decided, run, output masked
      shell         → terminal.run_shell: each line decided, output masked, the
                      session recorded (asciicast) for replay
      sftp, scp     → sftp.SftpRelay: each path decided on the host's real path,
                      transfers recorded with size and SHA-256
      forwarding    → refused (port forwarding, agent forwarding, X11), recorded

The host is reached with the gateway's own key, its host key pinned (upstream.py), once
per agent connection, when the first channel needs it. Envoy's network ext_proc filter
cannot originate bytes (no key exchange, no prompt, no hold), so, as for PostgreSQL,
Envoy terminates TCP and tollgate speaks the protocol.

The login is an exchange of its own in the record (`LOGIN`), refused or not, so a wrong
token leaves a trace though the host never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from extproc.codecs.refusal import Refusal, Refused
from extproc.config import SshFront, Target
from extproc.exchange.pipeline import Pipeline
from extproc.ssh.certificates import UserCA, read_certificates
from extproc.ssh.commands import run_exec, say
from extproc.ssh.sftp import SftpRelay
from extproc.ssh.terminal import run_shell
from extproc.ssh.uploads import Uploads
from extproc.ssh.upstream import Keys
from extproc.terminal.gate import FAILED_STATUS, REFUSED_STATUS, Door, Gate, Transfers, Verdict

if TYPE_CHECKING:
    from extproc.approvals.auth import Verifier
    from extproc.exchange.live import LiveSession
    from extproc.recording.terminal import TerminalRecordings

log = logging.getLogger("tollgate.ssh")
# asyncssh says at INFO what tollgate records itself (each connection, its addresses,
# its channels): with Envoy's health check connecting every second, lines of noise.
logging.getLogger("asyncssh").setLevel(logging.WARNING)
# How long an ended session's channels may take to close before the connection does.
_TOLD_SECONDS = 1.0


class Front:
    """One worker's SSH listener and the connections it serves."""

    def __init__(self, settings: SshFront, worker: int, pipeline: Pipeline,
                 verifier: Verifier, targets: Sequence[Target],
                 host_key: asyncssh.SSHKey, keys: Keys, ca: UserCA | None,
                 recordings: TerminalRecordings) -> None:
        self._settings, self._worker = settings, worker
        self.ca, self.recordings = ca, recordings
        self.pipeline, self.verifier = pipeline, verifier
        self.keys = keys
        self.targets = {t.match.login: t for t in targets
                        if t.protocol == "ssh" and t.match.login}
        self._host_key = host_key
        self.idle = settings.idle_release_ms / 1000
        self._server: asyncssh.SSHAcceptor | None = None
        self.connections: set[_Connection] = set()

    async def start(self) -> None:
        host, port = self._settings.address_of(self._worker)
        try:
            self._server = await asyncssh.create_server(
                lambda: _Connection(self), host, port,
                server_host_keys=[self._host_key], process_factory=self._process,
                authorized_client_keys=self.ca.authorized_keys() if self.ca else None,
                public_key_auth=self.ca is not None, kbdint_auth=False,
                encoding=None, line_editor=False, agent_forwarding=False,
                x11_forwarding=False, sftp_factory=self._sftp, allow_scp=True,
                login_timeout=self._settings.login_seconds,
                server_version="Tollgate")
        except OSError as exc:
            raise OSError(f"cannot listen for SSH clients on {host}:{port}: "
                          f"{exc.strerror}") from None
        log.info("serving SSH clients on %s:%d (%d targets)", host, port, len(self.targets))

    async def stop(self, grace: float) -> None:
        """No new connections; those open get `grace` seconds, then are closed."""
        if self._server is not None:
            self._server.close()
        if not self.connections:
            return
        waits = [c.closed.wait() for c in self.connections]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), grace)
        for connection in list(self.connections):
            connection.close()

    def _sftp(self, channel: asyncssh.SSHServerChannel[bytes]) -> SftpRelay:
        """An SFTP session (and legacy scp's): each operation decided and relayed."""
        connection = channel.get_connection().get_owner()
        assert isinstance(connection, _Connection) and connection.gate is not None
        return SftpRelay(channel, Transfers(connection.gate),
                         connection.upstream, self._settings.sftp_masked_max_bytes,
                         connection.uploads)

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """A session channel's request: a command, a shell or a subsystem."""
        connection = process.get_extra_info("connection").get_owner()
        assert isinstance(connection, _Connection)
        gate = connection.gate
        connection.processes.add(process)
        try:
            if gate is None:
                raise RuntimeError("a channel before the login ended")
            if process.subsystem is not None:
                text = gate.refused("SUBSYSTEM", Refused(
                    403, "unsupported_subsystem", f"subsystem {process.subsystem!r} is not "
                    "relayed (sftp is)"))
                say(process, text)
                process.exit(REFUSED_STATUS)
            elif process.command is not None:
                await run_exec(process, gate, connection.upstream, self.idle,
                               connection.uploads, self._settings.sftp_masked_max_bytes)
            else:
                await run_shell(process, gate, connection.upstream, self.idle,
                                self.recordings)
        except Exception:
            log.exception("SSH session of %s failed", connection.session_id)
            with contextlib.suppress(OSError, asyncssh.Error):
                process.exit(FAILED_STATUS)
        finally:
            connection.processes.discard(process)


class _Connection(asyncssh.SSHServer):
    """One agent's connection: its target, its identity, its way to the host."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self.session_id = str(uuid.uuid4())
        self.gate: Gate | None = None
        self.uploads = Uploads()  # what its SFTP sessions uploaded, for its commands
        self.closed = asyncio.Event()
        self._conn: asyncssh.SSHServerConnection | None = None
        self._target: Target | None = None
        self._claims: dict[str, Any] | None = None
        self._method = ""
        self._upstream: asyncssh.SSHClientConnection | None = None
        self._connecting = asyncio.Lock()
        # Its session channels running a command or a shell: each told, should the
        # session be ended (live.py), on its stderr.
        self.processes: set[asyncssh.SSHServerProcess[bytes]] = set()
        self._live: LiveSession | None = None
        self._ending: asyncio.Task[None] | None = None

    # -- the connection's life ----------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._front.connections.add(self)
        if self._front.ca is not None:
            read_certificates(conn, self._front.ca, self._certified)

    def _certified(self, username: str, claims: dict[str, Any] | None,
                   problem: str | None) -> bool:
        """A login with a certificate of tollgate's CA (certificates.read_certificates)."""
        if claims is None:
            self._refused(username, Refused(401, "unauthenticated",
                                             f"the certificate is refused: {problem}"))
            return False
        if self._refused_target(username) or self._locked(username, claims):
            return False
        self._claims, self._method = claims, "certificate"
        return True

    def connection_lost(self, _exc: Exception | None) -> None:
        self._front.connections.discard(self)
        if self._live is not None:
            self._front.pipeline.live.close(self._live)
        if self._ending is not None:
            self._ending.cancel()
        if self._upstream is not None:
            self._upstream.close()
        self.closed.set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    async def upstream(self) -> asyncssh.SSHClientConnection:
        """The gateway's connection to the host, opened by the first channel needing it."""
        async with self._connecting:
            if self._upstream is None:
                assert self._target is not None
                self._upstream = await self._front.keys.connect(self._target)
            return self._upstream

    # -- logging in ---------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        self._target = self._front.targets.get(username)
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        """The password is the agent's token."""
        if self._refused_target(username):
            return False
        claims, problem = await self._front.verifier.verdict(password.strip())
        if problem is not None:
            self._refused(username, Refused(401, "unauthenticated", problem))
            return False
        if self._locked(username, claims):
            return False
        self._claims, self._method = claims, "token"
        return True

    def _locked(self, username: str, claims: dict[str, Any] | None) -> bool:
        """A login of a locked identity (live.py): refused, recorded, and its client
        told why in an authentication banner (which ssh prints on stderr)."""
        pipeline = self._front.pipeline
        lock = pipeline.live.locked(pipeline.subject(claims))
        if lock is None:
            return False
        self._refused(username, Refused(403, "locked", lock.message()))
        if self._conn is not None:
            self._conn.send_auth_banner(f"tollgate: {lock.message()}\r\n")
        return True

    def _refused_target(self, username: str) -> bool:
        if self._target is None:
            self._refused(username, Refused(404, "unknown_target",
                                             f"no target serves login {username!r}"))
            return True
        return False

    def _refused(self, username: str, bad: Refusal) -> None:
        """A login refused: recorded under the target it named, if any."""
        gate = Gate(self._front.pipeline, self._target, None, self.session_id,
                    self._client(), self._door())
        gate.refused("LOGIN", bad)
        log.info("SSH login as %r refused: %s", username, bad.message)

    def _door(self) -> Door:
        """What the SSH front's requests look like to the pipeline: `/<target>`."""
        name = self._target.name if self._target is not None else "unknown"
        login = self._target.match.login if self._target is not None else None
        return Door("ssh", f"/{name}", detail=f"login {login!r}")

    def auth_completed(self) -> None:
        """Logged in: the LOGIN exchange, and the gate every later request goes through."""
        assert self._target is not None
        gate = self.gate = Gate(self._front.pipeline, self._target, self._claims,
                                self.session_id, self._client(), self._door(), self.closed)
        act = gate.open("LOGIN")
        exchange = act.exchange
        exchange.request = exchange.evidence.request = {
            "method": "LOGIN", "path": f"/{self._target.name}", "query": {},
            "headers": {"x-session-id": self.session_id}, "body": None}
        exchange.outcome.update({"tollgate.outcome": "logged in",
                                 "tollgate.ssh.auth": self._method})
        # A login the record cannot take is let in unrecorded: each request after it is
        # refused until the record takes them again.
        act.admit(required=False)
        gate.end(Verdict(act))
        self._live = gate.open.listed("ssh")
        self._ending = asyncio.ensure_future(self._end_when_ended(self._live))

    async def _end_when_ended(self, live: LiveSession) -> None:
        """Once the session is ended (live.py): each channel running a command or a
        shell is told why on its stderr and exits (255, as ssh does when it loses its
        connection), then the connection closes. SFTP channels close with it."""
        await live.ended.wait()
        farewell = f"{live.farewell()}\r\n".encode()
        told = list(self.processes)
        for process in told:
            with contextlib.suppress(OSError, asyncssh.Error):
                process.stderr.write(farewell)
                process.exit(FAILED_STATUS)
        # The client's side of each channel closes once it has read the message and the
        # exit status; the connection is closed then (or after a second at most).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(
                *(p.wait_closed() for p in told), return_exceptions=True), _TOLD_SECONDS)
        log.info("SSH session %s ended by %s: %s", self.session_id, live.by, live.reason)
        self.close()

    def _client(self) -> str:
        version = self._conn.get_extra_info("client_version") if self._conn else None
        return str(version or "")

    # -- forwarding: refused ------------------------------------------------------------

    def connection_requested(self, dest_host: str, dest_port: int, _orig_host: str,
                             _orig_port: int) -> bool:
        self._forward("local_port", dest_host, dest_port)
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._forward("remote_port", listen_host, listen_port)
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self._forward("local_socket", dest_path, 0)
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self._forward("remote_socket", listen_path, 0)
        return False

    def _forward(self, kind: str, host: str, port: int) -> None:
        if self.gate is not None:
            self.gate.refused("FORWARD", Refused(
                403, "forwarding_refused", f"{kind.replace('_', ' ')} forwarding to "
                f"{host}{f':{port}' if port else ''} is refused: tollgate relays commands, "
                "shells and file transfers only"))


def read_host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's host key, or ValueError saying how to make one."""
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        raise ValueError(f"ssh.host_key_file {path}: no such file (make one: ssh-keygen -t "
                         f"ed25519 -N '' -f {path})") from None
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ValueError(f"ssh.host_key_file {path}: {exc}") from None
