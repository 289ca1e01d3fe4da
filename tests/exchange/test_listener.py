"""A database front's common ground (extproc/exchange/listener.py): its targets, the
line saying what it serves, its sessions told goodbye at stop, and the gateway's own way to
the targets' servers (credentials, files) — the same for the PostgreSQL and MySQL fronts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from extproc.config import Match, MysqlTarget, PostgresTarget, Target
from extproc.credentials import Injection
from extproc.exchange.listener import DatabaseFront
from extproc.exchange.lock_waits import Holding, Waiter
from extproc.exchange.pipeline import Pipeline

SHOP = Target(name="shop", match=Match(database="shop"), protocol="postgres",
              postgres=PostgresTarget(upstream="127.0.0.1:5432", user="gateway"))
BILLING = Target(name="billing", match=Match(database="billing"), protocol="mysql",
                 mysql=MysqlTarget(upstream="127.0.0.1:3306", user="gateway"))
WEB = Target(name="web", match=Match(route="web"))
LOG = logging.getLogger("tollgate.test-front")


class _Secrets:
    """The pipeline as a front asks it for the targets' credentials: a password for
    `shop`, none for the others (nothing else of it is reached here)."""

    def credential(self, target: Target) -> Injection:
        return Injection(remove=(), value=b"s\xc3\xa9cret" if target.name == "shop" else b"")


class _Echo(DatabaseFront):
    """Echoes each line back until the client leaves; `bye` at stop."""

    def __init__(self, targets: list[Target]) -> None:
        super().__init__("Echo", "postgres", ("127.0.0.1", 0), cast(Pipeline, _Secrets()),
                         targets, None, lambda path: Path("/etc/tollgate") / path, LOG)
        self.left = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gone: asyncio.Event) -> None:
        line = await reader.readline()
        if line == b"wait\n":  # read no more: as a session waiting on a hold
            await gone.wait()
            self.left.set()
            return
        while line:
            writer.write(line)
            await writer.drain()
            line = await reader.readline()

    def goodbye(self) -> bytes:
        return b"bye\n"

    def holdings(self) -> list[Holding]:
        return []  # no transactions here

    async def lock_waits(self, target: Target, upstream_ids: Sequence[int]) -> list[Waiter]:
        raise AssertionError("never asked: nothing is held")

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])


def test_a_front_serves_the_targets_of_its_protocol_by_database() -> None:
    front = _Echo([SHOP, BILLING, WEB])
    assert front._targets == {"shop": SHOP}


async def test_a_front_says_what_it_serves_and_tells_its_sessions_goodbye(
        caplog: pytest.LogCaptureFixture) -> None:
    front = _Echo([SHOP])
    with caplog.at_level(logging.INFO, LOG.name):
        await front.start()
    assert caplog.messages == [
        "serving Echo clients on 127.0.0.1:0 (1 targets, TLS off: no tls_cert_file)"]
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    writer.write(b"hello\n")
    assert await asyncio.wait_for(reader.readline(), 10) == b"hello\n"
    await front.stop(0.1)
    assert await asyncio.wait_for(reader.read(), 10) == b"bye\n"
    writer.close()


async def test_a_session_reading_nothing_is_told_when_its_client_leaves() -> None:
    """A session waiting on a decision reads nothing; its client's close still reaches
    it (`gone`), so a hold stops waiting for nobody."""
    front = _Echo([SHOP])
    await front.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", front.port)
        writer.write(b"wait\n")
        await writer.drain()
        writer.close()
        await asyncio.wait_for(front.left.wait(), 10)
    finally:
        await front.stop(0.1)


def test_the_targets_servers_are_reached_with_the_gateways_own_credential() -> None:
    front = _Echo([SHOP, BILLING])
    assert front._password(SHOP) == "s\u00e9cret"
    assert front._password(BILLING) is None  # no password: a client certificate, say
    assert front._path(Path("tls/ca.pem")) == Path("/etc/tollgate/tls/ca.pem")
    assert front._path(None) is None
