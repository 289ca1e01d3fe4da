"""Secrets hidden in binary results: inside arrays of arrays, records inside arrays,
domains, jsonb, enums, bytea, with NULL elements and lower bounds. The bytes are the
real server's (127.0.0.1:5432, a binary cursor); what the masker writes is decoded by
psycopg's own binary loaders and handed back to the server, whose parser checks every
length: masked is well-formed, or the result is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import ExecStatus, Format

from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.postgres import binary
from extproc.postgres.messages import Column
from extproc.postgres.results import ResultMasker, ResultRefused
from tests.support.databases import throwaway_database

MASKER = Masker(b"k" * 32)
SPEC = MaskSpec()
FIELDS_ONLY = MaskSpec(detectors=frozenset())
ANN, BOB, SSN = "ann@example.com", "bob@example.org", "078-05-1120"

Result = tuple[list[Column], list[list[bytes | None]]]


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    """A throwaway database with a domain over text, a composite and an enum."""
    with throwaway_database("tollgate_binary") as url, psycopg.connect(
            url, autocommit=True) as connection:
        connection.execute("CREATE DOMAIN email_d AS text")
        connection.execute("CREATE TYPE contact AS (name text, email text)")
        connection.execute(f"CREATE TYPE mood AS ENUM ('{ANN}')")
        yield connection


def fetched(conn: psycopg.Connection[Any], sql: str) -> Result:
    """A statement's result as the server sends it in binary."""
    cur = conn.cursor(binary=True)
    cur.execute(sql)
    result = cur.pgresult
    assert result is not None
    columns = [Column((result.fname(i) or b"").decode(), 0, 0, result.ftype(i), -1, -1, 1)
               for i in range(result.nfields)]
    return columns, [[result.get_value(r, c) for c in range(result.nfields)]
                     for r in range(result.ntuples)]


def masked(conn: psycopg.Connection[Any], sql: str, spec: MaskSpec = SPEC) -> list[Any]:
    """The first row's values masked, as psycopg's binary loaders decode them."""
    columns, rows = fetched(conn, sql)
    out, _ = ResultMasker(MASKER, spec, columns).rows(rows)
    values = []
    for column, value in zip(columns, out[0], strict=True):
        loader = conn.adapters.get_loader(column.type_oid, Format.BINARY)
        assert loader is not None, f"psycopg reads type {column.type_oid} in binary"
        values.append(None if value is None else loader(column.type_oid, conn).load(value))
    return values


def server_reads(conn: psycopg.Connection[Any], value: bytes, cast: str) -> str:
    """`value` as the server's binary input of `cast` reads it, shown as text."""
    oid = conn.execute(f"SELECT '{cast}'::regtype::oid").fetchone()[0]  # type: ignore[index]
    result = conn.pgconn.exec_params(f"SELECT $1::{cast}::text".encode(), [value], [oid],
                                     [1], 0)
    assert result.status == ExecStatus.TUPLES_OK, result.error_message
    return (result.get_value(0, 0) or b"").decode()


def masked_bytes(conn: psycopg.Connection[Any], sql: str) -> bytes:
    columns, rows = fetched(conn, sql)
    value = ResultMasker(MASKER, SPEC, columns).rows(rows)[0][0][0]
    assert value is not None
    return value


def test_an_array_of_arrays_with_nulls_and_lower_bounds_keeps_its_shape(conn: Any) -> None:
    sql = f"SELECT '[0:1][3:4]={{{{{ANN},NULL}},{{plain,\"call {SSN}\"}}}}'::text[]"
    shown = server_reads(conn, masked_bytes(conn, sql), "text[]")
    assert ANN not in shown and SSN not in shown
    assert shown.startswith("[0:1][3:4]={{") and ",NULL}," in shown and "plain" in shown
    (loaded,) = masked(conn, sql)
    assert loaded[0][1] is None and loaded[1][0] == "plain" and "REDACTED" in loaded[0][0]


@pytest.mark.parametrize("kind", ["text", "varchar", "bpchar", "name", "json", "jsonb",
                                  "xml", "unknown"])
def test_every_text_like_array_is_masked_with_its_new_lengths(conn: Any, kind: str) -> None:
    plain, item = (json.dumps(t) if kind.startswith("json") else t for t in ("x", ANN))
    sql = (f"SELECT ARRAY['x'::unknown, '{ANN}'::unknown]" if kind == "unknown"
           else f"SELECT ARRAY['{plain}', '{item}']::{kind}[]")
    value = masked_bytes(conn, sql)
    assert ANN.encode() not in value
    if kind != "unknown":
        assert ANN not in server_reads(conn, value, f"{kind}[]")


def test_a_record_inside_an_array_is_masked_field_by_field(conn: Any) -> None:
    ((row,),) = [masked(conn, f"SELECT ARRAY[ROW(7, '{ANN}'::text, ARRAY['{BOB}'])]")]
    (number, email, emails), = row
    assert number == 7 and ANN not in email and BOB not in emails[0]


def test_a_record_inside_a_record_is_read(conn: Any) -> None:
    ((outer,),) = [masked(conn, f"SELECT ROW(ROW('{ANN}'::text), 4111111111111111::int8)")]
    assert ANN not in outer[0][0] and outer[1] is None


def test_a_domain_column_arrives_as_its_base_type_and_is_masked(conn: Any) -> None:
    columns, _ = fetched(conn, f"SELECT '{ANN}'::email_d AS e")
    assert columns[0].type_oid == 25  # the server sends the base type
    assert ANN not in masked(conn, f"SELECT '{ANN}'::email_d")[0]


@pytest.mark.parametrize("sql", [
    f"SELECT ARRAY['{ANN}'::email_d]",  # an array of a domain: the domain's array type
    f"SELECT ROW('{ANN}', 1)::contact",  # a composite type
    "SELECT 'ann@example.com'::mood",  # an enum: its label is text
], ids=["domain-array", "composite", "enum"])
def test_a_column_of_a_type_of_the_databases_own_is_refused(conn: Any, sql: str) -> None:
    columns, _ = fetched(conn, sql)
    with pytest.raises(ResultRefused, match="cannot read to mask it"):
        ResultMasker(MASKER, SPEC, columns)


@pytest.mark.parametrize("sql", [
    f"SELECT ROW('{ANN}'::email_d)",  # a record's field carries the domain's own OID
    f"SELECT ARRAY[ROW(ROW('{ANN}', 1)::contact)]",  # a composite in a record in an array
], ids=["domain-in-record", "composite-in-record-array"])
def test_a_field_of_an_unknown_type_inside_a_record_is_refused(conn: Any, sql: str) -> None:
    columns, rows = fetched(conn, sql)
    masker = ResultMasker(MASKER, SPEC, columns)  # record, record[]: known until read
    with pytest.raises(ResultRefused, match="cannot read to mask it"):
        masker.rows(rows)


def test_under_field_rules_only_an_unknown_field_is_masked_whole_or_passes(conn: Any) -> None:
    sql = f"SELECT ROW('{ANN}'::email_d, 'x'::text) AS secret, ROW('{ANN}'::email_d) AS r"
    secret, other = masked(conn, sql, FIELDS_ONLY)
    assert secret == (None, "[REDACTED:FIELD]")  # the column's name is a field rule
    assert other == (ANN.encode(),)  # no detectors, no rule: nothing could apply, nothing read


def test_jsonb_keeps_its_version_byte_and_masks_by_key_and_value(conn: Any) -> None:
    doc = {"contact": {"email": ANN}, "ssn": "not-a-number", "n": 1}
    value = masked_bytes(conn, f"SELECT '{json.dumps(doc)}'::jsonb")
    assert value[:1] == b"\x01"
    shown = json.loads(server_reads(conn, value, "jsonb"))
    assert ANN not in shown["contact"]["email"] and shown["ssn"] != doc["ssn"]
    assert shown["n"] == 1


def test_numbers_in_arrays_and_ranges_that_are_secrets_become_null(conn: Any) -> None:
    numbers, bounds = masked(conn, "SELECT ARRAY[4111111111111111::int8, 7, NULL], "
                             "int8range(4111111111111111, 4111111111111112)")
    assert numbers == [None, 7, None] and bounds is None


def test_a_column_named_by_a_field_rule_masks_every_element(conn: Any) -> None:
    texts, numbers = masked(conn, "SELECT ARRAY['a', NULL] AS ssn, ARRAY[1, 2] AS password")
    assert texts == ["[REDACTED:FIELD]", None] and numbers == [None, None]


@pytest.mark.parametrize("fmt", [0, 1], ids=["text", "binary"])
def test_a_secret_in_bytea_is_read_in_either_format(conn: Any, fmt: int) -> None:
    raw = f"contact {ANN}".encode()
    value = b"\\x" + raw.hex().encode() if fmt == 0 else raw
    rows, _ = ResultMasker(MASKER, SPEC, [Column("blob", 0, 0, 17, -1, -1, fmt)]).rows(
        [[value], [b"\\x00ff" if fmt == 0 else b"\x00\xff"]])
    assert rows[0] == [None] and rows[1][0] is not None


def test_the_escape_form_of_bytea_is_read_too() -> None:
    value = ("contact\\\\ " + ANN).encode().replace(b"@", b"\\100")
    rows, _ = ResultMasker(MASKER, SPEC, [Column("blob", 0, 0, 17, -1, -1, 0)]).rows([[value]])
    assert rows == [[None]]


def test_an_address_in_binary_is_read_as_its_text_is(conn: Any) -> None:
    """As text, an inet is masked as an IP address; in binary, it becomes NULL."""
    as_text, address, addresses = masked(
        conn, "SELECT '10.1.2.3'::inet::text, '10.1.2.3'::inet, ARRAY['::1'::cidr]")
    assert "10.1.2.3" not in as_text and address is None and addresses == [None]


@pytest.mark.parametrize("cut", [1, 5], ids=["element", "header"])
def test_bytes_that_do_not_parse_are_refused_never_relayed(conn: Any, cut: int) -> None:
    columns, rows = fetched(conn, f"SELECT ARRAY['{ANN}', 'x']")
    value = rows[0][0]
    assert value is not None
    with pytest.raises(ResultRefused, match="does not parse"):
        ResultMasker(MASKER, SPEC, columns).rows([[value[:-cut]]])
    lying = value[:8] + (23).to_bytes(4, "big") + value[12:]  # text[] claiming int4s
    with pytest.raises(ResultRefused, match="holding elements of type 23"):
        ResultMasker(MASKER, SPEC, columns).rows([[lying]])


def test_what_is_not_masked_keeps_its_exact_bytes(conn: Any) -> None:
    sql = ("SELECT ARRAY['[1:1]={plain}'::text[]], ROW(1, 'x'::text, NULL::int), "
           "'{\"a\": [1, 2.50, null]}'::jsonb, ARRAY[now()::timestamptz]")
    columns, rows = fetched(conn, sql)
    assert ResultMasker(MASKER, SPEC, columns).rows(rows)[0] == rows
    for column, value in zip(columns, rows[0], strict=True):
        assert value is not None
        node = binary.decode(column.type_oid, value)
        assert binary.encode(node, binary.view(node)) == value
