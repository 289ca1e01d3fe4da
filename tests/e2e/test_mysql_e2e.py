"""MySQL targets end to end: real clients, through a real Envoy, to the machine's real
MariaDB (127.0.0.1:3306).

The `mariadb` command-line client and PyMySQL connect to Envoy's MySQL listener with
their token as the password, over TLS, as agents would; Envoy's tcp_proxy hands the
connection to tollgate's MySQL front, which logs in to the server as its own account.
The default pack decides each statement: a SELECT passes with personal data masked, a
DROP TABLE is refused with the protocol's ERR packet and the session goes on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import MySQLdb
import pymysql
import pytest

from extproc.mysql.flags import (
    CLIENT_CONNECT_WITH_DB,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    SERVER_STATUS_NO_BACKSLASH_ESCAPES,
)
from extproc.mysql.framing import Framer, Packet, encode
from extproc.mysql.handshake import SslRequest, encode_ssl_request, parse_handshake
from tests.support import tokens
from tests.support.gateway import Gateway
from tests.support.mysql_shop import (
    AGENT,
    AGENT_NAME,
    DATABASE,
    Account,
    as_root,
    shop_account,
    shop_gateway,
    unverified_tls,
)
from tests.test_telemetry_docs import check_front

DBA_NAME = "dba-my-e2e"
DBA = tokens.token(DBA_NAME, ["dba"])


@pytest.fixture(scope="module")
def server_account() -> Iterator[Account]:
    with shop_account() as account:
        yield account


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       server_account: Account) -> Iterator[Gateway]:
    with shop_gateway(tmp_path_factory, otlp, "mysql", server_account) as running:
        yield running


def cli(gw: Gateway, *statements: str, token: str = AGENT) -> subprocess.CompletedProcess[str]:
    """The `mariadb` client as an agent runs it: TLS, the token as the password; one
    statement a line on its standard input (`--force` goes on to the next line after an
    error, never to the rest of one)."""
    client = shutil.which("mariadb")
    assert client, "the machine's MariaDB client (Debian's mariadb-client)"
    return subprocess.run(
        [client, "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql),
         "-u", AGENT_NAME, "--ssl", "--skip-ssl-verify-server-cert", "-D", DATABASE,
         "-N", "-B", "--force"], input="".join(f"{s};\n" for s in statements),
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "MYSQL_PWD": token})


@contextlib.contextmanager
def pymysql_session(gw: Gateway, token: str = AGENT, user: str = AGENT_NAME,
                    client_flag: int = 0) -> Iterator[Any]:
    connection = pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user=user,
                                 password=token, database=DATABASE, ssl=unverified_tls(),
                                 connect_timeout=10, client_flag=client_flag)
    try:
        yield connection
    finally:
        connection.close()


def test_mariadb_cli_select_is_masked_drop_refused_and_the_session_goes_on(
        gw: Gateway) -> None:
    done = cli(gw, "SELECT id, email, ssn FROM customers ORDER BY id",
               "DROP TABLE customers", "SELECT count(*) FROM customers")
    out = done.stdout
    assert "078-05-1120" not in out and "ada@example.com" not in out, out
    assert out.splitlines()[0].startswith("1\t"), (out, done.stderr)
    assert "ERROR 1142 (42000)" in done.stderr and "tollgate: destructive SQL: DROP" in \
        done.stderr, done.stderr
    assert out.strip().splitlines()[-1] == "2"  # the session went on after the refusal


def test_pymysql_reads_masked_rows_and_gets_a_refusal_it_can_catch(
        gw: Gateway, server_account: Account) -> None:
    with pymysql_session(gw) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name, email FROM customers WHERE id = %s", (1,))
        name, email = cursor.fetchone()
        assert name == "[REDACTED:PERSON]" and email != "ada@example.com"
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute("DROP TABLE customers")
        code, message = refused.value.args
        assert code == 1142 and "tollgate: destructive SQL: DROP" in message
        assert "trace id" in message
        cursor.execute("SELECT count(*) FROM customers")
        assert cursor.fetchone() == (2,)
    assert as_root("SELECT count(*) FROM customers", server_account.database).strip() == "2"


def test_the_greeting_announces_the_servers_version(gw: Gateway,
                                                    server_account: Account) -> None:
    """Clients choose their SQL by the greeting's version (PyMySQL's statement time limit
    as MariaDB's SET STATEMENT or MySQL's optimizer hint, SQLAlchemy's dialect): the
    front announces the version the target's server announces, read as it started."""
    direct = pymysql.connect(host="127.0.0.1", port=3306, user=server_account.user,
                             password=server_account.password, connect_timeout=10)
    try:
        expected = direct.get_server_info()
    finally:
        direct.close()
    assert "MariaDB" in expected
    with pymysql_session(gw) as connection:
        assert connection.get_server_info() == expected


def test_a_blob_is_written_as_its_bytes_and_sql_around_them_stays_read(
        gw: Gateway, server_account: Account) -> None:
    """PyMySQL (as mysqlclient) sends bytes as `_binary'...'` with their bytes as they
    are: not UTF-8 there, they are a value, written and read back whole. Outside a
    string literal, however the server may lex the text, they are refused, unread."""
    as_root("CREATE TABLE IF NOT EXISTS blobs (id int PRIMARY KEY, b blob)",
            server_account.database)
    value = bytes(range(256)) + b"\xff'\\\x80\xc3"
    with pymysql_session(gw) as connection, connection.cursor() as cursor:
        assert cursor.execute("INSERT INTO blobs VALUES (1, %s)", (value,)) == 1
        connection.commit()
        cursor.execute("SELECT b FROM blobs WHERE id = 1")
        assert cursor.fetchone() == (value,)
        for text in (b"SELECT 1 \xff", b"SELECT `\xff` FROM blobs",
                     b"SELECT 1 /* \xff */", b'SELECT "\xff" FROM blobs'):
            with pytest.raises(pymysql.err.OperationalError, match="not UTF-8"):
                cursor.execute(text)
    assert as_root("SELECT HEX(b) FROM blobs WHERE id = 1",
                   server_account.database).strip() == value.hex().upper()


# Every byte, and what an escaping reads otherwise: quotes, backslashes, NUL, a `--` before
# a byte that is no UTF-8, a UTF-8 character cut short.
BLOB = bytes(range(256)) + b"\xff'\\\x80\xc3''\\'--\xff\x00\"'"


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_a_blob_mysqlclient_escapes_for_the_servers_sql_mode_is_written_whole(
        gw: Gateway, server_account: Account, sql_mode: str) -> None:
    """mysqlclient (MariaDB Connector/C) writes bytes as `_binary'...'`, escaped by
    backslashes or, once the server's status says NO_BACKSLASH_ESCAPES, by doubling the
    quote alone (NUL as it is): the front reads the text in the escaping the status
    said, the bytes a value inside their literal, and the server stores them whole."""
    as_root("CREATE TABLE IF NOT EXISTS modes (id int PRIMARY KEY, b blob)",
            server_account.database)
    row = 2 if sql_mode else 1
    connection = MySQLdb.connect(host="127.0.0.1", port=gw.ports.mysql, user=DBA_NAME,
                                 password=DBA, database=DATABASE, ssl=True,
                                 charset="utf8mb4", connect_timeout=10)
    try:
        cursor = connection.cursor()
        cursor.execute(f"SET sql_mode = '{sql_mode}'")
        # The driver escapes as the status relayed to it says.
        assert connection.escape_string(b"'\\") == (
            b"''\\" if sql_mode else b"\\'\\\\")
        assert cursor.execute("INSERT INTO modes VALUES (%s, %s)", (row, BLOB)) == 1
        connection.commit()
        cursor.execute("SELECT b FROM modes WHERE id = %s", (row,))
        assert cursor.fetchone() == (BLOB,)
    finally:
        connection.close()
    assert as_root(f"SELECT HEX(b) FROM modes WHERE id = {row}",
                   server_account.database).strip() == BLOB.hex().upper()


def test_a_stored_programs_sql_mode_is_not_taken_for_the_sessions(
        gw: Gateway, server_account: Account) -> None:
    """A procedure that sets sql_mode leaves its mode in the status bit when it ends,
    though the server puts the caller's back (MariaDB 10.11): after one, a text is
    lexed in the session's mode, with backslashes as themselves here, and so does the
    front read it. Read as the status says, the INSERT the server runs would be a string
    of a SELECT no record shows."""
    as_root("CREATE PROCEDURE IF NOT EXISTS flip() SET sql_mode = ''",
            server_account.database)
    text = "SELECT 'x\\'; INSERT INTO scratch VALUES (57); -- '"
    with pymysql_session(gw, DBA, DBA_NAME, pymysql.constants.CLIENT.MULTI_STATEMENTS
                         ) as connection, connection.cursor() as cursor:
        cursor.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        cursor.execute("CALL flip()")
        assert not connection.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES
        cursor.execute(text)
        assert cursor.fetchall() == (("x\\",),)
        while cursor.nextset():
            pass
        connection.commit()
    assert as_root("SELECT count(*) FROM scratch WHERE id = 57",
                   server_account.database).strip() == "1"
    record = gw.record_of(text)
    assert record["request"]["headers"]["backslash-escapes"] == "off"
    statements = record["meaning"]["sql"]["statements"]
    assert [s["kind"] for s in statements] == ["select", "insert"]


def test_a_text_that_changes_sql_mode_must_end_with_it(gw: Gateway) -> None:
    """The server lexes what follows a SET of sql_mode in the new mode: a DROP hidden in a
    string of the old one would run. Such a text is refused, the dba's too."""
    with pymysql_session(gw, DBA, DBA_NAME, pymysql.constants.CLIENT.MULTI_STATEMENTS
                         ) as connection, connection.cursor() as cursor:
        with pytest.raises(pymysql.err.MySQLError, match="must end its text"):
            cursor.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'; "
                           "SELECT 'a\\'; DROP TABLE customers; -- '")
        cursor.execute("SELECT count(*) FROM customers")
        assert cursor.fetchone() == (2,)


def test_a_wrong_token_is_refused_at_login(gw: Gateway) -> None:
    done = cli(gw, "SELECT 1", token=AGENT[:-4] + "AAAA")
    assert done.returncode != 0
    assert "ERROR 1045 (28000)" in done.stderr and "tollgate:" in done.stderr, done.stderr


def test_the_fronts_spans_are_the_documented_ones(gw: Gateway, otlp: Any) -> None:
    """Every attribute of the MySQL front's spans is in docs/telemetry.md with the type
    it has, and the rows the page marks MySQL's are all emitted."""
    with pymysql_session(gw) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT email FROM customers WHERE id = 1")
    spans = otlp.wait_for(lambda all_: any(
        s.attributes.get("db.system") == "mysql"
        and "tollgate.mysql.upstream_auth" in s.attributes for s in all_)
        and any(s.attributes.get("tollgate.mysql.rows") for s in all_))
    check_front([s for s in spans if s.attributes.get("db.system") == "mysql"],
                ("tollgate.mysql.",))


def test_a_client_hello_sent_with_the_ssl_request_is_read_as_tls(gw: Gateway) -> None:
    """A MySQL client does not wait for an answer to its SSLRequest: its TLS ClientHello
    may reach the front in the same read. Sent in one write here, the handshake still
    completes, and the login goes on over TLS."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = unverified_tls().wrap_bio(incoming, outgoing, server_hostname="gateway")
    with socket.create_connection(("127.0.0.1", gw.ports.mysql), timeout=10) as sock:
        greeting = read_packet(sock)
        assert parse_handshake(greeting.payload).capabilities & CLIENT_SSL
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        request = encode_ssl_request(SslRequest(
            CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_WITH_DB, 1 << 24, 45))
        sock.sendall(encode(1, request) + outgoing.read())  # one write, one segment
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "the front closed the connection during the handshake"
                incoming.write(data)
        sock.sendall(outgoing.read())
        assert tls.version() is not None  # a TLS session: the login goes on inside it


def read_packet(sock: socket.socket) -> Packet:
    """One packet, read exactly from a plain socket."""
    framer = Framer(1 << 20)
    while True:
        data = sock.recv(1)
        assert data, "the front closed the connection"
        found = framer.feed(data)
        if found:
            return found[0]
