"""Binary results through the PostgreSQL front, right or refused: psycopg (a binary
cursor: every column in binary) and asyncpg (binary for every type it has a codec for),
through a real Envoy to the machine's PostgreSQL.

Generated values of the built-in types both ask for in binary — scalars, arrays with
lower bounds, several dimensions and NULLs, ranges, records — come back equal to a
direct connection's through a target that masks nothing; through a masked one, each
comes back equal or masked where it sits (a masked text redacted, anything else NULL),
decoded without error, and no planted secret is left.
"""

from __future__ import annotations

import asyncio
import json
import math
import string
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import asyncpg
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.test_postgres_e2e import AGENT, customers_database, shop
from tests.support.gateway import Gateway, module_gateway

SECRETS = ("ann@example.com", "078-05-1120", "4111 1111 1111 1111", "bob@example.org")
WORDS = st.text(string.ascii_letters + " _.", max_size=12)
TEXTS = st.one_of(WORDS, st.sampled_from(SECRETS))
DERIVED = "[REDACTED:DERIVED]"
PLAIN = "plain"  # a second target, on the same database, whose data is not masked


def _quoted(item: str | None) -> str:
    if item is None:
        return "NULL"
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def text_arrays(draw: st.DrawFn) -> str:
    """A text[] literal: 0-3 dimensions, lower bounds of any sign, NULLs, secrets."""
    sizes = draw(st.lists(st.integers(1, 3), max_size=3))
    if not sizes:
        return "{}"
    items = iter(draw(st.lists(st.none() | TEXTS, min_size=math.prod(sizes),
                               max_size=math.prod(sizes))))

    def nested(depth: int) -> str:
        if depth == len(sizes):
            return _quoted(next(items))
        return "{" + ",".join(nested(depth + 1) for _ in range(sizes[depth])) + "}"

    lowers = draw(st.lists(st.integers(-3, 3), min_size=len(sizes), max_size=len(sizes)))
    return "".join(f"[{lo}:{lo + n - 1}]" for lo, n in zip(lowers, sizes, strict=True)) + (
        "=" + nested(0))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | TEXTS,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(WORDS | st.sampled_from(("email", "ssn")), inner,
                                      max_size=3), max_leaves=8)
FLOATS = st.floats(-1e6, 1e6, allow_nan=False).map(repr)
INTS = st.integers(-2**31, 2**31 - 1)
BIGS = st.integers(-2**63, 2**63 - 1)
SMALL = st.integers(-10**6, 10**6)
RANGE = st.tuples(INTS, INTS).map(lambda b: f"[{min(b)},{max(b)})")
DAYS = st.dates().map(lambda d: d.isoformat())

# (SQL of a column with its parameter, the parameter's strategy): parameters travel as
# text, cast to the type, so that both drivers send the same.
COLUMNS: list[tuple[str, st.SearchStrategy[str]]] = [
    ("{}::int2", st.integers(-2**15, 2**15 - 1).map(str)),
    ("{}::int4", INTS.map(str)), ("{}::int8", BIGS.map(str)),
    ("{}::float4", st.floats(-1e6, 1e6, width=32, allow_nan=False).map(repr)),
    ("{}::float8", FLOATS),
    ("{}::numeric", st.decimals(-10**12, 10**12, places=3).map(str)),
    ("{}::bool", st.booleans().map(str)), ("{}::text", TEXTS), ("{}::varchar", TEXTS),
    ("{}::bpchar", TEXTS), ("{}::name", TEXTS), ("{}::\"char\"", st.sampled_from("abc")),
    ("{}::bytea", st.binary(max_size=16).map(lambda b: "\\x" + b.hex())),
    ("{}::date", DAYS), ("{}::time", st.times().map(str)),
    ("{}::timestamp", st.datetimes().map(str)),
    ("{}::timestamptz", st.datetimes(timezones=st.just(UTC)).map(str)),
    ("{}::interval", st.tuples(SMALL, INTS).map(lambda t: f"{t[0]} days {t[1]} seconds")),
    ("{}::uuid", st.uuids().map(str)),
    ("{}::json", JSON.map(json.dumps)), ("{}::jsonb", JSON.map(json.dumps)),
    ("{}::inet", st.ip_addresses().map(str)),
    ("{}::cidr", st.ip_addresses(v=4).map(lambda a: f"{a}/32")),
    ("{}::oid", st.integers(0, 2**32 - 1).map(str)),
    ("{}::varbit", st.text("01", max_size=20)),
    ("{}::point", st.tuples(FLOATS, FLOATS).map(lambda p: f"({p[0]},{p[1]})")),
    ("{}::box", st.tuples(FLOATS, FLOATS).map(lambda p: f"({p[0]},{p[1]}),(0,0)")),
    ("{}::circle", st.tuples(FLOATS, FLOATS).map(lambda p: f"<({p[0]},{p[1]}),1>")),
    ("{}::int4range", RANGE), ("{}::int8range", RANGE),
    ("{}::daterange", st.tuples(DAYS, DAYS).map(lambda b: f"[{min(b)},{max(b)})")),
    ("{}::pg_lsn", st.tuples(INTS, INTS).map(lambda b: f"{abs(b[0]):X}/{abs(b[1]):X}")),
    ("{}::text[]", text_arrays()), ("{}::varchar[]", text_arrays()),
    ("{}::jsonb[]", st.lists(JSON, max_size=3).map(
        lambda docs: "{" + ",".join(_quoted(json.dumps(d)) for d in docs) + "}")),
    ("{}::int8[]", st.lists(st.none() | BIGS, max_size=4).map(
        lambda ns: "{" + ",".join("NULL" if n is None else str(n) for n in ns) + "}")),
    ("ROW({}::text, 7, ARRAY['x', NULL, 'ann@example.com'])", TEXTS),
]


def statement(placeholder: str) -> str:
    """The SELECT of every column, its parameters written as `placeholder` says."""
    return "SELECT " + ", ".join(sql.format(placeholder.format(i + 1) + "::text") + f" AS c{i}"
                                 for i, (sql, _) in enumerate(COLUMNS))


ROWS = st.tuples(*(strategy for _, strategy in COLUMNS))


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database("tollgate_pgbin", "CREATE DOMAIN email_d AS text") as url:
        yield url


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:
    masked = shop(upstream_db)
    plain = {**masked, "name": PLAIN, "match": {"database": PLAIN},
             "labels": {"masking": "off"}}
    # Activity is not counted: the examples mask far more personal values than an
    # identity may read in an hour, and its limit is not what this module tests.
    with module_gateway(tmp_path_factory, otlp, "postgres_binary", targets=[masked, plain],
                        postgres={}, settings={"activity": {"enabled": False}}) as running:
        yield running


def address(gw: Gateway, database: str) -> str:
    return f"postgresql://svc-pg-agent@127.0.0.1:{gw.ports.postgres}/{database}"


class Clients:
    """psycopg and asyncpg, each connected directly, through the plain target and
    through the masked one, kept for the module (one event loop for asyncpg's)."""

    def __init__(self, gw: Gateway, upstream_db: str) -> None:
        self.loop = asyncio.new_event_loop()
        urls = {"direct": (upstream_db, None), "plain": (address(gw, PLAIN), AGENT),
                "masked": (address(gw, "shop"), AGENT)}
        self.psycopg = {k: psycopg.connect(u, password=p, autocommit=True, sslmode=(
            "disable" if p is None else "require")) for k, (u, p) in urls.items()}
        self.asyncpg = {k: self.loop.run_until_complete(asyncpg.connect(
            u, password=p, timeout=10)) for k, (u, p) in urls.items()}

    def fetch(self, where: str, params: tuple[str, ...]) -> dict[str, list[Any]]:
        """The generated row, as each driver decodes it."""
        row = self.psycopg[where].cursor(binary=True).execute(
            statement("%s"), params).fetchone()
        record = self.loop.run_until_complete(self.asyncpg[where].fetchrow(
            statement("${}"), *params))
        assert row is not None and record is not None
        return {"psycopg": list(row), "asyncpg": list(record.values())}

    def close(self) -> None:
        for conn in self.psycopg.values():
            conn.close()
        for aconn in self.asyncpg.values():
            self.loop.run_until_complete(aconn.close())
        self.loop.close()


@pytest.fixture(scope="module")
def clients(gw: Gateway, upstream_db: str) -> Iterator[Clients]:
    opened = Clients(gw, upstream_db)
    try:
        yield opened
    finally:
        opened.close()


def masked_or_equal(direct: Any, got: Any) -> bool:
    """`got` is `direct`, or `direct` masked where it sits: a text redacted (a JSON
    document: somewhere in it), anything else NULL; arrays and records item by item."""
    if got == direct or got is None:
        return True
    if isinstance(direct, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(direct) and all(
            masked_or_equal(d, g) for d, g in zip(direct, got, strict=True))
    return "REDACTED" in json.dumps(got, default=str)


def _planted(value: Any) -> set[str]:
    shown = json.dumps(value, default=str, ensure_ascii=False)
    return {s for s in SECRETS if s in shown}


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=ROWS)
def test_generated_values_round_trip_equal_or_masked(clients: Clients,
                                                     params: tuple[str, ...]) -> None:
    direct = clients.fetch("direct", params)
    assert clients.fetch("plain", params) == direct
    masked = clients.fetch("masked", params)
    for driver, row in masked.items():
        for i, (want, got) in enumerate(zip(direct[driver], row, strict=True)):
            assert masked_or_equal(want, got), (driver, COLUMNS[i][0], want, got)
        assert not _planted(row), (driver, row)


def test_array_agg_of_emails_is_masked_and_decodes_in_both_drivers(
        clients: Clients) -> None:
    # Values of no protected column, found by the detectors inside binary arrays and
    # records; a protected column's aggregate is derived (lineage): each value redacted.
    # (Named apart: the front matches derived columns by name, and all three would be
    # `array_agg`.)
    sql = ("SELECT array_agg('Customer ' || id || ' <c' || id || '@example.org>' ORDER BY id) "
           "AS contacts, array_agg(ROW(id, '078-05-1120'::text) ORDER BY id) AS rows, "
           "array_agg(email) AS emails FROM customers")
    emails, rows, derived = clients.psycopg["masked"].cursor(binary=True).execute(
        sql).fetchone() or ((), (), ())
    record = clients.loop.run_until_complete(clients.asyncpg["masked"].fetchrow(sql))
    assert record is not None
    for got_emails, got_rows, got_derived in ((emails, rows, derived),
                                              tuple(record.values())):
        assert got_emails == [f"Customer {i} <[REDACTED:EMAIL_ADDRESS]>" for i in (1, 2)]
        assert [r[0] for r in got_rows] == [1, 2]
        assert "078-05-1120" not in str(got_rows)
        assert got_derived == [DERIVED, DERIVED]


def test_a_domain_inside_a_record_is_refused_and_the_session_goes_on(
        clients: Clients) -> None:
    # (Of a column no rule protects, the id: a protected one's would be masked whole.)
    conn = clients.psycopg["masked"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match="cannot read to mask it") as refused:
        conn.cursor(binary=True).execute(
            "SELECT ROW(id::text::email_d) FROM customers").fetchall()
    assert "trace id" in (refused.value.diag.message_detail or "")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="type"):
        conn.cursor(binary=True).execute("SELECT ARRAY[id::text::email_d] FROM customers")
    assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)


# Arrays derived from protected columns: (SQL, each driver's value). The aggregate of a
# protected column is derived (lineage), so every value is redacted where it sits, NULLs,
# dimensions and bounds kept; where the element's type is not text, NULL.
DERIVED_ARRAYS = {
    "text": ("SELECT array_agg(email ORDER BY id) AS a FROM customers", [DERIVED, DERIVED]),
    "nulls": ("SELECT array_agg(CASE WHEN id = 2 THEN ssn END ORDER BY id) AS a "
              "FROM customers", [None, DERIVED]),
    "two-dimensions": ("SELECT ARRAY[[email, NULL], [ssn, name]] AS a FROM customers "
                       "WHERE id = 1", [[DERIVED, None], [DERIVED, DERIVED]]),
    "bounds": ("SELECT array_fill(ssn, ARRAY[2], ARRAY[0]) AS a FROM customers WHERE id = 1",
               [DERIVED, DERIVED]),
    "varchar": ("SELECT array_agg(email::varchar(40) ORDER BY id) AS a FROM customers",
                [DERIVED, DERIVED]),
    "jsonb": ("SELECT array_agg(to_jsonb(ssn) ORDER BY id) AS a FROM customers",
              [DERIVED, DERIVED]),
    "integer": ("SELECT array_agg(length(ssn) ORDER BY id) AS a FROM customers", [None, None]),
}


@pytest.mark.parametrize(("sql", "want"), DERIVED_ARRAYS.values(), ids=DERIVED_ARRAYS.keys())
def test_a_derived_array_comes_back_an_array_of_masked_values(
        clients: Clients, sql: str, want: list[Any]) -> None:
    conn = clients.psycopg["masked"]
    got = {"psycopg-text": conn.execute(sql).fetchone(),
           "psycopg-binary": conn.cursor(binary=True).execute(sql).fetchone(),
           "asyncpg": clients.loop.run_until_complete(clients.asyncpg["masked"].fetchrow(sql))}
    for driver, row in got.items():
        assert row is not None
        value = row[0]
        if driver == "asyncpg" and "jsonb" in sql:  # asyncpg leaves JSON as its text
            value = [json.loads(v) for v in value]
        assert value == want, driver
        assert not _planted(value)


def test_asyncpg_reads_a_void_in_binary(clients: Clients) -> None:
    """pg_sleep returns void, which asyncpg asks for in binary: no bytes, nothing to mask."""
    record = clients.loop.run_until_complete(
        clients.asyncpg["masked"].fetchrow("SELECT pg_sleep(0), 1 AS one"))
    assert record is not None and tuple(record.values()) == (None, 1)
    read = {where: clients.psycopg[where].cursor(binary=True).execute(
        "SELECT pg_sleep(0)").fetchone() for where in ("masked", "direct")}
    assert read["masked"] == read["direct"] == (b"",)  # psycopg has no loader for void
