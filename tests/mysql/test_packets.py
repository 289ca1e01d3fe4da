"""MySQL's framing and codecs (extproc/mysql/: framing.py, flags.py, handshake.py,
commands.py, responses.py, resultsets.py, binary.py, prepared.py; auth.py): packets
across reads and split at 16 MiB, length-encoded values at their boundaries, every
message read back as it was written, bytes captured from libmariadb and from MariaDB
10.11 read as they mean, input that is not the protocol refused; and a login, a query
and a prepared statement against the real MariaDB (e2e)."""

from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mysql.connector.protocol import MySQLProtocol

from extproc.mysql import auth, flags
from extproc.mysql.binary import LENGTH_ENCODED_TYPES, binary_text, encode_binary_value
from extproc.mysql.commands import (
    ChangeUser,
    FieldList,
    encode_change_user,
    encode_field_list,
    parse_change_user,
    parse_field_list,
    parse_process_kill,
)
from extproc.mysql.flags import (
    CHARSET_UTF8MB4_GENERAL_CI,
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_DEPRECATE_EOF,
    CLIENT_LONG_PASSWORD,
    CLIENT_MULTI_RESULTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SESSION_TRACK,
    CLIENT_SSL,
    CLIENT_TRANSACTIONS,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    COM_QUERY,
    COM_QUIT,
    COM_STMT_CLOSE,
    COM_STMT_EXECUTE,
    COM_STMT_PREPARE,
    COMMAND_NAMES,
    MARIADB_CLIENT_CACHE_METADATA,
    MARIADB_CLIENT_EXTENDED_METADATA,
    MARIADB_CLIENT_PROGRESS,
    MARIADB_CLIENT_STMT_BULK_OPERATIONS,
    MYSQL_TYPE_BIT,
    MYSQL_TYPE_BLOB,
    MYSQL_TYPE_DATE,
    MYSQL_TYPE_DATETIME,
    MYSQL_TYPE_DOUBLE,
    MYSQL_TYPE_FLOAT,
    MYSQL_TYPE_GEOMETRY,
    MYSQL_TYPE_INT24,
    MYSQL_TYPE_JSON,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_NEWDECIMAL,
    MYSQL_TYPE_NULL,
    MYSQL_TYPE_SHORT,
    MYSQL_TYPE_STRING,
    MYSQL_TYPE_TIME,
    MYSQL_TYPE_TIMESTAMP,
    MYSQL_TYPE_TINY,
    MYSQL_TYPE_VAR_STRING,
    MYSQL_TYPE_YEAR,
    NOT_NULL_FLAG,
    SERVER_SESSION_STATE_CHANGED,
    SERVER_STATUS_AUTOCOMMIT,
    STRING_TYPES,
    command_name,
    type_name,
)
from extproc.mysql.framing import (
    MAX_PAYLOAD,
    Framer,
    Packet,
    ProtocolViolation,
    Reader,
    encode,
    lenenc_int,
    lenenc_str,
)
from extproc.mysql.handshake import (
    AuthSwitchRequest,
    Handshake,
    HandshakeResponse,
    SslRequest,
    encode_auth_more_data,
    encode_auth_switch,
    encode_handshake,
    encode_handshake_response,
    encode_ssl_request,
    is_ssl_request,
    parse_auth_more_data,
    parse_auth_switch,
    parse_handshake,
    parse_handshake_response,
    parse_ssl_request,
)
from extproc.mysql.prepared import (
    LongData,
    ParameterType,
    PrepareOk,
    StmtExecute,
    bind_types,
    encode_long_data,
    encode_prepare_ok,
    encode_stmt_execute,
    parse_long_data,
    parse_prepare_ok,
    parse_stmt_execute,
    statement_id,
    with_statement_id,
)
from extproc.mysql.responses import (
    Eof,
    Ok,
    encode_eof,
    encode_err,
    encode_ok,
    ends_rows,
    is_eof,
    is_err,
    is_ok,
    parse_eof,
    parse_err,
    parse_ok,
)
from extproc.mysql.resultsets import (
    ColumnDefinition,
    encode_binary_row,
    encode_column_definition,
    encode_text_row,
    parse_binary_row,
    parse_column_definition,
    parse_text_row,
)

# Reproducible examples, none stored (no .hypothesis/ written), no per-example deadline.
PROPERTIES = settings(derandomize=True, database=None, deadline=None)

# Captured from MariaDB 10.11.19 (Debian 12) on 127.0.0.1:3306: its greeting.
MARIADB_HANDSHAKE = bytes.fromhex(
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100090000007b577c2d"
    "6847675300fef72d0200ff81150000000000001d000000474b246d7b45237c697a4b45006d7973716c5f"
    "6e61746976655f70617373776f726400")
# libmariadb 3.3.20 (the `mariadb` command) logging in as "vec" with the password
# "tollgate-secret" to a server stand-in whose scramble was SCRAMBLE_VECTOR.
SCRAMBLE_VECTOR = b"ABCDEFGHIJKLMNOPQRST"
PASSWORD_VECTOR = b"tollgate-secret"
LIBMARIADB_RESPONSE = bytes.fromhex(
    "85a2bf0000001000210000000000000000000000000000000000000000000000766563001418baf2b72f"
    "efe7b6ca71800d06d78225502403c66d7973716c5f6e61746976655f70617373776f7264007f035f6f73"
    "054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f7069640531393632310f"
    "5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c7072"
    "6f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31")
NATIVE_VECTOR = bytes.fromhex("18baf2b72fefe7b6ca71800d06d78225502403c6")
CACHING_SHA2_VECTOR = bytes.fromhex(
    "102b8b46b8d3044bd2782d71060a66dd16c5b30ad929bd54defbdff8da2532c2")
# MariaDB's SELECT PASSWORD('tollgate-secret'): what mysql.user stores, SHA1(SHA1(pw)).
STORED_VECTOR = bytes.fromhex("B1B048E2343EC23C4D6AE7B59AE19558A9FD8C34")

# Names with multi-byte UTF-8, never a NUL (NUL-terminated fields cannot hold one).
NAME = st.text("abcxyz_-. é€日本\U0001f600", max_size=40)
VALUES = st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=12)


# -- framing ----------------------------------------------------------------------------------


def cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(bounds)]


def frame(framer: Framer, chunks: Sequence[bytes]) -> list[Packet]:
    return [packet for chunk in chunks for packet in framer.feed(chunk)]


@PROPERTIES
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=8),
       st.lists(st.integers(0, 2500), max_size=12))
def test_packets_cut_anywhere_frame_as_they_were_written(
        packets: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode(seq, payload) for seq, payload in packets)
    framer = Framer(1 << 20)
    got = frame(framer, cut(stream, cuts))
    assert got == [Packet(seq, payload) for seq, payload in packets]
    assert framer.buffered == 0
    assert b"".join(p.raw() for p in got) == stream


@pytest.mark.parametrize(("size", "wire_sizes"), [
    (MAX_PAYLOAD - 1, [MAX_PAYLOAD - 1]),
    (MAX_PAYLOAD, [MAX_PAYLOAD, 0]),  # an exact multiple ends with an empty packet
    (MAX_PAYLOAD + 1, [MAX_PAYLOAD, 1]),
    (2 * MAX_PAYLOAD, [MAX_PAYLOAD, MAX_PAYLOAD, 0]),
])
def test_a_payload_of_16_mib_or_more_goes_as_several_packets(
        size: int, wire_sizes: list[int]) -> None:
    wire = encode(254, bytes(size))
    headers, pos = [], 0
    while pos < len(wire):
        length, seq = int.from_bytes(wire[pos:pos + 3], "little"), wire[pos + 3]
        headers.append((length, seq))
        pos += 4 + length
    assert headers == [(n, (254 + i) & 0xFF) for i, n in enumerate(wire_sizes)]
    (packet,) = Framer(size).feed(wire)
    assert packet.seq == 254 and len(packet.payload) == size
    assert packet.last_seq == (254 + len(wire_sizes) - 1) & 0xFF


@pytest.mark.slow
@settings(PROPERTIES, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 7,
                        2 * MAX_PAYLOAD]),
       st.integers(0, 255), st.lists(st.integers(0, 2 * MAX_PAYLOAD + 20), max_size=4))
def test_a_split_payload_reassembles_whatever_the_cuts(
        size: int, seq: int, cuts: list[int]) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    stream = encode(seq, payload) + encode(0, b"next")
    framer = Framer(2 * MAX_PAYLOAD)
    got = frame(framer, cut(stream, cuts))
    assert [(p.seq, len(p.payload)) for p in got] == [(seq, size), (0, 4)]
    assert got[0].payload == payload and got[1].payload == b"next"
    assert framer.buffered == 0


def test_what_is_not_yet_a_packet_stays_buffered() -> None:
    framer = Framer(1024)
    assert framer.feed(encode(3, b"hello")[:6]) == []
    assert framer.buffered == 6
    assert framer.feed(b"llo") == [Packet(3, b"hello")]
    assert framer.buffered == 0


def test_a_continuation_out_of_sequence_is_refused() -> None:
    first = encode(0, bytes(MAX_PAYLOAD))[:4 + MAX_PAYLOAD]
    framer = Framer(1 << 25)
    assert framer.feed(first) == []
    with pytest.raises(ProtocolViolation, match="sequence id 5, not 1") as refused:
        framer.feed(b"\x01\x00\x00\x05x")
    assert refused.value.reply_seq == 6  # the sender is answered after what it sent


def test_an_oversize_payload_is_refused_from_its_header() -> None:
    with pytest.raises(ProtocolViolation, match="1025 bytes or more, over the 1024") as refused:
        Framer(1024).feed((1025).to_bytes(3, "little") + b"\x00")
    assert refused.value.reply_seq == 1


def test_an_oversize_split_payload_is_refused_at_its_continuation() -> None:
    framer = Framer(MAX_PAYLOAD + 10)
    assert framer.feed(encode(0, bytes(MAX_PAYLOAD))[:4 + MAX_PAYLOAD]) == []
    with pytest.raises(ProtocolViolation, match="over the") as refused:
        framer.feed(b"\x0b\x00\x00\x01")
    assert refused.value.reply_seq == 2


# -- length-encoded values --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "wire"), [
    (0, "00"), (250, "fa"), (251, "fcfb00"), (0xFFFF, "fcffff"), (1 << 16, "fd000001"),
    ((1 << 24) - 1, "fdffffff"), (1 << 24, "fe0000000100000000"),
    ((1 << 64) - 1, "feffffffffffffffff"),
])
def test_a_length_encoded_integer_takes_its_shortest_form(n: int, wire: str) -> None:
    assert lenenc_int(n).hex() == wire
    r = Reader(bytes.fromhex(wire))
    assert r.lenenc_int() == n
    r.done()


BOUNDARY = st.sampled_from([250, 251, 1 << 16, 1 << 24, 1 << 64]).flatmap(
    lambda b: st.integers(b - 2, b - 1) | st.integers(b, b + 1).filter(lambda n: n < 1 << 64))


@PROPERTIES
@given(st.lists(st.integers(0, (1 << 64) - 1) | BOUNDARY, max_size=10))
def test_length_encoded_integers_read_back(numbers: list[int]) -> None:
    r = Reader(b"".join(lenenc_int(n) for n in numbers))
    assert [r.lenenc_int() for _ in numbers] == numbers
    r.done()


@pytest.mark.parametrize("n", [-1, 1 << 64])
def test_a_number_past_what_a_length_encodes_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="length-encoded integer"):
        lenenc_int(n)


def test_0xfb_is_null_in_a_row_and_refused_as_a_number() -> None:
    assert Reader(b"\xfb").nullable_int() is None
    assert Reader(b"\xfb").nullable_str() is None
    with pytest.raises(ProtocolViolation, match="NULL"):
        Reader(b"\xfb").lenenc_int()
    with pytest.raises(ProtocolViolation, match="0xFF"):
        Reader(b"\xff").nullable_int()


def test_the_readers_fixed_width_integers_are_little_endian() -> None:
    r = Reader(bytes(range(1, 19)) + b"ab\x00rest")
    assert (r.int1(), r.int2(), r.int3(), r.int4(), r.int8()) == (
        0x01, 0x0302, 0x060504, 0x0A090807, 0x1211100F0E0D0C0B)
    assert (r.cstring(), r.rest(), r.remaining) == (b"ab", b"rest", 0)


READS: list[tuple[bytes, Callable[[Reader], object]]] = [
    (b"", Reader.int1), (b"\x01", Reader.int2), (b"\x01\x02", Reader.int3),
    (b"\x01\x02\x03", Reader.int4), (b"\x01" * 7, Reader.int8),
    (b"", Reader.lenenc_int), (b"\xfc\x01", Reader.lenenc_int),
    (b"\xfd\x01\x02", Reader.lenenc_int), (b"\xfe" + bytes(7), Reader.lenenc_int),
    (b"\x05abcd", Reader.lenenc_str), (b"\xfc\x00\x01" + bytes(255), Reader.lenenc_str),
    (b"\x03ab", Reader.nullable_str), (b"no terminator", Reader.cstring),
    (b"abc", lambda r: r.fixed(4)),
]


@pytest.mark.parametrize(("data", "read"), READS)
def test_a_read_past_the_end_is_refused(data: bytes, read: Callable[[Reader], object]) -> None:
    with pytest.raises(ProtocolViolation):
        read(Reader(data))


def test_bytes_left_over_are_refused() -> None:
    r = Reader(b"\x01\x02\x03")
    r.int1()
    with pytest.raises(ProtocolViolation, match="2 bytes past"):
        r.done()


# -- text and binary rows ---------------------------------------------------------------------


@PROPERTIES
@given(VALUES)
def test_text_rows_read_back(values: list[bytes | None]) -> None:
    assert parse_text_row(encode_text_row(values), len(values)) == values


def test_a_text_row_is_length_encoded_with_0xfb_for_null() -> None:
    assert encode_text_row([b"1", None, b"x", b"y" * 251]) == (
        b"\x011\xfb\x01x\xfc\xfb\x00" + b"y" * 251)


@pytest.mark.parametrize(("payload", "count"), [
    (b"\x011\xfb", 3),  # a value short
    (b"\x011\xfb\x01x", 2),  # a value over
    (b"\x05abc", 1),  # a value's length past the end
])
def test_a_text_row_of_another_shape_is_refused(payload: bytes, count: int) -> None:
    with pytest.raises(ProtocolViolation):
        parse_text_row(payload, count)


# Each binary type's layout, as the protocol documentation gives it.
FIXED = {MYSQL_TYPE_TINY: 1, MYSQL_TYPE_SHORT: 2, MYSQL_TYPE_YEAR: 2,
         MYSQL_TYPE_INT24: 4, MYSQL_TYPE_LONG: 4, MYSQL_TYPE_LONGLONG: 8,
         MYSQL_TYPE_FLOAT: 4, MYSQL_TYPE_DOUBLE: 8}
TEMPORAL = {MYSQL_TYPE_DATE: (0, 4, 7, 11), MYSQL_TYPE_DATETIME: (0, 4, 7, 11),
            MYSQL_TYPE_TIMESTAMP: (0, 4, 7, 11), MYSQL_TYPE_TIME: (0, 8, 12)}


def binary_value(column_type: int) -> st.SearchStrategy[bytes]:
    if column_type in FIXED:
        return st.binary(min_size=FIXED[column_type], max_size=FIXED[column_type])
    if column_type in TEMPORAL:
        return st.sampled_from(TEMPORAL[column_type]).flatmap(
            lambda n: st.binary(min_size=n, max_size=n))
    return st.binary(max_size=300)


TYPED_VALUE = st.sampled_from(sorted({*FIXED, *TEMPORAL, *LENGTH_ENCODED_TYPES})).flatmap(
    lambda t: st.tuples(st.just(t), st.none() | binary_value(t)))


@pytest.mark.slow
@PROPERTIES
@given(st.lists(TYPED_VALUE, max_size=20))
def test_binary_rows_read_back(typed: list[tuple[int, bytes | None]]) -> None:
    columns = [ColumnDefinition(name=f"c{i}", type=t) for i, (t, _) in enumerate(typed)]
    values = [v for _, v in typed]
    payload = encode_binary_row(values, columns)
    assert payload[:1] == b"\x00" and len(payload) >= 1 + (len(values) + 9) // 8
    assert parse_binary_row(payload, columns) == values


# MariaDB 10.11's binary row for SELECT CAST('2024-01-02 03:04:05.678901' AS DATETIME(6)),
# CAST('-838:59:59' AS TIME), CAST('2024-01-02' AS DATE), 1.5e0, CAST(7 AS SIGNED), NULL,
# CAST(-3 AS SIGNED) DIV 1, 2.50, TIMESTAMP'2024-01-02 03:04:05' (COM_STMT_EXECUTE's).
MARIADB_BINARY_ROW = (
    b'\x00\x80\x00\x0b\xe8\x07\x01\x02\x03\x04\x05\xf5[\n\x00\x08\x01"\x00\x00\x00\x16;;'
    b"\x04\xe8\x07\x01\x02\x00\x00\x00\x00\x00\x00\xf8?\x07\x00\x00\x00\xfd\xff\xff\xff"
    b"\x042.50\x07\xe8\x07\x01\x02\x03\x04\x05")
MARIADB_BINARY_TYPES = [MYSQL_TYPE_DATETIME, MYSQL_TYPE_TIME, MYSQL_TYPE_DATE,
                        MYSQL_TYPE_DOUBLE, MYSQL_TYPE_LONG, MYSQL_TYPE_NULL,
                        MYSQL_TYPE_LONG, MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_DATETIME]
MARIADB_BINARY_VALUES = [
    struct.pack("<HBBBBBI", 2024, 1, 2, 3, 4, 5, 678901),
    struct.pack("<BIBBB", 1, 34, 22, 59, 59),  # negative, 34 days and 22:59:59
    struct.pack("<HBB", 2024, 1, 2),
    struct.pack("<d", 1.5),
    struct.pack("<i", 7),
    None,
    struct.pack("<i", -3),
    b"2.50",
    struct.pack("<HBBBBB", 2024, 1, 2, 3, 4, 5),  # no microseconds: 7 bytes
]


def test_mariadbs_binary_row_reads_as_its_types_lay_it_out() -> None:
    columns = [ColumnDefinition(type=t) for t in MARIADB_BINARY_TYPES]
    assert parse_binary_row(MARIADB_BINARY_ROW, columns) == MARIADB_BINARY_VALUES
    assert encode_binary_row(MARIADB_BINARY_VALUES, columns) == MARIADB_BINARY_ROW


@pytest.mark.parametrize(("payload", "types", "problem"), [
    (b"\x01\x00", [MYSQL_TYPE_LONG], "starting with 0x01"),
    (b"\x00\x00\x05\x01\x02\x03\x04\x05", [MYSQL_TYPE_DATE], "DATE value of 5 bytes"),
    (b"\x00\x00\x07" + bytes(7), [MYSQL_TYPE_TIME], "TIME value of 7 bytes"),
    (b"\x00\x00\x01\x02\x03", [MYSQL_TYPE_LONG], "ends inside"),
    (b"\x00\x00\x00", [17], "binary protocol does not carry"),
    (b"\x00\x00" + bytes(5), [MYSQL_TYPE_LONG], "1 bytes past"),
])
def test_a_binary_row_that_is_not_its_columns_is_refused(
        payload: bytes, types: list[int], problem: str) -> None:
    columns = [ColumnDefinition(type=t) for t in types]
    with pytest.raises(ProtocolViolation, match=problem):
        parse_binary_row(payload, columns)


@pytest.mark.parametrize(("column_type", "value"), [
    (MYSQL_TYPE_LONG, b"\x01\x02"), (MYSQL_TYPE_DATETIME, bytes(5)), (17, b""),
])
def test_a_value_of_another_size_than_its_type_is_not_written(
        column_type: int, value: bytes) -> None:
    with pytest.raises(ValueError, match=type_name(column_type)):
        encode_binary_value(column_type, value)


# -- the handshake ----------------------------------------------------------------------------


def test_mariadbs_greeting_reads_and_writes_back() -> None:
    h = parse_handshake(MARIADB_HANDSHAKE)
    assert h.server_version == "5.5.5-10.11.19-MariaDB-0+deb12u1"
    assert (h.protocol_version, h.connection_id, h.charset, h.status) == (
        10, 9, CHARSET_UTF8MB4_GENERAL_CI, SERVER_STATUS_AUTOCOMMIT)
    assert h.scramble == b"{W|-hGgSGK$m{E#|izKE" and len(h.scramble) == 20
    assert h.auth_plugin == auth.NATIVE_PASSWORD
    # A MariaDB server clears CLIENT_LONG_PASSWORD (CLIENT_MYSQL): its extended
    # capabilities fill the reserved bytes.
    assert not h.capabilities & (CLIENT_LONG_PASSWORD | CLIENT_SSL)
    assert h.capabilities & CLIENT_DEPRECATE_EOF
    assert h.mariadb_capabilities == (
        MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS
        | MARIADB_CLIENT_EXTENDED_METADATA | MARIADB_CLIENT_CACHE_METADATA)
    assert encode_handshake(h) == MARIADB_HANDSHAKE


@PROPERTIES
@given(NAME, st.integers(0, 2**32 - 1), st.binary(min_size=20, max_size=20).filter(
    lambda s: not s.endswith(b"\x00")), st.integers(0, 2**32 - 1), st.integers(0, 255),
       st.integers(0, 0xFFFF), NAME, st.integers(0, 2**32 - 1))
def test_greetings_read_back(version: str, connection_id: int, scramble: bytes, caps: int,
                             charset: int, status: int, plugin: str, mariadb: int) -> None:
    caps |= CLIENT_SECURE_CONNECTION
    h = Handshake(version, connection_id, scramble, caps, charset, status,
                     plugin if caps & CLIENT_PLUGIN_AUTH else "", mariadb)
    assert parse_handshake(encode_handshake(h)) == h


def test_a_greeting_without_secure_connection_has_an_8_byte_scramble() -> None:
    h = Handshake("5.0.0", 1, b"12345678", CLIENT_PROTOCOL_41, 8, 0)
    assert parse_handshake(encode_handshake(h)) == h
    with pytest.raises(ValueError, match="scramble of 8 bytes"):
        encode_handshake(replace(h, capabilities=CLIENT_SECURE_CONNECTION))


def test_a_greeting_of_another_protocol_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="protocol version 255"):
        parse_handshake(encode_err(1040, "08004", "Too many connections"))
    with pytest.raises(ProtocolViolation):
        parse_handshake(MARIADB_HANDSHAKE[:40])


def test_an_ssl_request_is_told_from_a_handshake_response() -> None:
    request = SslRequest(CLIENT_PROTOCOL_41 | CLIENT_SSL, 1 << 24, 45, 0x1D)
    payload = encode_ssl_request(request)
    assert len(payload) == 32 and is_ssl_request(payload)
    assert parse_ssl_request(payload) == request
    assert not is_ssl_request(LIBMARIADB_RESPONSE)
    with pytest.raises(ProtocolViolation, match="SSLRequest where"):
        parse_handshake_response(payload)
    with pytest.raises(ProtocolViolation, match="not an SSLRequest"):
        parse_ssl_request(LIBMARIADB_RESPONSE)
    with pytest.raises(ValueError, match="without CLIENT_SSL"):
        encode_ssl_request(request._replace(capabilities=CLIENT_PROTOCOL_41))


def test_libmariadbs_login_reads_and_writes_back() -> None:
    r = parse_handshake_response(LIBMARIADB_RESPONSE)
    assert (r.username, r.database, r.auth_plugin, r.charset, r.max_packet) == (
        "vec", "", auth.NATIVE_PASSWORD, 33, 1 << 20)
    assert r.auth_response == NATIVE_VECTOR
    assert r.capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    assert r.connect_attrs["_client_name"] == "libmariadb"
    assert r.connect_attrs["program_name"] == "mysql"
    assert encode_handshake_response(r) == LIBMARIADB_RESPONSE


AUTH_MODES = {
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION:
        st.binary(max_size=400),
    CLIENT_SECURE_CONNECTION: st.binary(max_size=255),
    0: st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"")),
}
OPTIONAL = [CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH, CLIENT_CONNECT_ATTRS,
            CLIENT_ZSTD_COMPRESSION_ALGORITHM]


@st.composite
def responses(draw: st.DrawFn) -> HandshakeResponse:
    mode = draw(st.sampled_from(sorted(AUTH_MODES)))
    optional = draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    caps = (CLIENT_PROTOCOL_41 | mode | sum(optional)
            | draw(st.sampled_from([0, CLIENT_LONG_PASSWORD, CLIENT_SSL])))
    return HandshakeResponse(
        caps, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 255)), draw(NAME),
        draw(AUTH_MODES[mode]),
        draw(NAME) if caps & CLIENT_CONNECT_WITH_DB else "",
        draw(NAME) if caps & CLIENT_PLUGIN_AUTH else "",
        draw(st.dictionaries(NAME, NAME, max_size=5))
        if caps & CLIENT_CONNECT_ATTRS else {},
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(1, 22)) if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM else 0)


@PROPERTIES
@given(responses())
def test_handshake_responses_read_back(response: HandshakeResponse) -> None:
    payload = encode_handshake_response(response)
    assert not is_ssl_request(payload)
    assert parse_handshake_response(payload) == response


def test_the_auth_response_is_framed_as_the_capabilities_say() -> None:
    tail = {
        CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: b"u\x00\x02\x01\x02",
        CLIENT_SECURE_CONNECTION: b"u\x00\x02\x01\x02",
        0: b"u\x00\x01\x02\x00",
    }
    for flag, wire in tail.items():
        response = HandshakeResponse(CLIENT_PROTOCOL_41 | flag, 0, 45, "u", b"\x01\x02")
        assert encode_handshake_response(response)[32:] == wire
    with pytest.raises(ValueError, match="256 bytes"):
        encode_handshake_response(HandshakeResponse(
            CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION, 0, 45, "u", bytes(256)))


def test_undecodable_names_keep_their_bytes() -> None:
    payload = (struct.pack("<IIB", CLIENT_PROTOCOL_41, 0, 8) + bytes(23)
               + b"caf\xe9\x00" + b"\x00")
    response = parse_handshake_response(payload)
    assert response.username == "caf\udce9"
    assert encode_handshake_response(response) == payload


def test_optional_fields_a_client_announces_but_leaves_off_read_as_empty() -> None:
    caps = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_ATTRS)
    payload = struct.pack("<IIB", caps, 0, 45) + bytes(23) + b"u\x00\x00"
    response = parse_handshake_response(payload)
    assert (response.auth_plugin, response.connect_attrs) == ("", {})


@pytest.mark.parametrize(("payload", "problem"), [
    (struct.pack("<IIB", CLIENT_SECURE_CONNECTION, 0, 45) + bytes(23) + b"u\x00\x00",
     "pre-4.1"),
    (struct.pack("<IIB", CLIENT_PROTOCOL_41, 0, 45) + bytes(23) + b"u", "terminator"),
    (struct.pack("<IIB", CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION, 0, 45)
     + bytes(23) + b"u\x00\x14abc", "ends inside"),
    (struct.pack("<IIB", CLIENT_PROTOCOL_41 | CLIENT_CONNECT_ATTRS, 0, 45)
     + bytes(23) + b"u\x00\x00" + b"\x08\x01a\x01b\x01a\x01c", "given twice"),
])
def test_a_handshake_response_that_is_not_one_is_refused(payload: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        parse_handshake_response(payload)


def test_the_auth_exchange_packets_read_back() -> None:
    switch = AuthSwitchRequest(auth.NATIVE_PASSWORD, SCRAMBLE_VECTOR + b"\x00")
    payload = encode_auth_switch(switch)
    assert payload == b"\xfemysql_native_password\x00" + SCRAMBLE_VECTOR + b"\x00"
    assert parse_auth_switch(payload) == switch
    assert switch.scramble == SCRAMBLE_VECTOR
    assert parse_auth_switch(b"\xfe") == ("mysql_old_password", b"")
    more = encode_auth_more_data(bytes((auth.CACHING_SHA2_FAST_AUTH_SUCCESS,)))
    assert more == b"\x01\x03"
    assert parse_auth_more_data(more) == b"\x03"
    with pytest.raises(ProtocolViolation, match="AuthMoreData starting with 0x00"):
        parse_auth_more_data(b"\x00\x03")


# -- commands with arguments ------------------------------------------------------------------

# libmariadb 3.3.20's mysql_change_user("other", "tollgate-secret", "shop"), sent on a
# connection whose greeting's scramble was SCRAMBLE_VECTOR (so its answer is NATIVE_VECTOR).
LIBMARIADB_CHANGE_USER = bytes.fromhex(
    "116f74686572001418baf2b72fefe7b6ca71800d06d78225502403c673686f70002d006d7973716c5f6e"
    "61746976655f70617373776f7264006c035f6f73054c696e75780c5f636c69656e745f6e616d650a6c"
    "69626d617269616462045f7069640533323639300f5f636c69656e745f76657273696f6e06332e332e"
    "3230095f706c6174666f726d067838365f36340c5f7365727665725f686f7374093132372e302e302e31")
CHANGE_USER_CAPS = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
                    | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS)


def test_libmariadbs_change_user_reads_as_it_was_sent() -> None:
    request = parse_change_user(LIBMARIADB_CHANGE_USER, CHANGE_USER_CAPS)
    assert (request.username, request.auth_response, request.database, request.charset,
            request.auth_plugin) == ("other", NATIVE_VECTOR, "shop", 45,
                                     auth.NATIVE_PASSWORD)
    assert request.connect_attrs["_client_name"] == "libmariadb"
    assert encode_change_user(request, CHANGE_USER_CAPS) == LIBMARIADB_CHANGE_USER


@settings(PROPERTIES, max_examples=40)
@given(st.sampled_from([CLIENT_PROTOCOL_41, CHANGE_USER_CAPS, CLIENT_PROTOCOL_41
                        | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH]),
       NAME, st.binary(max_size=255), NAME, st.integers(0, 0xFFFF), NAME,
       st.dictionaries(NAME, NAME, max_size=3))
def test_change_user_requests_read_back(caps: int, user: str, response: bytes, database: str,
                                        charset: int, plugin: str,
                                        attrs: dict[str, str]) -> None:
    if not caps & CLIENT_SECURE_CONNECTION:
        response = response.replace(b"\x00", b"")
    request = ChangeUser(user, response, database, charset,
                            plugin if caps & CLIENT_PLUGIN_AUTH else "",
                            attrs if caps & CLIENT_CONNECT_ATTRS else {})
    assert parse_change_user(encode_change_user(request, caps), caps) == request


def test_mysql_connectors_change_user_with_a_token_reads_as_it_was_sent() -> None:
    """mysql-connector-python (pure Python) writes the auth response's length
    length-encoded: a token as mysql_clear_password's answer, longer than the one byte
    servers read allows, reads whole, and the rest of the request after it."""
    token = secrets.token_urlsafe(450)
    payload, _ = MySQLProtocol.make_auth(
        handshake={"auth_data": SCRAMBLE_VECTOR, "auth_plugin": auth.NATIVE_PASSWORD},
        username="other", password=token, database="shop", charset=45,
        client_flags=CHANGE_USER_CAPS | CLIENT_CONNECT_WITH_DB,
        auth_plugin=auth.CLEAR_PASSWORD, conn_attrs={"_client_name": "mysql-connector"},
        is_change_user_request=True, ssl_enabled=True)
    request = parse_change_user(payload, CHANGE_USER_CAPS)
    assert (request.username, request.auth_response, request.database, request.charset,
            request.auth_plugin, request.connect_attrs) == (
        "other", token.encode() + b"\x00", "shop", 45, auth.CLEAR_PASSWORD,
        {"_client_name": "mysql-connector"})
    with pytest.raises(ProtocolViolation):  # neither reading takes a request cut short
        parse_change_user(payload[:-3], CHANGE_USER_CAPS)


def test_a_change_user_without_its_tail_reads_as_far_as_it_goes() -> None:
    """An old client stops after the database: no character set, plugin or attributes."""
    payload = b"\x11bob\x00\x00shop\x00"
    assert parse_change_user(payload, CHANGE_USER_CAPS) == ChangeUser("bob", b"", "shop")
    with pytest.raises(ProtocolViolation):
        parse_change_user(b"\x11bob\x00\x05ab", CHANGE_USER_CAPS)


def test_field_list_and_process_kill_read_their_arguments() -> None:
    assert parse_field_list(encode_field_list("customers", "e%")) == (
        FieldList("customers", "e%"))
    assert parse_field_list(b"\x04t\x00") == FieldList("t", "")
    assert parse_field_list(b"\x04\xff\x00\xfe") == FieldList(None, None)
    with pytest.raises(ProtocolViolation):  # the server would read on past the packet
        parse_field_list(b"\x04customers")
    assert parse_process_kill(b"\x0c" + (2**31 - 1).to_bytes(4, "little")) == 2**31 - 1
    for short_or_long in (b"\x0c\x01\x00", b"\x0c" + bytes(5)):
        with pytest.raises(ProtocolViolation):
            parse_process_kill(short_or_long)


def test_a_field_lists_column_definition_carries_a_default() -> None:
    column = ColumnDefinition(schema="shop", table="customers", name="email",
                                 type=MYSQL_TYPE_VAR_STRING)
    plain = encode_column_definition(column)
    for default in (lenenc_str(b"nobody@example.com"), b"\xfb"):  # a value, NULL
        assert parse_column_definition(plain + default, field_list=True) == column
        with pytest.raises(ProtocolViolation):
            parse_column_definition(plain + default)
    assert parse_column_definition(plain, field_list=True) == column


# -- OK, ERR, EOF -----------------------------------------------------------------------------

CAPS_41 = CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
CAPS_TRACKING = CAPS_41 | CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF


# MariaDB's after a login, after a login to a database with session tracking, and closing
# a result set with CLIENT_DEPRECATE_EOF; then an UPDATE's, and a pre-4.1 one.
@pytest.mark.parametrize(("payload", "caps", "ok"), [
    (b"\x00\x00\x00\x02\x00\x00\x00", CAPS_41, Ok(status=2)),
    (b"\x00\x00\x00\x02@\x00\x00\x00\x15\x01\x13\x12information_schema", CAPS_TRACKING,
     Ok(status=SERVER_SESSION_STATE_CHANGED | SERVER_STATUS_AUTOCOMMIT,
           session_state=b"\x01\x13\x12information_schema")),
    (b"\xfe\x00\x00\x02\x00\x00\x00", CAPS_TRACKING, Ok(status=2)),
    (b"\x00\x03\xfc\x00\x01\x02\x00\x01\x00Rows matched: 3", CAPS_41,
     Ok(3, 256, 2, 1, "Rows matched: 3")),
    (b"\x00\x01\x00\x02\x00", CLIENT_TRANSACTIONS, Ok(1, 0, 2)),
])
def test_oks_read_as_they_mean(payload: bytes, caps: int, ok: Ok) -> None:
    assert is_ok(payload, caps)
    assert parse_ok(payload, caps) == ok
    assert encode_ok(*ok[:5], capabilities=caps, session_state=ok.session_state,
                        eof=payload[0] == 0xFE) == payload


@PROPERTIES
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFF), NAME, st.binary(max_size=300),
       st.sampled_from([CAPS_41, CAPS_TRACKING, CLIENT_TRANSACTIONS, 0]), st.booleans())
def test_oks_read_back(affected: int, last_id: int, status: int, warnings: int, info: str,
                       state: bytes, caps: int, eof: bool) -> None:
    tracked = bool(caps & CLIENT_SESSION_TRACK)
    if tracked and state:
        status |= SERVER_SESSION_STATE_CHANGED
    else:
        status &= ~SERVER_SESSION_STATE_CHANGED
    # What the capabilities leave off the wire reads as zero.
    ok = Ok(affected, last_id, status if caps & CAPS_41 else 0,
               warnings if caps & CLIENT_PROTOCOL_41 else 0, info,
               state if tracked else b"")
    eof = eof and bool(caps & CLIENT_DEPRECATE_EOF)
    payload = encode_ok(*ok[:5], capabilities=caps, session_state=ok.session_state,
                           eof=eof)
    assert parse_ok(payload, caps) == ok


def test_an_oks_0xfe_header_needs_deprecate_eof() -> None:
    payload = b"\xfe\x00\x00\x02\x00\x00\x00"
    assert not is_ok(payload, CAPS_41)
    with pytest.raises(ProtocolViolation, match="OK packet starting with 0xfe"):
        parse_ok(payload, CAPS_41)


def test_what_ends_a_result_sets_rows() -> None:
    eof = encode_eof(0, 2)
    ok_eof = encode_ok(0, 0, 2, 0, "x" * 20, capabilities=CAPS_TRACKING, eof=True)
    long_row = encode_text_row([b"y" * (1 << 24)])  # its first byte is 0xFE
    err = encode_err(1317, "70100", "Query execution was interrupted")
    assert is_eof(eof) and not is_eof(ok_eof) and not is_eof(long_row)
    assert ends_rows(eof, CAPS_41) and ends_rows(err, CAPS_41)
    assert not ends_rows(ok_eof, CAPS_41) and ends_rows(ok_eof, CAPS_TRACKING)
    assert long_row[0] == 0xFE
    assert not ends_rows(long_row, CAPS_41) and not ends_rows(long_row, CAPS_TRACKING)
    assert not ends_rows(encode_text_row([b"", None]), CAPS_TRACKING)
    with pytest.raises(ValueError, match="without CLIENT_DEPRECATE_EOF"):
        encode_ok(eof=True)


def test_string_like_types_are_a_part_of_those_length_encoded() -> None:
    # A decimal, a BIT, a geometry travel as strings in a binary row but are not text.
    assert STRING_TYPES < LENGTH_ENCODED_TYPES
    assert {MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_BIT, MYSQL_TYPE_GEOMETRY}.isdisjoint(
        STRING_TYPES)
    assert {MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_BLOB, MYSQL_TYPE_JSON} <= (
        STRING_TYPES)


def test_errs_read_as_they_mean() -> None:
    payload = (b"\xff\x14\x04#42000Access denied for user 'tg_8a95ede7'@'127.0.0.1' to "
               b"database 'mysql'")
    err = parse_err(payload)
    assert (err.code, err.sqlstate) == (1044, "42000")
    assert err.message.startswith("Access denied for user 'tg_8a95ede7'")
    assert encode_err(*err) == payload
    assert is_err(payload) and not is_err(b"\x00")
    # Before the capabilities are agreed (a refused connection), no SQLSTATE.
    assert parse_err(b"\xff\x10\x04Too many connections") == (
        1040, "HY000", "Too many connections")
    with pytest.raises(ValueError, match="SQLSTATE"):
        encode_err(1045, "2800", "short")
    with pytest.raises(ProtocolViolation, match="ERR packet starting with 0x00"):
        parse_err(b"\x00\x00\x00")


def test_eofs_read_back() -> None:
    assert encode_eof(1, 2) == b"\xfe\x01\x00\x02\x00"
    assert parse_eof(b"\xfe\x00\x00\x02\x00") == Eof(0, 2)
    assert parse_eof(b"\xfe") == Eof()
    with pytest.raises(ProtocolViolation, match="not an EOF"):
        parse_eof(b"\xfe" + bytes(8))
    with pytest.raises(ProtocolViolation):
        parse_eof(b"\xfe\x00\x00\x02")


# -- result sets and prepared statements ------------------------------------------------------


def test_mariadbs_column_definition_reads_and_writes_back() -> None:
    payload = b"\x03def\x00\x00\x00\x01s\x00\x0c-\x00\x04\x00\x00\x00\xfd\x01\x00'\x00\x00"
    column = parse_column_definition(payload)
    assert column == ColumnDefinition(
        name="s", charset=CHARSET_UTF8MB4_GENERAL_CI, length=4,
        type=MYSQL_TYPE_VAR_STRING, flags=NOT_NULL_FLAG, decimals=39)
    assert encode_column_definition(column) == payload


@PROPERTIES
@given(st.builds(ColumnDefinition, NAME, NAME, NAME, NAME, NAME, NAME,
                 st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 255),
                 st.integers(0, 0xFFFF), st.integers(0, 255)))
def test_column_definitions_read_back(column: ColumnDefinition) -> None:
    assert parse_column_definition(encode_column_definition(column)) == column


def test_a_column_definition_with_another_fixed_part_is_refused() -> None:
    payload = encode_column_definition(ColumnDefinition(name="x"))
    with pytest.raises(ProtocolViolation, match="fixed part of 13 bytes"):
        parse_column_definition(payload.replace(b"\x0c", b"\x0d", 1) + b"\x00")
    with pytest.raises(ProtocolViolation, match="1 bytes past"):
        parse_column_definition(payload + b"\x00")


def test_prepare_oks_read_back() -> None:
    payload = b"\x00\x02\x00\x00\x00\t\x00\x00\x00\x00\x00\x00"  # MariaDB's, 9 columns
    assert parse_prepare_ok(payload) == PrepareOk(2, 9, 0, 0)
    ok = PrepareOk(2**32 - 1, 3, 65535, 7)
    assert parse_prepare_ok(encode_prepare_ok(ok)) == ok
    assert encode_prepare_ok(PrepareOk(2, 9, 0)) == payload
    assert parse_prepare_ok(payload[:10]) == PrepareOk(2, 9, 0)  # pre-4.1: no count


# mysql-connector-python 9.7's COM_STMT_EXECUTE of statement 7 with (42, 'ada', None,
# 1.5) (its make_stmt_execute): the NULL bitmap, the types bound (42 as an unsigned TINY,
# a STRING, NULL, a DOUBLE), the values.
CONNECTOR_EXECUTE = (
    b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x04\x01\x01\x80\xfe\x00\x06\x00\x05\x00"
    b"*\x03ada\x00\x00\x00\x00\x00\x00\xf8?")
CONNECTOR_TYPES = (ParameterType(MYSQL_TYPE_TINY, unsigned=True),
                   ParameterType(MYSQL_TYPE_STRING), ParameterType(MYSQL_TYPE_NULL),
                   ParameterType(MYSQL_TYPE_DOUBLE))


def test_a_connectors_execute_reads_as_its_parameters() -> None:
    execute = parse_stmt_execute(CONNECTOR_EXECUTE, 4, None)
    assert execute == StmtExecute(7, 0, 1, CONNECTOR_TYPES, (
        b"*", b"ada", None, struct.pack("<d", 1.5)))
    assert encode_stmt_execute(7, CONNECTOR_TYPES, execute.values) == CONNECTOR_EXECUTE
    assert statement_id(CONNECTOR_EXECUTE) == 7
    assert statement_id(with_statement_id(CONNECTOR_EXECUTE, 2**32 - 2)) == 2**32 - 2
    assert with_statement_id(CONNECTOR_EXECUTE, 9)[5:] == CONNECTOR_EXECUTE[5:]


PARAMETER = st.sampled_from(sorted({*FIXED, *TEMPORAL, *LENGTH_ENCODED_TYPES})).flatmap(
    lambda t: st.tuples(st.builds(ParameterType, st.just(t), st.booleans()),
                        st.none() | binary_value(t)))


@pytest.mark.slow
@settings(PROPERTIES, max_examples=40)
@given(st.lists(PARAMETER, max_size=12), st.integers(0, 2**32 - 1), st.booleans())
def test_executes_read_back_binding_their_types_or_the_last_ones(
        typed: list[tuple[ParameterType, bytes | None]], statement: int,
        again: bool) -> None:
    types = [t for t, _ in typed]
    values = tuple(v for _, v in typed)
    payload = encode_stmt_execute(statement, None if again else types, values,
                                     bound=types)
    execute = parse_stmt_execute(payload, len(types), types if again else None)
    assert execute.values == values and execute.statement_id == statement
    assert execute.types == (None if again or not types else tuple(types))
    if again and types:  # the types bound into it: the same execute as if it had sent them
        assert bind_types(payload, len(types), types) == encode_stmt_execute(
            statement, types, values)


def test_an_executes_long_data_parameters_carry_no_value() -> None:
    types = [ParameterType(MYSQL_TYPE_BLOB), ParameterType(MYSQL_TYPE_LONG)]
    # No value for a parameter sent as long data (the server reads none), no NULL bit.
    payload = (encode_stmt_execute(3, types, [None, struct.pack("<i", 5)])[:10]
               + b"\x00\x01\xfc\x00\x03\x00" + struct.pack("<i", 5))
    assert parse_stmt_execute(payload, 2, None, long_data={0}).values == (
        None, struct.pack("<i", 5))
    with pytest.raises(ProtocolViolation):
        parse_stmt_execute(payload, 2, None)  # read as a BLOB, the value is short


@pytest.mark.parametrize(("payload", "params", "bound", "problem"), [
    (CONNECTOR_EXECUTE[:-1], 4, None, "ends inside"),
    (CONNECTOR_EXECUTE + b"\x00", 4, None, "past a packet"),
    (CONNECTOR_EXECUTE[:10] + b"\x04\x00", 4, None, "binds no parameter types"),
    (b"\x17\x07\x00\x00", 0, None, "ends inside"),
    (b"\x16" + CONNECTOR_EXECUTE[1:], 4, None, "starting with 0x16"),
    (CONNECTOR_EXECUTE[:12] + b"\x11\x00" + CONNECTOR_EXECUTE[14:], 4, None,
     "binary protocol does not carry"),
])
def test_an_execute_that_is_not_its_statements_is_refused(
        payload: bytes, params: int, bound: Sequence[ParameterType] | None,
        problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        parse_stmt_execute(payload, params, bound)


def test_long_data_and_statement_ids_read_back() -> None:
    piece = LongData(5, 1, b"\x00some bytes")
    assert parse_long_data(encode_long_data(piece)) == piece
    assert statement_id(encode_long_data(piece)) == 5
    with pytest.raises(ProtocolViolation):
        parse_long_data(b"\x18\x05\x00\x00\x00\x01")
    with pytest.raises(ProtocolViolation):
        statement_id(b"\x19\x01\x00")
    with pytest.raises(ValueError, match="binding no types"):
        bind_types(CONNECTOR_EXECUTE, 4, CONNECTOR_TYPES)


@pytest.mark.parametrize(("column_type", "unsigned", "value", "text"), [
    (MYSQL_TYPE_TINY, False, b"\xff", b"-1"),
    (MYSQL_TYPE_TINY, True, b"\xff", b"255"),
    (MYSQL_TYPE_YEAR, True, struct.pack("<H", 2024), b"2024"),
    (MYSQL_TYPE_LONGLONG, False, struct.pack("<q", 4111111111111111), b"4111111111111111"),
    (MYSQL_TYPE_LONGLONG, True, b"\xff" * 8, b"18446744073709551615"),
    (MYSQL_TYPE_DOUBLE, False, struct.pack("<d", 4111111111111111.0), b"4111111111111111"),
    (MYSQL_TYPE_DOUBLE, False, struct.pack("<d", 0.1), b"0.1"),
    (MYSQL_TYPE_FLOAT, False, struct.pack("<f", 1.5), b"1.5"),
    (MYSQL_TYPE_DATETIME, False, MARIADB_BINARY_VALUES[0], b"2024-01-02 03:04:05.678901"),
    (MYSQL_TYPE_TIMESTAMP, False, MARIADB_BINARY_VALUES[8], b"2024-01-02 03:04:05"),
    (MYSQL_TYPE_DATETIME, False, b"", b"0000-00-00 00:00:00"),
    (MYSQL_TYPE_DATE, False, MARIADB_BINARY_VALUES[2], b"2024-01-02"),
    (MYSQL_TYPE_TIME, False, MARIADB_BINARY_VALUES[1], b"-838:59:59"),
    (MYSQL_TYPE_TIME, False, struct.pack("<BIBBBI", 0, 0, 1, 2, 3, 4), b"01:02:03.000004"),
    (MYSQL_TYPE_NEWDECIMAL, False, b"2.50", b"2.50"),
    (MYSQL_TYPE_VAR_STRING, False, b"ada@example.com", b"ada@example.com"),
])
def test_binary_values_read_as_the_text_protocol_writes_them(
        column_type: int, unsigned: bool, value: bytes, text: bytes) -> None:
    assert binary_text(column_type, unsigned, value) == text


def test_every_command_has_its_byte_and_its_name() -> None:
    expected = {"COM_QUIT": 0x01, "COM_INIT_DB": 0x02, "COM_QUERY": 0x03,
                "COM_CHANGE_USER": 0x11, "COM_BINLOG_DUMP": 0x12, "COM_REGISTER_SLAVE": 0x15,
                "COM_STMT_PREPARE": 0x16, "COM_STMT_EXECUTE": 0x17,
                "COM_STMT_SEND_LONG_DATA": 0x18, "COM_STMT_CLOSE": 0x19,
                "COM_STMT_RESET": 0x1A, "COM_SET_OPTION": 0x1B, "COM_STMT_FETCH": 0x1C,
                "COM_BINLOG_DUMP_GTID": 0x1E, "COM_RESET_CONNECTION": 0x1F,
                "COM_STMT_BULK_EXECUTE": 0xFA}
    for name, byte in expected.items():
        assert getattr(flags, name) == byte and command_name(byte) == name
    assert len(COMMAND_NAMES) == len({v for k, v in vars(flags).items()
                                         if k.startswith("COM_") and isinstance(v, int)})
    assert command_name(0x42) == "COM_0x42"
    assert type_name(MYSQL_TYPE_JSON) == "MYSQL_TYPE_JSON"


# -- auth -------------------------------------------------------------------------------------


def test_the_scrambles_match_libmariadbs() -> None:
    assert auth.native_password(PASSWORD_VECTOR, SCRAMBLE_VECTOR) == NATIVE_VECTOR
    assert auth.caching_sha2_fast(PASSWORD_VECTOR, SCRAMBLE_VECTOR) == CACHING_SHA2_VECTOR
    assert auth.auth_response(auth.NATIVE_PASSWORD, PASSWORD_VECTOR, SCRAMBLE_VECTOR) == (
        NATIVE_VECTOR)
    assert auth.auth_response(auth.CACHING_SHA2_PASSWORD, PASSWORD_VECTOR,
                              SCRAMBLE_VECTOR) == CACHING_SHA2_VECTOR


@PROPERTIES
@given(st.binary(min_size=20, max_size=20))
def test_a_native_answer_passes_the_servers_check_of_its_stored_hash(scramble: bytes) -> None:
    # The server's side: XOR the answer with SHA1(scramble + stored) to get SHA1(pw),
    # whose SHA1 must be what it stores.
    answer = auth.native_password(PASSWORD_VECTOR, scramble)
    key = hashlib.sha1(scramble + STORED_VECTOR).digest()
    stage1 = bytes(a ^ b for a, b in zip(answer, key, strict=True))
    assert hashlib.sha1(stage1).digest() == STORED_VECTOR


def test_an_empty_password_answers_with_nothing() -> None:
    assert auth.native_password(b"", SCRAMBLE_VECTOR) == b""
    assert auth.caching_sha2_fast(b"", SCRAMBLE_VECTOR) == b""
    assert auth.clear_password(b"pw") == b"pw\x00"
    assert auth.auth_response(auth.CLEAR_PASSWORD, b"pw", b"") == b"pw\x00"
    assert (auth.CACHING_SHA2_REQUEST_PUBLIC_KEY, auth.CACHING_SHA2_FAST_AUTH_SUCCESS,
            auth.CACHING_SHA2_PERFORM_FULL_AUTHENTICATION) == (2, 3, 4)
    with pytest.raises(ValueError, match="client_ed25519"):
        auth.auth_response("client_ed25519", b"pw", SCRAMBLE_VECTOR)


# -- the real server --------------------------------------------------------------------------

MARIADB = ("127.0.0.1", 3306)


def mariadb_root(sql: str) -> None:
    subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", sql], check=True,
                   capture_output=True, timeout=30)


@contextmanager
def throwaway_user() -> Iterator[tuple[str, bytes]]:
    """A user of MariaDB's own, mysql_native_password, dropped on leaving."""
    name, password = f"tollgate_{secrets.token_hex(4)}", secrets.token_hex(12)
    account = f"'{name}'@'127.0.0.1'"
    mariadb_root(f"CREATE USER {account} IDENTIFIED VIA mysql_native_password "
                 f"USING PASSWORD('{password}')")
    try:
        yield name, password.encode()
    finally:
        mariadb_root(f"DROP USER IF EXISTS {account}")


class Connection:
    """A raw socket to the server, framed by the codec under test; every packet's
    sequence id checked as the protocol numbers them."""

    def __init__(self) -> None:
        self.sock = socket.create_connection(MARIADB, timeout=10)
        self.framer = Framer(1 << 24)
        self.queue: list[Packet] = []
        self.seq = 0

    def read(self) -> bytes:
        while not self.queue:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.queue.extend(self.framer.feed(data))
        packet = self.queue.pop(0)
        assert packet.seq == self.seq
        self.seq = packet.last_seq + 1 & 0xFF
        return packet.payload

    def reply(self, payload: bytes) -> None:
        self.sock.sendall(encode(self.seq, payload))
        self.seq = self.seq + 1 & 0xFF

    def command(self, command: int, body: bytes = b"") -> None:
        self.seq = 0
        self.reply(bytes((command,)) + body)

    def close(self) -> None:
        self.command(COM_QUIT)
        self.sock.close()


def login(user: str, password: bytes, caps: int, database: str = "") -> tuple[
        Connection, Handshake, bytes]:
    """A connection, the server's greeting and its last answer to the login."""
    conn = Connection()
    greeting = parse_handshake(conn.read())
    conn.reply(encode_handshake_response(HandshakeResponse(
        caps, 1 << 24, CHARSET_UTF8MB4_GENERAL_CI, user,
        auth.native_password(password, greeting.scramble), database, auth.NATIVE_PASSWORD,
        {"program_name": "tollgate-tests"})))
    answer = conn.read()
    if answer[:1] == b"\xfe":  # a server whose default plugin is another one
        switch = parse_auth_switch(answer)
        conn.reply(auth.auth_response(switch.plugin, password, switch.scramble))
        answer = conn.read()
    return conn, greeting, answer


Rows = list[list[bytes | None]]


def result(conn: Connection, caps: int, binary: bool = False) -> tuple[
        list[ColumnDefinition], Rows, Ok | Eof]:
    """A result set: its columns, its rows, what ended it."""
    header = conn.read()
    assert not is_err(header), parse_err(header)
    r = Reader(header)
    count = r.lenenc_int()
    r.done()
    columns = definitions(conn, caps, count)
    rows: Rows = []
    while not ends_rows(payload := conn.read(), caps):
        rows.append(parse_binary_row(payload, columns) if binary
                    else parse_text_row(payload, count))
    assert not is_err(payload), parse_err(payload)
    end = parse_ok(payload, caps) if caps & CLIENT_DEPRECATE_EOF else parse_eof(
        payload)
    return columns, rows, end


def definitions(conn: Connection, caps: int, count: int) -> list[ColumnDefinition]:
    """`count` column (or parameter) definitions, and the EOF after them unless
    CLIENT_DEPRECATE_EOF."""
    columns = [parse_column_definition(conn.read()) for _ in range(count)]
    if count and not caps & CLIENT_DEPRECATE_EOF:
        parse_eof(conn.read())
    return columns


def execute(statement_id: int, params: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """COM_STMT_EXECUTE's body: no cursor, one iteration, the parameters' types bound."""
    return encode_stmt_execute(statement_id, [ParameterType(t) for t, _ in params] or None,
                                  [v for _, v in params])[1:]


BASE_CAPS = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
             | CLIENT_TRANSACTIONS | CLIENT_MULTI_RESULTS)
# A classic client (a 1-byte auth length, EOF packets) and a current one (lenenc auth data,
# attributes, a database, session tracking, OKs for EOFs).
CLIENTS = [
    (BASE_CAPS, ""),
    (BASE_CAPS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_CONNECT_ATTRS
     | CLIENT_CONNECT_WITH_DB | CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF,
     "information_schema"),
]
TEMPORALS = ("SELECT CAST('2024-01-02 03:04:05.678901' AS DATETIME(6)), "
             "CAST('-838:59:59' AS TIME), CAST('2024-01-02' AS DATE), 1.5e0, "
             "CAST(7 AS SIGNED), NULL, CAST(-3 AS SIGNED) DIV 1, 2.50, "
             "TIMESTAMP'2024-01-02 03:04:05'")


def query_text_and_prepared(conn: Connection, caps: int) -> None:
    conn.command(COM_QUERY, b"SELECT 1 AS one, NULL AS n, 'x' AS s")
    columns, rows, end = result(conn, caps)
    assert [(c.name, c.type) for c in columns] == [
        ("one", MYSQL_TYPE_LONG), ("n", MYSQL_TYPE_NULL), ("s", MYSQL_TYPE_VAR_STRING)]
    assert rows == [[b"1", None, b"x"]]
    assert end.status & SERVER_STATUS_AUTOCOMMIT

    conn.command(COM_STMT_PREPARE, b"SELECT ? + 1, 'a'")
    prepared = parse_prepare_ok(conn.read())
    assert (prepared.num_params, prepared.num_columns) == (1, 2)
    definitions(conn, caps, prepared.num_params)
    at_prepare = definitions(conn, caps, prepared.num_columns)
    conn.command(COM_STMT_EXECUTE, execute(
        prepared.statement_id, [(MYSQL_TYPE_LONGLONG, struct.pack("<q", 41))]))
    columns, rows, _ = result(conn, caps, binary=True)
    # `? + 1` is a DOUBLE when prepared, a LONGLONG once the parameter is bound: a binary
    # row reads by the metadata its execute sent.
    assert [c.type for c in at_prepare] == [MYSQL_TYPE_DOUBLE, MYSQL_TYPE_VAR_STRING]
    assert [c.type for c in columns] == [MYSQL_TYPE_LONGLONG, MYSQL_TYPE_VAR_STRING]
    assert rows == [[struct.pack("<q", 42), b"a"]]
    conn.command(COM_STMT_CLOSE, struct.pack("<I", prepared.statement_id))  # no answer

    conn.command(COM_STMT_PREPARE, TEMPORALS.encode())
    prepared = parse_prepare_ok(conn.read())
    definitions(conn, caps, prepared.num_columns)
    conn.command(COM_STMT_EXECUTE, execute(prepared.statement_id))
    columns, rows, _ = result(conn, caps, binary=True)
    assert [c.type for c in columns] == MARIADB_BINARY_TYPES
    assert rows == [MARIADB_BINARY_VALUES]


@pytest.mark.e2e
def test_a_login_a_query_and_a_prepared_statement_on_mariadb() -> None:
    with throwaway_user() as (user, password):
        for caps, database in CLIENTS:
            conn, greeting, answer = login(user, password, caps, database)
            assert greeting.protocol_version == 10 and "MariaDB" in greeting.server_version
            assert len(greeting.scramble) == 20 and b"\x00" not in greeting.scramble
            assert not is_err(answer), parse_err(answer)
            ok = parse_ok(answer, caps)
            assert ok.status & SERVER_STATUS_AUTOCOMMIT
            if database:  # the schema, as session tracking reports it
                assert ok.status & SERVER_SESSION_STATE_CHANGED
                assert database.encode() in ok.session_state
            query_text_and_prepared(conn, caps)
            conn.close()

        conn, _, answer = login(user, b"not-" + password, CLIENTS[1][0])
        err = parse_err(answer)
        assert (err.code, err.sqlstate) == (1045, "28000")
        assert user in err.message
        conn.sock.close()
