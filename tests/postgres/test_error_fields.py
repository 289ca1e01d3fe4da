"""PostgreSQL's error and notice texts under a mask (extproc/postgres/results.py
`error_fields`, the rule MySQL's front shares: extproc/masking/server_text.py): what the
statement's text or the error's own names hold is kept, any other quoted value masked
whole, a text that may carry a value unquoted withheld. Texts are PostgreSQL 15's own."""

from __future__ import annotations

import pytest

from extproc.masking.masker import MaskSpec
from extproc.postgres.results import error_fields

MASKED = MaskSpec()
UNMASKED = MaskSpec(detectors=frozenset(), fields=frozenset())
DERIVED = "[REDACTED:DERIVED]"


@pytest.mark.parametrize(("fields", "statement"), [
    ({"C": "22P02", "M": 'invalid input syntax for type integer: "abc"'},
     "SELECT 'abc'::int"),
    ({"C": "42703", "M": 'column "nosuch" does not exist'}, "SELECT nosuch FROM t"),
    ({"C": "42601", "M": 'syntax error at or near "FROMM"'}, "SELECT 1 FROMM t"),
    ({"C": "22012", "M": "division by zero"}, "SELECT 1/0"),
    ({"C": "23502", "M": 'null value in column "ssn" of relation "customers" violates '
      'not-null constraint', "c": "ssn", "t": "customers"}, "INSERT INTO customers VALUES (1)"),
    ({"C": "42883", "M": "function nosuch(integer) does not exist",
      "H": "No function matches the given name and argument types. You might need to add "
           "explicit type casts."}, "SELECT nosuch(1)"),
    ({"C": "40P01", "M": "deadlock detected",
      "D": "Process 7 waits for ShareLock on transaction 9; blocked by process 8.\n"
           "Process 8 waits for ShareLock on transaction 10; blocked by process 7.",
      "W": 'while updating tuple (0,1) in relation "t"'}, "UPDATE t SET a = 1"),
])
def test_names_the_statement_and_postgresqls_words_are_kept(
        fields: dict[str, str], statement: str) -> None:
    assert error_fields(fields, statement, MASKED) == fields


@pytest.mark.parametrize(("fields", "statement", "shown"), [
    ({"C": "22P02", "M": 'invalid input syntax for type integer: "0211-50-870"'},
     "SELECT reverse(ssn)::int FROM t",
     {"M": f'invalid input syntax for type integer: "{DERIVED}"'}),
    ({"C": "22P02", "M": 'invalid input syntax for type integer: "a"b"c"'},
     "SELECT v::int FROM t", {"M": f'invalid input syntax for type integer: "{DERIVED}"'}),
    ({"C": "22003", "M": 'value "99999999999" is out of range for type integer'},
     "SELECT n::int FROM t", {"M": f'value "{DERIVED}" is out of range for type integer'}),
    ({"C": "23505", "D": "Key (lower(email))=(ada@example.com) already exists.",
      "n": "u"}, "UPDATE t SET email = e", {"D": f"Key (lower(email))=({DERIVED}) already "
                                                "exists."}),
    ({"C": "23503", "D": 'Key (cid)=(9) is not present in table "customers".'},
     "INSERT INTO o SELECT x FROM t",
     {"D": f'Key (cid)=({DERIVED}) is not present in table "customers".'}),
    ({"C": "23514", "D": "Failing row contains (1, Ada, 078-05-1120)."},
     "UPDATE t SET name = ''", {"D": f"Failing row contains ({DERIVED})."}),
    ({"C": "22P02", "D": 'Token "078" is invalid.', "W": "JSON data, line 1: 078..."},
     "SELECT ssn::json FROM t",
     {"D": f'Token "{DERIVED}" is invalid.', "W": f"JSON data, line 1: {DERIVED}"}),
    ({"C": "42P01", "M": 'relation "0211-50-870" does not exist'},
     "SELECT reverse(ssn)::regclass FROM t", {"M": f'relation "{DERIVED}" does not exist'}),
    ({"C": "00000", "M": 'identifier "a" will be truncated to "b"'}, "SELECT 1",
     {"M": f'identifier "{DERIVED}"'}),
])
def test_a_value_the_statement_does_not_hold_is_masked(
        fields: dict[str, str], statement: str, shown: dict[str, str]) -> None:
    assert error_fields(fields, statement, MASKED) == {**fields, **shown}


@pytest.mark.parametrize(("fields", "statement", "left"), [
    # A function's RAISE, of any class a function may pick: its words are its own.
    ({"C": "P0001", "M": "bad ssn 078-05-1120", "W": "PL/pgSQL function f() line 3 at RAISE"},
     "SELECT f()", {"C"}),
    ({"C": "2200N", "M": "invalid XML content",
      "D": "line 1: Start tag expected, '<' not found\n0211-50-870\n^"},
     "SELECT reverse(ssn)::xml FROM t", {"C"}),
    ({"C": "00000", "M": "ssn 078-05-1120", "S": "NOTICE"}, "SELECT f()", {"C", "S"}),
    ({"C": "22P02", "M": 'odd "quotes'}, "SELECT 1", {"C"}),
])
def test_a_text_that_may_carry_a_value_unquoted_is_withheld(
        fields: dict[str, str], statement: str, left: set[str]) -> None:
    shown = error_fields(fields, statement, MASKED)
    assert shown["M"].startswith("tollgate: the server's message is withheld")
    assert f"SQLSTATE {fields['C']}" in shown["M"]
    assert {k for k, v in shown.items() if v == fields.get(k)} == left


def test_an_internal_query_is_kept_only_if_the_statement_holds_it() -> None:
    fields = {"C": "42703", "M": 'column "x" does not exist',
              "q": "SELECT x FROM t WHERE s = '078-05-1120'", "p": "8"}
    assert "q" not in error_fields(fields, "SELECT f()", MASKED)
    assert "p" not in error_fields(fields, "SELECT f()", MASKED)
    assert error_fields(fields, fields["q"], MASKED) == fields


def test_without_a_mask_the_texts_are_the_servers() -> None:
    fields = {"C": "22P02", "M": 'invalid input syntax for type integer: "078-05-1120"'}
    assert error_fields(fields, "SELECT 1", UNMASKED) == fields
    assert error_fields(fields, "SELECT 1", None) == fields
