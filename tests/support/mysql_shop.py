"""The machine's MariaDB (127.0.0.1:3306, root without a password) as the MySQL front's
end-to-end tests reach it: a throwaway database of customers, the gateway's own account
on it, and a gateway whose target `shop` opens it. What the modules that drive clients
through the front share (tests/e2e/test_mysql_e2e.py, test_mysql_drivers_e2e.py,
test_mysql_commands_e2e.py).
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from extproc import grants
from extproc.mysql import effect
from extproc.mysql import lock_waits as my_lock_waits
from extproc.mysql.upstream import IDLE_SETTING
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway

AGENT_NAME = "svc-my-agent"
AGENT = tokens.token(AGENT_NAME, ["agents"])
DATABASE = "shop"  # what clients ask for; the target opens a throwaway database
ROOT = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", "3306", "-uroot"]
CUSTOMERS = [
    (1, "Ada Lovelace", "ada@example.com", "078-05-1120"),
    (2, "Alan Turing", "alan@example.org", "219-09-9999"),
]


def as_root(sql: str, database: str | None = None) -> str:
    """`sql` run by the server's root account beside the gateway: what it printed."""
    done = subprocess.run([*ROOT, *(["-D", database] if database else []), "-N", "-B",
                           "-e", sql], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


@dataclass(frozen=True)
class Account:
    """A throwaway database and the gateway's account on it (ALL on that database)."""

    database: str
    user: str
    password: str = field(repr=False)
    # The roles sessions run as (the target's `roles`), where the account holds none of
    # its own: the agents' first, the dbas' second.
    roles: tuple[str, ...] = ()
    # With roles, the role the measurement reads the catalog as (grants.py's).
    catalog_role: str | None = None

    def target(self, name: str = "shop-my", match: str = DATABASE,
               upstream: str = "127.0.0.1:3306", tls: str = "disable",
               catalog: bool = False) -> dict[str, Any]:
        """A mysql target clients reach as database `match`: the account's database on the
        server at `upstream`, over plain TCP by default (the gateway's password from
        `env`); with `catalog`, its catalog_role."""
        return {"name": name, "protocol": "mysql", "match": {"database": match},
                "environment": "test",
                "mysql": {"upstream": upstream, "user": self.user,
                          "database": self.database, "tls": tls, "roles": list(self.roles),
                          **({"catalog_role": self.catalog_role} if catalog else {})},
                "credential": {"type": "password", "from_env": "SHOP_MY_PASSWORD"}}

    @property
    def env(self) -> dict[str, str]:
        """The gateway's environment for the target's credential."""
        return {"SHOP_MY_PASSWORD": self.password}


@contextlib.contextmanager
def shop_account(prefix: str = "tollgate_my", roles: bool = False,
                 granted: Callable[[Account], str] | None = None) -> Iterator[Account]:
    """A throwaway database holding CUSTOMERS (id, name, email, ssn) and an empty
    `scratch` (id), and the gateway's account on it (ALL on the database; with `roles`,
    nothing of its own and two roles, tollgate_agent_* and tollgate_dba_*, that read and
    write the customers, and the catalog's, tollgate_catalog_*, as grants.py sets them
    up; with `granted` too, the account created and its roles set up by the SQL it
    gives, `tollgate db grants`'s), all dropped on leaving."""
    roles = roles or granted is not None
    suffix = secrets.token_hex(4)
    names = (f"tollgate_agent_{suffix}", f"tollgate_dba_{suffix}") if roles else ()
    account = Account(f"{prefix}_{suffix}", f"tollgate_gw_{suffix}", secrets.token_hex(12),
                      names, f"tollgate_catalog_{suffix}" if roles else None)
    rows = ", ".join(f"({i}, '{n}', '{e}', '{s}')" for i, n, e, s in CUSTOMERS)
    try:
        as_root(f"CREATE DATABASE {account.database}; USE {account.database}; "
                "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, "
                f"ssn text); INSERT INTO customers VALUES {rows}; "
                "CREATE TABLE scratch (id int); " + (
                    f"CREATE USER '{account.user}'@'127.0.0.1' IDENTIFIED BY "
                    f"'{account.password}';\n{granted(account)}" if granted else
                    "; ".join(grants.mysql(
                        account.user, "127.0.0.1", account.database,
                        [grants.RoleGrants(n, read=("customers",), write=("customers",))
                         for n in names], account.password, account.catalog_role))
                    + ("" if roles else f"; GRANT ALL ON {account.database}.* TO "
                                        f"'{account.user}'@'127.0.0.1'")))
        yield account
    finally:
        as_root(f"DROP DATABASE IF EXISTS {account.database}; "
                f"DROP USER IF EXISTS '{account.user}'@'127.0.0.1'"
                + "".join(f"; DROP ROLE IF EXISTS {name}" for name in names)
                + (f"; DROP ROLE IF EXISTS {account.catalog_role}" if roles else ""))


@contextlib.contextmanager
def shop_gateway(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, name: str,
                 account: Account, **options: Any) -> Iterator[Gateway]:
    """A module's gateway with the MySQL front and the shop target (`options`: more of
    module_gateway's, workers or settings)."""
    with module_gateway(tmp_path_factory, otlp, name, targets=[account.target()],
                        mysql={}, env=account.env, **options) as running:
        yield running


def unverified_tls() -> ssl.SSLContext:
    """TLS as the tests' clients speak it: the gateway's certificate is the tests' own
    (tests/support/tls.py), so it is not verified; the token still travels encrypted."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def set_up(record: dict[str, Any]) -> list[str]:
    """What the gateway ran to set a session up (its role, its timeouts), as a login's
    or a COM_CHANGE_USER's record says: the server's statement log holds these too."""
    return (record["outcome"]["detail"] or "").split("; set up: ")[1:]


# What the front runs itself around a write whose effect it measures (extproc/mysql/
# effect.py), after its mark: its transaction's ends, and its readings of the catalog
# and of the session's counters.
_OWN = (f"SAVEPOINT {effect.SAVEPOINT}", f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}",
        f"RELEASE SAVEPOINT {effect.SAVEPOINT}", "START TRANSACTION", "COMMIT", "ROLLBACK",
        "SELECT DATABASE()")
_OWN_READINGS = tuple(query.split(" FROM ")[0] + " FROM " for query in (
    effect.catalog_query([]), effect.views_query([]), effect.rules_query(set()),
    effect.columns_query(set()), effect.triggers_query([]), effect.reading_query([]),
    effect.size_query(effect.Target("", ""))))


# What the front sets after a read that locked rows, and once its transaction ended
# (session.py's _bound_locks): in any agent's session on MariaDB.
_LOCK_BOUND = f"SET SESSION {IDLE_SETTING} = "
# What the front asks before it decides a text that calls functions: which are stored
# (a text calling one is measured as a write).
_ROUTINES = effect.routines_query([]).split(" IN (")[0] + " IN ("
# Who waits on the agents' locks (mysql/lock_waits.py), on the catalog's connection.
_LOCK_WAITS = my_lock_waits.QUESTION.split("{}")[0]


def effect_statements(texts: list[str], records: list[dict[str, Any]]) -> list[str]:
    """The texts of a session's log the front ran itself: its questions about stored
    functions, its idle bounds around a read that locked rows and its questions of who
    waits on its sessions' locks, in any session; and
    those that measure a write's effect, each marked and of the front's forms, only in a
    session where a write's first decision allowed it to be measured, or a text was
    decided again on its measured effect (a stored function it calls). A statement-log
    differential leaves these out of what the server ran."""
    asked = [t for t in texts if t.startswith(effect.MARK + _ROUTINES)
             or t.startswith(effect.MARK + _LOCK_BOUND) or t.startswith(_LOCK_WAITS)]
    own = [t for t in texts if t.startswith(effect.MARK) and (
        (rest := t.removeprefix(effect.MARK)) in _OWN or rest.startswith(_OWN_READINGS))]
    if own:
        assert any(_measured(r) for r in records
                   if r["decisions"] and r["decisions"][0]["action"] == "allow"
                   ), f"the front measured an effect where no write was allowed: {own}"
    return asked + own


def _measured(record: dict[str, Any]) -> bool:
    """A record of a write, or of a text decided again on its measured effect."""
    statements = ((record.get("meaning") or {}).get("sql") or {}).get("statements", ())
    return any("write" in s.get("effects", ()) for s in statements) or [
        d.get("phase") for d in record["decisions"]].count("request") > 1
