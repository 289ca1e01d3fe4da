"""How the gateway logs in to a PostgreSQL target, end to end, on a cluster of the test's
own (tests/support/pg_cluster.py: TLS, SCRAM, md5 and certificate logins, and a log of
every connection and statement).

The agent's psql logs in to the gateway with its token, each client's way: libpq's
defaults (sslmode prefer, channel_binding prefer), and require-everything. The gateway
logs in to the database as its own role, by SCRAM-SHA-256 with channel binding over
verified TLS, by md5, or by a client certificate; the token never reaches the database,
whose log is searched for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.pg_cluster import PASSWORD, Cluster, cluster

AGENT = tokens.token("svc-pg-agent", ["agents"])


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as running:
        yield running


def _target(name: str, pg: Cluster, **settings: Any) -> dict[str, Any]:
    return {"name": name, "protocol": "postgres", "match": {"database": name},
            "postgres": {"upstream": f"127.0.0.1:{pg.port}", "database": "shop", **settings}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, pg: Cluster) -> Iterator[Gateway]:
    secret = tmp_path_factory.mktemp("secrets") / "gateway-password"
    secret.write_text(PASSWORD)
    password = {"type": "password", "from_file": str(secret)}
    targets = [
        {**_target("shop-scram", pg, user="gateway_scram", sslmode="verify-full",
                   ca_file=str(pg.ca_file), channel_binding="require"),
         "credential": password},
        {**_target("shop-md5", pg, user="gateway_md5", sslmode="disable"),
         "credential": password},
        _target("shop-cert", pg, user="gateway_cert", sslmode="verify-full",
                ca_file=str(pg.ca_file), cert_file=str(pg.client_cert),
                key_file=str(pg.client_key)),
    ]
    with module_gateway(tmp_path_factory, otlp, "pg-upstream", targets=targets,
                        postgres={}) as running:
        yield running


def psql(gw: Gateway, database: str, sql: str, *options: str) -> subprocess.CompletedProcess[str]:
    """psql with the token as its password (PGPASSWORD, as an agent's environment has
    it), libpq's defaults unless `options` (key=value) say otherwise."""
    conninfo = " ".join([f"host=127.0.0.1 port={gw.ports.postgres} dbname={database} "
                         "user=svc-pg-agent connect_timeout=10", *options])
    return subprocess.run([shutil.which("psql") or "psql", "-X", "-A", "-t", conninfo,
                           "-c", sql], capture_output=True, text=True, timeout=30,
                          check=False, env={**os.environ, "PGPASSWORD": AGENT})


@pytest.mark.parametrize("database", ["shop-scram", "shop-md5", "shop-cert"])
@pytest.mark.parametrize("options", [(), ("sslmode=require", "channel_binding=prefer")],
                         ids=["libpq-defaults", "sslmode-require"])
def test_each_upstream_login_serves_the_agent(gw: Gateway, pg: Cluster, database: str,
                                              options: tuple[str, ...]) -> None:
    done = psql(gw, database, "SELECT id, email FROM customers", *options)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1|") and "ada@example.com" not in done.stdout


def test_the_gateway_logs_in_as_the_target_says(gw: Gateway, otlp: Any) -> None:
    """Each login's span says how the gateway logged in: SCRAM with channel binding
    (the TLS it verified bound into the proof), md5, or its client certificate."""
    expected = {"shop-scram": "SCRAM-SHA-256-PLUS", "shop-md5": "md5",
                "shop-cert": "certificate"}
    for database in expected:
        assert psql(gw, database, "SELECT 1").returncode == 0

    def logins(spans: list[Any]) -> dict[str, str]:
        return {s.attributes["tollgate.target"]: s.attributes["tollgate.postgres.upstream_auth"]
                for s in spans if "tollgate.postgres.upstream_auth" in s.attributes}

    spans = otlp.wait_for(lambda spans: logins(spans).keys() >= expected.keys())
    assert {k: v for k, v in logins(spans).items() if k in expected} == expected


def test_the_agents_token_never_reaches_the_database(gw: Gateway, pg: Cluster) -> None:
    for database in ("shop-scram", "shop-md5", "shop-cert"):
        assert psql(gw, database, "SELECT count(*) FROM customers").returncode == 0
    log = pg.log
    assert "connection authorized: user=gateway_scram" in log
    assert "connection authorized: user=gateway_cert" in log
    assert "SELECT count(*) FROM customers" in log  # the log holds what ran
    signature = AGENT.rsplit(".", 1)[1]
    assert AGENT not in log and signature not in log
    assert "svc-pg-agent" not in log  # the role the agent asked for is not a login


def test_a_wrong_gateway_password_is_the_databases_error(
        tmp_path_factory: pytest.TempPathFactory, otlp: Any, pg: Cluster,
        tmp_path: Path) -> None:
    secret = tmp_path / "wrong"
    secret.write_text("not-the-password")
    target = {**_target("shop-wrong", pg, user="gateway_scram", sslmode="require"),
              "credential": {"type": "password", "from_file": str(secret)}}
    with module_gateway(tmp_path_factory, otlp, "pg-wrong", targets=[target],
                        postgres={}) as wrong:
        done = psql(wrong, "shop-wrong", "SELECT 1")
    assert done.returncode != 0
    assert "tollgate could not open the database" in done.stderr
    assert "password authentication failed" in done.stderr


def test_a_wrong_token_never_reaches_the_database(gw: Gateway, pg: Cluster) -> None:
    """Refused at the gateway: the database logs no connection for it. (The login that
    follows shows the log is written: its connection is there.)"""
    # What earlier tests logged is all written once a marker of this test's is.
    with psycopg.connect(pg.admin_url, autocommit=True) as admin:
        admin.execute("SELECT 'before the forged token'")
    stack.wait_until(lambda: "before the forged token" in pg.log, 10, "the marker in the log")
    before = pg.log.count("connection received")
    forged = AGENT[:-6] + "AAAAAA"
    done = subprocess.run(
        [shutil.which("psql") or "psql", "-X", f"host=127.0.0.1 port={gw.ports.postgres} "
         "dbname=shop-scram user=svc-pg-agent connect_timeout=10", "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGPASSWORD": forged})
    assert done.returncode != 0 and "token does not verify" in done.stderr
    assert psql(gw, "shop-scram", "SELECT 1").returncode == 0
    stack.wait_until(lambda: pg.log.count("connection received") > before, 10,
                     "the good login's connection in the log")
    assert pg.log.count("connection received") == before + 1


@pytest.mark.parametrize("database", ["shop-scram", "shop-md5", "shop-cert"])
def test_a_sessions_database_connection_ends_with_it(gw: Gateway, pg: Cluster,
                                                     database: str) -> None:
    """Over TLS as over plain TCP: a connection left behind holds one of the server's
    few slots until the gateway stops (asyncpg's pools used up 200 in a minute)."""
    name = f"ends-{database}"
    assert psql(gw, database, "SELECT 1", f"application_name={name}").returncode == 0

    def backends() -> int:
        with psycopg.connect(pg.admin_url) as admin:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = %s", (name,)).fetchone()
        assert row is not None
        return int(row[0])

    stack.wait_until(lambda: backends() == 0, 10, f"{database}'s backend to end")
