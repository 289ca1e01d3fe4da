"""The record is complete: proven against the server's own general log.

A private MariaDB (tests/support/mariadb.py) logs every command it runs
(`--general-log`: `Query`, `Init DB`, `Prepare`, `Execute` ... with the connection's
thread id). Hypothesis drives generated sessions through Envoy and the MySQL front with
PyMySQL: reads, writes, refusals, multi-statement texts, texts a reader could take
otherwise than the server (executable comments, backslashes in strings, `#` comments),
settings, COM_INIT_DB, COM_FIELD_LIST, COM_PROCESS_KILL (of no session: refused),
commands the front does not relay, SQL's PREPARE and EXECUTE, the binary protocol's
prepared statements (prepared, executed, closed by ids tollgate handed out or never did,
MariaDB's "last statement" id), COM_RESET_CONNECTION and COM_CHANGE_USER. Each session's
part of the server's log is compared with its record: every text the server ran or
prepared is in the record, allowed, as often as it ran; every statement it executed is
one the record allowed an execution of; nothing the record refused reaches the server
(tests/support/statement_log.py compares, and reads back what differs by design).
And as the session ends, tollgate's statement ids and the server's prepared statements
are the same set: each id tollgate still honours names a statement the server holds, and
the server holds no other.
"""

from __future__ import annotations

import ssl
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extproc.mysql.commands import ChangeUser, encode_change_user
from extproc.mysql.flags import (
    COM_CHANGE_USER,
    COM_DEBUG,
    COM_FIELD_LIST,
    COM_PROCESS_KILL,
    COM_RESET_CONNECTION,
    COM_STMT_CLOSE,
    COM_STMT_EXECUTE,
    COM_STMT_PREPARE,
    COM_STMT_RESET,
    MYSQL_TYPE_LONGLONG,
)
from extproc.mysql.framing import Reader
from extproc.mysql.handshake import parse_auth_switch
from extproc.mysql.prepared import (
    LAST_STATEMENT_ID,
    ParameterType,
    encode_stmt_execute,
    parse_prepare_ok,
)
from extproc.mysql.responses import is_eof
from extproc.quickstart import stack
from tests.support import statement_log, tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.mariadb import MariaDb, private_mariadb
from tests.support.mysql_shop import Account

pytestmark = pytest.mark.e2e

AGENT = tokens.token("svc-my-differential", ["agents"])
PASSWORD = "differential-secret"
ALLOWED = ["SELECT 1", "SELECT email FROM customers ORDER BY id",
           "SELECT count(*) FROM customers", "INSERT INTO scratch VALUES (1)",
           "SELECT id FROM scratch ORDER BY id LIMIT 3", "SET NAMES utf8mb4",
           "SET autocommit = 1", "SELECT 1; SELECT 2", "UPDATE scratch SET id = 2 WHERE id = 1",
           "PREPARE q FROM 'SELECT email FROM customers'", "EXECUTE q", "DROP PREPARE q",
           "EXECUTE IMMEDIATE 'SELECT count(*) FROM customers'"]
REFUSED = ["DROP TABLE customers", "TRUNCATE scratch", "ALTER TABLE scratch DROP COLUMN id",
           "SELECT 1; DROP TABLE customers", "SET NAMES latin1",
           "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "GRANT ALL ON *.* TO CURRENT_USER",
           "SET GLOBAL general_log = 0", "DELETE FROM scratch",
           "PREPARE q FROM 'DROP TABLE customers'", "PREPARE q FROM @statement",
           "EXECUTE IMMEDIATE 'TRUNCATE scratch'"]
# What SQL's PREPARE and EXECUTE above have the server prepare, and then execute.
SQL_PREPARED = {"PREPARE q FROM 'SELECT email FROM customers'": "SELECT email FROM customers",
                "EXECUTE IMMEDIATE 'SELECT count(*) FROM customers'":
                    "SELECT count(*) FROM customers"}
SQL_EXECUTED = {"EXECUTE q": "SELECT email FROM customers",
                "EXECUTE IMMEDIATE 'SELECT count(*) FROM customers'":
                    "SELECT count(*) FROM customers"}
# The binary protocol's statements: those the pack allows, and those it refuses.
PREPARED = ["SELECT email FROM customers WHERE id = ?", "SELECT id FROM scratch WHERE id > ?",
            "INSERT INTO scratch VALUES (?)", "SELECT ?, ? FROM customers",
            "PREPARE x FROM 'SELECT 1'", "SELECT nosuch FROM customers",
            "DROP TABLE customers", "SELECT 1; DROP TABLE customers",
            "GRANT ALL ON *.* TO CURRENT_USER", "SELECT 1 /*!, 2 */",
            "DELETE FROM scratch"]  # held, and denied when no one approves in time
# Which statement an id names: the first or the latest tollgate gave this session, or ids
# it never gave (MariaDB's "the statement prepared last" among them).
NAMED = ["first", "latest", "last-statement id", "never given"]
# Texts a reader could take otherwise than the server: each must be refused, or allowed
# only as what the server runs.
TRICKY = ["SELECT 1 /*!, (SELECT 2) */", "/*!50000 DROP TABLE customers */",
          "SELECT 'a\\\\'; DROP TABLE customers; -- '", "SELECT 1 # ; DROP TABLE customers",
          "SELECT 1 -- \nDROP TABLE customers", "SELECT \"x\"; DROP TABLE customers",
          "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE scratch", "SELECT 1 +"]
DATABASES = ["shop", "mysql", "nosuch"]
COMMAND_ARGUMENTS = {COM_FIELD_LIST: "customers\0", COM_PROCESS_KILL: "\x01\0\0\0"}

step = st.one_of(
    st.tuples(st.just("query"), st.sampled_from(ALLOWED + REFUSED + TRICKY)),
    st.tuples(st.just("init_db"), st.sampled_from(DATABASES)),
    st.tuples(st.just("command"), st.sampled_from([COM_FIELD_LIST, COM_PROCESS_KILL,
                                                   COM_DEBUG])),
    st.tuples(st.sampled_from(["prepare", "run"]), st.sampled_from(PREPARED)),
    st.tuples(st.sampled_from(["execute", "close"]), st.sampled_from(NAMED)),
    st.tuples(st.sampled_from(["reset", "change_user"]), st.none()),
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory,
           otlp: Any) -> Iterator[tuple[Gateway, MariaDb]]:
    with private_mariadb("--general-log=1") as server:
        setup = server.root(
            "CREATE DATABASE shop; "
            "CREATE TABLE shop.customers (id int PRIMARY KEY, email text); "
            "INSERT INTO shop.customers VALUES (1, 'ada@example.com'); "
            "CREATE TABLE shop.scratch (id int); "
            f"CREATE USER 'gw'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
            "GRANT ALL ON shop.* TO 'gw'@'127.0.0.1'")
        assert setup.returncode == 0, setup.stderr
        account = Account("shop", "gw", PASSWORD)
        target = account.target(upstream=f"127.0.0.1:{server.port}", tls="require")
        with module_gateway(tmp_path_factory, otlp, "mysql-differential", targets=[target],
                            mysql={}, env=account.env,
                            settings={"approvals": {"max_hold_seconds": 1}}) as gw:
            yield gw, server


def connect(gw: Gateway) -> Any:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user="svc-my-differential",
                           password=AGENT, database="shop", ssl=context, connect_timeout=10,
                           client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)


class Prepared:
    """The binary protocol's statements of one session, as its client sees them: the ids
    tollgate handed out, their parameter counts, the first and latest."""

    def __init__(self) -> None:
        self.params: dict[int, int] = {}
        self.latest: int | None = None

    def named(self, which: str) -> int:
        if which == "first":
            return min(self.params, default=1)
        if which == "latest":
            return self.latest or 1
        return LAST_STATEMENT_ID if which == "last-statement id" else 4242


def drive(connection: Any, steps: list[tuple[str, Any]], prepared: Prepared) -> None:
    """Each step as PyMySQL sends it (the binary protocol's commands through its packet
    layer); errors (refusals, the server's own) are answers."""
    for kind, what in steps:
        try:
            if kind == "query":
                with connection.cursor() as cursor:
                    cursor.execute(what)
                    while cursor.nextset():
                        pass
            elif kind == "init_db":
                connection.select_db(what)
            elif kind == "command":
                # A command PyMySQL has no method for, with an argument the server takes.
                connection._execute_command(what, COMMAND_ARGUMENTS.get(what, ""))
                if what == COM_FIELD_LIST:  # column definitions, then EOF (or ERR)
                    while not connection._read_packet().is_eof_packet():
                        pass
                else:
                    connection._read_ok_packet()
            elif kind == "change_user":
                change_user(connection)
            else:
                statement(connection, kind, what, prepared)
        except pymysql.err.MySQLError:
            pass


def change_user(connection: Any) -> None:
    """COM_CHANGE_USER as MariaDB Connector/C sends it: a scramble's answer under the
    plugin the greeting named, then the token on the front's switch to
    mysql_clear_password (a token is longer than the command's 255 bytes of auth data)."""
    capabilities = connection.client_flag & connection.server_capabilities
    payload = encode_change_user(ChangeUser(
        "svc-my-differential", bytes(20), "shop", 45, "mysql_native_password"), capabilities)
    connection._execute_command(COM_CHANGE_USER, payload[1:])
    switch = parse_auth_switch(connection._read_packet().get_all_data())
    assert switch.plugin == "mysql_clear_password"
    connection.write_packet(AGENT.encode() + b"\0")
    connection._read_ok_packet()


def statement(connection: Any, kind: str, what: Any, prepared: Prepared) -> None:
    """A prepared statement's command, its answer read to its end; "run": a prepare,
    then an execute of what it prepared."""
    if kind == "run":
        statement(connection, "prepare", what, prepared)
        statement(connection, "execute", "latest", prepared)
    elif kind == "prepare":
        connection._execute_command(COM_STMT_PREPARE, what)
        ok = parse_prepare_ok(connection._read_packet().get_all_data())
        prepared.params[ok.statement_id], prepared.latest = ok.num_params, ok.statement_id
        for count in (ok.num_params, ok.num_columns):
            for _ in range(count + 1 if count else 0):  # the definitions, their EOF
                connection._read_packet()
    elif kind == "reset":
        connection._execute_command(COM_RESET_CONNECTION, b"")
        connection._read_packet()
    elif kind == "close":
        connection._execute_command(COM_STMT_CLOSE, struct.pack("<I", prepared.named(what)))
    else:
        named = prepared.named(what)
        count = prepared.params.get(prepared.latest if named == LAST_STATEMENT_ID
                                    else named, 0)
        connection._execute_command(COM_STMT_EXECUTE, encode_stmt_execute(
            named, [ParameterType(MYSQL_TYPE_LONGLONG)] * count or None,
            [struct.pack("<q", n + 1) for n in range(count)])[1:])
        header = connection._read_packet().get_all_data()
        if header[:1] != b"\x00":  # a result set: its columns, their EOF, rows to an EOF
            for _ in range(Reader(header).lenenc_int() + 1):
                connection._read_packet()
            while not is_eof(connection._read_packet().get_all_data()):
                pass


def held_by_both(connection: Any, prepared: Prepared) -> int:
    """How many of the ids tollgate handed out it still honours, each found on the
    server too (a COM_STMT_RESET of each: tollgate refuses what it does not hold, the
    server errs on what it does not)."""
    held = 0
    for named in prepared.params:
        try:
            connection._execute_command(COM_STMT_RESET, struct.pack("<I", named))
            connection._read_packet()
            held += 1
        except pymysql.err.MySQLError as exc:
            assert "tollgate" in str(exc.args[1]), f"the server lost statement {named}: {exc}"
    return held


def open_statements(server: MariaDb) -> int:
    """The statements the server holds prepared, every session's (Prepared_stmt_count)."""
    done = server.root("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[1])


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6))
# Sessions that surely prepare, execute, close and reset (generated ones may not).
@example(steps=[("run", "SELECT email FROM customers WHERE id = ?"),
                ("run", "SELECT ?, ? FROM customers"), ("execute", "first"),
                ("execute", "last-statement id"), ("close", "first"), ("execute", "first")])
@example(steps=[("run", "INSERT INTO scratch VALUES (?)"), ("run", "DELETE FROM scratch"),
                ("execute", "last-statement id"),
                ("query", "PREPARE q FROM 'SELECT email FROM customers'"), ("query", "EXECUTE q"),
                ("reset", None), ("run", "SELECT id FROM scratch WHERE id > ?"),
                ("close", "last-statement id"), ("execute", "latest")])
@example(steps=[("run", "SELECT email FROM customers WHERE id = ?"),
                ("command", COM_FIELD_LIST), ("change_user", None), ("execute", "first"),
                ("run", "SELECT ?, ? FROM customers"), ("command", COM_PROCESS_KILL)])
def test_every_command_the_server_ran_is_in_the_record_allowed(
        logged: tuple[Gateway, MariaDb], steps: list[tuple[str, Any]]) -> None:
    gw, server = logged
    sentinel = f"SELECT 'end of session {uuid.uuid4()}'"
    # The sessions before have let go of theirs (their connections end after their
    # clients' do).
    stack.wait_until(lambda: open_statements(server) == 0, 10, "the server's statements")
    connection = connect(gw)
    prepared = Prepared()
    try:
        drive(connection, steps, prepared)
        drive(connection, [("query", "DROP PREPARE q")], prepared)
        assert held_by_both(connection, prepared) == open_statements(server)
        with connection.cursor() as cursor:
            cursor.execute(sentinel)
    finally:
        connection.close()
    log: list[tuple[int, str, str]] = []

    def logged_sentinel() -> bool:
        log[:] = statement_log.entries(server.general_log.read_text(errors="replace"))
        return any(t == sentinel for _, _, t in log)

    stack.wait_until(logged_sentinel, 10, "the server's general log")
    thread = next(n for n, _, t in log if t == sentinel)
    mine_in_log = [(command, t) for n, command, t in log if n == thread]
    comparison = statement_log.my_compare(
        mine_in_log, gw.session_records(sentinel), sum(kind == "reset" for kind, _ in steps),
        SQL_PREPARED, SQL_EXECUTED)
    assert comparison.holds, comparison.explain()
    assert mine_in_log.count(("Query", sentinel)) == 1


def test_a_change_of_user_drops_the_statements_prepared_before_it(
        logged: tuple[Gateway, MariaDb]) -> None:
    """COM_CHANGE_USER resets the server's session, and its prepared statements go with
    it: an id tollgate handed out before is refused (ER_UNKNOWN_STMT_HANDLER), never sent,
    and the server holds no statement."""
    gw, server = logged
    stack.wait_until(lambda: open_statements(server) == 0, 10, "the server's statements")
    connection = connect(gw)
    prepared = Prepared()
    try:
        statement(connection, "prepare", "SELECT email FROM customers WHERE id = ?", prepared)
        assert open_statements(server) == 1
        change_user(connection)
        assert open_statements(server) == 0
        with pytest.raises(pymysql.err.MySQLError) as refused:
            statement(connection, "execute", "first", prepared)
        code, message = refused.value.args
        assert code == 1243 and "was not prepared through tollgate" in message, message
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM customers")
            assert cursor.fetchone() == (1,)
    finally:
        connection.close()
