"""A protected value never reaches an agent through PostgreSQL's error texts: psycopg
through a real Envoy and the PostgreSQL front to the machine's PostgreSQL, the default
pack, as an agent.

The server quotes what failed (a cast's input, a unique key, a failing row, a JSON
token and its line), and the value may be derived (`reverse(ssn)`), which no detector
knows: the front keeps what the statement's text or the error's own names hold and masks
the rest whole (extproc/postgres/results.py `error_fields`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.e2e.test_postgres_e2e import CUSTOMERS, customers_database, shop, url
from tests.support.gateway import Gateway, module_gateway

DERIVED = "[REDACTED:DERIVED]"
SSN, EMAIL = CUSTOMERS[0][3], CUSTOMERS[0][2]
# What the statements below can make the server quote of Ada's SSN and e-mail.
FORMS = (SSN, SSN[::-1], SSN[4:], SSN[:3], EMAIL, EMAIL.upper(), EMAIL.split("@")[0])


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database(
            "tollgate_pgerr", "CREATE UNIQUE INDEX customers_ssn_reversed ON customers "
            "(reverse(ssn))", "ALTER TABLE customers ADD CONSTRAINT name_given "
            "CHECK (name <> '')") as db:
        yield db


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "postgres-errors",
                        targets=[shop(upstream_db)], postgres={}) as running:
        yield running


def _error(gw: Gateway, sql: str) -> psycopg.Error:
    """The error `sql` draws, as the agent reads it; the session goes on after it. Its
    record says the error as the agent read it: never less masked."""
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as failed:
            conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
    # What the record says of the answer (not its ids: a random hex id may hold "078").
    recorded = json.dumps(gw.record_of(sql)["outcome"])
    assert json.dumps(failed.value.diag.message_primary)[1:-1] in recorded, recorded
    assert not [f for f in FORMS if f in recorded], recorded
    return failed.value


def _texts(error: psycopg.Error) -> str:
    diag = error.diag
    return "\n".join(t or "" for t in (
        diag.message_primary, diag.message_detail, diag.message_hint, diag.context,
        diag.internal_query))


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT ssn::int FROM customers WHERE id = 1",
     f'invalid input syntax for type integer: "{DERIVED}"'),
    ("SELECT reverse(ssn)::int FROM customers WHERE id = 1",
     f'invalid input syntax for type integer: "{DERIVED}"'),
    ("SELECT upper(email)::int FROM customers WHERE id = 1",
     f'invalid input syntax for type integer: "{DERIVED}"'),
    ("SELECT (ssn || 'x')::int FROM customers WHERE id = 1",
     f'invalid input syntax for type integer: "{DERIVED}"'),
    ("SELECT substr(ssn, 5)::bigint FROM customers WHERE id = 1",
     f'invalid input syntax for type bigint: "{DERIVED}"'),
    ("SELECT (ssn || 'x')::date FROM customers WHERE id = 1",
     f'invalid input syntax for type date: "{DERIVED}"'),
    ("SELECT reverse(ssn)::date FROM customers WHERE id = 1",
     f'date/time field value out of range: "{DERIVED}"'),
    ("SELECT reverse(ssn)::uuid FROM customers WHERE id = 1",
     f'invalid input syntax for type uuid: "{DERIVED}"'),
], ids=["ssn-int", "reverse-int", "upper-email-int", "concat-int", "substr-bigint",
        "concat-date", "reverse-date", "reverse-uuid"])
def test_a_cast_of_a_protected_value_quotes_it_masked(gw: Gateway, sql: str,
                                                      message: str) -> None:
    error = _error(gw, sql)
    assert error.diag.sqlstate is not None and error.diag.sqlstate.startswith("22")
    assert error.diag.message_primary == message
    assert not [f for f in FORMS if f in _texts(error)]


def test_a_json_cast_masks_the_token_and_the_line_it_quotes(gw: Gateway) -> None:
    error = _error(gw, "SELECT ssn::json FROM customers WHERE id = 1")
    assert error.diag.sqlstate == "22P02"
    assert error.diag.message_detail == f'Token "{DERIVED}" is invalid.'
    assert error.diag.context == f"JSON data, line 1: {DERIVED}"
    assert not [f for f in FORMS if f in _texts(error)]


def test_a_protected_value_cast_to_a_name_is_masked_in_a_names_message(gw: Gateway) -> None:
    error = _error(gw, "SELECT reverse(ssn)::regclass FROM customers WHERE id = 1")
    assert isinstance(error, psycopg.errors.UndefinedTable)
    assert error.diag.message_primary == f'relation "{DERIVED}" does not exist'


def test_a_unique_violation_keeps_its_constraint_and_masks_the_key(gw: Gateway) -> None:
    error = _error(gw, "UPDATE customers SET ssn = (SELECT ssn FROM customers WHERE id = 1) "
                       "WHERE id = 2")
    assert isinstance(error, psycopg.errors.UniqueViolation)
    assert error.diag.message_primary == ('duplicate key value violates unique constraint '
                                          '"customers_ssn_reversed"')
    assert error.diag.message_detail == f"Key (reverse(ssn))=({DERIVED}) already exists."
    assert not [f for f in FORMS if f in _texts(error)]


def test_a_check_violation_masks_the_failing_row_whole(gw: Gateway) -> None:
    error = _error(gw, "UPDATE customers SET name = '' WHERE id = 1")
    assert isinstance(error, psycopg.errors.CheckViolation)
    assert error.diag.message_primary == ('new row for relation "customers" violates check '
                                          'constraint "name_given"')
    assert error.diag.message_detail == f"Failing row contains ({DERIVED})."
    assert error.diag.constraint_name == "name_given"
