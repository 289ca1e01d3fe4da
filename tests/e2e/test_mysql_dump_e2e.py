"""mysqldump (mariadb-dump) through the MySQL front: the real binary, a real Envoy, the
default pack and the machine's MariaDB, set up by what `tollgate db grants` prints (the
gateway's account holds nothing; the pack gives the dba group a role that may dump).

mysqldump logs in naming no database, sends its settings in executable comments
(`/*!40100 SET @@SQL_MODE='' */`) and, with --single-transaction, its transaction's
start (`START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */`) and `UNLOCK TABLES`,
then names its database (COM_INIT_DB) and reads each table's DDL with
`character_set_results` set to binary. The front keeps what came before the database
was named, then decides and runs it, in order, on that target; it answers the character
set itself and keeps the server's answers in utf8mb4, which it masks. A dba's dump, in
either mode (--lock-tables, the default, or --single-transaction), is whole, masked as
any read is, every statement recorded, and restores into a database whose schema is the
original's; the privileged group's holds the data; an agent's is refused, saying why.
Clients name the server's own database here: mysqldump names it in SQL too (a view's
information_schema row), where a target's other name would find nothing.
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

import pytest
import yaml

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.cli import tollgate
from tests.support.gateway import Gateway, module_gateway, request_text, tollgate_config
from tests.support.mysql_shop import (
    CUSTOMERS,
    ROOT,
    Account,
    as_root,
    shop_account,
)
from tests.support.packs import pack_with_roles

pytestmark = pytest.mark.e2e

DBA = tokens.token("dba-mydump", ["dba"])
SNAPSHOT = tokens.token("dba-mydump-snapshot", ["dba"])
PRIVILEGED = tokens.token("dba-mydump-privileged", ["dba", "privileged"])
AGENT = tokens.token("svc-mydump-agent", ["agents"])
SECRETS = [value for row in CUSTOMERS for value in row[1:]]
# What a dump holds beside the tables: a view (SHOW VIEW) and a trigger (TRIGGER). Their
# definer is named by host name: a dba's dump masks an IP address, a definer's too.
VIEW_AND_TRIGGER = ("CREATE DEFINER = root@localhost VIEW customer_ids AS "
                    "SELECT id FROM customers; INSERT INTO scratch VALUES (3), (4); "
                    "CREATE DEFINER = root@localhost TRIGGER scratch_positive BEFORE INSERT "
                    "ON scratch FOR EACH ROW SET NEW.id = ABS(NEW.id)")


def granted(folder: Path, account: Account) -> str:
    """What `tollgate db grants` prints for the shop's target, as the docs show it run
    (the agents' role reads the customers), the pack giving the run's roles to the
    agents and the dba group (the dba's then dumps)."""
    agent, dba = account.roles
    pack = pack_with_roles(folder / "pack", {"agents": agent, "dba": dba})
    config = folder / "tollgate.yaml"
    config.write_text(yaml.safe_dump({**tollgate_config(pack, "", 1, [target(account)]),
                                      "mysql": {"listen": "127.0.0.1:2"}}))
    done = tollgate("db", "grants", "shop-my", "--config", config, "--host", "127.0.0.1",
                    "--read", f"{agent}=customers")
    assert done.returncode == 0, done.stderr
    return done.stdout


def target(account: Account) -> dict[str, Any]:
    """The shop's target, matched by the server's own name of its database."""
    return account.target(match=account.database)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Account, Path]]:
    """The shop as `tollgate db grants` set it up, with a view and a trigger; the pack."""
    folder = tmp_path_factory.mktemp("mydump-grants")
    with shop_account("tollgate_mydump",
                      granted=lambda made: granted(folder, made)) as made:
        as_root(VIEW_AND_TRIGGER, made.database)
        yield made, folder / "pack"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       account: tuple[Account, Path]) -> Iterator[Gateway]:
    shop, pack = account
    with module_gateway(tmp_path_factory, otlp, "mysql-dump", targets=[target(shop)],
                        mysql={}, env=shop.env, policy_dir=pack) as running:
        yield running


@pytest.fixture(scope="module")
def shop(account: tuple[Account, Path]) -> str:
    """The database clients name."""
    return account[0].database


def dump(gw: Gateway, shop: str, who: str, token: str, *options: str
         ) -> subprocess.CompletedProcess[str]:
    """The dump docs/getting-started/mysql.md shows ("Dumps") of database `shop`, with
    `options`."""
    binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    assert binary, "the machine's MariaDB client (Debian's mariadb-client)"
    return subprocess.run(
        [binary, "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql), "-u", who,
         "--ssl", "--skip-ssl-verify-server-cert", "--no-tablespaces", *options, shop],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MYSQL_PWD": token})


def inserted(dump_text: str) -> str:
    """The rows of the dump's INSERT into customers."""
    return dump_text.split("INSERT INTO `customers` VALUES", 1)[1].split(";\n", 1)[0]


def dump_records(gw: Gateway, who: str, last: str) -> list[dict[str, Any]]:
    """The records of `who`'s session, once its statement `last` is recorded."""
    mine: list[dict[str, Any]] = []

    def recorded() -> bool:
        records = [r for r in gw.records() if r["identity"]["sub"] == who]
        mine[:] = records
        return any(request_text(r) == last for r in records)

    stack.wait_until(recorded, 10, f"{who}'s record")
    return mine


@contextlib.contextmanager
def restored(dump_text: str) -> Iterator[str]:
    """A fresh database the dump was restored into (as the server's root), dropped on
    leaving."""
    database = f"tollgate_restored_{secrets.token_hex(4)}"
    as_root(f"CREATE DATABASE {database}")
    try:
        subprocess.run([*ROOT, database], input=dump_text, capture_output=True, text=True,
                       timeout=60, check=True)
        yield database
    finally:
        as_root(f"DROP DATABASE IF EXISTS {database}")


def schema(database: str) -> dict[str, Any]:
    """A database's tables and views as the server creates them, its triggers, and its
    tables' row counts."""
    def rows(sql: str) -> list[list[str]]:
        return [line.split("\t") for line in as_root(sql, database).splitlines()]

    tables = rows("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                  f"WHERE TABLE_SCHEMA = '{database}' ORDER BY TABLE_NAME")
    return {
        "tables": {name: rows(f"SHOW CREATE TABLE `{name}`")[0][1] for name, _ in tables},
        "rows": {name: rows(f"SELECT COUNT(*) FROM `{name}`") for name, kind in tables
                 if kind == "BASE TABLE"},
        "triggers": rows("SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, "
                         "ACTION_TIMING, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                         f"WHERE TRIGGER_SCHEMA = '{database}'")}


def assert_restores(dump_text: str, original: str) -> None:
    """The dump restores into a database whose schema, row counts and unmasked columns
    are the original's."""
    with restored(dump_text) as copy:
        assert schema(copy) == schema(original)
        for query in ("SELECT id FROM customers ORDER BY id",
                      "SELECT id FROM scratch ORDER BY id"):
            assert as_root(query, copy) == as_root(query, original), query


def test_a_dbas_dump_is_whole_masked_and_recorded(gw: Gateway, shop: str) -> None:
    done = dump(gw, shop, "dba-mydump", DBA)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE `customers` (" in done.stdout
    assert "CREATE TABLE `scratch` (" in done.stdout
    assert "-- Dump completed" in done.stdout
    rows = inserted(done.stdout)
    assert rows.strip().split(",\n") == [
        f"({i},'[REDACTED:PERSON]','[REDACTED:EMAIL_ADDRESS]','[REDACTED:US_SSN]')"
        for i, *_ in CUSTOMERS], rows
    assert not [s for s in SECRETS if s in done.stdout]
    records = dump_records(gw, "dba-mydump", "UNLOCK TABLES")
    texts = [request_text(r) for r in records]
    for statement in ("/*!40100 SET @@SQL_MODE='' */", f"USE `{shop}`", "show create table "
                      "`customers`", "SET SESSION character_set_results = 'binary'",
                      "SELECT /*!40001 SQL_NO_CACHE */ `id`, `name`, `email`, `ssn` FROM "
                      "`customers`"):
        assert statement in texts, (statement, texts)
    # The settings kept before the database was named are recorded twice: kept (no
    # decision yet), then decided and run.
    assert {r["outcome"]["action"] for r in records} == {"allow", "none"}
    assert texts.count("/*!40100 SET @@SQL_MODE='' */") == 2
    # The dba's role locks the tables it reads (--lock-tables, mysqldump's default).
    assert any(t.startswith("LOCK TABLES `customer_ids` READ") for t in texts if t)
    assert_restores(done.stdout, shop)


def test_a_single_transaction_dump_runs_its_transaction_where_the_gateway_decided(
        gw: Gateway, shop: str) -> None:
    """--single-transaction: its isolation, its transaction's start and UNLOCK TABLES,
    sent before the database is named, are kept, then decided and run in order on the
    target, before the COM_INIT_DB; each table is read inside a savepoint."""
    done = dump(gw, shop, "dba-mydump-snapshot", SNAPSHOT, "--single-transaction")
    assert done.returncode == 0, done.stderr
    assert "-- Dump completed" in done.stdout
    assert not [s for s in SECRETS if s in done.stdout]
    records = dump_records(gw, "dba-mydump-snapshot", "RELEASE SAVEPOINT sp")
    start = "START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */"
    kept = ["SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", start,
            "UNLOCK TABLES"]
    by_action: dict[str, list[str | None]] = {}
    for record in records:
        by_action.setdefault(record["outcome"]["action"], []).append(request_text(record))
    assert set(by_action) == {"allow", "none"}, by_action
    assert [t for t in by_action["none"] if t in kept] == kept
    ran = by_action["allow"]
    order = [ran.index(t) for t in [*kept, f"USE `{shop}`", "SAVEPOINT sp",
                                    "ROLLBACK TO SAVEPOINT sp", "RELEASE SAVEPOINT sp"]]
    assert order == sorted(order), ran
    assert not any(t.startswith("LOCK TABLES") for t in ran if t)
    assert_restores(done.stdout, shop)


def test_the_privileged_groups_dump_holds_the_data(gw: Gateway, shop: str) -> None:
    done = dump(gw, shop, "dba-mydump-privileged", PRIVILEGED)
    assert done.returncode == 0, done.stderr
    assert "(1,'Ada Lovelace','ada@example.com','078-05-1120')" in inserted(done.stdout)


def test_an_agents_dump_is_refused_saying_why(gw: Gateway, shop: str) -> None:
    for options in ((), ("--single-transaction",)):
        done = dump(gw, shop, "svc-mydump-agent", AGENT, *options)
        assert done.returncode != 0
        assert "tollgate: SET changes the server's configuration (rules: sql.configuration" \
            in done.stderr, done.stderr
        assert "INSERT INTO" not in done.stdout
