"""The MySQL front's prepared statements, pure (extproc/mysql/statements.py, and the
binary rows' masking in results.py): tollgate's ids against a model of what a session
did, the parameters an execute records, the server kept at the client's point after a
refused execute, and binary rows masked as text rows are."""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.mysql.binary import binary_text
from extproc.mysql.flags import (
    CHARSET_UTF8MB4_GENERAL_CI,
    MYSQL_TYPE_DATE,
    MYSQL_TYPE_DATETIME,
    MYSQL_TYPE_DOUBLE,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_NEWDECIMAL,
    MYSQL_TYPE_STRING,
    MYSQL_TYPE_TIME,
    MYSQL_TYPE_TINY,
    MYSQL_TYPE_VAR_STRING,
    MYSQL_TYPE_YEAR,
    NOT_NULL_FLAG,
    UNSIGNED_FLAG,
)
from extproc.mysql.prepared import (
    LAST_STATEMENT_ID,
    ParameterType,
    StmtExecute,
    encode_stmt_execute,
    parse_stmt_execute,
)
from extproc.mysql.results import ResultMasker, unreadable
from extproc.mysql.resultsets import ColumnDefinition, encode_binary_row, parse_binary_row
from extproc.mysql.statements import LONG_DATA_KEPT, LongData, Prepared, Statements
from extproc.policy import Decision

PROPERTIES = settings(derandomize=True, database=None, deadline=None)
ALLOW = Decision(action="allow")
LONGLONG = ParameterType(MYSQL_TYPE_LONGLONG)
STRING = ParameterType(MYSQL_TYPE_STRING)


def statement(statements: Statements, server_id: int, num_params: int = 0) -> Prepared:
    """A statement the server prepared as `server_id`, added under tollgate's next id."""
    return statements.add(Prepared(statements.next_id(), server_id, "SELECT ?", num_params,
                                   None, ALLOW, "rev", 1))


# An op: ("prepare", server id), ("fail", None): a prepare refused or failed,
# ("close", which), ("reset", None), where `which` picks an id the session saw (by
# index), or one it never did, or MariaDB's "last statement" id.
OPS = st.lists(st.one_of(
    st.tuples(st.just("prepare"), st.integers(1, 2**32 - 1)),
    st.tuples(st.sampled_from(["fail", "reset"]), st.none()),
    st.tuples(st.just("close"), st.one_of(st.integers(0, 8), st.sampled_from(
        [-1, LAST_STATEMENT_ID]))),
), max_size=40)


@PROPERTIES
@given(OPS)
def test_the_ids_name_what_the_session_prepared_and_has_not_let_go(
        ops: list[tuple[str, Any]]) -> None:
    statements = Statements()
    handed: list[int] = []  # every id tollgate gave, in order
    open_: dict[int, int] = {}  # the model: tollgate's id -> the server's
    last: int | None = None
    for op, arg in ops:
        if op == "prepare":
            prepared = statement(statements, arg)
            assert prepared.id not in handed and prepared.id != LAST_STATEMENT_ID
            handed.append(prepared.id)
            open_[prepared.id], last = arg, prepared.id
        elif op == "fail":
            statements.not_prepared()
            last = None
        elif op == "reset":
            statements.clear()
            open_, last = {}, None
        else:
            named = (arg if arg == LAST_STATEMENT_ID else 4242 if arg == -1
                     else handed[arg] if arg < len(handed) else 4242)
            target = last if named == LAST_STATEMENT_ID else named
            closed = statements.close(named)
            assert (closed.id if closed else None) == (target if target in open_ else None)
            if target in open_:
                del open_[target]
                last = None if target == last else last
        assert statements.server_ids() == open_ and len(statements) == len(open_)
        for seen in [*handed, 4242]:
            found = statements.get(seen)
            assert (found.server_id if found else None) == open_.get(seen)
        found = statements.get(LAST_STATEMENT_ID)
        assert (found.id if found else None) == last
    assert handed == list(range(1, len(handed) + 1))  # counted from 1, never reused


def test_ids_run_out_before_the_last_statement_id() -> None:
    statements = Statements()
    with pytest.raises(ValueError, match="not the next"):
        statements.add(Prepared(3, 5, "SELECT 1", 0, None, ALLOW, "rev", 1))
    statements._next = LAST_STATEMENT_ID - 1  # as after 2^32 - 3 prepares
    assert statement(statements, 5).id == LAST_STATEMENT_ID - 1
    with pytest.raises(ValueError, match="reconnect"):
        statements.next_id()


def execute(prepared: Prepared, types: list[ParameterType] | None,
            values: list[bytes | None]) -> StmtExecute:
    """An execute of `prepared` as the session reads it."""
    payload = encode_stmt_execute(prepared.id, types, values, bound=prepared.types)
    return parse_stmt_execute(payload, prepared.num_params, prepared.types,
                                 prepared.long_data)


def test_an_executes_parameters_are_recorded_as_sql_literals() -> None:
    prepared = statement(Statements(), 9, 4)
    types = [LONGLONG, ParameterType(MYSQL_TYPE_TINY, unsigned=True), STRING,
             ParameterType(MYSQL_TYPE_DATE)]
    first = execute(prepared, types, [struct.pack("<q", -7), b"\xff", b"it's", None])
    assert prepared.parameters(first) == ["-7", "255", "'it''s'", "NULL"]
    assert not prepared.ran(first)
    # The next binds no types: the last ones read it.
    again = execute(prepared, None, [None, b"\x01", b"\xff\xfe", struct.pack("<HBB", 2024, 1, 2)])
    assert prepared.parameters(again) == ["NULL", "1", "x'fffe'", "'2024-01-02'"]


def test_long_data_is_recorded_with_the_execute_that_spends_it() -> None:
    prepared = statement(Statements(), 9, 2)
    prepared.long_data.setdefault(0, LongData()).add(b"a" * LONG_DATA_KEPT)
    prepared.long_data[0].add(b"b" * 10)
    found = execute(prepared, [STRING, LONGLONG], [None, struct.pack("<q", 1)])
    assert prepared.parameters(found) == [
        "'" + "a" * LONG_DATA_KEPT + "' (long data, 10 more bytes)", "1"]
    assert not prepared.ran(found)
    assert prepared.long_data == {}


def test_a_refused_execute_leaves_the_server_where_the_client_thinks_it_is() -> None:
    prepared = statement(Statements(), 9, 1)
    assert not prepared.ran(execute(prepared, [LONGLONG], [struct.pack("<q", 1)]))
    # Refused, binding a new type and with long data sent: the client takes both as
    # done; the server, which saw neither, must drop the data and get the type.
    prepared.long_data.setdefault(0, LongData()).add(b"x")
    refused = execute(prepared, [STRING], [None])
    assert prepared.refused(refused)  # long data to drop (COM_STMT_RESET)
    assert prepared.types == (STRING,) and prepared.long_data == {}
    bare = execute(prepared, None, [b"y"])
    assert prepared.ran(bare)  # its packet binds STRING for the server
    assert not prepared.ran(execute(prepared, None, [b"z"]))  # bound since
    assert not prepared.refused(None)  # unreadable: nothing known to bind or drop


MASKER = Masker(b"k" * 32)
COLUMNS = [ColumnDefinition(name="id", type=MYSQL_TYPE_LONG),
           ColumnDefinition(name="email", type=MYSQL_TYPE_VAR_STRING,  # VARCHAR(255)
                            charset=CHARSET_UTF8MB4_GENERAL_CI, length=1020),
           ColumnDefinition(name="card_number", type=MYSQL_TYPE_LONGLONG,
                               flags=UNSIGNED_FLAG),
           ColumnDefinition(name="joined", type=MYSQL_TYPE_DATE),
           ColumnDefinition(name="phone", type=MYSQL_TYPE_LONGLONG)]
ROW: list[bytes | None] = [
    struct.pack("<i", 1), b"ada@example.com", struct.pack("<Q", 4111111111111111),
    struct.pack("<HBB", 2024, 1, 2), struct.pack("<q", 4155550123)]


def masked(spec: MaskSpec | None) -> tuple[list[bytes | None], list[bytes | None], Counter[str]]:
    """ROW masked as a binary row, written and read back by its columns."""
    sent, shown, counts = ResultMasker(MASKER, spec, COLUMNS).binary_rows([ROW])
    payload = encode_binary_row(sent[0], COLUMNS)
    return parse_binary_row(payload, COLUMNS), shown[0], counts


def test_a_binary_row_is_masked_as_its_text_row_would_be() -> None:
    sent, shown, counts = masked(MaskSpec())
    identifier, email, card, joined, _phone = sent
    assert (identifier, joined) == (ROW[0], ROW[3])  # unchanged: the same bytes
    assert email is not None and b"REDACTED" in email and b"ada@" not in email
    assert card is None  # a number masked is NULL: no text can stand in an INT
    assert counts["email"] == 1 and sum(counts.values()) >= 2
    assert shown[0] == b"1" and shown[3] == b"2024-01-02" and shown[2] is None
    # The same values through the text protocol's masking: the same verdicts.
    texts: list[list[bytes | None]] = [[
        binary_text(c.type, bool(c.flags & UNSIGNED_FLAG), v) if v is not None else None
        for c, v in zip(COLUMNS, ROW, strict=True)]]
    text_rows, text_counts = ResultMasker(MASKER, MaskSpec(), COLUMNS).rows(texts)
    assert text_counts == counts
    assert [v is None for v in text_rows[0]] == [v is None for v in sent]


def test_derived_columns_are_masked_whole_in_their_type() -> None:
    spec = MaskSpec(detectors=frozenset(), fields=frozenset(),
                    derived=frozenset({"email", "joined"}))
    sent, _, counts = masked(spec)
    assert sent[1] == b"[REDACTED:DERIVED]" and sent[3] is None
    assert sent[0] == ROW[0] and sent[2] == ROW[2] and counts["derived"] == 2
    assert masked(None)[0] == ROW  # no mask: the row as it came


def test_a_not_null_column_masked_has_its_stand_in_laid_out_in_binary() -> None:
    # Columns named by field rules (cvv, cvc, ...), NOT NULL: a DOUBLE, a YEAR, a TIME, a
    # DATETIME(3), a DECIMAL(10,2), a DATE.
    kinds = [(MYSQL_TYPE_DOUBLE, 31, struct.pack("<d", 1.5), b"0"),
             (MYSQL_TYPE_YEAR, 0, struct.pack("<h", 1999), b"2000"),
             (MYSQL_TYPE_TIME, 0, struct.pack("<BIBBB", 0, 0, 1, 2, 3), b"00:00:00"),
             (MYSQL_TYPE_DATETIME, 3, struct.pack("<HBBBBB", 1985, 3, 12, 1, 2, 3),
              b"2000-01-01 00:00:00.000"),
             (MYSQL_TYPE_NEWDECIMAL, 2, b"12.50", b"0.00"),
             (MYSQL_TYPE_DATE, 0, struct.pack("<HBB", 1985, 3, 12), b"2000-01-01")]
    names = ["cvv", "cvc", "secret", "password", "pwd", "token"]
    columns = [ColumnDefinition(name=name, org_table="people", type=kind, flags=NOT_NULL_FLAG,
                                decimals=decimals)
               for name, (kind, decimals, _, _) in zip(names, kinds, strict=True)]
    row: list[bytes | None] = [value for _, _, value, _ in kinds]
    sent, shown, _ = ResultMasker(MASKER, MaskSpec(), columns).binary_rows([row])
    read = parse_binary_row(encode_binary_row(sent[0], columns), columns)
    assert shown[0] == [text for *_, text in kinds]  # what the text protocol would send
    assert [binary_text(c.type, False, v) for c, v in zip(columns, read, strict=True)
            if v is not None] == [b"0", b"2000", b"00:00:00", b"2000-01-01 00:00:00",
                                  b"0.00", b"2000-01-01"]


def test_a_column_whose_binary_values_cannot_be_read_is_named() -> None:
    assert unreadable(COLUMNS) is None
    problem = unreadable([*COLUMNS, ColumnDefinition(name="v", type=17)])
    assert problem is not None and "'v'" in problem and "MYSQL_TYPE_17" in problem
