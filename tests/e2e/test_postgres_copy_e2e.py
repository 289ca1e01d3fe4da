"""COPY ... TO STDOUT through the PostgreSQL front, with real clients (psycopg's copy,
asyncpg's copy_from_query, psql's \\copy), a real Envoy and the machine's PostgreSQL,
the default pack: a COPY that names its columns — its query's, or a column list — is
read as that query and masked by those columns, as a SELECT's rows are (e-mails, SSNs,
cards; a column the query derives from a protected one whole); one that names none is
refused saying what to do. The rows arrive in the COPY's own format."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.e2e.test_postgres_e2e import AGENT, CUSTOMERS, DATABASE, customers_database, shop, url
from tests.support.gateway import Gateway, module_gateway

pytestmark = pytest.mark.e2e

SECRETS = [value for row in CUSTOMERS for value in row[1:]]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with customers_database("tollgate_copy") as upstream_db, module_gateway(
            tmp_path_factory, otlp, "postgres-copy", targets=[shop(upstream_db)],
            postgres={}) as running:
        yield running


def copied(gw: Gateway, statement: str) -> str:
    """What psycopg's copy gets of `statement`."""
    with (psycopg.connect(url(gw), autocommit=True) as conn, conn.cursor() as cur,
          cur.copy(statement) as copy):
        return b"".join(bytes(block) for block in copy).decode()


def test_a_query_copied_out_is_masked_by_its_columns(gw: Gateway) -> None:
    out = copied(gw, "COPY (SELECT id, name, email, ssn, card FROM customers ORDER BY id) "
                     "TO STDOUT")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(row[0], row[1]) for row in lines] == [("1", "[REDACTED:PERSON]"),
                                                   ("2", "[REDACTED:PERSON]")]
    assert all(len(row) == 5 for row in lines)
    assert not [secret for secret in SECRETS if secret in out], out


def test_a_column_the_query_derives_from_a_protected_one_is_masked_whole(
        gw: Gateway) -> None:
    out = copied(gw, "COPY (SELECT id, md5(ssn) AS h FROM customers ORDER BY id) TO STDOUT "
                     "WITH (FORMAT csv, HEADER)")
    assert out.splitlines() == ["id,h", '1,"[REDACTED:DERIVED]"', '2,"[REDACTED:DERIVED]"']


def test_a_column_list_names_the_columns(gw: Gateway) -> None:
    out = copied(gw, "COPY customers (id, ssn) TO STDOUT WITH (FORMAT csv)")
    assert [line.split(",")[0] for line in out.splitlines()] == ["1", "2"]
    assert "078-05-1120" not in out and "219-09-9999" not in out


def test_asyncpg_copies_a_prepared_query_out_masked(gw: Gateway) -> None:
    """asyncpg wraps the query in COPY (...) TO STDOUT and sends it with its arguments
    through the extended protocol: decided at its Parse, masked at its Execute."""
    async def run() -> bytes:
        conn = await asyncpg.connect(
            f"postgresql://svc-pg-agent@127.0.0.1:{gw.ports.postgres}/{DATABASE}",
            password=AGENT, timeout=10)
        try:
            sink = io.BytesIO()
            await conn.copy_from_query("SELECT id, email FROM customers WHERE id = $1", 2,
                                       output=sink, format="csv", header=True)
            return sink.getvalue()
        finally:
            await conn.close()

    lines = asyncio.run(run()).decode().splitlines()
    assert lines[0] == "id,email" and lines[1].startswith("2,")
    assert "alan@example.org" not in lines[1]


def test_psql_backslash_copy_is_masked(gw: Gateway) -> None:
    psql = shutil.which("psql")
    assert psql, "tests/system-deps.sh installs postgresql-client"
    done = subprocess.run(
        [psql, "-X", url(gw), "-c", "\\copy (SELECT id, ssn FROM customers ORDER BY id) "
                                    "TO STDOUT WITH CSV"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[0] for line in done.stdout.splitlines()] == ["1", "2"]
    assert "078-05-1120" not in done.stdout


def test_a_copy_naming_no_columns_is_refused_saying_how_to_name_them(gw: Gateway) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        copied(gw, "COPY (SELECT * FROM customers) TO STDOUT")
    message = str(refused.value)
    assert "COPY sends its rows without their columns' names" in message
    assert "COPY (SELECT id, email FROM customers) TO STDOUT" in message
    assert "COPY names no columns" not in message
