"""mysqldump (mariadb-dump) through the MySQL front: the real binary, a real Envoy, the
default pack and the machine's MariaDB.

mysqldump logs in naming no database, sends its settings in executable comments
(`/*!40100 SET @@SQL_MODE='' */`), then names its database (COM_INIT_DB) and reads each
table's DDL with `character_set_results` set to binary. The front keeps the settings until
the database is named, then decides and runs them on that target; it answers the
character set itself and keeps the server's answers in utf8mb4, which it masks. A dba's
dump is whole, masked as any read is, and every statement is recorded; the privileged
group's holds the data; an agent's is refused, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import tokens
from tests.support.gateway import Gateway, request_text
from tests.support.mysql_shop import CUSTOMERS, DATABASE, Account, shop_account, shop_gateway

pytestmark = pytest.mark.e2e

DBA = tokens.token("dba-mydump", ["dba"])
PRIVILEGED = tokens.token("dba-mydump-privileged", ["dba", "privileged"])
AGENT = tokens.token("svc-mydump-agent", ["agents"])
SECRETS = [value for row in CUSTOMERS for value in row[1:]]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    account: Account
    with shop_account("tollgate_mydump") as account, shop_gateway(
            tmp_path_factory, otlp, "mysql-dump", account) as running:
        yield running


def dump(gw: Gateway, who: str, token: str) -> subprocess.CompletedProcess[str]:
    """The dump docs/getting-started/mysql.md shows ("Dumps")."""
    binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    assert binary, "the machine's MariaDB client (Debian's mariadb-client)"
    return subprocess.run(
        [binary, "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql), "-u", who,
         "--ssl", "--skip-ssl-verify-server-cert", "--no-tablespaces", DATABASE],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MYSQL_PWD": token})


def inserted(dump_text: str) -> str:
    """The rows of the dump's INSERT into customers."""
    return dump_text.split("INSERT INTO `customers` VALUES", 1)[1].split(";\n", 1)[0]


def test_a_dbas_dump_is_whole_masked_and_recorded(gw: Gateway) -> None:
    done = dump(gw, "dba-mydump", DBA)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE `customers` (" in done.stdout
    assert "CREATE TABLE `scratch` (" in done.stdout
    assert "-- Dump completed" in done.stdout
    rows = inserted(done.stdout)
    assert rows.strip().split(",\n") == [
        f"({i},'[REDACTED:PERSON]','[REDACTED:EMAIL_ADDRESS]','[REDACTED:US_SSN]')"
        for i, *_ in CUSTOMERS], rows
    assert not [s for s in SECRETS if s in done.stdout]
    records = gw.session_records("UNLOCK TABLES")
    texts = [request_text(r) for r in records]
    for statement in ("/*!40100 SET @@SQL_MODE='' */", "USE `shop`", "show create table "
                      "`customers`", "SET SESSION character_set_results = 'binary'",
                      "SELECT /*!40001 SQL_NO_CACHE */ `id`, `name`, `email`, `ssn` FROM "
                      "`customers`"):
        assert statement in texts, (statement, texts)
    # The settings kept before the database was named are recorded twice: kept (no
    # decision yet), then decided and run.
    assert {r["outcome"]["action"] for r in records} == {"allow", "none"}
    assert texts.count("/*!40100 SET @@SQL_MODE='' */") == 2


def test_the_privileged_groups_dump_holds_the_data(gw: Gateway) -> None:
    done = dump(gw, "dba-mydump-privileged", PRIVILEGED)
    assert done.returncode == 0, done.stderr
    assert "(1,'Ada Lovelace','ada@example.com','078-05-1120')" in inserted(done.stdout)


def test_an_agents_dump_is_refused_saying_why(gw: Gateway) -> None:
    done = dump(gw, "svc-mydump-agent", AGENT)
    assert done.returncode != 0
    assert "tollgate: SET changes the server's configuration (rules: sql.configuration" \
        in done.stderr, done.stderr
    assert "INSERT INTO" not in done.stdout
