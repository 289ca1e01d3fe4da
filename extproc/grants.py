"""The SQL that sets a database up for least privilege per identity (`tollgate db grants`,
and the quickstart's demo databases, which run it).

The gateway logs in as its own account, which holds no privilege of its own; each role
the target lists is granted to it, and a session runs as the one its login's decision
names. So a statement the gateway's readers misjudge can still do only what that role
may: read and write the tables it was given, nothing else. What PostgreSQL gives every
role by default and an agent needs none of is taken back from PUBLIC: creating objects
(in the database, in schema public, temporary tables), the planner's statistics of
every column a role may read (pg_stats: histograms and most common values are the
column's values, unmasked), and session-level advisory locks (held across transactions,
one agent can stall every other). MariaDB and MySQL give an account nothing by default;
their advisory locks (GET_LOCK) cannot be revoked, which the docs say.

A role that dumps (a dba's: `mysqldump`, `pg_dump`) reads every table of the database,
whatever tables it was given: a dump reads them all, and one it cannot read fails it.
On MariaDB and MySQL it also locks them (mysqldump's default --lock-tables), and sees
views' definitions (SHOW VIEW), triggers (TRIGGER) and events (EVENT), which a dump
holds; on PostgreSQL it reads the sequences (their values are in a dump).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# PostgreSQL's advisory lock functions that take a lock (the unlocking ones stay: a pool
# releasing a connection calls pg_advisory_unlock_all, which frees only one's own).
_PG_LOCKS = tuple(
    f"pg_catalog.{prefix}advisory{scope}_lock{shared}({args})"
    for prefix in ("pg_", "pg_try_")
    for scope in ("", "_xact")
    for shared in ("", "_shared")
    for args in ("bigint", "integer, integer"))
# The planner's statistics views (pg_statistic itself is for superusers only).
_PG_STATISTICS = ("pg_catalog.pg_stats", "pg_catalog.pg_stats_ext",
                  "pg_catalog.pg_stats_ext_exprs")
_WRITES = "INSERT, UPDATE, DELETE"
# What makes information_schema show a MariaDB or MySQL role every foreign key (any
# privilege on the child table), trigger body (TRIGGER) and view (SHOW VIEW) of a table.
# The role also holds PROCESS (InnoDB's lock waits: mysql/lock_waits.py), which shows
# every session's statement and no row.
_CATALOG = "REFERENCES, TRIGGER, SHOW VIEW"
# What mysqldump (mariadb-dump) needs of a database it dumps whole: each table read and
# locked (--lock-tables, its default), each view's definition, each trigger and event.
_MYSQL_DUMP = "SELECT, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT"


@dataclass(frozen=True)
class RoleGrants:
    """A role the gateway may take, and the tables it reads and writes (`schema.table`
    or `table`: PostgreSQL's schema public, MySQL's the target's database); `dump`:
    what a dump of the database needs besides (every table read: see above)."""

    role: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    dump: bool = False


def pg_identifier(name: str) -> str:
    """`name` as a quoted PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def pg_literal(text: str) -> str:
    """`text` as a PostgreSQL string literal (standard_conforming_strings on)."""
    return "'" + text.replace("'", "''") + "'"


def _pg_table(name: str) -> str:
    schema, _, table = name.rpartition(".")
    return f"{pg_identifier(schema or 'public')}.{pg_identifier(table)}"


def postgres(gateway: str, database: str, roles: Sequence[RoleGrants],
             password: str | None = None) -> list[str]:
    """The statements, in order, for a superuser (or the database's owner with
    CREATEROLE) to run in `database`: the gateway's login `gateway` (created with
    `password` if given, else expected to exist), its roles and their grants."""
    login = pg_identifier(gateway)
    db = pg_identifier(database)
    out = []
    if password is not None:
        out.append(f"CREATE ROLE {login} LOGIN NOINHERIT PASSWORD {pg_literal(password)}")
    # NOINHERIT: the login has its roles' privileges only while it runs as one of them.
    out += [f"ALTER ROLE {login} NOINHERIT",
            f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
            f"GRANT CONNECT ON DATABASE {db} TO {login}",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            f"REVOKE SELECT ON {', '.join(_PG_STATISTICS)} FROM PUBLIC",
            *(f"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC" for f in _PG_LOCKS)]
    for grants in roles:
        role = pg_identifier(grants.role)
        out += [f"CREATE ROLE {role} NOLOGIN", f"GRANT {role} TO {login}",
                f"GRANT USAGE ON SCHEMA public TO {role}"]
        out += [f"GRANT SELECT ON {_pg_table(t)} TO {role}" for t in grants.read]
        out += [f"GRANT {_WRITES} ON {_pg_table(t)} TO {role}" for t in grants.write]
        if grants.dump:  # pg_dump reads each table, and each sequence's value
            out += [f"GRANT SELECT ON ALL {what} IN SCHEMA public TO {role}"
                    for what in ("TABLES", "SEQUENCES")]
    return out


def mysql_identifier(name: str) -> str:
    """`name` as a quoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def mysql_literal(text: str) -> str:
    """`text` as a MySQL string literal (backslashes and quotes escaped, as the default
    sql_mode reads them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _mysql_table(database: str, name: str) -> str:
    schema, _, table = name.rpartition(".")
    return f"{mysql_identifier(schema or database)}.{mysql_identifier(table)}"


def mysql(gateway: str, host: str, database: str, roles: Sequence[RoleGrants],
          password: str | None = None, catalog_role: str | None = None) -> list[str]:
    """The statements, in order, for an administrator of a MariaDB (10.0.5 and later)
    or MySQL 8 server: the gateway's account `gateway`@`host` (created with `password`
    if given, holding no privilege of its own), its roles and their grants; and the
    catalog role its measurement reads foreign keys, triggers and views as
    (mysql/catalog.py), which sees every table of `database` and reads no row, and
    reads the lock waits on the agents' sessions (mysql/lock_waits.py)."""
    account = f"{mysql_literal(gateway)}@{mysql_literal(host)}"
    out = []
    if password is not None:
        out.append(f"CREATE USER {account} IDENTIFIED BY {mysql_literal(password)}")
    for grants in roles:
        role = mysql_identifier(grants.role)
        out += [f"CREATE ROLE {role}", f"GRANT {role} TO {account}"]
        out += [f"GRANT SELECT ON {_mysql_table(database, t)} TO {role}"
                for t in grants.read]
        out += [f"GRANT {_WRITES} ON {_mysql_table(database, t)} TO {role}"
                for t in grants.write]
        if grants.dump:
            out.append(f"GRANT {_MYSQL_DUMP} ON {mysql_identifier(database)}.* TO {role}")
    if catalog_role is not None:
        role = mysql_identifier(catalog_role)
        out += [f"CREATE ROLE {role}", f"GRANT {role} TO {account}",
                f"GRANT {_CATALOG} ON {mysql_identifier(database)}.* TO {role}",
                f"GRANT PROCESS ON *.* TO {role}"]
    return out
