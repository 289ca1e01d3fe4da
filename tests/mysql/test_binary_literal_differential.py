"""BLOBs as drivers write them, proven against the server: what it stored, what it ran,
and what the record says it ran.

PyMySQL 1.2 and mysqlclient write bytes into the statement's text as `_binary'...'`,
escaped by backslashes, or by doubling the quote alone (NUL and every other byte as it
is) once the server's status says NO_BACKSLASH_ESCAPES. Hypothesis draws the bytes
(quotes, backslashes, NUL, bytes no UTF-8 reading takes, `--` and comment openers among
them) and the escaping; a dba's session in that sql_mode sends each INSERT through Envoy
and the MySQL front to a private MariaDB that logs every command (`--general-log`). For
each: the server stored the bytes; its log holds the statement's bytes as sent; the
record holds the same bytes (by size and SHA-256 where they are no UTF-8), read as the
one INSERT it is, in the escaping the server lexed it in.
"""

from __future__ import annotations

import hashlib
import itertools
import ssl
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extproc.mysql.flags import COM_RESET_CONNECTION
from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.mariadb import MariaDb, private_mariadb
from tests.support.mysql_literals import binary_literal
from tests.support.mysql_shop import Account

pytestmark = pytest.mark.e2e

DBA_NAME = "dba-my-binary"
DBA = tokens.token(DBA_NAME, ["dba"])
PASSWORD = "binary-secret"
SCHEMA = ("CREATE DATABASE shop; CREATE TABLE shop.blobs (id int PRIMARY KEY, b longblob); "
          f"CREATE USER 'gw'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
          "GRANT ALL ON shop.* TO 'gw'@'127.0.0.1'")
# Bytes an escaping, a comment or a character set reads otherwise, drawn often.
PIECES = [b"'", b"''", b"\\", b"\\'", b'"', b"\x00", b"\n", b"\r", b"\x1a", b"\xff", b"\xc3",
          b"\xa9", b"\xc2\xa0", b"--", b"-- ", b"#", b"/*", b"*/", b";", b"%", b"_", b"x"]
VALUES = st.binary(max_size=200) | st.lists(st.sampled_from(PIECES), max_size=40).map(
    b"".join)


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDb]:
    with private_mariadb("--general-log=1") as running:
        done = running.root(SCHEMA)
        assert done.returncode == 0, done.stderr
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       server: MariaDb) -> Iterator[Gateway]:
    account = Account("shop", "gw", PASSWORD)
    target = account.target(upstream=f"127.0.0.1:{server.port}", tls="require")
    with module_gateway(tmp_path_factory, otlp, "mysql-binary", targets=[target],
                        mysql={}, env=account.env) as running:
        yield running


@pytest.fixture(scope="module")
def sessions(gw: Gateway) -> Iterator[dict[bool, Any]]:
    """A dba's session in each escaping (True: backslashes escape), its sql_mode set."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opened: dict[bool, Any] = {}
    try:
        for backslashes in (True, False):
            opened[backslashes] = connection = pymysql.connect(
                host="127.0.0.1", port=gw.ports.mysql, user=DBA_NAME, password=DBA,
                database="shop", ssl=context, connect_timeout=10, autocommit=True)
            with connection.cursor() as cursor:
                cursor.execute("SET sql_mode = ''" if backslashes
                               else "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        yield opened
    finally:
        for connection in opened.values():
            connection.close()


ROWS = itertools.count(1)


def recorded(gw: Gateway, statement: bytes) -> dict[str, Any]:
    """The record whose request holds `statement`: as its text, or by its size and hash
    where it is no UTF-8."""
    digest, found = hashlib.sha256(statement).hexdigest(), []

    def holds(body: dict[str, Any] | None) -> bool:
        if body is None:
            return False
        if "value" in body and not body["truncated"]:
            return str(body["value"]).encode() == statement
        return body.get("sha256") == digest and body["size"] == len(statement)

    def written() -> bool:
        found[:] = [r for r in gw.records() if holds(r["request"]["body"])]
        return bool(found)

    stack.wait_until(written, 10, "the statement's record")
    (record,) = found
    return record


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(value=bytes(range(256)), backslashes=True)
@example(value=bytes(range(256)), backslashes=False)
@example(value=b"\\'--\xff\x00''\"", backslashes=False)
@given(value=VALUES, backslashes=st.booleans())
def test_a_blob_is_stored_run_and_recorded_as_sent(
        gw: Gateway, server: MariaDb, sessions: dict[bool, Any], value: bytes,
        backslashes: bool) -> None:
    row = next(ROWS)
    statement = f"INSERT INTO blobs VALUES ({row}, ".encode() + binary_literal(
        value, backslashes) + b")"
    with sessions[backslashes].cursor() as cursor:
        assert cursor.execute(statement) == 1
    stored = server.root(f"SELECT HEX(b) FROM shop.blobs WHERE id = {row}").stdout.strip()
    assert bytes.fromhex(stored) == value
    assert statement in server.general_log.read_bytes()
    record = recorded(gw, statement)
    assert record["outcome"]["action"] == "allow"
    assert record["request"]["headers"]["backslash-escapes"] == ("on" if backslashes
                                                                 else "off")
    statements = record["meaning"]["sql"]["statements"]
    assert [(s["kind"], s["tables"]) for s in statements] == [("insert", ["blobs"])]


def test_a_session_reads_as_its_login_and_its_reset_left_the_server(
        gw: Gateway, server: MariaDb) -> None:
    """A session starts in the server's global sql_mode, and COM_RESET_CONNECTION takes
    it back there: the front reads as the status of the login, and of the reset, says.
    Here NO_BACKSLASH_ESCAPES, where `\\''` is a backslash and a quote: read with
    backslashes as escapes, the bytes after it would be outside their literal."""
    value = b"\\'\xff\x00"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.root("SET GLOBAL sql_mode = 'NO_BACKSLASH_ESCAPES'").returncode == 0
    try:
        connection = pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user=DBA_NAME,
                                     password=DBA, database="shop", ssl=context,
                                     connect_timeout=10, autocommit=True)
        try:
            rows = []
            with connection.cursor() as cursor:
                for step in ("login", "reset"):
                    if step == "reset":
                        cursor.execute("SET sql_mode = ''")
                        connection._execute_command(
                            COM_RESET_CONNECTION, b"")
                        connection._read_ok_packet()
                    rows.append(row := next(ROWS))
                    statement = f"INSERT INTO blobs VALUES ({row}, ".encode() + \
                        binary_literal(value, backslashes=False) + b")"
                    assert cursor.execute(statement) == 1, step
                    record = recorded(gw, statement)
                    assert record["request"]["headers"]["backslash-escapes"] == "off"
        finally:
            connection.close()
    finally:
        assert server.root("SET GLOBAL sql_mode = DEFAULT").returncode == 0
    for row in rows:
        stored = server.root(f"SELECT HEX(b) FROM shop.blobs WHERE id = {row}").stdout
        assert bytes.fromhex(stored.strip()) == value
