"""`tollgate db grants`: what it gives the role that dumps (the one the config's pack gives
the dba group, or those `--dump` names), on either server. What the SQL does on a real
server is tests/e2e/test_database_roles_e2e.py's and the dump tests' (test_mysql_dump_e2e,
test_postgres_dump_e2e)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.cli import tollgate
from tests.support.gateway import POLICIES, tollgate_config

ROLES = ["tollgate_agent", "tollgate_dba"]
MYSQL_DUMP = "GRANT SELECT, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT ON `shop`.* TO `{}`;"
PG_DUMP = ['GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{}";',
           'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO "{}";']


def config(folder: Path, policies: Path = POLICIES) -> Path:
    """A config with a mysql and a postgres target, each listing the default pack's roles."""
    path = folder / "tollgate.yaml"
    targets = [{"name": name, "protocol": protocol, "match": {"database": "shop"},
                protocol: {"upstream": "127.0.0.1:1", "user": "tollgate", "roles": ROLES}}
               for name, protocol in (("shop-my", "mysql"), ("shop-pg", "postgres"))]
    path.write_text(yaml.safe_dump({**tollgate_config(policies, "", 1, targets),
                                    "mysql": {"listen": "127.0.0.1:2"},
                                    "postgres": {"listen": "127.0.0.1:3"}}))
    return path


def lines(*argv: str | Path) -> list[str]:
    done = tollgate("db", "grants", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_dba_groups_role_gets_what_a_dump_needs(tmp_path: Path) -> None:
    mysql = lines("shop-my", "--config", config(tmp_path), "--read", "tollgate_agent=customers")
    assert MYSQL_DUMP.format("tollgate_dba") in mysql
    assert MYSQL_DUMP.format("tollgate_agent") not in mysql
    assert "-- tollgate_dba may dump the database (the pack's data.tollgate.database_roles " \
        "for group dba): it reads every table" in mysql
    postgres = lines("shop-pg", "--config", config(tmp_path))
    assert [line for line in postgres if "ALL" in line and "IN SCHEMA" in line] == [
        line.format("tollgate_dba") for line in PG_DUMP]


def test_dump_names_the_role_that_dumps(tmp_path: Path) -> None:
    mysql = lines("shop-my", "--config", config(tmp_path), "--dump", "tollgate_agent")
    assert MYSQL_DUMP.format("tollgate_agent") in mysql
    assert MYSQL_DUMP.format("tollgate_dba") not in mysql
    assert "-- tollgate_agent may dump the database (--dump): it reads every table" in mysql
    done = tollgate("db", "grants", "shop-my", "--config", config(tmp_path), "--dump", "sales")
    assert done.returncode == 2 and "sales: not a role target 'shop-my' lists" in done.stderr


def test_a_pack_that_cannot_be_read_gives_no_role_a_dump_saying_why(tmp_path: Path) -> None:
    mysql = lines("shop-my", "--config", config(tmp_path, tmp_path / "no-pack"))
    assert not [line for line in mysql if "LOCK TABLES" in line]
    (said,) = [line for line in mysql if "dump" in line]
    assert said.startswith("-- no role dumps the database (the pack's data.tollgate."
                           "database_roles for group dba could not be read: ") \
        and said.endswith("; --dump ROLE names one)"), said
