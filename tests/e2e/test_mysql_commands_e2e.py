"""The MySQL front's commands beyond statements, end to end: KILL from a second connection
(the mariadb client's Ctrl-C, PyMySQL), COM_FIELD_LIST and COM_CHANGE_USER (MariaDB
Connector/C, the library the mariadb client is built on), and the replication commands,
refused.

One gateway for the module, with two workers: each front gives out connection ids of its
own, shared through the store, and a KILL reaching the worker that does not hold the
session is handed to the one that does. Clients reach Envoy's listener as agents do; a
test that must choose the worker connects to that worker's port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from extproc.mysql.flags import (
    COM_BINLOG_DUMP,
    COM_BINLOG_DUMP_GTID,
    COM_PROCESS_KILL,
    COM_REGISTER_SLAVE,
    COM_STMT_PREPARE,
    COM_TABLE_DUMP,
)
from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_approvals_e2e import DBA, api, left_while_held, pending_where
from tests.support import tokens
from tests.support.gateway import Gateway, request_text
from tests.support.libmariadb import Connection, MariaDbError
from tests.support.libmariadb import connect as libmariadb
from tests.support.mysql_shop import (
    AGENT_NAME,
    DATABASE,
    Account,
    as_root,
    shop_account,
    shop_gateway,
    unverified_tls,
)

AGENT = tokens.token("svc-my-killer", ["agents"])
OTHER = tokens.token("svc-my-other", ["agents"])
SLEEP = "SELECT SLEEP(30)"


@pytest.fixture(scope="module")
def shop() -> Iterator[Account]:
    with shop_account() as made:
        yield made


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       shop: Account) -> Iterator[Gateway]:
    # A held statement waits a minute: a KILL, not the hold's end, must end it.
    with shop_gateway(tmp_path_factory, otlp, "mysql-commands", shop, workers=2,
                      settings={"approvals": {"max_hold_seconds": 60}}) as running:
        yield running


@contextlib.contextmanager
def session(gw: Gateway, token: str = AGENT, port: int | None = None) -> Iterator[Any]:
    """PyMySQL as an agent uses it, through Envoy (or straight to a worker's `port`)."""
    connection = pymysql.connect(host="127.0.0.1", port=port or gw.ports.mysql,
                                 user=AGENT_NAME, password=token, database=DATABASE,
                                 ssl=unverified_tls(), connect_timeout=10, read_timeout=60)
    try:
        yield connection
    finally:
        with contextlib.suppress(pymysql.err.Error):
            connection.close()


def library(gw: Gateway) -> contextlib.AbstractContextManager[Connection]:
    """MariaDB Connector/C as an agent's program uses it, through Envoy."""
    assert gw.ports.mysql is not None
    return libmariadb("127.0.0.1", gw.ports.mysql, AGENT_NAME, AGENT, DATABASE)


def query(connection: Any, sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def holder_port(gw: Gateway, connection_id: int) -> int:
    """The port of the worker whose front holds the connection, as the store says."""
    store = connect(gw.store_url)
    try:
        ((address,),) = store.execute("SELECT address FROM session_keys WHERE front = "
                                      "'mysql' AND id = ?", (connection_id,))
    finally:
        store.close()
    return int(str(address).rpartition(":")[2])


def worker_ports(gw: Gateway) -> list[int]:
    assert gw.ports.mysql_front is not None
    return [gw.ports.mysql_front, gw.ports.mysql_front + 1]


def other_worker(gw: Gateway, connection_id: int) -> int:
    (other,) = [p for p in worker_ports(gw) if p != holder_port(gw, connection_id)]
    return other


def running(shop: Account, sql: str) -> Callable[[], bool]:
    """Whether the server runs `sql` for the gateway's account now."""
    def found() -> bool:
        return as_root(f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE "
                       f"USER = '{shop.user}' AND INFO = '{sql}'").strip() != "0"
    return found


class Background:
    """A statement run on its own thread: what it returned, or raised, and when."""

    def __init__(self, connection: Any, sql: str) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self._thread = threading.Thread(target=self._run, args=(connection, sql))
        self.started = time.monotonic()
        self._thread.start()

    def _run(self, connection: Any, sql: str) -> None:
        try:
            self.result = query(connection, sql)
        except BaseException as exc:  # the test reads it
            self.error = exc
        self.ended = time.monotonic()

    def join(self) -> float:
        """Seconds the statement took."""
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the statement is still running"
        return self.ended - self.started


def error_code(exc: BaseException | None) -> int:
    assert isinstance(exc, pymysql.err.MySQLError), exc
    return int(exc.args[0])


def records_of(gw: Gateway, text: str) -> list[dict[str, Any]]:
    """The records whose statement is `text`, once there is one (records are written off
    the request path)."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records() if request_text(r) == text]
        return bool(found)

    stack.wait_until(recorded, 10, f"the record of {text}")
    return found


def mariadb(gw: Gateway, *options: str) -> list[str]:
    """The mariadb client's command line as an agent runs it (TLS; MYSQL_PWD the token)."""
    client = shutil.which("mariadb")
    assert client, "the machine's MariaDB client (Debian's mariadb-client)"
    return [client, "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql), "-u",
            AGENT_NAME, "--ssl", "--skip-ssl-verify-server-cert", *options]


# -- KILL ---------------------------------------------------------------------------------


def test_ctrl_c_in_the_mariadb_client_kills_its_query(gw: Gateway, shop: Account) -> None:
    """The mariadb client's Ctrl-C connects again (same host, user, token; no database)
    and sends KILL QUERY with the id its first connection's handshake announced."""
    sql = "SELECT SLEEP(31)"
    process = subprocess.Popen(mariadb(gw, "-D", DATABASE, "-e", sql),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MYSQL_PWD": AGENT})
    try:
        stack.wait_until(running(shop, sql), 15, "the statement on the server")
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() - interrupted < 10
    assert "query killed" in out + err, (out, err)
    assert "ERROR 1317 (70100)" in err, err
    # The only KILL sent from a connection that named no database (its path "/").
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records() if r["request"]["path"] == "/"
                    and (request_text(r) or "").startswith("KILL QUERY ")]
        return bool(found)

    stack.wait_until(recorded, 10, "the record of the Ctrl-C's KILL")
    (kill,) = found
    assert kill["outcome"]["action"] == "allow", kill["outcome"]
    assert "killed on the server" in kill["outcome"]["detail"]


def test_a_connection_naming_no_database_takes_kill_alone(gw: Gateway) -> None:
    """What Ctrl-C opens: its token verified as any login's, no server behind it, and
    anything but KILL refused (ER_NO_DB_ERROR)."""
    bare = mariadb_cli(gw, "SELECT 1")
    assert "ERROR 1046 (3D000)" in bare.stderr and "named no database" in bare.stderr, \
        bare.stderr
    unverified = mariadb_cli(gw, "SELECT 1", token=AGENT[:-4] + "AAAA")
    assert "ERROR 1045 (28000)" in unverified.stderr, unverified.stderr


def mariadb_cli(gw: Gateway, sql: str, token: str = AGENT) -> subprocess.CompletedProcess[str]:
    """The mariadb client, naming no database, as its Ctrl-C connects."""
    return subprocess.run(mariadb(gw, "-e", sql), capture_output=True, text=True, timeout=30,
                          check=False, env={**os.environ, "MYSQL_PWD": token})


def test_kill_query_from_a_connection_to_another_worker_ends_the_statement(
        gw: Gateway, shop: Account) -> None:
    """Through the gateway: the KILL reaches the worker that does not hold the session,
    which hands it over; the sleep ends at once, the session goes on."""
    with session(gw) as victim:
        connection_id = victim.thread_id()
        other = other_worker(gw, connection_id)
        statement = Background(victim, SLEEP)
        stack.wait_until(running(shop, SLEEP), 15, "the statement on the server")
        with session(gw, port=other) as killer:
            query(killer, f"KILL QUERY {connection_id}")
        assert statement.join() < 10
        assert error_code(statement.error) == 1317  # ER_QUERY_INTERRUPTED
        assert query(victim, "SELECT 1") == ((1,),)


def test_com_process_kill_ends_the_connection(gw: Gateway, shop: Account) -> None:
    """COM_PROCESS_KILL (the command form; drivers of old sent it), decided as the KILL
    CONNECTION it stands for: the sleep ends, and the connection with it (here from a
    connection on the same worker)."""
    with session(gw) as victim:
        connection_id = victim.thread_id()
        sql = "SELECT SLEEP(32)"
        statement = Background(victim, sql)
        stack.wait_until(running(shop, sql), 15, "the statement on the server")
        with session(gw, port=holder_port(gw, connection_id)) as killer:
            killer._execute_command(COM_PROCESS_KILL, struct.pack("<I", connection_id))
            killer._read_ok_packet()
        assert statement.join() < 10
        # The connection lost (CR_SERVER_LOST), or the server's ER_CONNECTION_KILLED first.
        assert error_code(statement.error) in (2013, 1927)
        with pytest.raises(pymysql.err.Error):
            query(victim, "SELECT 1")
    (record,) = records_of(gw, f"KILL CONNECTION {connection_id}")
    assert record["request"]["method"] == "PROCESS_KILL"
    assert record["outcome"]["action"] == "allow"
    (killed,) = records_of(gw, sql)
    assert killed["outcome"]["detail"] == "the server closed the connection"


def test_another_identitys_kill_is_refused(gw: Gateway, shop: Account) -> None:
    with session(gw) as victim, session(gw, token=OTHER) as stranger:
        connection_id = victim.thread_id()
        with pytest.raises(pymysql.err.OperationalError) as refused:
            query(stranger, f"KILL QUERY {connection_id}")
        code, message = refused.value.args
        assert code == 1095 and "another identity's" in message, message
        assert query(victim, "SELECT 2") == ((2,),)


def test_a_server_thread_id_is_refused(gw: Gateway, shop: Account) -> None:
    """The server's own id of a session (what CONNECTION_ID() returns; the pack masks it
    for agents, a value derived by the server) names any session of the gateway's
    account: KILL does not take it."""
    with session(gw) as connection:
        assert query(connection, "SELECT CONNECTION_ID()") == ((None,),)
        server_ids = as_root(f"SELECT ID FROM information_schema.PROCESSLIST WHERE "
                             f"USER = '{shop.user}'").split()
        assert server_ids and str(connection.thread_id()) not in server_ids
        with pytest.raises(pymysql.err.OperationalError) as refused:
            query(connection, f"KILL QUERY {server_ids[0]}")
        code, message = refused.value.args
        assert code == 1094 and "CONNECTION_ID()" in message, message
        assert query(connection, "SELECT 7") == ((7,),)


def test_kill_query_ends_a_statement_held_for_approval(gw: Gateway, shop: Account) -> None:
    statement_text = "UPDATE scratch SET id = id"  # unbounded: held for a dba
    with session(gw) as victim:
        connection_id = victim.thread_id()
        statement = Background(victim, statement_text)

        def held() -> bool:
            store = connect(gw.store_url)
            try:
                return bool(store.execute("SELECT id FROM approvals WHERE status = "
                                          "'pending' AND request LIKE ?",
                                          (f"%{statement_text}%",)))
            finally:
                store.close()

        stack.wait_until(held, 15, "the statement's approval")
        with session(gw, port=other_worker(gw, connection_id)) as killer:
            query(killer, f"KILL QUERY {connection_id}")
        assert statement.join() < 10
        assert error_code(statement.error) == 1317
        assert "interrupted by a KILL" in str(statement.error)
        assert held()  # the approval stays pending: the statement sent again waits on it
        assert query(victim, "SELECT 3") == ((3,),)


def test_a_client_killed_while_its_statement_is_held_ends_the_hold(
        gw: Gateway, shop: Account) -> None:
    """The mariadb client killed while its UPDATE waits for a dba: the hold ends with it
    (nobody left waiting on the approval), the record says the client left."""
    statement_text = "UPDATE scratch SET id = id + 100"
    client = subprocess.Popen(mariadb(gw, "-D", DATABASE, "-e", statement_text),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MYSQL_PWD": AGENT})
    try:
        approval = pending_where(gw, lambda a: a["request"]["body"] == statement_text, DBA,
                                 "the statement's approval")
    finally:
        client.kill()
        client.wait(10)
    left_while_held(gw, approval["id"], DBA)
    (record,) = [r for r in gw.records("exchange") if r["trace_id"] == approval["trace_id"]]
    assert record["outcome"]["refusal"] == "client_left", record["outcome"]


def test_a_denied_statement_tells_the_client_who_denied_it_and_why(gw: Gateway) -> None:
    statement_text = "UPDATE scratch SET id = id + 200"
    with session(gw) as connection:
        statement = Background(connection, statement_text)
        approval = pending_where(gw, lambda a: a["request"]["body"] == statement_text, DBA,
                                 "the statement's approval")
        status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA,
                        {"reason": "not during the freeze"})
        assert status == 200
        statement.join()
    assert statement.error is not None
    message = str(statement.error.args[1])
    assert message.startswith(f"tollgate: approval {approval['id']} was denied by dana: "
                              "not during the freeze ("), message
    assert f"approval {approval['id']} (denied), held: " in message


def test_a_kill_is_never_prepared(gw: Gateway) -> None:
    """tollgate does a KILL as it comes: prepared (COM_STMT_PREPARE, or SQL's PREPARE), it
    would reach the server as written, its id taken for a server thread's. Refused, and
    both sessions go on."""
    with session(gw) as victim, session(gw) as killer:
        kill = f"KILL QUERY {victim.thread_id()}"
        killer._execute_command(COM_STMT_PREPARE, kill)
        with pytest.raises(pymysql.err.MySQLError) as prepared:
            killer._read_packet()
        with pytest.raises(pymysql.err.MySQLError) as in_sql:
            query(killer, f"PREPARE k FROM '{kill}'")
        for refused in (prepared, in_sql):
            code, message = refused.value.args
            assert code == 1105 and "tollgate does a KILL sent alone" in message, message
        assert query(victim, "SELECT 8") == ((8,),)
        assert query(killer, "SELECT 9") == ((9,),)


# -- COM_FIELD_LIST -----------------------------------------------------------------------


def test_field_list_is_decided_as_show_columns_and_relayed(gw: Gateway) -> None:
    with library(gw) as conn:
        assert conn.list_fields("customers") == ["id", "name", "email", "ssn"]
        assert conn.list_fields("customers", "e%") == ["email"]
        with pytest.raises(MariaDbError) as missing:
            conn.list_fields("nosuch")
        assert missing.value.code == 1146  # ER_NO_SUCH_TABLE, the server's
        assert conn.query("SELECT 4") == [("4",)]
    (record,) = records_of(gw, "SHOW COLUMNS FROM `customers` LIKE 'e%'")
    assert record["request"]["method"] == "FIELD_LIST"
    assert record["outcome"]["action"] == "allow"


# -- COM_CHANGE_USER ----------------------------------------------------------------------


def test_change_user_rebinds_the_session_and_resets_the_server_side(gw: Gateway) -> None:
    with library(gw) as conn:
        conn.query("SET @left_behind = 1")
        conn.change_user("svc-my-other", OTHER, DATABASE)
        assert conn.query("SELECT @left_behind, 'after the change'") == [
            (None, "after the change")]
    (after,) = records_of(gw, "SELECT @left_behind, 'after the change'")
    assert after["identity"]["sub"] == "svc-my-other"
    records = [r for r in gw.records() if r["session_id"] == after["session_id"]]
    methods = [(r["request"]["method"], r["identity"]["sub"]) for r in records]
    assert ("CHANGE_USER", "svc-my-other") in methods
    assert ("QUERY", "svc-my-killer") in methods  # SET @left_behind, before


def test_change_user_with_a_bad_token_ends_the_connection(gw: Gateway) -> None:
    with library(gw) as conn:
        with pytest.raises(MariaDbError) as refused:
            conn.change_user("svc-my-other", OTHER[:-4] + "AAAA", DATABASE)
        assert refused.value.code == 1045
        with pytest.raises(MariaDbError):
            conn.query("SELECT 5")


def test_change_user_to_another_database_is_refused(gw: Gateway) -> None:
    with library(gw) as conn:
        with pytest.raises(MariaDbError) as refused:
            conn.change_user("svc-my-other", OTHER, "mysql")
        assert refused.value.code == 1044 and "not its database" in refused.value.message


# -- replication --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID,
                                     COM_REGISTER_SLAVE, COM_TABLE_DUMP])
def test_replication_commands_are_refused(gw: Gateway, command: int) -> None:
    with session(gw) as connection:
        connection._execute_command(command, b"")
        with pytest.raises(pymysql.err.OperationalError) as refused:
            connection._read_packet()
        code, message = refused.value.args
        assert code == 1227 and "is replication, which tollgate refuses" in message
        assert query(connection, "SELECT 6") == ((6,),)
