"""The record is complete: proven against the server's own general log.

A private MariaDB (tests/support/mariadb.py) logs every command it runs
(`--general-log`: `Query`, `Init DB` ... with the connection's thread id). Hypothesis
drives generated sessions through Envoy and the MySQL front with PyMySQL: reads, writes,
refusals, multi-statement texts, texts a reader could take otherwise than the server
(executable comments, backslashes in strings, `#` comments), settings, COM_INIT_DB,
COM_FIELD_LIST, COM_PROCESS_KILL (of no session: refused) and commands the front does
not relay. Each session's part of the server's log is compared
with its record: every text the server ran is in the record, allowed, as often as it
ran; nothing the record refused reaches the server.
"""

from __future__ import annotations

import re
import ssl
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.mysql import packets as my
from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, request_text
from tests.support.mariadb import MariaDb, private_mariadb

pytestmark = pytest.mark.e2e

AGENT = tokens.token("svc-my-differential", ["agents"])
PASSWORD = "differential-secret"
ALLOWED = ["SELECT 1", "SELECT email FROM customers ORDER BY id",
           "SELECT count(*) FROM customers", "INSERT INTO scratch VALUES (1)",
           "SELECT id FROM scratch ORDER BY id LIMIT 3", "SET NAMES utf8mb4",
           "SET autocommit = 1", "SELECT 1; SELECT 2", "UPDATE scratch SET id = 2 WHERE id = 1"]
REFUSED = ["DROP TABLE customers", "TRUNCATE scratch", "ALTER TABLE scratch DROP COLUMN id",
           "SELECT 1; DROP TABLE customers", "SET NAMES latin1",
           "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "GRANT ALL ON *.* TO CURRENT_USER",
           "SET GLOBAL general_log = 0", "DELETE FROM scratch"]
# Texts a reader could take otherwise than the server: each must be refused, or allowed
# only as what the server runs.
TRICKY = ["SELECT 1 /*!, (SELECT 2) */", "/*!50000 DROP TABLE customers */",
          "SELECT 'a\\\\'; DROP TABLE customers; -- '", "SELECT 1 # ; DROP TABLE customers",
          "SELECT 1 -- \nDROP TABLE customers", "SELECT \"x\"; DROP TABLE customers",
          "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE scratch", "SELECT 1 +"]
DATABASES = ["shop", "mysql", "nosuch"]
COMMAND_ARGUMENTS = {my.COM_STMT_PREPARE: "SELECT email FROM customers",
                     my.COM_FIELD_LIST: "customers\0", my.COM_PROCESS_KILL: "\x01\0\0\0"}

step = st.one_of(
    st.tuples(st.just("query"), st.sampled_from(ALLOWED + REFUSED + TRICKY)),
    st.tuples(st.just("init_db"), st.sampled_from(DATABASES)),
    st.tuples(st.just("command"), st.sampled_from([my.COM_STMT_PREPARE, my.COM_FIELD_LIST,
                                                   my.COM_PROCESS_KILL, my.COM_DEBUG])),
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
        target = {"name": "shop-my", "protocol": "mysql", "match": {"database": "shop"},
                  "environment": "test",
                  "mysql": {"upstream": f"127.0.0.1:{server.port}", "user": "gw",
                            "database": "shop", "tls": "require"},
                  "credential": {"type": "password", "from_env": "GW_PASSWORD"}}
        with module_gateway(tmp_path_factory, otlp, "mysql-differential", targets=[target],
                            mysql={}, env={"GW_PASSWORD": PASSWORD},
                            settings={"approvals": {"max_hold_seconds": 1}}) as gw:
            yield gw, server


def connect(gw: Gateway) -> Any:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user="svc-my-differential",
                           password=AGENT, database="shop", ssl=context, connect_timeout=10,
                           client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)


def drive(connection: Any, steps: list[tuple[str, Any]]) -> None:
    """Each step as PyMySQL sends it; errors (refusals, the server's own) are answers."""
    for kind, what in steps:
        try:
            if kind == "query":
                with connection.cursor() as cursor:
                    cursor.execute(what)
                    while cursor.nextset():
                        pass
            elif kind == "init_db":
                connection.select_db(what)
            else:
                # A command PyMySQL has no method for, with an argument the server takes.
                connection._execute_command(what, COMMAND_ARGUMENTS.get(what, ""))
                if what == my.COM_FIELD_LIST:  # column definitions, then EOF (or ERR)
                    while not connection._read_packet().is_eof_packet():
                        pass
                else:
                    connection._read_ok_packet()
        except pymysql.err.MySQLError:
            pass


_ENTRY = re.compile(r"^(?:\d{6}\s+[\d:]+)?\s+(\d+) (Query|Init DB|Connect|Quit|Prepare|"
                    r"Execute|Field List|Close stmt|Reset stmt|Long Data|Kill|Debug)"
                    r"(?:\t(.*))?$")


def entries(log: str) -> list[tuple[int, str, str]]:
    """The general log's entries: (thread id, command, text); a text spanning lines is
    joined back."""
    found: list[tuple[int, str, str]] = []
    for line in log.splitlines():
        match = _ENTRY.match(line)
        if match:
            found.append((int(match[1]), match[2], match[3] or ""))
        elif found and not line.startswith(("/usr/sbin", "Tcp port", "Time ")):
            thread, command, text = found[-1]
            found[-1] = (thread, command, f"{text}\n{line}")
    return found


_SHOW_COLUMNS = re.compile(r"SHOW COLUMNS FROM `((?:[^`]|``)*)`(?: LIKE '(.*)')?", re.S)


def logged_as(method: str, statement: str) -> tuple[str, str]:
    """How the server's general log shows a command the record allowed, by the statement
    the record decided it as (COM_FIELD_LIST's: `table wildcard`)."""
    if method == "INIT_DB":
        return "Init DB", statement[5:-1].replace("``", "`")
    columns = _SHOW_COLUMNS.fullmatch(statement)
    if method == "FIELD_LIST" and columns:
        wildcard = (columns[2] or "").replace("''", "'").replace("\\\\", "\\")
        return "Field List", f"{columns[1].replace('``', '`')} {wildcard}"
    return "Query", statement


def _denied_database(text: str) -> str:
    """An `Init DB` entry's database: the server logs a refused one by its error."""
    denied = re.fullmatch(r"Access denied for user .* to database '(.*)'", text)
    return denied[1] if denied else text


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_every_command_the_server_ran_is_in_the_record_allowed(
        logged: tuple[Gateway, MariaDb], steps: list[tuple[str, Any]]) -> None:
    gw, server = logged
    sentinel = f"SELECT 'end of session {uuid.uuid4()}'"
    connection = connect(gw)
    try:
        drive(connection, steps)
        with connection.cursor() as cursor:
            cursor.execute(sentinel)
    finally:
        connection.close()
    log: list[tuple[int, str, str]] = []

    def logged_sentinel() -> bool:
        log[:] = entries(server.general_log.read_text(errors="replace"))
        return any(t == sentinel for _, _, t in log)

    stack.wait_until(logged_sentinel, 10, "the server's general log")
    thread = next(n for n, _, t in log if t == sentinel)
    ran = Counter((command, _denied_database(t) if command == "Init DB" else t)
                  for n, command, t in log
                  if n == thread and command not in ("Connect", "Quit"))
    mine = gw.session_records(sentinel)
    allowed = Counter(logged_as(r["request"]["method"], request_text(r) or "") for r in mine
                      if r["outcome"]["action"] == "allow"
                      and r["request"]["method"] in ("QUERY", "INIT_DB", "FIELD_LIST"))
    missing = ran - allowed
    assert not missing, f"the server ran what the record does not allow: {missing}"
    refused = {request_text(r) for r in mine if r["outcome"]["action"] != "allow"}
    for statement in refused - {t for _, t in allowed}:
        assert ("Query", statement) not in ran, f"refused, yet the server ran {statement!r}"
    assert ran[("Query", sentinel)] == 1
