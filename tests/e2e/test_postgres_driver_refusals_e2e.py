"""A refusal of a statement the client library sent on its own says so, through the real
drivers, a real Envoy and the machine's PostgreSQL (extproc/postgres/drivers.py).

The site's policy here (the default pack and one rule of the test's: agents read their
application's tables, never the system catalogs) refuses what asyncpg's type
introspection, SQLAlchemy's schema reflection and psql's `\\d` send: their error names
the statement and says it is the library's, not the caller's code. A statement the code
wrote is refused as before; a setting refused as the session opens says that drivers
send theirs there. A column the driver asked for in binary says how to have it as text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy

from tests.e2e.test_postgres_drivers_e2e import asyncpg_fetchrow, typed_database
from tests.e2e.test_postgres_e2e import shop, url
from tests.support.gateway import POLICIES, Gateway, module_gateway

pytestmark = pytest.mark.e2e

LIBRARY = "a statement of your client library's, not of your code"
SITE_RULE = """package tollgate

import rego.v1

# The test's site: agents read their application's tables, never the system catalogs.
denials contains {
	"rule": "site.no_catalogs",
	"reason": "agents may not read the system catalogs here",
} if {
	"agents" in groups
	some s in sql_statements
	some t in s.tables
	startswith(t, "pg_")
}
"""


@pytest.fixture(scope="module")
def typed_db() -> Iterator[str]:
    with typed_database("tollgate_driver_refusals") as db:
        yield db


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, typed_db: str) -> Iterator[Gateway]:
    pack = tmp_path_factory.mktemp("site-pack") / "policies"
    shutil.copytree(POLICIES, pack)
    (pack / "site.rego").write_text(SITE_RULE)
    with module_gateway(tmp_path_factory, otlp, "driver-refusals", policy_dir=pack,
                        targets=[shop(typed_db)], postgres={}) as running:
        yield running


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
          typed_db: str) -> Iterator[Gateway]:
    """The default pack alone: the catalogs may be read."""
    with module_gateway(tmp_path_factory, otlp, "driver-binary", targets=[shop(typed_db)],
                        postgres={}) as running:
        yield running


def test_asyncpgs_type_introspection_refused_says_it_is_asyncpgs(gw: Gateway) -> None:
    """`moods` is an array of an enum asyncpg has no codec for: before the caller's rows
    are read, asyncpg asks the catalogs what the type is, and that statement is refused."""
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
        asyncpg_fetchrow(gw, "SELECT moods FROM things")
    message = str(refused.value)
    assert message.startswith("tollgate: agents may not read the system catalogs here (")
    assert LIBRARY in message and "WITH RECURSIVE typeinfo_tree" in message


def test_sqlalchemys_type_lookup_on_connecting_refused_says_it_is_the_librarys(
        gw: Gateway) -> None:
    """SQLAlchemy's psycopg dialect looks its types up in the catalogs as it first
    connects, before any statement of the caller's."""
    engine = sqlalchemy.create_engine(url(gw).replace("postgresql://",
                                                      "postgresql+psycopg://"))
    try:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as refused, engine.connect() as conn:
            sqlalchemy.inspect(conn).get_columns("things")
    finally:
        engine.dispose()
    message = str(refused.value.orig)
    assert message.startswith("tollgate: agents may not read the system catalogs here (")
    assert LIBRARY in message and "SELECT typname AS name, oid, typarray" in message


def test_psqls_describe_refused_says_it_is_psqls_own(gw: Gateway) -> None:
    psql = shutil.which("psql")
    assert psql, "tests/system-deps.sh installs postgresql-client"
    done = subprocess.run([psql, "-X", url(gw), "-c", r"\d things"], capture_output=True,
                          text=True, timeout=30, check=False,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    assert done.returncode != 0
    assert LIBRARY in done.stderr, done.stderr


def test_a_statement_the_code_wrote_is_refused_as_before(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        assert conn.execute("SELECT id FROM things").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("DROP TABLE things")
    assert "client library" not in str(refused.value)


def test_a_setting_refused_as_the_session_opens_says_drivers_send_theirs_there(
        gw: Gateway) -> None:
    """Where drivers send their settings (pgJDBC's, pgAdmin's): before anything else.
    Sent later, the same setting is the code's."""
    opening = "sent as the session opened, where client libraries send their own settings"
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as first:
            conn.execute("SET search_path = evil, public")
        conn.execute("SELECT id FROM things")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as later:
            conn.execute("SET search_path = evil, public")
    assert opening in str(first.value) and "SET search_path = evil, public" in str(first.value)
    assert "client library" not in str(later.value)
    assert "changing search_path is refused" in str(later.value)


def test_a_column_asked_for_in_binary_says_how_to_have_it_as_text(plain: Gateway) -> None:
    """asyncpg asks for an enum in binary, which the front cannot read to mask: the
    caller can still cast it (tests/e2e/test_postgres_drivers_e2e.py's strict xfail)."""
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
        asyncpg_fetchrow(plain, "SELECT mood FROM things")
    message = str(refused.value)
    assert "as the client library asked for it" in message
    assert "cast it to text in the query (mood::text)" in message
    assert asyncpg_fetchrow(plain, "SELECT mood::text FROM things")["mood"] == "happy"

