"""A masked dump restores faithfully: pg_dump and mariadb-dump (the real binaries) through
a real Envoy and the gateway, under each masking strategy, restored with the real
clients into a fresh database with the original schema, strictly (PostgreSQL refuses a
value too long or of the wrong type; MariaDB's dump sets its own SQL mode, made
STRICT_ALL_TABLES here so that it errors rather than cutting a value silently). The
restore succeeds, and the restored data, read back directly, is what the gateway
answered, byte for byte: masked values keep their columns' types and lengths
(extproc/masking/fitting.py): `[US_SSN]` in a `varchar(16)`, a hash's digest in it, a
NOT NULL number or date masked to its type's stand-in, a nullable one to NULL.

The pack is the default one, with the dba group's masking strategy read from the
target's label `mask_strategy`: one gateway per front, a target per strategy.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extproc.masking.strategies import STRATEGIES
from tests.e2e.test_postgres_dump_e2e import PG_DUMP
from tests.e2e.test_postgres_e2e import customers_database
from tests.support import tokens
from tests.support.databases import throwaway_database
from tests.support.gateway import POLICIES, Gateway, module_gateway
from tests.support.mysql_shop import Account, as_root, shop_account

pytestmark = pytest.mark.e2e

PSQL = PG_DUMP.parent / "psql"
WHO = "dba-typed-dump"
DBA = tokens.token(WHO, ["dba"])
SSNS = ("078-05-1120", "219-09-9999")
CARD = 4111111111111111
ROWS = [(1, SSNS[0], SSNS[0], "ann@example.com", CARD, "1985-03-12", 123),
        (2, SSNS[1], SSNS[1], "alan@example.org", CARD + 8, "1971-11-02", None)]
SECRETS = [*SSNS, "ann@example.com", "alan@example.org", str(CARD), "1985-03-12"]
# The protected columns, typed: SSNs in a varchar(16) and a char(11), an e-mail in a
# varchar(20); a card number (the field rule `cardnumber`) and a date of birth NOT NULL;
# a CVV (`cvv`) that may be NULL; on PostgreSQL a NOT NULL uuid under `token`, on
# MariaDB a NOT NULL `cvc`.
PG_TABLE = ("CREATE TABLE people (id int PRIMARY KEY, ssn varchar(16) NOT NULL, "
            "ssn_fixed char(11), email varchar(20), card_number bigint NOT NULL, "
            "dob date NOT NULL, cvv smallint, token uuid NOT NULL)")
MY_TABLE = ("CREATE TABLE people (id int PRIMARY KEY, ssn varchar(16) NOT NULL, "
            "ssn_fixed char(11), email varchar(20), card_number bigint NOT NULL, "
            "dob date NOT NULL, cvv smallint, cvc smallint NOT NULL)")
UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def _values(extra: str) -> str:
    """ROWS as an INSERT's VALUES, `extra` the value of each front's own last column."""
    return ", ".join(
        "(" + ", ".join("NULL" if v is None else repr(v) if isinstance(v, str) else str(v)
                        for v in row) + f", {extra})" for row in ROWS)


def strategy_pack(where: Path) -> Path:
    """The default pack, the dba group's strategy the target's label `mask_strategy`."""
    shutil.copytree(POLICIES, where)
    path = where / "tollgate.rego"
    source = path.read_text()
    masked = '{"detectors": ["all"], "actions": action_detectors, "strategy": "redact"}'
    assert source.count(masked) == 1, "the pack's mask for everyone but `privileged`"
    path.write_text(source.replace(masked, masked.replace(
        '"redact"', 'object.get(input, ["target", "labels", "mask_strategy"], "redact")')))
    return where


def _labelled(target: dict[str, Any], strategy: str) -> dict[str, Any]:
    """`target` as the one of `strategy`, reached as database `typed_<strategy>`."""
    return {**target, "name": f"typed-{strategy}", "match": {"database": f"typed_{strategy}"},
            "labels": {"mask_strategy": strategy}}


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with customers_database("tollgate_typed", PG_TABLE, "INSERT INTO people VALUES "
                            + _values(f"'{UUID}'")) as upstream:
        target = {"protocol": "postgres", "environment": "test",
                  "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                               "database": upstream.rsplit("/", 1)[1], "sslmode": "disable"}}
        pack = strategy_pack(tmp_path_factory.mktemp("pack") / "policies")
        with module_gateway(tmp_path_factory, otlp, "typed-pg", policy_dir=pack, postgres={},
                            targets=[_labelled(target, s) for s in STRATEGIES]) as running:
            yield running


def copied(dump: str) -> dict[str, str]:
    """Each table's COPY block of a dump (its lines), by table."""
    return {m[1]: m[2] for m in re.finditer(
        r"^COPY public\.(\w+) \([^)]*\) FROM stdin;\n(.*?)^\\\.\n", dump, re.M | re.S)}


def _psql(url: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(PSQL), "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_pg_dump_masked_restores_into_its_schema_as_answered(pg_gw: Gateway,
                                                               strategy: str) -> None:
    done = subprocess.run(
        [str(PG_DUMP), "--no-owner", f"postgresql://{WHO}@127.0.0.1:{pg_gw.ports.postgres}/"
         f"typed_{strategy}?sslmode=require"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PGPASSWORD": DBA, "PGCONNECT_TIMEOUT": "10"})
    assert done.returncode == 0, done.stderr
    answered = copied(done.stdout)
    assert sorted(answered) == ["customers", "people"]
    assert not [s for s in SECRETS if s in done.stdout]
    with throwaway_database("tollgate_restored") as restored:
        _psql(restored, stdin=done.stdout)  # the dump's own schema, then its rows
        with psycopg.connect(restored, autocommit=True) as conn:
            read = {}
            for table in answered:
                with conn.cursor().copy(f"COPY public.{table} TO STDOUT") as copy:
                    read[table] = b"".join(bytes(block) for block in copy).decode()
    assert read == answered
    first, second = (line.split("\t") for line in answered["people"].splitlines())
    _expected_pg(strategy, first, second)


def _expected_pg(strategy: str, first: list[str], second: list[str]) -> None:
    """What each strategy's masked values are, fitted (docs/masking.md's ladder)."""
    ssn, fixed, email, card, dob, cvv, token = first[1:]
    assert (card, dob, token) == ("0", "2000-01-01", "00000000-0000-0000-0000-000000000000")
    assert cvv == "\\N" and second[6] == "\\N"  # the nullable one: NULL
    assert len(ssn) <= 16 and len(fixed) == 11 and len(email) <= 20
    if strategy == "redact":
        assert (ssn, fixed, email) == ("[US_SSN]", "[US_SSN]   ", "[EMAIL_ADDRESS]")
    elif strategy == "hash":  # the digest, whole or in the value's shape: equal stays equal
        assert re.fullmatch("[0-9a-f]{16}", ssn) and ssn != second[1]
        assert re.fullmatch("[0-9a-f]{3}-[0-9a-f]{2}-[0-9a-f]{4}", fixed)
        assert fixed.replace("-", "") == (ssn * 2)[:9]
    else:
        assert (ssn, fixed) == ("***-**-1120", "***-**-1120")


# -- MariaDB -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def my_gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    account: Account
    with shop_account("tollgate_mytyped") as account:
        as_root(f"{MY_TABLE}; INSERT INTO people VALUES {_values('456')}", account.database)
        pack = strategy_pack(tmp_path_factory.mktemp("pack") / "policies")
        with module_gateway(tmp_path_factory, otlp, "typed-my", policy_dir=pack, mysql={},
                            env=account.env, targets=[
                                _labelled(account.target(), s) for s in STRATEGIES]) as running:
            yield running


def mariadb_dump(*args: str, password: str | None = None) -> str:
    binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    assert binary, "the machine's MariaDB client (Debian's mariadb-client)"
    done = subprocess.run([binary, "--no-defaults", "-h", "127.0.0.1", "--no-tablespaces",
                           *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **({"MYSQL_PWD": password} if password else {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def inserts(dump: str) -> dict[str, str]:
    """Each table's INSERT of a dump, by table."""
    return {m[1]: m[2] for m in re.finditer(r"^INSERT INTO `(\w+)` VALUES\s*(.*?);$", dump,
                                            re.M | re.S)}


@contextlib.contextmanager
def fresh_mariadb_database() -> Iterator[str]:
    name = f"tollgate_restored_{os.urandom(4).hex()}"
    as_root(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        as_root(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_mariadb_dump_masked_restores_strictly_as_answered(my_gw: Gateway,
                                                             strategy: str) -> None:
    dump = mariadb_dump("-P", str(my_gw.ports.mysql), "-u", WHO, "--ssl",
                        "--skip-ssl-verify-server-cert", f"typed_{strategy}", password=DBA)
    answered = inserts(dump)
    assert sorted(answered) == ["customers", "people"]
    assert not [s for s in SECRETS if s in dump]
    # The dump sets a SQL mode of its own for its restore: strict, a value too long or
    # of the wrong type errors instead of being cut or zeroed with a warning.
    lenient = "SQL_MODE='NO_AUTO_VALUE_ON_ZERO'"
    assert dump.count(lenient) == 1
    strict = dump.replace(lenient, "SQL_MODE='NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'")
    with fresh_mariadb_database() as restored:
        done = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", "3306",
                               "-uroot", restored], input=strict, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        read = inserts(mariadb_dump("-P", "3306", "-uroot", restored))
    assert read == answered
    rows = re.findall(r"\(([^()]*)\)", answered["people"])
    first, second = (row.split(",") for row in rows)
    _expected_mysql(strategy, first, second)


def _expected_mysql(strategy: str, first: list[str], second: list[str]) -> None:
    ssn, fixed, email, card, dob, cvv, cvc = first[1:]
    assert (card, dob, cvc) == ("0", "'2000-01-01'", "0")
    assert cvv == "NULL" and second[6] == "NULL"
    if strategy == "redact":
        assert (ssn, fixed, email) == ("'[US_SSN]'", "'[US_SSN]'", "'[EMAIL_ADDRESS]'")
    elif strategy == "hash":
        assert re.fullmatch("'[0-9a-f]{16}'", ssn) and ssn != second[1]
        assert re.fullmatch("'[0-9a-f]{3}-[0-9a-f]{2}-[0-9a-f]{4}'", fixed)
    else:
        assert (ssn, fixed) == ("'***-**-1120'", "'***-**-1120'")
