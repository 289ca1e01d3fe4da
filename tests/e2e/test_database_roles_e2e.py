"""Least privilege at the database, end to end: each session runs as the role its login's
decision names (the target's `roles`, the pack's roles.rego), the client cannot change
it, and the database refuses what that role may not do, whatever the pack let through.

PostgreSQL: a cluster of the module's own (tests/support/pg_cluster.py), its `shop`
set up by grants.py for the gateway's login gateway_md5 (NOINHERIT, no privilege of its
own) and the roles tollgate_agent and tollgate_dba. MariaDB: the machine's server, a
throwaway database whose gateway account holds nothing but two roles of the run's own
names (tests/support/mysql_shop.py). Each is reached through a real Envoy and front,
with the default pack, and with a pack that lets every statement through (the database's
line on its own).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import (
    POLICIES,
    Gateway,
    GatewayFactory,
    request_text,
    tollgate_config,
)
from tests.support.libmariadb import MariaDbError
from tests.support.libmariadb import connect as libmariadb
from tests.support.mysql_shop import ROOT, Account, as_root, shop_account
from tests.support.pg_cluster import PASSWORD, Cluster, cluster

pytestmark = [pytest.mark.e2e]

AGENT = tokens.token("svc-roles-agent", ["agents"])
DBA = tokens.token("svc-roles-dba", ["dba"])
NOBODY = tokens.token("svc-roles-sales", ["sales"])
ROLES = ("tollgate_agent", "tollgate_dba")
# A pack that lets everything through and names the agents' role at a login, its
# statements cancelled after a second: what the database refuses with it, it refuses on
# its own.
PERMISSIVE = """package tollgate

import rego.v1

decision := {"action": "allow", "reasons": [], "rules": [], "database_role": role,
\t"statement_timeout_seconds": 1} if {
\tinput.postgres.message == "connect"
\trole := "tollgate_agent"
} else := {"action": "allow", "reasons": [], "rules": [], "database_role": role,
\t"statement_timeout_seconds": 1} if {
\tinput.mysql.command in {"connect", "change_user"}
\trole := input.mysql.roles[0]
} else := {"action": "allow", "reasons": [], "rules": []}
"""


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster's shop, set up by what `tollgate db grants` prints for its target, run
    by psql as the cluster's superuser, as the docs tell an administrator to."""
    with cluster() as running:
        admin = running.admin_url.rsplit("/", 1)[0] + "/shop"
        with psycopg.connect(admin, autocommit=True) as shop:
            shop.execute("ALTER TABLE customers ADD COLUMN ssn text")
            shop.execute("UPDATE customers SET ssn = '078-05-1120'")
            shop.execute("CREATE SEQUENCE invoice_ids")
            shop.execute("ANALYZE customers")
            shop.execute("REVOKE ALL ON customers FROM gateway_md5")  # the cluster's grant
        config = tmp_path_factory.mktemp("grants") / "tollgate.yaml"
        config.write_text(yaml.safe_dump({**tollgate_config(
            POLICIES, "", 1, [pg_target(running, roles=True)]),
            "postgres": {"listen": "127.0.0.1:2"}}))  # read, never listened on
        printed = subprocess.run(
            [sys.executable, "-m", "extproc", "db", "grants", "shop-pg", "--config",
             str(config), *(f"--{way}={role}=customers" for role in ROLES
                            for way in ("read", "write"))],
            capture_output=True, text=True, timeout=60, check=True).stdout
        subprocess.run([shutil.which("psql") or "psql", "-X", "-v", "ON_ERROR_STOP=1", "-q",
                        admin], input=printed, capture_output=True, text=True, timeout=60,
                       check=True)
        yield running


@pytest.fixture(scope="module")
def maria() -> Iterator[Account]:
    with shop_account("tollgate_roles", roles=True) as account:
        yield account


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[GatewayFactory]:
    made = GatewayFactory(tmp_path_factory.mktemp("roles"), otlp)
    try:
        yield made
    finally:
        made.stop_all()


def _pack(folder: Path, maria: Account) -> Path:
    """The default pack, its MariaDB roles renamed to the run's."""
    shutil.copytree(POLICIES, folder, dirs_exist_ok=True)
    roles = folder / "roles.rego"
    # The PostgreSQL roles' entries first; the run's MariaDB roles after them, for the
    # same groups (a login takes the first its target lists).
    agent, dba = maria.roles
    text = roles.read_text().replace(
        '{"group": "agents", "role": "tollgate_agent"},',
        f'{{"group": "agents", "role": "tollgate_agent"}},\n'
        f'\t{{"group": "agents", "role": "{agent}"}},\n\t{{"group": "dba", "role": "{dba}"}},')
    roles.write_text(text)
    return folder


def pg_target(pg: Cluster, roles: bool) -> dict[str, Any]:
    return {"name": "shop-pg", "protocol": "postgres", "match": {"database": "shop"},
            "environment": "test",
            "postgres": {"upstream": f"127.0.0.1:{pg.port}", "user": "gateway_md5",
                         "sslmode": "disable", "roles": list(ROLES) if roles else []},
            "credential": {"type": "password", "from_env": "GATEWAY_MD5_PASSWORD"}}


def _targets(pg: Cluster, maria: Account, roles: bool, catalog: bool = False
             ) -> list[dict[str, Any]]:
    my = maria.target(catalog=catalog)
    if not roles:
        my["mysql"] = {**my["mysql"], "roles": []}
    return [pg_target(pg, roles), {**my, "match": {"database": "shop-my"}}]


def _gateway(factory: GatewayFactory, tmp: Path, pg: Cluster, maria: Account,
             permissive: bool = False, roles: bool = True, catalog: bool = False) -> Gateway:
    folder = tmp / ("permissive" if permissive else "pack")
    if permissive:
        folder.mkdir()
        (folder / "tollgate.rego").write_text(PERMISSIVE)
    else:
        _pack(folder, maria)
    # A hold (a write whose effect cannot be measured) waits 1 s here, not 300.
    return factory(policy_dir=folder, targets=_targets(pg, maria, roles, catalog),
                   postgres={},
                   mysql={}, env={**maria.env, "GATEWAY_MD5_PASSWORD": PASSWORD},
                   settings={"approvals": {"max_hold_seconds": 1}})


@pytest.fixture(scope="module")
def gw(factory: GatewayFactory, tmp_path_factory: pytest.TempPathFactory, pg: Cluster,
       maria: Account) -> Gateway:
    return _gateway(factory, tmp_path_factory.mktemp("pack"), pg, maria)


@pytest.fixture(scope="module")
def catalog_gw(factory: GatewayFactory, tmp_path_factory: pytest.TempPathFactory,
               pg: Cluster, maria: Account) -> Gateway:
    """The MariaDB target reads the measurement's catalog as its catalog_role."""
    return _gateway(factory, tmp_path_factory.mktemp("catalog"), pg, maria, catalog=True)


@pytest.fixture(scope="module")
def open_gw(factory: GatewayFactory, tmp_path_factory: pytest.TempPathFactory, pg: Cluster,
            maria: Account) -> Gateway:
    """Every statement let through by the pack: the database is the only line."""
    return _gateway(factory, tmp_path_factory.mktemp("open"), pg, maria, permissive=True)


def pg_url(gw: Gateway, token: str = AGENT) -> str:
    return (f"postgresql://svc-roles:{token}@127.0.0.1:{gw.ports.postgres}/shop"
            "?sslmode=require")


def psql(gw: Gateway, sql: str, token: str = AGENT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which("psql") or "psql", "-X", "-A", "-t", pg_url(gw, token),
                           "-c", sql], capture_output=True, text=True, timeout=30,
                          check=False)


def maria_session(gw: Gateway, token: str = AGENT) -> Any:
    assert gw.ports.mysql is not None
    return libmariadb("127.0.0.1", gw.ports.mysql, "svc-roles", token, "shop-my")


def last_record(gw: Gateway, target: str, statement: str) -> dict[str, Any]:
    """The record of `statement`'s latest run on `target`, once it is written."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records() if r["target"]["name"] == target
                    and request_text(r) == statement]
        return bool(found)

    stack.wait_until(recorded, 10, f"the record of {statement!r}")
    return found[-1]


# -- each identity's role --------------------------------------------------------------


@pytest.mark.parametrize(("token", "role"), [(AGENT, "tollgate_agent"), (DBA, "tollgate_dba")])
def test_a_postgres_session_runs_as_its_identitys_role(gw: Gateway, token: str,
                                                       role: str) -> None:
    done = psql(gw, "SELECT current_user, session_user", token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{role}|gateway_md5"
    stack.wait_until(lambda: any(
        r["request"]["method"] == "CONNECT" and r["outcome"]["detail"] == f"connected as {role}"
        for r in gw.records()), 10, "the login's record, naming the role")


@pytest.mark.parametrize("token", [AGENT, DBA], ids=["agent", "dba"])
def test_a_mariadb_session_runs_as_its_identitys_role(gw: Gateway, maria: Account,
                                                      token: str) -> None:
    role = maria.roles[0 if token == AGENT else 1]
    with maria_session(gw, token) as session:
        assert session.query("SELECT CURRENT_ROLE(), CURRENT_USER()") == [
            (role, f"{maria.user}@127.0.0.1")]


def test_an_identity_the_pack_gives_no_role_cannot_log_in(gw: Gateway) -> None:
    done = psql(gw, "SELECT 1", NOBODY)
    assert done.returncode != 0
    assert "no database role of this target" in done.stderr
    with pytest.raises(MariaDbError, match="no database role of this target"), \
            maria_session(gw, NOBODY):
        pass


def test_a_target_without_roles_runs_as_the_gateways_account(
        factory: GatewayFactory, tmp_path: Path, pg: Cluster, maria: Account) -> None:
    """The pack names no role where the target lists none: the session runs as the
    gateway's login, which here may read nothing (grants.py gave it no privilege)."""
    without = _gateway(factory, tmp_path, pg, maria, roles=False)
    done = psql(without, "SELECT current_user")
    assert done.returncode == 0 and done.stdout.strip() == "gateway_md5", done.stderr
    refused = psql(without, "SELECT email FROM customers")
    assert "permission denied for table customers" in refused.stderr


def test_a_role_the_target_does_not_list_is_refused_at_login(
        factory: GatewayFactory, tmp_path: Path, pg: Cluster, maria: Account) -> None:
    """A pack naming a role the target does not list (a mistake, or a pack written for
    another target): the login is refused, never run as that role."""
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "tollgate.rego").write_text(PERMISSIVE.replace(
        'role := "tollgate_agent"', 'role := "postgres"'))
    wrong = factory(policy_dir=folder, targets=_targets(pg, maria, True), postgres={},
                    mysql={}, env={**maria.env, "GATEWAY_MD5_PASSWORD": PASSWORD})
    done = psql(wrong, "SELECT current_user")
    assert done.returncode != 0
    assert "database role 'postgres', which is not one of this target's roles" in done.stderr


# -- the role stays ---------------------------------------------------------------------

PG_ROLE_CHANGES = [
    "RESET ROLE", "SET ROLE tollgate_dba", "SET ROLE NONE", "SET LOCAL ROLE tollgate_dba",
    "SET SESSION AUTHORIZATION DEFAULT", "RESET SESSION AUTHORIZATION",
    "SELECT set_config('role', 'tollgate_dba', false)",
    "SELECT set_config('session_authorization', 'gateway_md5', false)",
    "DISCARD ALL", "discard/**/all",
    "WITH x AS (SELECT set_config('role', 'none', false)) SELECT * FROM x",
]


@pytest.mark.parametrize("permissive", [False, True], ids=["pack", "permissive-pack"])
def test_a_postgres_client_cannot_change_its_role(gw: Gateway, open_gw: Gateway,
                                                  permissive: bool) -> None:
    """Each is refused by the gateway (42501, saying why), whatever the pack; the session
    goes on as the agents' role."""
    with psycopg.connect(pg_url(open_gw if permissive else gw), autocommit=True) as conn:
        for statement in PG_ROLE_CHANGES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(statement)
            if permissive:
                assert "the session runs as the role the gateway chose" in str(
                    refused.value), statement
            assert conn.execute("SELECT current_user").fetchone() == ("tollgate_agent",)


MARIA_ROLE_CHANGES = ["SET ROLE NONE", "SET ROLE {dba}", "set role `{dba}`",
                      "SET DEFAULT ROLE {dba}", "SET DEFAULT ROLE NONE FOR CURRENT_USER",
                      "/*!50000 SET ROLE NONE */"]


@pytest.mark.parametrize("permissive", [False, True], ids=["pack", "permissive-pack"])
def test_a_mariadb_client_cannot_change_its_role(gw: Gateway, open_gw: Gateway,
                                                 maria: Account, permissive: bool) -> None:
    agent, dba = maria.roles
    with maria_session(open_gw if permissive else gw) as session:
        for statement in MARIA_ROLE_CHANGES:
            with pytest.raises(MariaDbError):
                session.query(statement.format(dba=dba))
            assert session.query("SELECT CURRENT_ROLE()") == [(agent,)], statement


def test_a_reset_connection_keeps_the_role(gw: Gateway, maria: Account) -> None:
    """COM_RESET_CONNECTION takes the server's session back to the account's default
    role (none): the front sets the session's own again before anything else runs."""
    with maria_session(gw) as session:
        session.reset()
        assert session.query("SELECT CURRENT_ROLE()") == [(maria.roles[0],)]


def test_a_change_of_user_runs_as_the_new_identitys_role(gw: Gateway,
                                                         maria: Account) -> None:
    with maria_session(gw) as session:
        session.change_user("svc-roles-dba", DBA, "shop-my")
        assert session.query("SELECT CURRENT_ROLE()") == [(maria.roles[1],)]
        with pytest.raises(MariaDbError, match="no database role"):
            session.change_user("svc-roles-sales", NOBODY, "shop-my")


# -- what the role may not do, refused by the database ---------------------------------

PG_DENIED = {
    "CREATE TABLE copy (id int)": "permission denied for schema public",
    "CREATE TEMP TABLE copy (id int)": "permission denied to create temporary tables",
    "CREATE VIEW v AS SELECT 'k' AS k, id FROM customers": "permission denied for schema",
    "ALTER TABLE customers ADD CONSTRAINT self FOREIGN KEY (id) REFERENCES customers (id) "
    "ON DELETE CASCADE": "must be owner of table customers",
    "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'":
        "permission denied for view pg_stats",
    "SELECT pg_advisory_lock(42)": "permission denied for function pg_advisory_lock",
    "SELECT pg_try_advisory_xact_lock(1, 2)":
        "permission denied for function pg_try_advisory_xact_lock",
    "SELECT setval('invoice_ids', 1000)": "permission denied for sequence invoice_ids",
    "SELECT nextval('invoice_ids')": "permission denied for sequence invoice_ids",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'":
        "permission denied for schema public",
    "TRUNCATE customers": "permission denied for table customers",
    "SELECT * FROM pg_statistic": "permission denied for table pg_statistic",
}


@pytest.mark.parametrize("statement", list(PG_DENIED))
def test_postgres_refuses_what_the_agents_role_may_not(open_gw: Gateway,
                                                       statement: str) -> None:
    """The pack let it through; the database refused it as the agents' role, the client
    got the database's error and the record says the database refused it."""
    with psycopg.connect(pg_url(open_gw), autocommit=True) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=PG_DENIED[statement]):
        conn.execute(statement)
    record = last_record(open_gw, "shop-pg", statement)
    assert record["outcome"]["detail"].startswith("refused by the database (42501)"), record


def test_analyze_by_the_agents_role_changes_no_statistics(open_gw: Gateway,
                                                          pg: Cluster) -> None:
    """PostgreSQL skips a table the role does not own, with a warning: the planner's
    statistics (what the blast estimate reads) stay the owner's."""
    admin = pg.admin_url.rsplit("/", 1)[0] + "/shop"
    with psycopg.connect(admin) as conn:
        before = conn.execute("SELECT last_analyze FROM pg_stat_user_tables "
                              "WHERE relname = 'customers'").fetchone()
    notices: list[str] = []
    with psycopg.connect(pg_url(open_gw), autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute("ANALYZE customers")
    assert any("only table or database owner can analyze it" in n for n in notices), notices
    with psycopg.connect(admin) as conn:
        assert conn.execute("SELECT last_analyze FROM pg_stat_user_tables "
                            "WHERE relname = 'customers'").fetchone() == before


MARIA_DENIED = [
    "CREATE TABLE copy (id int)", "CREATE VIEW v AS SELECT 'k' AS k, id FROM customers",
    "ALTER TABLE customers ADD CONSTRAINT self FOREIGN KEY (id) REFERENCES customers (id) "
    "ON DELETE CASCADE",
    "SELECT * FROM mysql.column_stats", "SELECT * FROM mysql.user",
    "CREATE TEMPORARY TABLE copy (id int)", "DROP TABLE scratch",
    "CREATE PROCEDURE p() SELECT 1", "SELECT * FROM scratch",
]


@pytest.mark.parametrize("statement", MARIA_DENIED)
def test_mariadb_refuses_what_the_agents_role_may_not(open_gw: Gateway,
                                                      statement: str) -> None:
    with maria_session(open_gw) as session, pytest.raises(
            MariaDbError, match="denied") as refused:
        session.query(statement)
    assert refused.value.code in (1044, 1142, 1143, 1227, 1370), refused.value
    record = last_record(open_gw, "shop-my", statement)
    assert record["outcome"]["detail"].startswith("refused by the database"), record


def test_tollgate_db_grants_sets_a_mariadb_server_up(tmp_path: Path) -> None:
    """What `tollgate db grants` prints for a mysql target, run by the server's root as
    the docs show (`mariadb -u root < grants.sql`): the gateway's account, created
    first, then logs in to no database, takes its role and reads what it was given; as
    its catalog role it sees the tables' catalog and reads no row."""
    suffix = secrets.token_hex(4)
    database, user, role = (f"tollgate_grants_{suffix}", f"tollgate_gw_{suffix}",
                            f"tollgate_reader_{suffix}")
    catalog = f"tollgate_catalog_{suffix}"
    as_root(f"CREATE DATABASE {database}; CREATE TABLE {database}.customers (id int); "
            f"INSERT INTO {database}.customers VALUES (7); "
            f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'gateway-secret'")
    try:
        config = tmp_path / "tollgate.yaml"
        config.write_text(yaml.safe_dump({**tollgate_config(POLICIES, "", 1, [
            {"name": "shop-db", "protocol": "mysql", "match": {"database": "shop"},
             "mysql": {"upstream": "127.0.0.1:3306", "user": user, "database": database,
                       "roles": [role], "catalog_role": catalog}}]),
            "mysql": {"listen": "127.0.0.1:2"}}))
        printed = subprocess.run(
            [sys.executable, "-m", "extproc", "db", "grants", "shop-db", "--config",
             str(config), "--host", "127.0.0.1", "--read", f"{role}=customers"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        subprocess.run([*ROOT], input=printed, capture_output=True, text=True, timeout=30,
                       check=True)
        as_user = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", "3306", "-u", user,
                   "-pgateway-secret", "-N", "-B", "-e"]
        alone = subprocess.run([*as_user, f"SELECT * FROM {database}.customers"],
                               capture_output=True, text=True, timeout=30, check=False)
        assert alone.returncode != 0 and "denied" in alone.stderr
        done = subprocess.run(
            [*as_user, f"SET ROLE {role}; SELECT id FROM {database}.customers"],
            capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.split() == ["7"]
        seen = subprocess.run(
            [*as_user, f"SET ROLE {catalog}; SELECT TABLE_NAME FROM information_schema.TABLES "
             f"WHERE TABLE_SCHEMA = '{database}'"],
            capture_output=True, text=True, timeout=30, check=True)
        assert seen.stdout.split() == ["customers"]
        rows = subprocess.run(
            [*as_user, f"SET ROLE {catalog}; SELECT id FROM {database}.customers"],
            capture_output=True, text=True, timeout=30, check=False)
        assert rows.returncode != 0 and "denied" in rows.stderr
    finally:
        as_root(f"DROP DATABASE IF EXISTS {database}; "
                f"DROP USER IF EXISTS '{user}'@'127.0.0.1'; DROP ROLE IF EXISTS {role}; "
                f"DROP ROLE IF EXISTS {catalog}")


def test_tollgate_db_grants_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({**tollgate_config(POLICIES, "", 1, [
        {"name": "bare", "protocol": "mysql", "match": {"database": "bare"},
         "mysql": {"upstream": "127.0.0.1:3306", "user": "tollgate"}},
        {"name": "roled", "protocol": "mysql", "match": {"database": "roled"},
         "mysql": {"upstream": "127.0.0.1:3306", "user": "tollgate", "roles": ["reader"]}}]),
        "mysql": {"listen": "127.0.0.1:2"}}))
    for argv, says in (
            (["nothing"], "no postgres or mysql target 'nothing' in"),
            (["bare"], "target 'bare' lists no roles: add `roles: [ROLE, ...]`"),
            (["roled", "--read", "writer=t"], "writer: not a role target 'roled' lists"),
            (["roled", "--read", "reader"], "--read 'reader': write ROLE=TABLE[,TABLE]")):
        done = subprocess.run([sys.executable, "-m", "extproc", "db", "grants", *argv,
                               "--config", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and says in done.stderr, (argv, done.stderr)
        assert done.stdout == ""


def test_a_postgres_agents_statements_run_as_long_as_the_pack_says(
        gw: Gateway, open_gw: Gateway) -> None:
    """The pack gives agents 300 s (statement_timeout, a startup parameter: RESET keeps
    it), which they cannot change; a pack's 1 s cancels a longer statement."""
    with psycopg.connect(pg_url(gw), autocommit=True) as conn:
        conn.execute("RESET statement_timeout")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5min",)
        for change in ("SET statement_timeout = 0",
                       "SELECT set_config('statement_timeout', '0', false)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="the gateway sets it for every session"):
                conn.execute(change)
    with psycopg.connect(pg_url(gw, DBA), autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    with psycopg.connect(pg_url(open_gw), autocommit=True) as conn, pytest.raises(
            psycopg.errors.QueryCanceled, match="statement timeout"):
        conn.execute("SELECT pg_sleep(5)")


def test_a_mariadb_agents_statements_run_as_long_as_the_pack_says(
        gw: Gateway, open_gw: Gateway) -> None:
    with maria_session(gw) as session:
        assert session.query("SELECT @@max_statement_time") == [("300.000000",)]
        with pytest.raises(MariaDbError, match="the gateway sets it for every session"):
            session.query("SET SESSION max_statement_time = 0")
        session.reset()  # set up again after the reset
        assert session.query("SELECT @@max_statement_time") == [("300.000000",)]
    with maria_session(open_gw) as session, pytest.raises(
            MariaDbError, match="max_statement_time exceeded"):
        session.query("SELECT SLEEP(5) FROM customers")


@pytest.fixture(scope="module")
def pack_only(factory: GatewayFactory, tmp_path_factory: pytest.TempPathFactory,
              pg: Cluster, maria: Account) -> Gateway:
    """The default pack, the sessions as the cluster's superuser, which the database lets
    do anything: the pack's line on its own."""
    folder = _pack(tmp_path_factory.mktemp("pack-only") / "pack", maria)
    target = pg_target(pg, roles=False)
    target["postgres"] = {**target["postgres"], "user": "postgres"}
    return factory(policy_dir=folder, targets=[target], postgres={},
                   env={"GATEWAY_MD5_PASSWORD": PASSWORD})


# What the pack refuses an agent of the database's state (state.rego), as the agents'
# role is refused it: CREATE TABLE, nextval and TRUNCATE stay the role's to refuse, and
# a view's writes are judged by their measured effect (tests/e2e/test_measured_effect.py).
PACK_REFUSES = [*(s for s in PG_DENIED if not s.startswith(
    ("CREATE TABLE", "CREATE TEMP", "CREATE VIEW", "SELECT nextval", "TRUNCATE"))),
    "ANALYZE customers",
    "SELECT * FROM pg_catalog.pg_stats_ext", "SELECT pg_advisory_xact_lock_shared(7)"]


@pytest.mark.parametrize("statement", PACK_REFUSES)
def test_the_pack_alone_refuses_what_the_agents_role_may_not(pack_only: Gateway,
                                                             statement: str) -> None:
    with psycopg.connect(pg_url(pack_only), autocommit=True) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="tollgate") as refused:
        conn.execute(statement)
    assert "trace id" in str(refused.value)


def test_a_write_that_fires_a_trigger_the_agents_role_cannot_read_waits_for_a_dba(
        gw: Gateway, maria: Account) -> None:
    """MariaDB shows the agent's role a trigger on a table it may write, its body NULL
    (no TRIGGER privilege): where the trigger writes, and what cascades from there, is
    not known, so the write is held, not guessed (rolled back: nothing ran)."""
    as_root("CREATE TABLE trail (id int) ENGINE=InnoDB; INSERT INTO trail VALUES (1); "
            "CREATE TRIGGER forget AFTER DELETE ON customers FOR EACH ROW DELETE FROM trail",
            maria.database)
    statement = "DELETE FROM customers WHERE id = 2"
    try:
        with maria_session(gw) as session, pytest.raises(
                MariaDbError, match=r"blast\.effect_unknown") as held:
            session.query(statement)
        assert (f"a trigger on {maria.database}.customers runs a body the session's role "
                "may not read") in held.value.message
        assert as_root("SELECT count(*) FROM customers WHERE id = 2; "
                       "SELECT count(*) FROM trail", maria.database).split() == ["1", "1"]
    finally:
        as_root("DROP TRIGGER forget; DROP TABLE trail", maria.database)


def _owners_children(maria: Account) -> None:
    """An owner's table the agent's role holds no privilege on, whose rows cascade from
    the customers it may delete (ON DELETE CASCADE, ON UPDATE CASCADE)."""
    rows = ", ".join(f"({i}, 2)" for i in range(1, 51))
    as_root("CREATE TABLE orders (id int PRIMARY KEY, customer int, FOREIGN KEY (customer) "
            "REFERENCES customers (id) ON DELETE CASCADE ON UPDATE CASCADE) ENGINE=InnoDB; "
            f"INSERT INTO orders VALUES {rows}", maria.database)


@pytest.mark.parametrize("statement", [
    "DELETE FROM customers WHERE id = 2",
    "UPDATE customers SET id = 98 WHERE id = 2",
    "INSERT INTO customers (id) VALUES (2) ON DUPLICATE KEY UPDATE id = 99",
])
def test_a_write_cascading_into_a_table_the_agents_role_cannot_see_waits_for_a_dba(
        catalog_gw: Gateway, maria: Account, statement: str) -> None:
    """Under the agent's role information_schema shows no foreign key of a table it holds
    no privilege on: the catalog is read as the target's catalog_role, which sees the
    cascade into the owner's orders; the agent's role cannot count them, so the write
    waits for a dba instead of running (rolled back: nothing changed)."""
    _owners_children(maria)
    try:
        with maria_session(catalog_gw) as session, pytest.raises(
                MariaDbError, match=r"blast\.effect_unknown") as held:
            session.query(statement)
        assert "orders" in held.value.message  # what it reaches, named
        assert as_root("SELECT count(*) FROM customers WHERE id = 2; SELECT count(*) FROM "
                       "orders WHERE customer = 2", maria.database).split() == ["1", "50"]
    finally:
        as_root("DROP TABLE orders", maria.database)


# -- who waits on an agent's lock --------------------------------------------------------


def _lock_wait_alert(gw: Gateway, target: str, keep_busy: Callable[[], object]
                     ) -> dict[str, Any]:
    """The alert saying someone waits on the agent's lock on `target`, once raised;
    `keep_busy` runs in the agent's transaction meanwhile, so the gateway's bound on an
    idle one (lock_idle_seconds) does not end it first."""
    found: list[dict[str, Any]] = []

    def raised() -> bool:
        keep_busy()
        found[:] = [r for r in gw.records("alert")
                    if r["meaning"]["alert"]["rule"] == "tollgate.lock_wait"
                    and r["meaning"]["alert"]["target"] == target]
        return bool(found)

    stack.wait_until(raised, 20, f"the lock wait alert on {target}")
    return found[-1]


def test_a_dba_waiting_on_a_postgres_agents_lock_is_told(catalog_gw: Gateway,
                                                         pg: Cluster) -> None:
    """An agent's transaction that locked a row, and a dba's UPDATE of that row waiting
    on it: the front sees the wait (pg_blocking_pids) and raises tollgate.lock_wait
    under the agent's identity, naming the waiting session; it runs once the agent's
    transaction ends."""
    with psycopg.connect(pg_url(catalog_gw), autocommit=True) as agent, \
            ThreadPoolExecutor(1) as dba:
        agent.execute("BEGIN")
        agent.execute("SELECT id FROM customers WHERE id = 1 FOR UPDATE")
        with psycopg.connect(pg.admin_url.rsplit("/", 1)[0] + "/shop") as admin:
            waiter = admin.info.backend_pid
            admin.execute("SET lock_timeout = '30s'")
            update = dba.submit(admin.execute, "UPDATE customers SET ssn = ssn WHERE id = 1")
            alert = _lock_wait_alert(catalog_gw, "shop-pg", lambda: agent.execute("SELECT 1"))
            assert not update.done()
            agent.execute("ROLLBACK")
            assert update.result(timeout=20).rowcount == 1
            admin.commit()
    assert alert["identity"]["sub"] == "svc-roles-agent"
    message = alert["meaning"]["alert"]["message"]
    assert f"session {waiter} " in message and "svc-roles-agent's session" in message


def test_a_dba_waiting_on_a_mariadb_agents_lock_is_told(catalog_gw: Gateway,
                                                        maria: Account) -> None:
    """The same on MariaDB, asked as the target's catalog_role (PROCESS: InnoDB's lock
    waits), which also names what the waiting session runs, by its first word."""
    with maria_session(catalog_gw) as agent, ThreadPoolExecutor(1) as dba:
        agent.query("BEGIN")
        agent.query("SELECT id FROM customers WHERE id = 1 FOR UPDATE")
        update = dba.submit(as_root, "SET SESSION innodb_lock_wait_timeout = 30; "
                            "UPDATE customers SET name = name WHERE id = 1", maria.database)
        alert = _lock_wait_alert(catalog_gw, "shop-my", lambda: agent.query("SELECT 1"))
        assert not update.done()
        agent.query("ROLLBACK")
        update.result(timeout=20)
    assert alert["identity"]["sub"] == "svc-roles-agent"
    assert "root's session" in alert["meaning"]["alert"]["message"]
    assert "(UPDATE) waits on a lock held by svc-roles-agent's session" in \
        alert["meaning"]["alert"]["message"]
