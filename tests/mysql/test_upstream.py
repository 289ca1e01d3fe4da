"""The gateway's own login to MySQL and MariaDB (extproc/mysql/upstream.py): TLS by the
target's mode against a private MariaDB of the module's (with a certificate and a CA
of the test's) and the machine's server (no TLS), refusals as the ERR a client would
get, the session reading on exactly where the login stopped; and, against a scripted
MySQL 8 stand-in, caching_sha2_password and the auth switches MariaDB cannot show."""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, NamedTuple

import pytest

from extproc.mysql import auth
from extproc.mysql.flags import (
    CHARSET_UTF8MB4_GENERAL_CI,
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS,
    CLIENT_COMPRESS,
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_DEPRECATE_EOF,
    CLIENT_LOCAL_FILES,
    CLIENT_LONG_FLAG,
    CLIENT_MULTI_FACTOR_AUTHENTICATION,
    CLIENT_MULTI_RESULTS,
    CLIENT_MULTI_STATEMENTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SESSION_TRACK,
    CLIENT_SSL,
    CLIENT_TRANSACTIONS,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    COM_QUERY,
    COM_QUIT,
    SERVER_STATUS_AUTOCOMMIT,
)
from extproc.mysql.framing import Framer, Packet, Reader, encode
from extproc.mysql.handshake import (
    AuthSwitchRequest,
    Handshake,
    HandshakeResponse,
    encode_auth_more_data,
    encode_auth_switch,
    encode_handshake,
    is_ssl_request,
    parse_handshake_response,
)
from extproc.mysql.responses import encode_err, encode_ok, ends_rows, is_err, parse_eof, parse_err
from extproc.mysql.resultsets import parse_column_definition, parse_text_row
from extproc.mysql.upstream import (
    TlsMode,
    Upstream,
    UpstreamError,
    UpstreamSettings,
    connect,
    setup_commands,
)
from tests.mysql.test_packets import MARIADB, throwaway_user
from tests.support.mariadb import private_mariadb
from tests.support.tls import TlsFiles, write_client_files, write_stranger_ca

# What a current client asks for, and what the gateway must not pass on (compression,
# LOAD DATA LOCAL, attributes it does not send, another factor, an expired password's
# sandbox, TLS it did not start).
CLIENT_CAPS = (CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
               | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS
               | CLIENT_PS_MULTI_RESULTS | CLIENT_SESSION_TRACK
               | CLIENT_DEPRECATE_EOF | CLIENT_LOCAL_FILES | CLIENT_COMPRESS
               | CLIENT_CONNECT_ATTRS | CLIENT_ZSTD_COMPRESSION_ALGORITHM
               | CLIENT_MULTI_FACTOR_AUTHENTICATION | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
               | CLIENT_SSL)
NEVER_SENT = (CLIENT_LOCAL_FILES | CLIENT_COMPRESS | CLIENT_CONNECT_ATTRS
              | CLIENT_ZSTD_COMPRESSION_ALGORITHM | CLIENT_MULTI_FACTOR_AUTHENTICATION
              | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS)
ALWAYS_SENT = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
               | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
CHARSET = CHARSET_UTF8MB4_GENERAL_CI
MAX_PACKET = 1 << 24


async def login(settings: UpstreamSettings) -> Upstream:
    return await connect(settings, CLIENT_CAPS, CHARSET, MAX_PACKET)


@asynccontextmanager
async def logged_in(settings: UpstreamSettings) -> AsyncIterator[Upstream]:
    upstream = await login(settings)
    try:
        yield upstream
    finally:
        await upstream.close()


async def refusal(settings: UpstreamSettings) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await login(settings)
    return caught.value


async def query(upstream: Upstream, sql: str) -> list[list[bytes | None]]:
    """A COM_QUERY's rows, sent on the upstream's writer and read through its framer
    (after what the login read ahead); every packet's sequence id checked."""
    upstream.writer.write(encode(0, bytes((COM_QUERY,)) + sql.encode()))
    expected = 1

    async def read() -> bytes:
        nonlocal expected
        packet = await upstream.read()
        assert packet.seq == expected
        expected = (packet.last_seq + 1) & 0xFF
        return packet.payload

    header = await read()
    assert not is_err(header), parse_err(header)
    r = Reader(header)
    count = r.lenenc_int()
    r.done()
    for _ in range(count):
        parse_column_definition(await read())
    if not upstream.capabilities & CLIENT_DEPRECATE_EOF:
        parse_eof(await read())
    rows = []
    while not ends_rows(payload := await read(), upstream.capabilities):
        rows.append(parse_text_row(payload, count))
    assert not is_err(payload), parse_err(payload)
    return rows


class Facts(NamedTuple):
    """The session as the server sees it."""

    connection_id: int
    database: str | None
    tls_version: str  # empty without TLS


async def facts(upstream: Upstream) -> Facts:
    [[connection_id, database, tls_version]] = await query(
        upstream, "SELECT CONNECTION_ID(), DATABASE(), (SELECT VARIABLE_VALUE FROM "
        "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION')")
    assert connection_id is not None and tls_version is not None
    return Facts(int(connection_id), None if database is None else database.decode(),
                 tls_version.decode())


def assert_capabilities(upstream: Upstream) -> None:
    """The flags agreed: offered by the server, tollgate's own in, the forbidden out."""
    caps = upstream.capabilities
    assert caps & ~upstream.handshake.capabilities == 0
    assert caps & ALWAYS_SENT == ALWAYS_SENT
    assert caps & NEVER_SENT == 0
    assert bool(caps & CLIENT_SSL) == upstream.tls
    assert caps & CLIENT_DEPRECATE_EOF and caps & CLIENT_SESSION_TRACK


def test_the_password_is_not_in_the_settings_repr() -> None:
    settings = UpstreamSettings("db", 3306, "gw", "hunter2-secret")
    assert "hunter2-secret" not in repr(settings)


async def test_a_port_nobody_listens_on_is_error_2003(closed_port: int) -> None:
    err = await refusal(UpstreamSettings("127.0.0.1", closed_port, "gw", "pw"))
    assert (err.code, err.sqlstate) == (2003, "HY000")


# -- the machine's MariaDB (127.0.0.1:3306, no TLS) -------------------------------------------


@pytest.mark.e2e
async def test_a_native_password_login_without_tls_on_the_machines_server() -> None:
    with throwaway_user() as (user, password):
        settings = UpstreamSettings(*MARIADB, user, password.decode(), "information_schema",
                                    "prefer")
        async with logged_in(settings) as upstream:
            assert not upstream.tls and not upstream.handshake.capabilities & CLIENT_SSL
            assert upstream.auth_plugin == auth.NATIVE_PASSWORD
            assert "MariaDB" in upstream.server_version
            assert upstream.status & SERVER_STATUS_AUTOCOMMIT
            assert_capabilities(upstream)
            assert await facts(upstream) == Facts(upstream.connection_id,
                                                  "information_schema", "")


@pytest.mark.e2e
async def test_require_is_refused_by_a_server_without_tls() -> None:
    err = await refusal(UpstreamSettings(*MARIADB, "tollgate_nobody", "pw", tls="require"))
    assert (err.code, err.sqlstate) == (2026, "HY000")
    assert "does not offer TLS" in err.message


# -- a MariaDB of the module's, with TLS --------------------------------------------------------

NATIVE_USER, X509_USER, ED25519_USER = "gw_native", "gw_x509", "gw_ed25519"
PASSWORD: Final = f"gw-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Server:
    port: int
    ca: Path
    client_cert: Path  # X509_USER's certificate and key
    client_key: Path


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private MariaDB 10.11 (tests/support/mariadb.py) with TLS, the users
    NATIVE_USER, X509_USER (REQUIRE X509) and ED25519_USER, and a `shop` database."""
    cert, key = write_client_files(tmp_path_factory.mktemp("mysql-client"), X509_USER)
    with private_mariadb() as server:
        setup = server.root(f"""
            CREATE DATABASE shop;
            CREATE USER '{NATIVE_USER}'@'127.0.0.1'
                IDENTIFIED VIA mysql_native_password USING PASSWORD('{PASSWORD}');
            CREATE USER '{X509_USER}'@'127.0.0.1'
                IDENTIFIED VIA mysql_native_password USING PASSWORD('{PASSWORD}')
                REQUIRE X509;
            INSTALL SONAME 'auth_ed25519';
            CREATE USER '{ED25519_USER}'@'127.0.0.1'
                IDENTIFIED VIA ed25519 USING PASSWORD('{PASSWORD}');
            GRANT ALL ON shop.* TO '{NATIVE_USER}'@'127.0.0.1', '{X509_USER}'@'127.0.0.1';
            """)
        assert setup.returncode == 0, setup.stderr
        yield Server(server.port, server.tls.ca, cert, key)


def private(server: Server, tls: TlsMode = "verify-full", *, host: str = "127.0.0.1",
            user: str = NATIVE_USER, password: str = PASSWORD,
            ca_file: Path | None = None) -> UpstreamSettings:
    """NATIVE_USER on the private server, in `shop`, TLS verified by its CA unless told."""
    return UpstreamSettings(host, server.port, user, password, "shop", tls,
                            ca_file or server.ca)


@pytest.mark.e2e
@pytest.mark.parametrize(("mode", "host"), [
    ("prefer", "127.0.0.1"), ("require", "127.0.0.1"), ("verify-ca", "127.0.0.1"),
    ("verify-full", "127.0.0.1"), ("verify-full", "localhost")])
async def test_tls_as_the_mode_says(mariadb: Server, mode: TlsMode, host: str) -> None:
    async with logged_in(private(mariadb, mode, host=host)) as upstream:
        assert upstream.tls
        assert upstream.auth_plugin == auth.NATIVE_PASSWORD
        assert_capabilities(upstream)
        seen = await facts(upstream)
        assert seen.connection_id == upstream.connection_id
        assert seen.database == "shop"
        assert seen.tls_version.startswith("TLSv1.")


@pytest.mark.e2e
async def test_disable_logs_in_without_tls_where_it_is_offered(mariadb: Server) -> None:
    async with logged_in(private(mariadb, "disable")) as upstream:
        assert not upstream.tls and upstream.handshake.capabilities & CLIENT_SSL
        assert_capabilities(upstream)
        assert await facts(upstream) == Facts(upstream.connection_id, "shop", "")


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_a_certificate_another_ca_signed_is_refused(
        mariadb: Server, mode: TlsMode, tmp_path: Path) -> None:
    err = await refusal(private(mariadb, mode, ca_file=write_stranger_ca(tmp_path / "ca.pem")))
    assert (err.code, err.sqlstate) == (2026, "HY000")
    assert "certificate of 127.0.0.1" in err.message and "is refused" in err.message


@pytest.mark.e2e
async def test_a_certificate_for_another_name_fails_verify_full_only(mariadb: Server) -> None:
    # The same address, named as IPv4-mapped IPv6: the certificate names 127.0.0.1 only.
    host = "::ffff:127.0.0.1"
    err = await refusal(private(mariadb, "verify-full", host=host))
    assert (err.code, err.sqlstate) == (2026, "HY000")
    assert "mismatch" in err.message and host in err.message
    async with logged_in(private(mariadb, "verify-ca", host=host)) as upstream:
        assert upstream.tls


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["disable", "require"])
async def test_a_wrong_password_is_the_servers_1045(mariadb: Server, mode: TlsMode) -> None:
    wrong = f"wrong-{PASSWORD}"
    err = await refusal(private(mariadb, mode, password=wrong))
    assert (err.code, err.sqlstate) == (1045, "28000")
    assert NATIVE_USER in err.message
    assert wrong not in f"{err} {err!r} {err.args}"


@pytest.mark.e2e
async def test_an_account_on_a_plugin_tollgate_does_not_speak_is_refused(
        mariadb: Server) -> None:
    err = await refusal(private(mariadb, user=ED25519_USER))
    assert (err.code, err.sqlstate) == (2059, "HY000")
    assert "client_ed25519" in err.message


@pytest.mark.e2e
async def test_a_client_certificate_logs_in_where_the_account_requires_one(
        mariadb: Server) -> None:
    x509_user = private(mariadb, "require", user=X509_USER)
    async with logged_in(replace(x509_user, cert_file=mariadb.client_cert,
                                 key_file=mariadb.client_key)) as upstream:
        assert (await facts(upstream)).connection_id == upstream.connection_id
    err = await refusal(x509_user)
    assert (err.code, err.sqlstate) == (1045, "28000")


# -- a scripted MySQL 8 ----------------------------------------------------------------------

SCRAMBLE = b"0123456789abcdefghij"  # 20 bytes, no NUL, as MySQL makes them
SWITCH_SCRAMBLE = b"ABCDEFGHIJKLMNOPQRST"
FAKE_PASSWORD = "fake-s\u00e9cret"
MYSQL8_CAPS = 0xDFFFFFFF  # MySQL 8.0's greeting: every flag but bit 29
STATUS = SERVER_STATUS_AUTOCOMMIT
OK = encode_ok(status=STATUS, capabilities=CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK)
FAST_AUTH_SUCCESS = encode_auth_more_data(bytes((auth.CACHING_SHA2_FAST_AUTH_SUCCESS,)))
FULL_AUTHENTICATION = encode_auth_more_data(
    bytes((auth.CACHING_SHA2_PERFORM_FULL_AUTHENTICATION,)))


def greeting(plugin: str = auth.CACHING_SHA2_PASSWORD, tls: bool = False) -> bytes:
    caps = MYSQL8_CAPS if tls else MYSQL8_CAPS & ~CLIENT_SSL
    return encode_handshake(Handshake("8.0.36", 4242, SCRAMBLE, caps, 255, STATUS,
                                            plugin))


def switch(plugin: str, data: bytes = SWITCH_SCRAMBLE + b"\x00") -> bytes:
    return encode_auth_switch(AuthSwitchRequest(plugin, data))


class Expect(NamedTuple):
    """A packet the gateway must send at this point of the script."""

    payload: bytes


class Raw(NamedTuple):
    """Bytes the stand-in writes as they are, in one write (no sequence id given)."""

    data: bytes


HANG_UP: Final = None  # the stand-in closes the connection at this point
Step = bytes | Expect | Raw | asyncio.Event | None  # bytes: a packet of the stand-in's


class FakeMySQL:
    """A scripted MySQL 8 server, one connection: it stands in for MySQL 8's
    caching_sha2_password (and for auth switches MariaDB never asks for), because no
    MySQL server can be installed here and MariaDB has no server side of that plugin.

    It is faithful to the wire format as MySQL 8.0 writes it: the greeting is sequence
    id 0, the client's SSLRequest 1 (then TLS) and its response the next, and every
    packet of the exchange after it, either side's, the next id, checked on what the
    gateway sends; AuthMoreData is 0x01 then caching_sha2_password's state, 0x03 (fast
    auth success, an OK follows) or 0x04 (perform full authentication: the client sends
    the password NUL-terminated over TLS, or asks for the RSA key without it).

    `steps` follow the response; `received` is every byte the gateway sent (as
    decrypted), `after` what it sent once the script ended, until it hung up.
    """

    def __init__(self, steps: Sequence[Step], greeting: bytes = greeting(),
                 tls: TlsFiles | None = None) -> None:
        self.steps, self.greeting, self.tls = steps, greeting, tls
        self.response: HandshakeResponse | None = None
        self.received = bytearray()
        self.after = b""
        self.port = 0

    async def __aenter__(self) -> FakeMySQL:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._listener.close()

    def settings(self, tls: TlsMode = "prefer", ca_file: Path | None = None,
                 connect_timeout: float = 5.0) -> UpstreamSettings:
        return UpstreamSettings("127.0.0.1", self.port, "gw", FAKE_PASSWORD, "shop", tls,
                                ca_file, connect_timeout=connect_timeout)

    async def finished(self) -> None:
        """The script played to its end and the gateway hung up (the script's failed
        assertions raise here)."""
        async with asyncio.timeout(5):
            await asyncio.shield(self._task)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        sock, _ = await loop.sock_accept(self._listener)
        if self.greeting:
            await loop.sock_sendall(sock, encode(0, self.greeting))
        first = None
        if self.greeting[:1] == b"\x0a":
            # Read off the socket exactly: a TLS ClientHello follows an SSLRequest at
            # once, and must be left for TLS to read.
            header = await self._exactly(sock, 4)
            [first] = Framer(1 << 16).feed(
                header + await self._exactly(sock, int.from_bytes(header[:3], "little")))
            assert first.seq == 1, f"the gateway's first packet is {first.seq}, not 1"
        context = None
        if first is not None and is_ssl_request(first.payload):
            assert self.tls is not None, "an SSLRequest to a server without TLS"
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert, self.tls.key)
        reader = asyncio.StreamReader()
        transport, protocol = await loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader), sock, ssl=context)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            if first is not None:
                await self._play(reader, writer, first.payload, tls=context is not None)
            self.after = await reader.read()
            self.received += self.after
        finally:
            writer.close()

    async def _exactly(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = await asyncio.get_running_loop().sock_recv(sock, n - len(data))
            assert chunk, "the gateway hung up during its first packet"
            data += chunk
        self.received += data
        return data

    async def _play(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    first: bytes, tls: bool) -> None:
        framer = Framer(1 << 16)
        queue: list[Packet] = []

        async def receive(seq: int) -> bytes:
            while not queue:
                data = await reader.read(65536)
                assert data, f"the gateway hung up where packet {seq} was due"
                self.received += data
                queue.extend(framer.feed(data))
            packet = queue.pop(0)
            assert packet.seq == seq, f"the gateway sent sequence id {packet.seq}, not {seq}"
            return packet.payload

        payload, seq = (await receive(2), 3) if tls else (first, 2)
        self.response = parse_handshake_response(payload)
        for step in self.steps:
            if step is HANG_UP:
                writer.close()
                break
            if isinstance(step, Expect):
                assert await receive(seq) == step.payload
            elif isinstance(step, Raw):
                writer.write(step.data)
                continue
            elif isinstance(step, asyncio.Event):
                await step.wait()
                continue
            else:
                writer.write(encode(seq, step))
            seq += 1
        assert not queue and not framer.buffered


async def test_caching_sha2_passwords_fast_path() -> None:
    async with FakeMySQL([FAST_AUTH_SUCCESS, OK]) as fake:
        upstream = await login(fake.settings())
        await upstream.close()
        await fake.finished()
    assert not upstream.tls
    assert upstream.auth_plugin == auth.CACHING_SHA2_PASSWORD
    assert (upstream.connection_id, upstream.server_version) == (4242, "8.0.36")
    assert upstream.status == STATUS
    assert fake.response == HandshakeResponse(
        upstream.capabilities, MAX_PACKET, CHARSET, "gw",
        auth.caching_sha2_fast(FAKE_PASSWORD.encode(), SCRAMBLE), "shop",
        auth.CACHING_SHA2_PASSWORD)
    assert upstream.capabilities & ALWAYS_SENT == ALWAYS_SENT
    assert upstream.capabilities & CLIENT_CONNECT_WITH_DB
    assert upstream.capabilities & (NEVER_SENT | CLIENT_SSL) == 0
    assert fake.after == encode(0, bytes((COM_QUIT,)))


async def test_caching_sha2_passwords_full_authentication_sends_the_password_over_tls(
        tls: TlsFiles) -> None:
    password = Expect(auth.clear_password(FAKE_PASSWORD.encode()))
    async with FakeMySQL([FULL_AUTHENTICATION, password, OK], greeting(tls=True),
                         tls) as fake:
        upstream = await login(fake.settings("verify-full", tls.ca))
        await upstream.close()
        await fake.finished()
    assert upstream.tls and upstream.auth_plugin == auth.CACHING_SHA2_PASSWORD
    assert fake.response is not None and fake.response.capabilities & CLIENT_SSL


async def test_caching_sha2_passwords_full_authentication_is_refused_without_tls() -> None:
    async with FakeMySQL([FULL_AUTHENTICATION]) as fake:
        err = await refusal(fake.settings())
        await fake.finished()
    assert (err.code, err.sqlstate) == (2061, "HY000")
    assert "TLS" in err.message
    assert fake.after == b""  # neither the password nor a request for the RSA key
    assert FAKE_PASSWORD.encode() not in fake.received


@pytest.mark.parametrize(("first", "plugin", "answer"), [
    (auth.CACHING_SHA2_PASSWORD, auth.NATIVE_PASSWORD, [OK]),
    (auth.NATIVE_PASSWORD, auth.CACHING_SHA2_PASSWORD, [FAST_AUTH_SUCCESS, OK]),
    ("client_ed25519", auth.CACHING_SHA2_PASSWORD, [FAST_AUTH_SUCCESS, OK]),
])
async def test_an_auth_switch_is_answered_with_its_scramble(
        first: str, plugin: str, answer: list[Step]) -> None:
    expected = auth.auth_response(plugin, FAKE_PASSWORD.encode(), SWITCH_SCRAMBLE)
    async with FakeMySQL([switch(plugin), Expect(expected), *answer],
                         greeting(first)) as fake:
        upstream = await login(fake.settings())
        await upstream.close()
        await fake.finished()
    assert upstream.auth_plugin == plugin
    # A default plugin tollgate does not speak gets mysql_native_password's answer first.
    assert fake.response is not None and fake.response.auth_plugin == (
        first if first in (auth.NATIVE_PASSWORD, auth.CACHING_SHA2_PASSWORD)
        else auth.NATIVE_PASSWORD)


@pytest.mark.parametrize(("request_", "plugin"), [
    (switch(auth.CLEAR_PASSWORD, b""), auth.CLEAR_PASSWORD),
    (b"\xfe", "mysql_old_password"),  # the pre-4.1 switch: a lone 0xFE
])
async def test_a_switch_that_would_reveal_the_password_is_refused_without_tls(
        request_: bytes, plugin: str) -> None:
    async with FakeMySQL([request_]) as fake:
        err = await refusal(fake.settings())
        await fake.finished()
    assert (err.code, err.sqlstate) == (2059, "HY000")
    assert plugin in err.message
    assert fake.after == b""
    assert FAKE_PASSWORD.encode() not in fake.received


async def test_mysql_clear_password_is_answered_over_tls(tls: TlsFiles) -> None:
    password = Expect(auth.clear_password(FAKE_PASSWORD.encode()))
    async with FakeMySQL([switch(auth.CLEAR_PASSWORD, b""), password, OK],
                         greeting(tls=True), tls) as fake:
        upstream = await login(fake.settings("require"))
        await upstream.close()
        await fake.finished()
    assert upstream.tls and upstream.auth_plugin == auth.CLEAR_PASSWORD


@pytest.mark.parametrize(("script", "code", "words"), [
    ([encode_err(1045, "28000", "Access denied for user 'gw'")], 1045, "Access denied"),
    ([switch(auth.NATIVE_PASSWORD), Expect(auth.native_password(
        FAKE_PASSWORD.encode(), SWITCH_SCRAMBLE)), switch(auth.NATIVE_PASSWORD)],
     2027, "0xfe"),  # a second switch
    ([Raw(encode(5, OK))], 2027, "sequence id 5"),
    ([encode_auth_more_data(b"\x02")], 2027, "AuthMoreData"),
    ([HANG_UP], 2013, "Lost connection"),
])
async def test_what_is_not_a_login_is_refused(
        script: list[Step], code: int, words: str) -> None:
    async with FakeMySQL(script) as fake:
        err = await refusal(fake.settings())
        await fake.finished()
    assert err.code == code and words in err.message


@pytest.mark.parametrize(("first", "code", "sqlstate", "words"), [
    (encode_err(1040, "08004", "Too many connections"), 1040, "08004", "Too many"),
    (b"\x09" + b"4.0\x00" + bytes(20), 2007, "HY000", "protocol version 9"),
    (b"", 2013, "HY000", "no answer"),  # a server that never greets
])
async def test_a_greeting_that_is_not_one_is_refused(
        first: bytes, code: int, sqlstate: str, words: str) -> None:
    async with FakeMySQL([], first) as fake:
        err = await refusal(fake.settings(connect_timeout=0.2 if not first else 5.0))
        await fake.finished()
    assert (err.code, err.sqlstate) == (code, sqlstate)
    assert words in err.message


async def test_the_session_reads_on_where_the_login_stopped() -> None:
    """Bytes that came with the login's OK (a whole packet, part of another) are the
    session's first: the framer and its packets are handed over, nothing dropped."""
    rest = asyncio.Event()
    second = encode(1, b"second")
    async with FakeMySQL([Raw(encode(2, OK) + encode(0, b"first") + second[:5]),
                          rest, Raw(second[5:])]) as fake:
        upstream = await login(fake.settings())
        assert upstream.pending == [Packet(0, b"first")]
        assert upstream.framer.buffered == 5
        assert upstream.framer.max_size == MAX_PACKET
        rest.set()
        assert await upstream.read() == Packet(0, b"first")
        assert await upstream.read() == Packet(1, b"second")
        await upstream.close()
        await fake.finished()


@pytest.mark.parametrize(("statement_seconds", "lock_seconds", "version", "bound"), [
    (300, 10.0, "10.11.19-MariaDB", True),  # an agent's session on MariaDB
    (None, 10.0, "10.11.19-MariaDB", False),  # a dba's: no shorter bound
    (300, 0.0, "10.11.19-MariaDB", False),  # switched off
    (300, 90.0, "10.11.19-MariaDB", False),  # not shorter than the minute
    (300, 10.0, "8.0.36", False),  # MySQL has no such setting
])
def test_an_agents_mariadb_session_that_wrote_idles_lock_idle_seconds(
        statement_seconds: int | None, lock_seconds: float, version: str,
        bound: bool) -> None:
    commands = setup_commands(None, 60.0, version, statement_seconds, lock_seconds)
    assert (b"\x03SET SESSION idle_write_transaction_timeout = 10" in commands) is bound
