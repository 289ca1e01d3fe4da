"""Prepared statements through the MySQL front, end to end: real clients, a real Envoy,
the machine's real MariaDB (127.0.0.1:3306).

mysql-connector-python's prepared cursor speaks the binary protocol (COM_STMT_PREPARE,
COM_STMT_EXECUTE, binary rows); what no driver sends on its own (ids tollgate never
handed out, MariaDB's "last statement" id, a cursor, COM_RESET_CONNECTION) goes as raw
packets over the same TLS login an agent's client makes.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from typing import Any

import mysql.connector
import pytest

from extproc.mysql.binary import binary_text
from extproc.mysql.flags import (
    CHARSET_UTF8MB4_GENERAL_CI,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_MULTI_RESULTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_TRANSACTIONS,
    COM_PING,
    COM_QUIT,
    COM_RESET_CONNECTION,
    COM_STMT_CLOSE,
    COM_STMT_FETCH,
    COM_STMT_PREPARE,
    COM_STMT_RESET,
    COM_STMT_SEND_LONG_DATA,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_STRING,
)
from extproc.mysql.framing import Framer, Packet, Reader, encode
from extproc.mysql.handshake import (
    HandshakeResponse,
    SslRequest,
    encode_handshake_response,
    encode_ssl_request,
    parse_handshake,
)
from extproc.mysql.prepared import (
    CURSOR_TYPE_READ_ONLY,
    LAST_STATEMENT_ID,
    ParameterType,
    PrepareOk,
    encode_stmt_execute,
    parse_prepare_ok,
)
from extproc.mysql.responses import ends_rows, is_err, parse_err
from extproc.mysql.resultsets import parse_binary_row, parse_column_definition
from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, request_text
from tests.support.mysql_shop import as_root
from tests.test_telemetry_docs import check_front

AGENT = tokens.token("svc-my-prepared", ["agents"])
DATABASE = "shop"
CARD = 4111111111111111  # a card number (Luhn-valid): the field rule masks the column
CAPS = (CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_WITH_DB | CLIENT_TRANSACTIONS
        | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)


@pytest.fixture(scope="module")
def server_account() -> Iterator[tuple[str, str, str]]:
    """A throwaway database with customers, and the gateway's account on it."""
    suffix = secrets.token_hex(4)
    database, user, password = (f"tollgate_myps_{suffix}", f"tollgate_gwps_{suffix}",
                                secrets.token_hex(12))
    as_root(f"CREATE DATABASE {database}; "
            f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            f"GRANT ALL ON {database}.* TO '{user}'@'127.0.0.1'")
    try:
        as_root("CREATE TABLE customers (id int PRIMARY KEY, name text, email text, "
                "card_number bigint, joined date); INSERT INTO customers VALUES "
                f"(1, 'Ada Lovelace', 'ada@example.com', {CARD}, '2024-01-02'), "
                f"(2, 'Alan Turing', 'alan@example.org', {CARD}, '2023-05-06')", database)
        yield database, user, password
    finally:
        as_root(f"DROP DATABASE IF EXISTS {database}; "
                f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       server_account: tuple[str, str, str]) -> Iterator[Gateway]:
    database, user, password = server_account
    target = {"name": "shop-myps", "protocol": "mysql", "match": {"database": DATABASE},
              "environment": "test",
              "mysql": {"upstream": "127.0.0.1:3306", "user": user, "database": database,
                        "tls": "disable"},
              "credential": {"type": "password", "from_env": "SHOP_MYPS_PASSWORD"}}
    with module_gateway(tmp_path_factory, otlp, "mysql-prepared", targets=[target],
                        mysql={}, env={"SHOP_MYPS_PASSWORD": password}) as running:
        yield running


def connector(gw: Gateway) -> Any:
    """mysql-connector-python as an agent connects: TLS, the token as a cleartext
    password (the plugin tollgate asks for), its defaults otherwise."""
    return mysql.connector.connect(
        host="127.0.0.1", port=gw.ports.mysql, user="svc-my-prepared", password=AGENT,
        database=DATABASE, use_pure=True, ssl_disabled=False, ssl_verify_cert=False,
        auth_plugin="mysql_clear_password", connection_timeout=10)


def recorded(gw: Gateway, wanted: Callable[[dict[str, Any]], bool],
             count: int) -> list[dict[str, Any]]:
    """The records `wanted` picks, once there are `count` of them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = [r for r in gw.records() if wanted(r)]
        return len(found) >= count

    stack.wait_until(enough, 10, f"{count} records")
    return found


def of(text: str, method: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["request"]["method"] == method and request_text(r) == text


def test_a_prepared_selects_binary_rows_are_masked_by_column(gw: Gateway) -> None:
    connection = connector(gw)
    try:
        cursor = connection.cursor(prepared=True)
        statement = ("SELECT id, name, email, card_number, joined FROM customers "
                     "WHERE id = %s")
        cursor.execute(statement, (1,))
        (row,) = cursor.fetchall()
        cursor.execute(statement, (2,))  # the same statement, executed again
        (again,) = cursor.fetchall()
    finally:
        connection.close()
    identifier, name, email, card, joined = row
    # The name masked by its column; the id and the date, of no protected column, pass.
    assert (identifier, name, str(joined)) == (1, "[REDACTED:PERSON]", "2024-01-02")
    assert email != "ada@example.com" and "REDACTED" in email
    assert card is None  # a number the mask hides is NULL, never text in an INT
    assert again[:2] == (2, "[REDACTED:PERSON]") and again[3] is None
    assert str(again[4]) == "2023-05-06"
    text = statement.replace("%s", "?")
    (prepare,) = recorded(gw, of(text, "PREPARE"), 1)
    executes = recorded(gw, of(text, "EXECUTE"), 2)
    assert prepare["outcome"]["action"] == "allow"
    assert {r["session_id"] for r in executes} == {prepare["session_id"]}
    assert [r["outcome"]["action"] for r in executes] == ["allow", "allow"]
    assert [r["request"]["query"] for r in executes] == [{"parameters": ["1"]},
                                                         {"parameters": ["2"]}]
    sample = executes[0]["response"]["body"]["value"]
    assert "[REDACTED:PERSON]" in sample and "2024-01-02" in sample
    assert "Ada Lovelace" not in sample and "ada@example.com" not in sample
    assert str(CARD) not in sample


def test_the_prepare_and_execute_spans_are_the_documented_ones(gw: Gateway, otlp: Any) -> None:
    connection = connector(gw)
    try:
        cursor = connection.cursor(prepared=True)
        cursor.execute("SELECT email FROM customers WHERE id = %s", (2,))
        cursor.fetchall()
    finally:
        connection.close()

    def execute_span(span: Any) -> bool:
        return span.name == "tollgate mysql EXECUTE shop-myps" and bool(
            span.attributes.get("tollgate.mysql.rows"))

    spans = otlp.wait_for(lambda all_: any(execute_span(s) for s in all_) and any(
        "tollgate.mysql.upstream_auth" in s.attributes for s in all_))
    mine = [s for s in spans if s.attributes.get("tollgate.target") == "shop-myps"]
    assert {"tollgate mysql PREPARE shop-myps", "tollgate mysql EXECUTE shop-myps"} <= {
        s.name for s in mine}
    check_front(mine, ("tollgate.mysql.",))


def test_a_prepared_drop_is_refused_and_the_session_goes_on(
        gw: Gateway, server_account: tuple[str, str, str]) -> None:
    connection = connector(gw)
    try:
        cursor = connection.cursor(prepared=True)
        with pytest.raises(mysql.connector.Error) as refused:
            cursor.execute("DROP TABLE customers")
        assert refused.value.errno == 1142
        assert "tollgate: destructive SQL: DROP" in str(refused.value.msg)
        counting = connection.cursor(prepared=True)
        counting.execute("SELECT count(*) FROM customers WHERE id > %s", (0,))
        assert counting.fetchall() == [(2,)]
    finally:
        connection.close()
    assert as_root("SELECT count(*) FROM customers", server_account[0]).strip() == "2"


class Raw:
    """A client of raw packets, logged in as an agent over TLS: what tollgate answers to
    commands no driver sends on its own."""

    def __init__(self, gw: Gateway) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gw.ports.mysql), timeout=10)
        self.framer = Framer(1 << 24)
        self.queue: list[Packet] = []
        greeting = self.read()
        assert parse_handshake(greeting.payload).capabilities & CLIENT_SSL
        self.sock.sendall(encode(1, encode_ssl_request(SslRequest(
            CAPS, 1 << 24, CHARSET_UTF8MB4_GENERAL_CI))))
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname="gateway")
        self.sock.sendall(encode(2, encode_handshake_response(HandshakeResponse(
            CAPS, 1 << 24, CHARSET_UTF8MB4_GENERAL_CI, "svc-my-prepared",
            AGENT.encode() + b"\x00", DATABASE, "mysql_clear_password"))))
        ok = self.read().payload
        assert ok[:1] == b"\x00", parse_err(ok)

    def read(self) -> Packet:
        while not self.queue:
            data = self.sock.recv(65536)
            assert data, "the front closed the connection"
            self.queue.extend(self.framer.feed(data))
        return self.queue.pop(0)

    def send(self, command: int, body: bytes = b"") -> None:
        self.sock.sendall(encode(0, bytes((command,)) + body))

    def answer(self, command: int, body: bytes = b"") -> bytes:
        self.send(command, body)
        return self.read().payload

    def prepare(self, text: str) -> PrepareOk:
        """A statement prepared; its parameters' and columns' definitions read past."""
        ok = parse_prepare_ok(self.answer(COM_STMT_PREPARE, text.encode()))
        for count in (ok.num_params, ok.num_columns):
            for _ in range(count + (1 if count else 0)):  # the definitions, their EOF
                self.read()
        return ok

    def execute(self, statement: int, *values: int) -> bytes | list[list[bytes | None]]:
        """An execute binding integer parameters: see `run`."""
        types = [ParameterType(MYSQL_TYPE_LONGLONG)] * len(values)
        return self.run(encode_stmt_execute(statement, types or None,
                                               [struct.pack("<q", v) for v in values]))

    def run(self, execute: bytes) -> bytes | list[list[bytes | None]]:
        """A COM_STMT_EXECUTE's answer: its ERR or OK payload, or its rows as text."""
        payload = self.answer(execute[0], execute[1:])
        if payload[:1] in (b"\x00", b"\xff"):
            return payload
        columns = [parse_column_definition(self.read().payload)
                   for _ in range(Reader(payload).lenenc_int())]
        self.read()  # their EOF
        rows = []
        while not ends_rows((row := self.read().payload), CAPS):
            rows.append([None if v is None else binary_text(c.type, False, v) for c, v in
                         zip(columns, parse_binary_row(row, columns), strict=True)])
        return rows

    def close(self) -> None:
        self.send(COM_QUIT)
        self.sock.close()


def refused(payload: bytes | list[Any], code: int, words: str) -> None:
    assert isinstance(payload, bytes) and is_err(payload), payload
    err = parse_err(payload)
    assert err.code == code and words in err.message, err


def test_ids_tollgate_never_handed_out_are_refused_never_forwarded(gw: Gateway) -> None:
    raw = Raw(gw)
    try:
        refused(raw.execute(4242), 1243, "statement 4242 was not prepared through tollgate")
        refused(raw.execute(LAST_STATEMENT_ID), 1243, "not prepared through tollgate")
        raw.send(COM_STMT_CLOSE, struct.pack("<I", 4242))  # no answer, as the server's
        raw.send(COM_STMT_SEND_LONG_DATA, struct.pack("<IH", 4242, 0) + b"x")
        refused(raw.answer(COM_STMT_RESET, struct.pack("<I", 4242)), 1243, "4242")
        assert raw.answer(COM_PING)[:1] == b"\x00"  # nothing answered out of turn
        ok = raw.prepare("SELECT ? + 1")
        assert raw.execute(ok.statement_id, 41) == [[b"42"]]
        # MariaDB's "the statement prepared last": tollgate's own last one.
        assert raw.execute(LAST_STATEMENT_ID, 1) == [[b"2"]]
        refused(raw.answer(COM_STMT_FETCH, struct.pack("<II", ok.statement_id, 10)),
                1235, "does not relay server-side cursors")
        # An execute asking for a cursor is refused; the 4-byte type it binds reaches the
        # server with the next execute, which binds none (as a client sends it then).
        four = [ParameterType(MYSQL_TYPE_LONG)]
        refused(raw.run(encode_stmt_execute(
            ok.statement_id, four, [struct.pack("<i", 1)], flags=CURSOR_TYPE_READ_ONLY)),
            1235, "server-side cursors")
        assert raw.run(encode_stmt_execute(ok.statement_id, None, [struct.pack("<i", 6)],
                                              bound=four)) == [[b"7"]]
        raw.send(COM_STMT_CLOSE, struct.pack("<I", ok.statement_id))
        refused(raw.execute(ok.statement_id, 1), 1243, "(or was closed)")
        refused(raw.execute(LAST_STATEMENT_ID, 1), 1243, "not prepared")
    finally:
        raw.close()
    unknown = recorded(gw, lambda r: r["outcome"].get("refusal") == "unknown_statement"
                       and request_text(r) == "statement 4242", 4)
    assert sorted(r["request"]["method"] for r in unknown) == [
        "CLOSE", "EXECUTE", "LONG_DATA", "RESET"]
    assert {r["outcome"]["action"] for r in unknown} == {"deny"}


def test_long_data_goes_with_its_execute_and_a_refused_execute_drops_it(
        gw: Gateway) -> None:
    text = "SELECT CONCAT(?, '!')"
    string = [ParameterType(MYSQL_TYPE_STRING)]
    raw = Raw(gw)
    try:
        ok = raw.prepare(text)

        def long_data(data: bytes) -> None:
            raw.send(COM_STMT_SEND_LONG_DATA, struct.pack("<IH", ok.statement_id, 0) + data)

        long_data(b"long ")
        long_data(b"data")
        # A parameter sent as long data has no value in the execute.
        assert raw.run(encode_stmt_execute(ok.statement_id, string, [None])) == [
            [b"long data!"]]
        long_data(b"dropped")
        refused(raw.run(encode_stmt_execute(ok.statement_id, string, [None],
                                               flags=CURSOR_TYPE_READ_ONLY)), 1235,
                "server-side cursors")
        # The client takes that long data as spent: so does the server, reset by tollgate.
        assert raw.run(encode_stmt_execute(ok.statement_id, string, [b"short"])) == [
            [b"short!"]]
    finally:
        raw.close()
    executes = recorded(gw, of(text, "EXECUTE"), 3)
    assert [(r["outcome"]["action"], r["request"]["query"]["parameters"]) for r in executes] \
        == [("allow", ["'long data'"]), ("deny", ["'dropped'"]), ("allow", ["'short'"])]


def test_a_reset_connection_empties_the_map_as_the_server_drops_its_statements(
        gw: Gateway) -> None:
    raw = Raw(gw)
    try:
        first, second = raw.prepare("SELECT ?"), raw.prepare("SELECT ? * 2")
        assert second.statement_id == first.statement_id + 1
        raw.send(COM_STMT_CLOSE, struct.pack("<I", first.statement_id))
        refused(raw.execute(first.statement_id, 1), 1243, "(or was closed)")
        assert raw.execute(second.statement_id, 4) == [[b"8"]]
        assert raw.answer(COM_RESET_CONNECTION)[:1] == b"\x00"
        refused(raw.execute(second.statement_id, 4), 1243, "not prepared")
        third = raw.prepare("SELECT ? - 1")
        assert third.statement_id > second.statement_id  # ids are never used again
        assert raw.execute(third.statement_id, 4) == [[b"3"]]
    finally:
        raw.close()
