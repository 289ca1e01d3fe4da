"""KILL between connections (extproc/mysql/kills.py): the KILL forms tollgate does, the
handover packet, and two fronts sharing one SQLite store, the second on a real listener:
a KILL reaching the front that does not hold the session is handed to the one that does,
which alone knows the session and its secret."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from extproc.codecs.refusal import Refusal, Refused
from extproc.config import Target
from extproc.mysql.flags import (
    CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
)
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, encode
from extproc.mysql.handshake import Handshake, SslRequest, encode_handshake, encode_ssl_request
from extproc.mysql.kills import (
    Connections,
    Handover,
    Kill,
    Victim,
    encode_handover,
    is_handover,
    parse_handover,
    read_kill,
)
from extproc.store.aio import AsyncStore, open_store
from extproc.store.session_keys import SessionKeys
from tests.mysql.test_packets import LIBMARIADB_RESPONSE

AGENT = "svc-agent"


@pytest.mark.parametrize(("text", "kill"), [
    ("KILL QUERY 1234567", Kill(1234567, True)),
    ("kill query 7;", Kill(7, True)),
    ("  KILL 42 ", Kill(42, False)),
    ("KILL CONNECTION 42", Kill(42, False)),
    ("KILL QUERY ID 42", None),  # a query id: the server's
    ("KILL HARD QUERY 42", None),
    ("KILL USER bob", None),
    ("KILL QUERY 1; SELECT 1", None),
    ("KILL /* x */ 42", None),
    ("KILL QUERY 12345678901", None),  # past a connection id's 32 bits
    ("SELECT 1", None),
])
def test_the_kill_forms_tollgate_does(text: str, kill: Kill | None) -> None:
    assert read_kill(text) == kill
    if kill is not None:
        assert read_kill(kill.text()) == kill


def test_a_handover_reads_back_and_is_no_login() -> None:
    handover = Handover(2**31 - 1, True, bytes(range(16)), "svc-ägent")
    payload = encode_handover(handover)
    assert is_handover(payload) and parse_handover(payload) == handover
    ssl_request = encode_ssl_request(SslRequest(
        CLIENT_PROTOCOL_41 | CLIENT_SSL, 1 << 24, 45))
    for login in (LIBMARIADB_RESPONSE, ssl_request):
        assert not is_handover(login)
    with pytest.raises(ProtocolViolation):
        parse_handover(payload + b"\x00")


@dataclass
class _Session:
    """A session as a KILL sees it; it ends the statements of its own subject only."""

    connection_id: int
    subject: str = AGENT
    target_name: str | None = "shop-my"
    kills: list[tuple[bool, str]] = field(default_factory=list)

    async def killed(self, query: bool, by: str) -> str:
        if by != self.subject:
            raise Refused(403, "kill_denied", f"connection {self.connection_id} is "
                           "another identity's")
        self.kills.append((query, by))
        return f"connection {self.connection_id}: killed"


async def _no_thread_kill(_target: Target, _thread: int, _query: bool) -> None:
    raise AssertionError("no server here")


@dataclass
class _Front:
    connections: Connections
    address: str


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    opened = await open_store(f"sqlite:///{tmp_path}/store.db")
    yield opened
    await opened.close()


@pytest.fixture
async def holder(store: AsyncStore) -> AsyncIterator[_Front]:
    """A front's stand-in on a real listener: its greeting, then a handover served as
    the front serves one in a login's place."""
    connections = Connections(SessionKeys(store, "mysql"), _no_thread_kill)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode(0, encode_handshake(Handshake(
            "8.0.0-tollgate", 1, b"A" * 20, CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH, 45, 2,
            "mysql_clear_password"))))
        framer, packets = Framer(1 << 16), list[Packet]()
        while not packets:
            packets = framer.feed(await reader.read(4096))
        assert is_handover(packets[0].payload)
        writer.write(encode(packets[0].seq + 1,
                               await connections.serve(packets[0].payload)))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield _Front(connections, f"127.0.0.1:{port}")
    server.close()
    await server.wait_closed()


async def test_a_kill_reaching_another_front_is_done_by_the_one_holding_the_session(
        store: AsyncStore, holder: _Front) -> None:
    session = _Session(await holder.connections.open(holder.address))
    await holder.connections.bind(session)
    here = Connections(SessionKeys(store, "mysql"), _no_thread_kill)
    victim = await here.find(session.connection_id)
    assert victim is not None and victim.session is None
    assert (victim.address, victim.subject, victim.target) == (
        holder.address, AGENT, "shop-my")
    assert await here.kill(victim, True, AGENT) == f"connection {victim.connection_id}: killed"
    assert session.kills == [(True, AGENT)]
    with pytest.raises(Refusal) as refused:  # the holder judges, not the sender
        await here.kill(victim, False, "svc-stranger")
    assert (refused.value.status, refused.value.error) == (403, "kill_denied")
    assert "another identity's" in refused.value.message and session.kills == [(True, AGENT)]


async def test_a_handover_without_the_sessions_secret_kills_nothing(
        store: AsyncStore, holder: _Front) -> None:
    session = _Session(await holder.connections.open(holder.address))
    await holder.connections.bind(session)
    here = Connections(SessionKeys(store, "mysql"), _no_thread_kill)
    forged = Victim(session.connection_id, AGENT, "shop-my", None, holder.address, b"x" * 16)
    with pytest.raises(Refusal) as refused:
        await here.kill(forged, True, AGENT)
    assert (refused.value.status, refused.value.error) == (404, "unknown_connection")
    assert session.kills == []


async def test_a_holder_that_does_not_answer_fails_the_kill(
        store: AsyncStore, closed_port: int) -> None:
    here = Connections(SessionKeys(store, "mysql"), _no_thread_kill)
    gone = Victim(7, AGENT, "shop-my", None, f"127.0.0.1:{closed_port}", b"x" * 16)
    with pytest.raises(Refusal) as failed:
        await here.kill(gone, True, AGENT)
    assert (failed.value.status, failed.value.error) == (502, "kill_failed")


async def test_only_logged_in_sessions_are_found(store: AsyncStore, holder: _Front) -> None:
    here = Connections(SessionKeys(store, "mysql"), _no_thread_kill)
    greeted = await holder.connections.open(holder.address)  # no login yet
    mine = _Session(await here.open("127.0.0.1:1"))
    assert await here.find(greeted) is None
    assert await holder.connections.find(greeted) is None
    assert await here.find(mine.connection_id) is None
    await here.bind(mine)
    found = await here.find(mine.connection_id)
    assert found is not None and found.session is mine
    await here.close(mine.connection_id)
    assert await here.find(mine.connection_id) is None
    assert await here.find(2**31 + 5) is None  # never given out
