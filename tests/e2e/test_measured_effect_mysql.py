"""Writes judged by what MariaDB measured, end to end: the mariadb client and PyMySQL
(COM_QUERY and COM_STMT_EXECUTE) through a real Envoy and the MySQL front to the
machine's MariaDB. The statement's text sees a small write; the database's state (a
cascade, a trigger, a view) makes it large. The front runs it in a savepoint or a
transaction of its own, reads the session's handler counters and counts the tables a
cascade reaches, and the default pack holds it on the effect: rolled back, the data
intact. Holds wait 1 s here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.e2e.test_approvals_e2e import DBA, api, approve_pending
from tests.support.gateway import Gateway
from tests.support.mysql_shop import (
    AGENT,
    AGENT_NAME,
    DATABASE,
    Account,
    as_root,
    shop_account,
    shop_gateway,
    unverified_tls,
)

SETUP = (
    # orders 1..100; items: four of order 1, cascading from it; notes: two of order 2,
    # their key nulled by its delete.
    "CREATE TABLE orders (id int PRIMARY KEY, note text) ENGINE=InnoDB",
    "INSERT INTO orders SELECT seq, concat('o', seq) FROM seq_1_to_100",
    "CREATE TABLE items (id int PRIMARY KEY, order_id int, FOREIGN KEY (order_id) "
    "REFERENCES orders (id) ON DELETE CASCADE) ENGINE=InnoDB",
    "INSERT INTO items SELECT seq, 1 FROM seq_1_to_4",
    "CREATE TABLE notes (id int PRIMARY KEY, order_id int, FOREIGN KEY (order_id) "
    "REFERENCES orders (id) ON DELETE SET NULL ON UPDATE CASCADE) ENGINE=InnoDB",
    "INSERT INTO notes VALUES (1, 2), (2, 2)",
    # A view whose constant column matches every row, and one whose CASE does.
    "CREATE TABLE secrets (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "INSERT INTO secrets SELECT seq, concat('s', seq) FROM seq_1_to_4",
    "CREATE VIEW tagged AS SELECT id, v, 'k' AS k FROM secrets",
    "CREATE VIEW graded AS SELECT id, v, CASE WHEN id > 0 THEN 'a' ELSE 'b' END AS g "
    "FROM secrets",
    # A trigger that empties another table.
    "CREATE TABLE events (id int PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO events SELECT seq FROM seq_1_to_100",
    "CREATE TABLE audit (id int PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO audit SELECT seq FROM seq_1_to_4",
    "CREATE TRIGGER wipe AFTER DELETE ON events FOR EACH ROW DELETE FROM audit",
    "CREATE TABLE small (id int PRIMARY KEY, name text) ENGINE=InnoDB",
    "INSERT INTO small SELECT seq, concat('n', seq) FROM seq_1_to_100",
    # A table no rollback undoes.
    "CREATE TABLE flat (id int PRIMARY KEY) ENGINE=MyISAM",
    "INSERT INTO flat SELECT seq FROM seq_1_to_10",
    # Stored functions that empty a table of 1200 rows each (ROUTINES: made apart).
    "CREATE TABLE bulk (id int PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO bulk SELECT seq FROM seq_1_to_1200",
    "CREATE TABLE heap (id int PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO heap SELECT seq FROM seq_1_to_1200",
)
# Their bodies hold semicolons: one statement each, not through the client's splitting.
ROUTINES = (
    "CREATE FUNCTION drain_bulk() RETURNS int MODIFIES SQL DATA "
    "BEGIN DELETE FROM bulk; RETURN 1; END",
    "CREATE FUNCTION Matches(n int) RETURNS bool MODIFIES SQL DATA "
    "BEGIN DELETE FROM heap; RETURN n = 1; END",
)


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    with shop_account("tollgate_fx") as made:
        as_root("; ".join(SETUP), made.database)
        with pymysql.connect(host="127.0.0.1", port=3306, user="root",
                             database=made.database) as root, root.cursor() as cursor:
            for sql in ROUTINES:
                cursor.execute(sql)
        yield made


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       account: Account) -> Iterator[Gateway]:
    with shop_gateway(tmp_path_factory, otlp, "effect-my", account,
                      settings={"approvals": {"max_hold_seconds": 1,
                                              "max_pending_per_identity": 100}}) as running:
        yield running


def cli(gw: Gateway, *statements: str) -> subprocess.CompletedProcess[str]:
    """The mariadb client, each statement on a line of its standard input."""
    return subprocess.run(
        [shutil.which("mariadb") or "mariadb", "--no-defaults", "-h", "127.0.0.1", "-P",
         str(gw.ports.mysql), "-u", AGENT_NAME, "--ssl", "--skip-ssl-verify-server-cert",
         "-D", DATABASE, "-N", "-B", "--force"],
        input="".join(f"{s};\n" for s in statements), capture_output=True, text=True,
        timeout=30, check=False, env={**os.environ, "MYSQL_PWD": AGENT})


@contextlib.contextmanager
def session(gw: Gateway, autocommit: bool = True, multi: bool = False) -> Iterator[Any]:
    connection = pymysql.connect(
        host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME, password=AGENT,
        database=DATABASE, ssl=unverified_tls(), connect_timeout=10, autocommit=autocommit,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS if multi else 0)
    try:
        yield connection
    finally:
        connection.close()


def count(account: Account, table: str, where: str = "") -> int:
    return int(as_root(f"SELECT count(*) FROM {table} {where}", account.database))


@pytest.mark.parametrize(("sql", "reason", "table", "rows"), [
    ("DELETE FROM orders WHERE id = 1",
     "would delete 4 rows of {db}.items (through a cascade, trigger or view from "
     "{db}.orders)", "items", 4),
    ("DELETE FROM events WHERE id = 7",
     "would delete 4 rows of {db}.audit (through a cascade, trigger or view from "
     "{db}.events)", "audit", 4),
    ("DELETE FROM tagged WHERE k = 'k'",
     "would delete 4 rows of {db}.tagged (a table of 4 rows)", "secrets", 4),
    ("DELETE FROM graded WHERE g = 'a'",
     "would delete 4 rows of {db}.graded (a table of 4 rows)", "secrets", 4),
    ("UPDATE tagged SET v = 'gone' WHERE k = 'k'",
     "would update 4 rows of {db}.tagged (a table of 4 rows)", "secrets", 4),
])
def test_a_small_looking_write_is_held_on_what_it_did_and_rolled_back(
        gw: Gateway, account: Account, sql: str, reason: str, table: str,
        rows: int) -> None:
    reason = reason.format(db=account.database)
    done = cli(gw, sql)
    assert reason in done.stderr, done.stderr
    assert count(account, table) == rows
    assert count(account, "events") == 100
    _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
    (approval,) = [a for a in answer["approvals"] if a["request"]["body"] == sql]
    assert reason in approval["reasons"]
    assert count(account, "secrets", "WHERE v = 'gone'") == 0


def test_a_cascade_setting_keys_null_is_measured(gw: Gateway, account: Account) -> None:
    # Two notes of order 2 of 2 have their key nulled: 100% of notes, held.
    with session(gw) as conn, conn.cursor() as cursor, pytest.raises(
            pymysql.err.OperationalError,
            match=rf"would update 2 rows of {account.database}\.notes"):
        cursor.execute("DELETE FROM orders WHERE id = %s", (2,))
    assert count(account, "notes", "WHERE order_id IS NULL") == 0
    assert count(account, "orders") == 100


def test_a_small_write_passes_with_its_answers_and_status(gw: Gateway,
                                                          account: Account) -> None:
    with session(gw) as conn, conn.cursor() as cursor:
        assert cursor.execute("INSERT INTO small VALUES (1001, 'x')") == 1
        assert cursor.execute("UPDATE small SET name = 'y' WHERE id = 1001") == 1
        # The front's own transaction is not the client's.
        assert not conn.get_autocommit() or not _in_transaction(conn)
        assert cursor.execute("DELETE FROM small WHERE id = 1001") == 1
        assert not _in_transaction(conn)
    assert count(account, "small") == 100


def _in_transaction(conn: Any) -> bool:
    return bool(conn.server_status & pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS)


def test_the_clients_transaction_and_autocommit_stay_the_clients(
        gw: Gateway, account: Account) -> None:
    with session(gw) as conn, conn.cursor() as cursor:
        conn.begin()
        cursor.execute("SAVEPOINT mine")
        assert cursor.execute("UPDATE small SET name = 'b' WHERE id = 2") == 1
        assert _in_transaction(conn)
        cursor.execute("ROLLBACK TO SAVEPOINT mine")
        cursor.execute("RELEASE SAVEPOINT mine")
        assert cursor.execute("UPDATE small SET name = 'c' WHERE id = 3") == 1
        # Held inside the client's transaction: refused, the transaction goes on.
        with pytest.raises(pymysql.err.OperationalError, match=r"\.items"):
            cursor.execute("DELETE FROM orders WHERE id = 1")
        assert _in_transaction(conn)
        conn.commit()
        assert not _in_transaction(conn)
    with session(gw, autocommit=False) as conn, conn.cursor() as cursor:
        # Autocommit off: the write opens the client's transaction, which its rollback
        # undoes.
        assert cursor.execute("UPDATE small SET name = 'd' WHERE id = 4") == 1
        assert _in_transaction(conn)
        conn.rollback()
    assert as_root("SELECT id, name FROM small WHERE id IN (2, 3, 4) ORDER BY id",
                   account.database).split() == ["2", "n2", "3", "c", "4", "n4"]
    assert count(account, "items") == 4


def test_a_failed_write_gets_the_servers_error_and_leaves_nothing_open(
        gw: Gateway) -> None:
    with session(gw) as conn, conn.cursor() as cursor:
        with pytest.raises(pymysql.err.IntegrityError, match="Duplicate entry"):
            cursor.execute("UPDATE small SET id = 5 WHERE id = 4")
        assert not _in_transaction(conn)
        cursor.execute("SELECT name FROM small WHERE id = 5")
        assert cursor.fetchall() == (("n5",),)


def test_a_prepared_write_is_measured_too(gw: Gateway, account: Account) -> None:
    """COM_STMT_EXECUTE, through mysql-connector's prepared cursor."""
    import mysql.connector

    conn = mysql.connector.connect(
        host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME, password=AGENT,
        database=DATABASE, use_pure=True, auth_plugin="mysql_clear_password",
        ssl_disabled=False, ssl_verify_cert=False, autocommit=True, connection_timeout=10)
    try:
        cursor = conn.cursor(prepared=True)
        with pytest.raises(mysql.connector.Error, match=r"would delete 4 rows of .*\.items"):
            cursor.execute("DELETE FROM orders WHERE id = 1 AND note = %s", ("o1",))
        cursor.execute("UPDATE small SET name = %s WHERE id = 6", ("p",))
        assert cursor.rowcount == 1
    finally:
        conn.close()
    assert count(account, "items") == 4
    assert as_root("SELECT name FROM small WHERE id = 6", account.database).strip() == "p"


def approve(gw: Gateway, sql: str) -> None:
    """`sql` held on its effect, and its approval given."""
    assert "blast.effect" in cli(gw, sql).stderr
    approve_pending(gw, sql)


def test_an_approved_write_runs_once_and_one_that_grew_is_refused(
        gw: Gateway, account: Account) -> None:
    sql = "DELETE FROM orders WHERE id = 3"
    as_root("INSERT INTO items SELECT seq, 3 FROM seq_11_to_14", account.database)
    approve(gw, sql)
    # The cascade grows after the approval: the retry changes more than was approved.
    as_root("INSERT INTO items VALUES (15, 3)", account.database)
    done = cli(gw, sql)
    assert (f"it deleted 5 rows of {account.database}.items where the approved run "
            "deleted 4") in done.stderr, done.stderr
    assert count(account, "items", "WHERE order_id = 3") == 5
    as_root("DELETE FROM items WHERE id = 15", account.database)
    approve(gw, sql)
    done = cli(gw, sql)
    assert done.returncode == 0, done.stderr
    assert count(account, "items", "WHERE order_id = 3") == 0
    assert count(account, "orders") == 99
    as_root("INSERT INTO orders VALUES (3, 'o3')", account.database)


@pytest.mark.parametrize(("sql", "why"), [
    ("DELETE FROM flat WHERE id = 1", "is stored by MyISAM, which cannot roll a write back"),
    ("UPDATE orders SET id = 1000 WHERE id = 50",
     "ON UPDATE CASCADE reaches it from {db}.orders"),
    ("DELETE FROM small WHERE id = 50; COMMIT", "it runs TRANSACTION with the write"),
])
def test_what_cannot_be_measured_waits_saying_why(gw: Gateway, account: Account, sql: str,
                                                  why: str) -> None:
    """One text each (PyMySQL sends a multi-statement text as one COM_QUERY; the
    mariadb client would split it)."""
    with session(gw, multi=True) as conn, conn.cursor() as cursor, pytest.raises(
            pymysql.err.OperationalError) as refused:
        cursor.execute(sql)
    message = str(refused.value)
    assert "blast.effect_unknown" in message
    assert why.format(db=account.database) in message, message
    assert count(account, "flat") == 10
    assert count(account, "orders", "WHERE id = 1000") == 0
    assert count(account, "small") == 100


def test_the_record_carries_the_effect_it_was_held_on(gw: Gateway) -> None:
    sql = "DELETE FROM events WHERE id = 9"
    cli(gw, sql)
    text = str(gw.record_of(sql))
    assert "blast.effect" in text and "would delete 4 rows of" in text and ".audit" in text


@pytest.mark.parametrize(("sql", "why"), [
    ("SELECT drain_bulk()", "would delete 1200 rows of {db}.drain_bulk()"),
    ("SELECT id FROM small WHERE id = 1 AND MATCHES(id)", "would delete 1200 rows of "
     "{db}.Matches()"),
])
def test_a_read_that_calls_a_stored_function_is_measured_and_held(
        gw: Gateway, account: Account, sql: str, why: str) -> None:
    """The function's deletes count in the session's handler counters; charged to it
    (which tables it writes, a role that may only execute it cannot read)."""
    done = cli(gw, sql)
    assert why.format(db=account.database) in done.stderr, done.stderr
    assert "blast.effect" in done.stderr
    assert count(account, "bulk") == count(account, "heap") == 1200
    span = gw.otlp.span_of(gw.record_of(sql))
    assert "defined in the database" in str(span.attributes.get("tollgate.sql.reaches"))


def test_a_setting_that_calls_a_stored_function_waits_saying_why(
        gw: Gateway, account: Account) -> None:
    done = cli(gw, "SET @x = drain_bulk()")
    assert "blast.effect_unknown" in done.stderr, done.stderr
    assert "it runs SET with the write" in done.stderr
    assert count(account, "bulk") == 1200


def test_reads_that_call_only_builtin_functions_pass_unmeasured(gw: Gateway) -> None:
    sql = "SELECT count(*), upper('n') FROM small"
    done = cli(gw, sql)
    assert done.stdout == "100\tN\n", done.stderr
    assert [d["phase"] for d in gw.record_of(sql)["decisions"]] == ["request"]
