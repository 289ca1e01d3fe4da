"""The MySQL front's greeting as clients read it: it comes before the client names its
database, so the version it announces and the auth plugin it names decide what clients do
before they know which server is behind the gateway, or whether TLS is required
(extproc/mysql/front.py, SERVER_VERSION and GREETING_PLUGIN). A front that knows no
server's version, as here, announces its own; tests/e2e/test_mysql_e2e.py has one
announcing its server's."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, cast

import MySQLdb
import pytest
from mysql.connector.connection import MySQLConnection

from extproc.config import MysqlFront
from extproc.mysql.flags import CLIENT_SSL
from extproc.mysql.framing import Framer, Packet
from extproc.mysql.front import UTF8MB4, Front
from extproc.mysql.handshake import parse_handshake, parse_handshake_response


class _Written:
    """A stream writer that keeps what the front writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


async def _greeting() -> bytes:
    """The handshake packet a front writes to a client that connects (and then leaves)."""
    unused = cast(Any, None)  # the login never gets as far as the pipeline, a target or
    # the store (the connection id is given)
    front = Front(MysqlFront(), 0, unused, unused, [], None, lambda p: p,
                  unused)
    reader, writer = asyncio.StreamReader(), _Written()
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await front._login(reader, cast(Any, writer), 1, asyncio.Event())
    return bytes(writer.data)


def test_mysql_connector_python_asks_for_a_collation_every_server_has() -> None:
    """mysql-connector-python sends `SET NAMES ... COLLATE` for the collation it picks by
    the greeting's version: for 8.0 and later utf8mb4_0900_ai_ci, which MariaDB refuses
    (ERROR 1273, the connection lost at its first statement). The front's version gets
    utf8mb4_general_ci, which MySQL and MariaDB both have, and tollgate asks for too."""
    (packet,) = Framer(1 << 16).feed(asyncio.run(_greeting()))
    handshake = parse_handshake(packet.payload)
    client = MySQLConnection()  # not connected: its choice, made as its handshake makes it
    client._server_version = client._check_server_version(handshake.server_version)
    client._character_set.set_mysql_version(client._server_version)
    charset_id, charset, collation = client._character_set.get_charset_info(
        client._charset_id)
    assert (charset, collation) == ("utf8mb4", "utf8mb4_general_ci")
    assert charset_id == UTF8MB4 == handshake.charset


def test_a_client_without_tls_answers_the_greeting_without_the_token() -> None:
    """A client answers the greeting with the plugin it names before the front can say
    TLS is required. mysqlclient (MariaDB Connector/C) sent the token itself, in clear,
    when the greeting named mysql_clear_password; the front's gets a hash of it."""
    token = "token-that-must-not-cross-in-clear"
    greeting = asyncio.run(_greeting())
    answers: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:  # the greeting, then the client's first packet kept
            connection, _ = listener.accept()
            connection.settimeout(10)
            with connection:
                connection.sendall(greeting)
                framer, packets = Framer(1 << 16), list[Packet]()
                while not packets and (data := connection.recv(65536)):
                    packets = framer.feed(data)
                answers.extend(p.payload for p in packets[:1])

        server = threading.Thread(target=serve)
        server.start()
        with pytest.raises(MySQLdb.OperationalError):  # the fake server says no more
            MySQLdb.connect(host="127.0.0.1", port=listener.getsockname()[1], user="agent",
                            password=token, database="shop", connect_timeout=10)
        server.join(10)
    (answer,) = answers
    response = parse_handshake_response(answer)
    assert not response.capabilities & CLIENT_SSL
    assert response.auth_plugin == "mysql_native_password"
    assert token.encode() not in answer
