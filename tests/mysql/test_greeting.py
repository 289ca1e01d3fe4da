"""The MySQL front's greeting as clients read it: the version it announces decides their
defaults before they know which server is behind the gateway (extproc/mysql/front.py,
SERVER_VERSION)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from mysql.connector.connection import MySQLConnection

from extproc.config import MysqlFront
from extproc.mysql import packets as my
from extproc.mysql.front import UTF8MB4, Front


class _Written:
    """A stream writer that keeps what the front writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


async def _greeting() -> my.Handshake:
    """The handshake a front writes to a client that connects (and then leaves)."""
    unused = cast(Any, None)  # the login never gets as far as the pipeline or a target
    front = Front(MysqlFront(), 0, unused, unused, unused, unused, [], None, lambda p: p)
    reader, writer = asyncio.StreamReader(), _Written()
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await front._login(reader, cast(Any, writer))
    (packet,) = my.Framer(1 << 16).feed(bytes(writer.data))
    return my.parse_handshake(packet.payload)


def test_mysql_connector_python_asks_for_a_collation_every_server_has() -> None:
    """mysql-connector-python sends `SET NAMES ... COLLATE` for the collation it picks by
    the greeting's version: for 8.0 and later utf8mb4_0900_ai_ci, which MariaDB refuses
    (ERROR 1273, the connection lost at its first statement). The front's version gets
    utf8mb4_general_ci, which MySQL and MariaDB both have, and tollgate asks for too."""
    handshake = asyncio.run(_greeting())
    client = MySQLConnection()  # not connected: its choice, made as its handshake makes it
    client._server_version = client._check_server_version(handshake.server_version)
    client._character_set.set_mysql_version(client._server_version)
    charset_id, charset, collation = client._character_set.get_charset_info(
        client._charset_id)
    assert (charset, collation) == ("utf8mb4", "utf8mb4_general_ci")
    assert charset_id == UTF8MB4 == handshake.charset
