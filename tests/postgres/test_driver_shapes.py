"""Which statements read as a client library's own (extproc/postgres/drivers.py), on what
the drivers really send (tests/interpret/driver_statements/: asyncpg, psycopg, pg8000,
SQLAlchemy, psql, pgAdmin, DBeaver) and on what a caller writes, read by the real SQL
reader; and the note a refusal's message then carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.exchange.state import Answer
from extproc.interpret.sql import analyze
from extproc.postgres import drivers
from extproc.postgres import messages as pg
from extproc.postgres.refusals import refusal_message

CORPUS = Path(__file__).resolve().parents[1] / "interpret" / "driver_statements"
SENT = [text for path in sorted(CORPUS.glob("*.json"))
        for texts in json.loads(path.read_text())["statements"].values() for text in texts]
# What the drivers send that is a caller's statement they carry (the captures' own
# queries), or a shape no rule tells apart.
CALLERS = {"SELECT tags, scores, mood, moods, home, n FROM things", "SELECT $1::text[]",
           "SELECT 1", "SELECT mood FROM things", "SELECT tags, mood, home FROM things",
           "SELECT tags, mood, home, n FROM things", "SELECT tags FROM things",
           "SELECT 'add_one'::pg_catalog.regproc::pg_catalog.oid",
           "select string_agg(word, ',') from pg_catalog.pg_get_keywords()"}


def shape(text: str) -> str | None:
    return drivers.shape(analyze(text))


@pytest.mark.parametrize("text", [t for t in SENT if t not in CALLERS],
                         ids=lambda t: " ".join(t.split())[:60])
def test_what_drivers_send_on_their_own_reads_as_theirs(text: str) -> None:
    assert shape(text) in (drivers.CATALOG, drivers.RESET, drivers.SETTING)


@pytest.mark.parametrize(("text", "found"), [
    ("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;", drivers.RESET),
    ("DISCARD ALL", drivers.RESET),
    ("select pg_catalog.version()", drivers.CATALOG),
    ("SELECT table_name FROM information_schema.tables", drivers.CATALOG),
    ("SET extra_float_digits = 3", drivers.SETTING),
    ("show standard_conforming_strings", drivers.SETTING),
    ("BEGIN", drivers.SETTING),
])
def test_shapes(text: str, found: str) -> None:
    assert shape(text) == found


@pytest.mark.parametrize("text", [
    "SELECT id, email FROM customers", "DROP TABLE customers",
    "SELECT * FROM pg_class, customers",             # a catalog and a table of the caller's
    "SELECT usename, passwd FROM pg_shadow",          # secrets no driver reads
    "SELECT rolpassword FROM pg_catalog.pg_authid",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",  # not only a read
    "SELECT pg_read_file('/etc/passwd')", "SELECT pg_sleep(5)",
    "NOTIFY jobs, 'x'", "SET search_path = evil; DELETE FROM customers",
    "SELECT 1 +",                                     # unparseable
])
def test_what_a_caller_writes_does_not(text: str) -> None:
    assert shape(text) is None


def test_the_note_names_the_statement_and_hedges_where_the_shape_cannot_tell() -> None:
    introspection = " ".join(SENT[1].split())
    catalog = drivers.note(drivers.CATALOG, False, SENT[1])
    assert catalog is not None and catalog.startswith(
        "a statement of your client library's, not of your code: it reads only the system "
        "catalogs")
    assert catalog.endswith(f": {introspection[:80]}…")
    opening = drivers.note(drivers.SETTING, True, "SET search_path = evil")
    assert opening == ("sent as the session opened, where client libraries send their own "
                       "settings: if your code did not send it, your client library did: "
                       "SET search_path = evil")
    assert drivers.note(drivers.SETTING, False, "SET search_path = evil") is None
    assert drivers.note(None, True, "DROP TABLE t") is None
    reset = drivers.note(drivers.RESET, False, "RESET ALL")
    assert reset is not None and "as a pool sends when a connection is given back" in reset


def test_the_note_goes_in_the_errors_message() -> None:
    answer = Answer(403, {"reasons": ["agents may not read the catalogs"], "rules": ["site.x"]},
                    "denied", "t" * 32)
    fields = pg.fields(pg.Framer(pg.BACKEND_KINDS, 1 << 20).feed(
        refusal_message(answer, note="theirs"))[0].body)
    assert fields["M"] == "tollgate: agents may not read the catalogs (theirs)"
    assert fields["D"] == f"rules: site.x; trace id {'t' * 32}"
