"""Who a MySQL client is, and where it goes: the steps of a login that COM_CHANGE_USER,
which rebinds a logged-in session to another identity, takes again.

The agent's token is the password, asked for as mysql_clear_password (any other plugin's
answer is a scramble of it, which a token cannot be checked against) and verified as
Envoy verifies tokens; it travels inside TLS unless the target allows otherwise. The
database the client names picks the target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.config import Target
from extproc.exchange.act import Opener
from extproc.exchange.pipeline import Pipeline
from extproc.mysql.auth import CLEAR_PASSWORD
from extproc.mysql.framing import Packet, encode
from extproc.mysql.handshake import AuthSwitchRequest, encode_auth_switch

if TYPE_CHECKING:
    from extproc.approvals.auth import Verifier

# Every exchange of the front, its logins too: the conventions' name, and the older one
# (tests/support/semconv.py's LEGACY) that searches written against it still find.
DB_SYSTEM = {"db.system": "mysql", "db.system.name": "mysql"}


@dataclass(frozen=True, slots=True)
class Bound:
    """What a login (or a COM_CHANGE_USER) settled: who, under which user name, on which
    target and database (None and "": a connection naming no database, for KILL only),
    in which session, over TLS or not, with the capabilities the client and tollgate
    agreed."""

    target: Target | None
    claims: dict[str, Any] | None
    user: str
    database: str
    session_id: str
    tls: bool
    capabilities: int
    # The role the session runs as on the server (the login's decision; None: the
    # gateway's account), the commands that set the session up so (run again after a
    # reset) and the settings they keep from the client (database_roles.py).
    role: str | None = None
    setup: tuple[bytes, ...] = ()
    owned: Mapping[str, int | None] = field(default_factory=dict)
    # Set once the client's connection is gone (listener.py): a hold stops waiting.
    gone: asyncio.Event | None = field(default=None, compare=False)

    def context(self) -> dict[str, Any]:
        """input.mysql, but its `command`."""
        roles = self.target.mysql.roles if self.target and self.target.mysql else ()
        return {"database": self.database, "user": self.user,
                "session_id": self.session_id, "tls": self.tls, "roles": list(roles),
                "database_role": self.role}


def opener(pipeline: Pipeline, bound: Bound, target: Target | None = None) -> Opener:
    """What opens the acts of one session: its target (`target`, else the bound one),
    identity and session id."""
    return Opener(pipeline, "mysql", target or bound.target, bound.claims, bound.session_id,
                  f"/{bound.database}", attributes={
                      **DB_SYSTEM, "db.namespace": bound.database, "db.user": bound.user},
                  gone=bound.gone)


class Logins:
    """The front's part of every login: its targets by database, its verifier, whether
    it has TLS to offer."""

    def __init__(self, verifier: Verifier, targets: Mapping[str, Target],
                 tls_offered: bool) -> None:
        self._verifier, self._targets, self._tls_offered = verifier, targets, tls_offered
        self._named = {t.name: t for t in targets.values()}

    def target(self, database: str) -> Target | None:
        """The target a login's database names."""
        return self._targets.get(database)

    def named(self, name: str) -> Target | None:
        return self._named.get(name)

    def plaintext_refused(self, target: Target | None, tls: bool) -> str | None:
        """Why a token may not come over this connection, if it may not: outside TLS,
        unless the target allows it (a connection naming no target: unless every
        target does)."""
        if tls:
            return None
        targets = [target] if target is not None else list(self._targets.values())
        if all(t.mysql is not None and t.mysql.plaintext_token for t in targets):
            return None
        return ("tollgate takes tokens only over TLS: connect with --ssl"
                + ("" if self._tls_offered else " (and give tollgate a certificate: "
                   "mysql.tls_cert_file)"))

    @staticmethod
    async def token(plugin: str, response: bytes, seq: int, writer: asyncio.StreamWriter,
                    read: Callable[[], Awaitable[Packet]]) -> tuple[bytes, int]:
        """The client's token: its first auth response when it came as mysql_clear_password,
        else asked for by an AuthSwitchRequest (the packet after `seq`). With the
        sequence id of the packet that carried it: the answer takes the next."""
        if plugin == CLEAR_PASSWORD:
            return response, seq
        writer.write(encode((seq + 1) & 0xFF, encode_auth_switch(
            AuthSwitchRequest(CLEAR_PASSWORD, b""))))
        reply = await read()
        return reply.payload, reply.seq

    async def identify(self, token: bytes) -> tuple[dict[str, Any] | None, str | None]:
        """The token's claims, or why it is refused (issuer, audience, expiry,
        signature)."""
        return await self._verifier.verdict(
            token.rstrip(b"\x00").decode("utf-8", "replace").strip())
