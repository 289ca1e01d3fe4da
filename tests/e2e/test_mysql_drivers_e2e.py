"""MySQL drivers work unchanged through the front: real clients, a real Envoy, the
machine's real MariaDB (127.0.0.1:3306), the default pack, as an agent.

mysql-connector-python (its pure-Python connection and its C extension's), aiomysql,
asyncmy, mysqlclient (MySQLdb, on MariaDB Connector/C) and SQLAlchemy (on PyMySQL and
on mysql-connector-python) each connect as their documentation shows, with the agent's
token as the password, TLS on, and the driver's own way to the clear-text plugin the
front asks for (mysql-connector-python: auth_plugin="mysql_clear_password", which its C
extension needs; the others answer the front's switch to it by themselves). A login
without TLS is refused by the front, so every session here is encrypted.

What each sends on its own as it connects (SET NAMES, autocommit, the time zone it is
given, reads of sql_mode, the version, the isolation level ...) passes, read for what it
is; a SELECT returns its personal data masked; a DROP is refused with ERR 1142 / SQLSTATE
42000, tollgate's reason and the trace id of the refusal's record, and the connection
goes on. A sql_mode asked for at connect is refused, with why (it changes how the server
reads later statements).

mysql-connector-python's pool hands a connection back with COM_RESET_CONNECTION and
takes the same connection again, reset; its cmd_change_user (the pool's way back where a
server takes no reset) rebinds the session to another token. Prepared statements
(prepared=True, the binary protocol) appear only there, across the reset: the front's
own tests of them are tests/e2e/test_mysql_prepared_e2e.py; every other driver here
speaks the text protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiomysql
import asyncmy
import mysql.connector
import MySQLdb
import pymysql
import pytest
import sqlalchemy
from mysql.connector.connection import MySQLConnection
from mysql.connector.connection_cext import CMySQLConnection
from mysql.connector.pooling import MySQLConnectionPool

from tests.support import tokens
from tests.support.gateway import Gateway, request_text
from tests.support.mysql_shop import (
    AGENT,
    AGENT_NAME,
    DATABASE,
    Account,
    shop_account,
    shop_gateway,
    unverified_tls,
)

POOLED_NAME = "svc-my-pooled"
POOLED = tokens.token(POOLED_NAME, ["agents"])
TIME_ZONE = "+00:00"
SET_TIME_ZONE = f"SET time_zone = '{TIME_ZONE}'"
# A customer's name, e-mail and SSN as an agent reads them.
MASKED = ("[REDACTED:PERSON]", "[REDACTED:EMAIL_ADDRESS]", "[REDACTED:US_SSN]")
TRACE_ID = re.compile(r"trace id ([0-9a-f]{32})")


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    with shop_account("tollgate_drivers") as made:
        yield made


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       account: Account) -> Iterator[Gateway]:
    with shop_gateway(tmp_path_factory, otlp, "mysql-drivers", account) as running:
        yield running


# -- the drivers, each as one kind of session -----------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """An error as the driver reports it."""

    code: int
    sqlstate: str | None
    message: str


class Session(Protocol):
    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """`sql`'s rows, with `params` bound as the driver binds them (client-side)."""

    def refusal(self, sql: str) -> Refusal:
        """The error `sql` ends in (the test fails if it ends in none)."""


class Dbapi:
    """A PEP 249 connection as a Session; `refusal_of` reads its driver's errors."""

    def __init__(self, connection: Any, errors: type[Exception],
                 refusal_of: Callable[[Any], Refusal]) -> None:
        self._connection, self._errors, self._refusal_of = connection, errors, refusal_of

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, params or None)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def refusal(self, sql: str) -> Refusal:
        cursor = self._connection.cursor()
        try:
            with pytest.raises(self._errors) as refused:
                cursor.execute(sql)
            return self._refusal_of(refused.value)  # before the cursor's close resets it
        finally:
            cursor.close()


class Asyncio:
    """An asyncio driver's connection (aiomysql's and asyncmy's cursors are alike) as a
    Session, each call run to its end on the session's own event loop."""

    def __init__(self, runner: asyncio.Runner, connection: Any,
                 errors: type[Exception]) -> None:
        self._run, self._connection, self._errors = runner.run, connection, errors

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        async def fetch() -> list[tuple[Any, ...]]:
            async with self._connection.cursor() as cursor:
                await cursor.execute(sql, params or None)
                return [tuple(row) for row in await cursor.fetchall()]

        return self._run(fetch())

    def refusal(self, sql: str) -> Refusal:
        with pytest.raises(self._errors) as refused:
            self.rows(sql)
        return _pymysql_refusal(refused.value)


def _pymysql_refusal(error: Any) -> Refusal:
    """PyMySQL's errors, which aiomysql raises, and asyncmy's, made alike."""
    code, message = error.args
    return Refusal(code, error.sqlstate, message)


def _connector_refusal(error: Any) -> Refusal:
    return Refusal(error.errno, error.sqlstate, error.msg)


def connector_options(gw: Gateway, pure: bool) -> dict[str, Any]:
    """mysql-connector-python's connection as an agent configures it (its pure-Python
    connection or its C extension's)."""
    return {"host": "127.0.0.1", "port": gw.ports.mysql, "user": AGENT_NAME,
            "password": AGENT, "database": DATABASE, "use_pure": pure,
            "auth_plugin": "mysql_clear_password", "ssl_disabled": False,
            "ssl_verify_cert": False, "time_zone": TIME_ZONE, "connection_timeout": 10}


@contextlib.contextmanager
def connector(gw: Gateway, pure: bool) -> Iterator[Session]:
    """mysql-connector-python, its pure-Python connection or its C extension's."""
    connection = mysql.connector.connect(**connector_options(gw, pure))
    assert type(connection) is (MySQLConnection if pure else CMySQLConnection)
    try:
        yield Dbapi(connection, mysql.connector.Error, _connector_refusal)
    finally:
        connection.close()


@contextlib.contextmanager
def mysqldb(gw: Gateway) -> Iterator[Session]:
    """mysqlclient: `ssl=True` is its ssl_mode REQUIRED; its SQLSTATE is the
    connection's (mysql_sqlstate), not the error's."""
    connection = MySQLdb.connect(host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME,
                                 password=AGENT, database=DATABASE, ssl=True,
                                 charset="utf8mb4", init_command=SET_TIME_ZONE,
                                 connect_timeout=10)

    def refusal_of(error: Any) -> Refusal:
        code, message = error.args
        return Refusal(code, connection.sqlstate(), message)

    try:
        yield Dbapi(connection, MySQLdb.MySQLError, refusal_of)
    finally:
        connection.close()


@contextlib.contextmanager
def asyncio_driver(connect: Callable[..., Coroutine[Any, Any, Any]],
                   errors: type[Exception], **options: Any) -> Iterator[Session]:
    """aiomysql or asyncmy (`connect`), with `options` besides the common ones."""
    with asyncio.Runner() as runner:
        connection = runner.run(connect(
            host="127.0.0.1", user=AGENT_NAME, password=AGENT, ssl=unverified_tls(),
            charset="utf8mb4", init_command=SET_TIME_ZONE, connect_timeout=10, **options))
        try:
            yield Asyncio(runner, connection, errors)
        finally:
            runner.run(connection.ensure_closed())


class Alchemy:
    """A SQLAlchemy Connection as a Session: text as the driver's own (exec_driver_sql),
    its errors read from the driver's beneath (DBAPIError.orig)."""

    def __init__(self, connection: sqlalchemy.Connection,
                 refusal_of: Callable[[Any], Refusal]) -> None:
        self.connection, self._refusal_of = connection, refusal_of

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection.exec_driver_sql(sql, params or ())]

    def refusal(self, sql: str) -> Refusal:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
            self.rows(sql)
        return self._refusal_of(refused.value.orig)


# Each SQLAlchemy dialect: its TLS and clear-text options, and how its driver's errors read.
DIALECTS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Any], Refusal]]] = {
    "pymysql": (lambda: {"ssl": unverified_tls()}, _pymysql_refusal),
    "mysqlconnector": (lambda: {"auth_plugin": "mysql_clear_password", "ssl_disabled": False,
                                "ssl_verify_cert": False}, _connector_refusal),
}


@contextlib.contextmanager
def alchemy(gw: Gateway, dialect: str) -> Iterator[Alchemy]:
    """A connection of a new engine of `dialect` (its first: the dialect reads the server)."""
    options, refusal_of = DIALECTS[dialect]
    engine = sqlalchemy.create_engine(
        sqlalchemy.URL.create(f"mysql+{dialect}", username=AGENT_NAME, password=AGENT,
                              host="127.0.0.1", port=gw.ports.mysql, database=DATABASE),
        connect_args=options())
    try:
        with engine.connect() as connection:
            yield Alchemy(connection, refusal_of)
    finally:
        engine.dispose()


# What each driver sends on its own before the first statement it is given: (text, kind).
SET_NAMES_COLLATE = ("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", "set")
# aiomysql and asyncmy, as PyMySQL: the init_command committed, then autocommit off.
PYMYSQL_LINE = [(SET_TIME_ZONE, "set"), ("COMMIT", "transaction"), ("SET AUTOCOMMIT = 0", "set")]
SQLALCHEMY_READS = [("SELECT VERSION()", "select"), ("SELECT DATABASE()", "select"),
                    ("SELECT @@tx_isolation", "select"), ("SELECT @@sql_mode", "select"),
                    ("SELECT @@lower_case_table_names", "select")]
DRIVERS: dict[str, tuple[Callable[[Gateway], contextlib.AbstractContextManager[Session]],
                         list[tuple[str, str]]]] = {
    "connector-pure": (lambda gw: connector(gw, pure=True), [
        SET_NAMES_COLLATE, ("SET @@session.autocommit = OFF", "set"),
        (f"SET @@session.time_zone = '{TIME_ZONE}'", "set")]),
    "connector-cext": (lambda gw: connector(gw, pure=False), [
        SET_NAMES_COLLATE, ("set autocommit=0", "set"),
        (f"SET @@session.time_zone = '{TIME_ZONE}'", "set")]),
    "mysqlclient": (mysqldb, [(SET_TIME_ZONE, "set"), ("SET NAMES utf8mb4", "set"),
                              ("SET autocommit=0", "set")]),
    "aiomysql": (lambda gw: asyncio_driver(aiomysql.connect, pymysql.MySQLError,
                                           port=gw.ports.mysql, db=DATABASE),
                 PYMYSQL_LINE),
    "asyncmy": (lambda gw: asyncio_driver(asyncmy.connect, asyncmy.errors.MySQLError,
                                          port=gw.ports.mysql, database=DATABASE),
                PYMYSQL_LINE),
    "sqlalchemy-pymysql": (lambda gw: alchemy(gw, "pymysql"), [
        ("SET NAMES utf8mb4", "set"), ("SET AUTOCOMMIT = 0", "set"),
        ("SET NAMES utf8mb4", "set"), *SQLALCHEMY_READS, ("ROLLBACK", "transaction")]),
    "sqlalchemy-mysqlconnector": (lambda gw: alchemy(gw, "mysqlconnector"), [
        SET_NAMES_COLLATE, ("set autocommit=0", "set"), *SQLALCHEMY_READS,
        ("rollback", "transaction")]),
}


def sentinel() -> tuple[str, str]:
    """A statement no other test sends (where a session's records are found), and the
    value it reads."""
    value = f"sentinel {uuid.uuid4()}"
    return f"SELECT '{value}'", value


# -- every driver -----------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_what_a_driver_sends_as_it_connects_passes_as_what_it_is(gw: Gateway,
                                                                 driver: str) -> None:
    """The session's records up to the test's first statement: the login, then each
    statement the driver sent by itself, allowed and read as the kind it is."""
    connect, expected = DRIVERS[driver]
    first, value = sentinel()
    with connect(gw) as session:
        assert session.rows(first) == [(value,)]
    records = gw.session_records(first)
    texts = [request_text(r) for r in records]
    login, *own = records[:texts.index(first)]
    assert (login["request"]["method"], login["outcome"]["action"]) == ("CONNECT", "allow")
    seen = [(request_text(r), r["outcome"]["action"],
             [s["kind"] for s in r["meaning"]["sql"]["statements"]]) for r in own]
    assert seen == [(text, "allow", [kind]) for text, kind in expected]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_driver_reads_masked_rows_is_refused_a_drop_and_goes_on(
        gw: Gateway, account: Account, driver: str) -> None:
    connect, _ = DRIVERS[driver]
    last, _ = sentinel()
    with connect(gw) as session:
        assert session.rows("SELECT id, name, email, ssn FROM customers WHERE id = %s",
                            1) == [(1, *MASKED)]
        refused = session.refusal("DROP TABLE customers")
        assert session.rows("SELECT count(*) FROM customers") == [(2,)]
        session.rows(last)
    assert (refused.code, refused.sqlstate) == (1142, "42000"), refused
    assert refused.message.startswith("tollgate: destructive SQL: DROP (rules: "
                                      "sql.destructive; trace id "), refused
    trace = TRACE_ID.search(refused.message)
    assert trace is not None, refused
    (record,) = [r for r in gw.session_records(last) if r["trace_id"] == trace[1]]
    assert (request_text(record), record["outcome"]["action"]) == ("DROP TABLE customers",
                                                                    "deny")


# -- SQLAlchemy -------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sqlalchemy_reflects_the_table_and_its_core_select_is_masked(
        gw: Gateway, dialect: str) -> None:
    with alchemy(gw, dialect) as session:
        customers = sqlalchemy.Table("customers", sqlalchemy.MetaData(),
                                     autoload_with=session.connection)
        assert customers.columns.keys() == ["id", "name", "email", "ssn"]
        assert isinstance(customers.c.id.type, sqlalchemy.Integer)
        assert customers.primary_key.columns.keys() == ["id"]
        query = sqlalchemy.select(customers.c.id, customers.c.name, customers.c.email,
                                  customers.c.ssn)
        rows = session.connection.execute(query.order_by(customers.c.id)).all()
    assert [tuple(row) for row in rows] == [(1, *MASKED), (2, *MASKED)]


def test_a_driver_without_tls_is_refused_at_login(gw: Gateway) -> None:
    """mysqlclient without `ssl=True`: refused, saying how to connect (and, the greeting
    naming mysql_native_password, with no token sent in clear: tests/mysql/
    test_greeting.py)."""
    with pytest.raises(MySQLdb.OperationalError) as refused:
        MySQLdb.connect(host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME,
                        password=AGENT, database=DATABASE, connect_timeout=10)
    code, message = refused.value.args
    assert code == 1045, message
    assert message.startswith("tollgate: tollgate takes tokens only over TLS: connect with "
                              "--ssl (trace id "), message


# -- connection pools -------------------------------------------------------------------------


@pytest.mark.parametrize("pure", [True, False], ids=["connector-pure", "connector-cext"])
def test_a_pooled_connection_is_handed_back_reset_and_taken_again(gw: Gateway,
                                                                  pure: bool) -> None:
    """mysql-connector-python's pool hands a connection back with COM_RESET_CONNECTION
    (COM_CHANGE_USER where the server takes none): through the front the same connection
    is taken again, its session reset on the server (a user variable gone), its prepared
    statements too, and a statement prepared anew runs; one login for it all."""
    pool = MySQLConnectionPool(pool_name=f"tollgate-{uuid.uuid4().hex[:8]}", pool_size=1,
                               **connector_options(gw, pure))
    first = pool.get_connection()
    connection_id = first.connection_id
    setting = first.cursor()
    setting.execute("SET @handed_back = 1")
    setting.close()
    prepared = first.cursor(prepared=True)
    prepared.execute("SELECT id, name FROM customers WHERE id = %s", (1,))
    assert prepared.fetchall() == [(1, MASKED[0])]
    first.close()  # back to the pool, its statement left open: the reset drops it
    again = pool.get_connection()
    last, value = sentinel()
    try:
        assert again.connection_id == connection_id
        cursor = again.cursor()
        cursor.execute("SELECT @handed_back")
        assert cursor.fetchall() == [(None,)]
        cursor.close()
        prepared = again.cursor(prepared=True)
        prepared.execute("SELECT id, name FROM customers WHERE id = %s", (2,))
        assert prepared.fetchall() == [(2, MASKED[0])]
        prepared.close()
        cursor = again.cursor()
        cursor.execute(last)
        assert cursor.fetchall() == [(value,)]
        cursor.close()
    finally:
        again.close()
        pool._remove_connections()
    records = gw.session_records(last)
    assert [r["request"]["method"] for r in records].count("CONNECT") == 1
    prepares = [r for r in records if r["request"]["method"] == "PREPARE"]
    assert [r["outcome"]["action"] for r in prepares] == ["allow", "allow"]


def test_mysql_connectors_change_of_user_passes_its_token(gw: Gateway) -> None:
    """mysql-connector-python's cmd_change_user (its pool's way back where a server takes
    no COM_RESET_CONNECTION) sends the token as mysql_clear_password's answer under a
    length-encoded length, which the front reads: the session goes on as the identity the
    new token names, its server session reset."""
    connection = mysql.connector.connect(**connector_options(gw, pure=True))
    last, value = sentinel()
    try:
        cursor = connection.cursor()
        cursor.execute("SET @before = 1")
        connection.cmd_change_user(POOLED_NAME, POOLED, DATABASE)
        cursor.execute("SELECT @before")
        assert cursor.fetchall() == [(None,)]
        cursor.execute(last)
        assert cursor.fetchall() == [(value,)]
        cursor.close()
    finally:
        connection.close()
    records = gw.session_records(last)
    (change,) = [r for r in records if r["request"]["method"] == "CHANGE_USER"]
    assert (change["identity"]["sub"], change["outcome"]["action"]) == (POOLED_NAME, "allow")
    assert records[-1]["identity"]["sub"] == POOLED_NAME


# -- settings ---------------------------------------------------------------------------------


def test_a_sql_mode_asked_for_at_connect_is_refused_with_why(gw: Gateway) -> None:
    """sql_mode decides how the server reads quotes and backslashes (ANSI_QUOTES,
    NO_BACKSLASH_ESCAPES): the policy read later statements without it, so a driver's
    `sql_mode=` is refused, at connect, as a change of configuration."""
    with pytest.raises(mysql.connector.Error) as refused:
        mysql.connector.connect(
            host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME, password=AGENT,
            database=DATABASE, use_pure=True, auth_plugin="mysql_clear_password",
            ssl_verify_cert=False, sql_mode="STRICT_ALL_TABLES", connection_timeout=10)
    error = _connector_refusal(refused.value)
    assert (error.code, error.sqlstate) == (1227, "42000"), error
    assert "tollgate: SET changes the server's configuration (rules: sql.configuration" in \
        error.message
