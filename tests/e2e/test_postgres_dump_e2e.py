"""pg_dump through the PostgreSQL front: the real binary (PostgreSQL 15's, the machine's
server's), a real Envoy and the default pack, the database set up by what `tollgate db
grants` prints (the gateway's login holds nothing; the pack gives the dba group a role
that may dump).

A dump is the dba group's: its settings (search_path emptied, synchronize_seqscans,
row_security) and its catalog reads pass, its COPY ... TO stdout is masked as any read
is, every statement is in the record, and it restores into a database whose schema is
the original's. The privileged group's dump holds the data. An agent's is refused,
saying who may dump.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.e2e.test_postgres_e2e import CUSTOMERS, DATABASE, customers_database, shop
from tests.support import tokens
from tests.support.cli import tollgate
from tests.support.databases import PG_ADMIN
from tests.support.gateway import Gateway, module_gateway, request_text, tollgate_config
from tests.support.packs import pack_with_roles

pytestmark = pytest.mark.e2e

PG_DUMP = Path("/usr/lib/postgresql/15/bin/pg_dump")
DBA = tokens.token("dba-dump", ["dba"])
PRIVILEGED = tokens.token("dba-dump-privileged", ["dba", "privileged"])
AGENT = tokens.token("svc-dump-agent", ["agents"])
SECRETS = [value for row in CUSTOMERS for value in row[1:]]
# Beside the customers, what a dump reads only with what `db grants` gives a dumping
# role: a table, a view and a sequence no role was given.
MORE = ("CREATE TABLE scratch (id int)", "INSERT INTO scratch VALUES (3), (4)",
        "CREATE VIEW customer_ids AS SELECT id FROM customers",
        "CREATE SEQUENCE invoice_ids", "SELECT nextval('invoice_ids')")


def psql(database: str, sql: str) -> str:
    """`sql` run by psql as the server's superuser in `database`, stopping at an error."""
    return subprocess.run(
        [shutil.which("psql") or "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"],
        input=sql, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """The shop's target, its database set up by what `tollgate db grants` prints for
    it (as the docs show it run: each role reads the customers), its login and roles of
    the run's own names, which a copy of the pack gives the agents and the dba group;
    and that pack."""
    folder = tmp_path_factory.mktemp("pgdump-grants")
    suffix = secrets.token_hex(4)
    login, agent, dba = (f"tollgate_{who}_{suffix}" for who in ("gw", "agent", "dba"))
    pack = pack_with_roles(folder / "pack", {"agents": agent, "dba": dba})
    with customers_database("tollgate_dump", *MORE) as url:
        database = url.rsplit("/", 1)[1]
        made = shop(url)
        made["postgres"] = {**made["postgres"], "user": login, "roles": [agent, dba]}
        config = folder / "tollgate.yaml"
        config.write_text(yaml.safe_dump({**tollgate_config(pack, "", 1, [made]),
                                          "postgres": {"listen": "127.0.0.1:2"}}))
        printed = tollgate("db", "grants", "shop", "--config", config,
                           *(f"--read={role}=customers" for role in (agent, dba)))
        assert printed.returncode == 0, printed.stderr
        psql(database, f'CREATE ROLE "{login}" LOGIN')
        try:
            psql(database, printed.stdout)
            yield made, pack
        finally:
            psql(database, f'DROP OWNED BY "{login}", "{agent}", "{dba}"; '
                           f'DROP ROLE "{login}"; DROP ROLE IF EXISTS "{agent}"; '
                           f'DROP ROLE IF EXISTS "{dba}"')


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       target: tuple[dict[str, Any], Path]) -> Iterator[Gateway]:
    made, pack = target
    with module_gateway(tmp_path_factory, otlp, "postgres-dump", targets=[made],
                        postgres={}, policy_dir=pack) as running:
        yield running


def pg_dump(gw: Gateway, who: str, token: str) -> subprocess.CompletedProcess[str]:
    assert PG_DUMP.exists(), "the machine's PostgreSQL 15 (postgresql-15)"
    return subprocess.run(
        [str(PG_DUMP), "--no-owner",
         f"postgresql://{who}@127.0.0.1:{gw.ports.postgres}/{DATABASE}?sslmode=require"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"})


def copied_rows(dump: str) -> list[list[str]]:
    """The rows of the dump's COPY of customers."""
    lines = dump.split("COPY public.customers (id, name, email, ssn, card) FROM stdin;\n",
                       1)[1].split("\n\\.\n", 1)[0]
    return [line.split("\t") for line in lines.splitlines()]


@contextlib.contextmanager
def restored(dump: str) -> Iterator[str]:
    """A fresh database the dump was restored into (by psql, as the superuser), dropped
    on leaving (at once: it holds the roles' privileges, which their drop waits for)."""
    database = f"tollgate_restored_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        try:
            psql(database, dump)
            yield database
        finally:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def schema(database: str) -> str:
    """The database's schema as pg_dump prints it (its session's random key left out)."""
    printed = subprocess.run(
        [str(PG_DUMP), "--schema-only", PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return "\n".join(line for line in printed.splitlines()
                     if not line.startswith(("\\restrict ", "\\unrestrict ")))


def test_a_dbas_dump_is_whole_masked_and_recorded(
        gw: Gateway, target: tuple[dict[str, Any], Path]) -> None:
    done = pg_dump(gw, "dba-dump", DBA)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE public.customers" in done.stdout
    rows = copied_rows(done.stdout)
    assert [(r[0], r[1]) for r in rows] == [("1", "[REDACTED:PERSON]"), ("2", "[REDACTED:PERSON]")]
    assert not [s for s in SECRETS if s in done.stdout]
    assert rows[0][2:] == ["[REDACTED:EMAIL_ADDRESS]", "[REDACTED:US_SSN]",
                           "[REDACTED:CREDIT_CARD]"]
    # Records are written off the request path: the COPY's, once there, is the session's.
    copy = "COPY public.customers (id, name, email, ssn, card) TO stdout;"
    records = gw.session_records(copy)
    assert {r["outcome"]["action"] for r in records} == {"allow"}
    texts = [request_text(r) for r in records]
    assert texts.index("SELECT pg_catalog.set_config('search_path', '', false);") < \
        texts.index(copy)
    # Restored, the schema is the original's, and so are the rows but masked values.
    original = target[0]["postgres"]["database"]
    with restored(done.stdout) as copied:
        assert schema(copied) == schema(original)
        for query in ("SELECT id FROM customers ORDER BY id", "SELECT id FROM scratch",
                      "SELECT id FROM customer_ids ORDER BY id",
                      "SELECT last_value, is_called FROM invoice_ids"):
            assert psql(copied, query) == psql(original, query), query


def test_the_privileged_groups_dump_holds_the_data(gw: Gateway) -> None:
    done = pg_dump(gw, "dba-dump-privileged", PRIVILEGED)
    assert done.returncode == 0, done.stderr
    assert copied_rows(done.stdout)[0][1:4] == ["Ada Lovelace", "ada@example.com", "078-05-1120"]


def test_an_agents_dump_is_refused_saying_who_may_dump(gw: Gateway) -> None:
    done = pg_dump(gw, "svc-dump-agent", AGENT)
    assert done.returncode != 0
    assert "changing synchronize_seqscans is refused: pg_dump sets it as it begins a dump, " \
        "and dumping a database is for the dba group" in done.stderr, done.stderr
    assert "COPY" not in done.stdout

