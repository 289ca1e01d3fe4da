"""pg_dump through the PostgreSQL front: the real binary (PostgreSQL 15's, the machine's
server's), a real Envoy and the default pack.

A dump is the dba group's: its settings (search_path emptied, synchronize_seqscans,
row_security) and its catalog reads pass, its COPY ... TO stdout is masked as any read
is, and every statement is in the record. The privileged group's dump holds the data. An
agent's is refused, saying who may dump.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_postgres_e2e import CUSTOMERS, DATABASE, customers_database, shop
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, request_text

pytestmark = pytest.mark.e2e

PG_DUMP = Path("/usr/lib/postgresql/15/bin/pg_dump")
DBA = tokens.token("dba-dump", ["dba"])
PRIVILEGED = tokens.token("dba-dump-privileged", ["dba", "privileged"])
AGENT = tokens.token("svc-dump-agent", ["agents"])
SECRETS = [value for row in CUSTOMERS for value in row[1:]]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with customers_database("tollgate_dump") as upstream_db, module_gateway(
            tmp_path_factory, otlp, "postgres-dump", targets=[shop(upstream_db)],
            postgres={}) as running:
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


def test_a_dbas_dump_is_whole_masked_and_recorded(gw: Gateway) -> None:
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
