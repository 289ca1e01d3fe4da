"""PostgreSQL targets end to end: real clients, through a real Envoy, to the machine's
real PostgreSQL (127.0.0.1:5432).

psql (Debian's postgresql-client) and psycopg 3 connect to Envoy's PostgreSQL listener
with their token as the password, over TLS (sslmode=require), as agents would; Envoy's
tcp_proxy hands the connection to tollgate's PostgreSQL front, which logs in to the
database with its own role. The default pack decides each statement: a SELECT passes
with personal data masked, a DROP TABLE is refused and the session goes on, a DELETE
without WHERE waits for a dba's approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pg8000.native
import psycopg
import pytest

from extproc import config
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, Held, api, left_while_held
from tests.support import tokens
from tests.support.databases import PG_ADMIN, throwaway_database
from tests.support.gateway import Gateway, GatewayFactory, module_gateway
from tests.support.tls import write_tls_files
from tests.test_telemetry_docs import check_front

AGENT = tokens.token("svc-pg-agent", ["agents"])
DATABASE = "shop"  # what clients ask for; the target opens a throwaway database
CUSTOMERS = [
    (1, "Ada Lovelace", "ada@example.com", "078-05-1120", "4111 1111 1111 1111"),
    (2, "Alan Turing", "alan@example.org", "219-09-9999", "5500 0000 0000 0004"),
]


@contextlib.contextmanager
def customers_database(prefix: str, *more: str) -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, with customers to read and the
    statements `more` run in it."""
    with throwaway_database(prefix) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, "
                         "email text, ssn text, card text)")
            for statement in more:
                conn.execute(statement)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s)",
                                CUSTOMERS)
        yield url


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database("tollgate_pg", "CREATE TABLE scratch (id int)") as url:
        yield url


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "postgres", targets=[shop(upstream_db)],
                        postgres={},
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


def shop(upstream_db: str) -> dict[str, Any]:
    """The target: clients ask for `shop`, the gateway opens the throwaway database."""
    return {"name": "shop", "protocol": "postgres", "match": {"database": DATABASE},
            "environment": "test",
            "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                         "database": upstream_db.rsplit("/", 1)[1], "sslmode": "disable"}}


def url(gw: Gateway, token: str = AGENT, sslmode: str = "require") -> str:
    return (f"postgresql://svc-pg-agent:{token}@127.0.0.1:{gw.ports.postgres}/{DATABASE}"
            f"?sslmode={sslmode}&application_name=e2e")


def upstream(upstream_db: str, sql: str) -> list[tuple[Any, ...]]:
    """What the database holds, read beside the gateway."""
    with psycopg.connect(upstream_db) as conn:
        return conn.execute(sql).fetchall()


def test_psql_select_is_masked_drop_refused_and_the_session_goes_on(gw: Gateway) -> None:
    psql = shutil.which("psql")
    assert psql, "tests/system-deps.sh installs postgresql-client"
    done = subprocess.run(
        [psql, "-X", "-A", "-t", url(gw), "-c", "SELECT id, email, ssn FROM customers "
         "ORDER BY id", "-c", "DROP TABLE customers", "-c", "SELECT count(*) FROM customers"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    out = done.stdout
    assert "078-05-1120" not in out and "ada@example.com" not in out
    assert out.splitlines()[0].startswith("1|")
    assert "tollgate: destructive SQL: DROP" in done.stderr
    assert out.strip().splitlines()[-1] == "2"  # the session went on after the refusal


def test_psycopg_extended_protocol_masks_refuses_and_keeps_the_transaction_coherent(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw)) as conn:
        row = conn.execute("SELECT name, email, card FROM customers WHERE id = %s",
                           (1,)).fetchone()
        assert row is not None and row[0] == "[REDACTED:PERSON]"
        assert "ada@example.com" not in row[1] and "4111" not in str(row[2])
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("DROP TABLE customers")
        assert "trace id" in (refused.value.diag.message_detail or "")
        # In the transaction psycopg opened: failed, as a permission error leaves it.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
        prepared = conn.execute("SELECT id FROM customers WHERE id = %s", (2,),
                                prepare=True).fetchone()
        assert prepared == (2,)
    assert upstream(upstream_db, "SELECT count(*) FROM customers") == [(2,)]


def test_a_prepared_statement_is_decided_on_its_text(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="DROP"):
            conn.execute("DROP TABLE scratch", prepare=True)
        # Refused at Parse: the statement never exists, so SQL's EXECUTE finds nothing.
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_wrong_token_is_refused_before_the_database(gw: Gateway) -> None:
    forged = tokens.token("svc-pg-agent", ["agents"], kid="test-rsa")[:-4] + "AAAA"
    with pytest.raises(psycopg.OperationalError, match="token does not verify"):
        psycopg.connect(url(gw, forged), connect_timeout=10)


def test_a_plain_connection_is_refused_its_token_unread(gw: Gateway) -> None:
    with pytest.raises(psycopg.OperationalError, match="only over TLS"):
        psycopg.connect(url(gw, sslmode="disable"), connect_timeout=10)


def test_a_delete_without_where_waits_for_approval_then_runs(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + upstream_db.rsplit("/", 1)[1],
                         autocommit=True) as admin:
        admin.execute("INSERT INTO scratch VALUES (1), (2)")

    def delete() -> int:
        with psycopg.connect(url(gw), autocommit=True) as conn:
            return conn.execute("DELETE FROM scratch").rowcount

    held = Held(delete)
    found: list[dict[str, Any]] = []

    def pending() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        found[:] = [a for a in answer["approvals"]
                    if a["request"]["body"] == "DELETE FROM scratch"]
        return bool(found)

    stack.wait_until(pending, 15, "the DELETE's approval")
    assert upstream(upstream_db, "SELECT count(*) FROM scratch") == [(2,)]
    status, _ = api(gw, "POST", f"/approvals/{found[0]['id']}/approve", DBA,
                    {"reason": "cleanup"})
    assert status == 200
    assert held.result() == 2
    assert upstream(upstream_db, "SELECT count(*) FROM scratch") == [(0,)]


def test_a_client_killed_while_its_statement_is_held_ends_the_hold(
        gw: Gateway, upstream_db: str) -> None:
    """psql killed while its UPDATE waits for a dba: the hold ends with it (nobody left
    waiting on the approval), the record says the client left, nothing ran."""
    statement = "UPDATE scratch SET id = id + 100"
    client = subprocess.Popen(["psql", url(gw), "-c", statement],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        approval = pending_for_body(gw, statement)
    finally:
        client.kill()
        client.wait(10)
    left_while_held(gw, approval["id"], DBA)
    (record,) = [r for r in gw.records("exchange") if r["trace_id"] == approval["trace_id"]]
    assert (record["outcome"]["refusal"], record["outcome"]["status"]) == ("client_left", 499)
    assert upstream(upstream_db, "SELECT count(*) FROM scratch WHERE id > 99") == [(0,)]


def test_a_denied_statement_tells_the_client_who_denied_it_and_why(gw: Gateway) -> None:
    statement = "UPDATE scratch SET id = id + 200"

    def update() -> None:
        with psycopg.connect(url(gw), autocommit=True) as conn:
            conn.execute(statement)

    held = Held(update)
    approval = pending_for_body(gw, statement)
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA,
                    {"reason": "not during the freeze"})
    assert status == 200
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        held.result()
    diag = refused.value.diag
    assert diag.message_primary == (f"tollgate: approval {approval['id']} was denied by "
                                    "dana: not during the freeze")
    assert (diag.message_detail or "").startswith(f"approval {approval['id']} (denied), held: ")


def pending_for_body(gw: Gateway, body: str) -> dict[str, Any]:
    """The pending approval of the statement `body`, once it exists."""
    found: list[dict[str, Any]] = []

    def pending() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        found[:] = [a for a in answer["approvals"] if a["request"]["body"] == body]
        return bool(found)

    stack.wait_until(pending, 15, f"the approval of {body!r}")
    return found[0]


def test_every_statement_is_recorded_in_its_session(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        conn.execute("SELECT ssn FROM customers WHERE id = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE customers")
    records = gw.wait_for_records(1)

    def mine() -> list[dict[str, Any]]:
        return [r for r in gw.records() if "TRUNCATE customers" in str(r["request"])]

    stack.wait_until(lambda: bool(mine()), 10, "the TRUNCATE's record")
    session = mine()[0]["session_id"]
    in_session = [r for r in gw.records() if r["session_id"] == session]
    methods = [r["request"]["method"] for r in in_session]
    assert methods[0] == "CONNECT"
    assert "078-05-1120" not in str(in_session)
    assert in_session[-1]["outcome"]["action"] == "deny"
    assert records
    # As an investigator reads it: the connection's statements in order.
    replay = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "replay", "--session", session,
         "--config", str(gw.config_path)], capture_output=True, text=True, timeout=60,
        check=False)
    assert replay.returncode == 0, replay.stderr
    shown = replay.stdout
    assert shown.index("CONNECT /shop") < shown.index("SELECT ssn FROM customers") < (
        shown.index("TRUNCATE customers"))
    assert "078-05-1120" not in shown


# -- each client with its own defaults --------------------------------------------------


def test_asyncpg_with_its_defaults_is_masked_refused_and_goes_on(gw: Gateway) -> None:
    """asyncpg's defaults: sslmode prefer (TLS, since the gateway offers it) and named
    prepared statements for every query, described before they are bound."""

    async def run() -> tuple[Any, ...]:
        conn = await asyncpg.connect(f"postgresql://svc-pg-agent@127.0.0.1:{gw.ports.postgres}"
                                     f"/{DATABASE}", password=AGENT, timeout=10)
        try:
            row = await conn.fetchrow("SELECT email, ssn FROM customers WHERE id = $1", 1)
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="DROP"):
                await conn.execute("DROP TABLE customers")
            count = await conn.fetchval("SELECT count(*) FROM customers")
            return row["email"], row["ssn"], count, conn.get_server_version().major
        finally:
            await conn.close()

    email, ssn, count, major = asyncio.run(run())
    assert "ada@example.com" not in email and "078-05-1120" not in ssn
    assert count == 2 and major >= 15


@pytest.mark.parametrize("verified", [False, True], ids=["defaults", "verify-full"])
def test_pg8000_masked_refused_and_goes_on(gw: Gateway, tmp_path: Path,
                                           verified: bool) -> None:
    """pg8000's defaults: TLS when the server offers it, unverified (as sslmode
    prefer); or its certificate verified against the CA. Its queries are the extended
    protocol's unnamed prepared statements."""
    options: dict[str, Any] = {}
    if verified:
        options["ssl_context"] = ssl.create_default_context(cafile=write_tls_files(tmp_path).ca)
    conn = pg8000.native.Connection("svc-pg-agent", host="127.0.0.1", port=gw.ports.postgres,
                                    database=DATABASE, password=AGENT, timeout=10, **options)
    try:
        ((email, card),) = conn.run("SELECT email, card FROM customers WHERE id = :id", id=2)
        assert "alan@example.org" not in email and "5500" not in card
        with pytest.raises(pg8000.exceptions.DatabaseError, match="42501"):
            conn.run("DROP TABLE customers")
        assert conn.run("SELECT count(*) FROM customers") == [[2]]
    finally:
        conn.close()


# -- what the wire carries besides a statement -------------------------------------------


@pytest.mark.parametrize(("statements", "says"), [
    (("SET ROLE postgres", "SET SESSION AUTHORIZATION postgres"),
     "would run as another (role|user) than the gateway's"),
    (("SET client_encoding TO 'SJIS'", "SET NAMES 'BIG5'"),
     "is not read by tollgate: a client-only encoding"),
], ids=["role", "encoding"])
def test_what_changes_who_acts_or_how_texts_are_read_is_refused(
        gw: Gateway, statements: tuple[str, ...], says: str) -> None:
    """The role a session acts as is the gateway's (for the dba group only), and a
    client encoding the front does not read would have the database read bytes
    otherwise than tollgate (for no one: extproc/postgres/encodings.py)."""
    with psycopg.connect(url(gw), autocommit=True) as conn:
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=says):
                conn.execute(statement)
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_copy_out_of_unnamed_columns_is_refused_and_copy_in_decided(
        gw: Gateway, upstream_db: str) -> None:
    """COPY TO STDOUT's rows carry no column names (CopyOutResponse has formats only):
    a COPY of a table's every column names none, so a mask with column rules, as the
    default pack's, cannot be applied: refused, saying what to do (one that names them is
    masked by them: tests/e2e/test_postgres_copy_e2e.py). COPY FROM STDIN is a write,
    decided on its statement; FROM PROGRAM runs a command on the server and is refused."""
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with conn.cursor() as cur:
            with (pytest.raises(psycopg.errors.InsufficientPrivilege,
                                match=r"name them .* or SELECT the rows"),
                  cur.copy("COPY customers TO STDOUT") as copy):
                list(copy.rows())
            with cur.copy("COPY scratch (id) FROM STDIN") as copy:
                copy.write_row((41,))
                copy.write_row((42,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="PROGRAM"):
            conn.execute("COPY scratch FROM PROGRAM 'id'")
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
    assert upstream(upstream_db, "SELECT id FROM scratch WHERE id > 40 ORDER BY id") == [
        (41,), (42,)]
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("DELETE FROM scratch WHERE id > 40")


def test_listen_is_decided_and_a_notification_payload_masked(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        conn.execute("LISTEN jobs")
        with psycopg.connect(upstream_db, autocommit=True) as admin:
            admin.execute("NOTIFY jobs, 'customer 078-05-1120 exported'")
        (note,) = list(conn.notifies(timeout=10, stop_after=1))
    assert note.channel == "jobs" and "078-05-1120" not in note.payload
    assert note.payload.startswith("customer ")


def _on_upstream(upstream_db: str, sql: str) -> Callable[[], bool]:
    def running() -> bool:
        return upstream(upstream_db, "SELECT count(*) FROM pg_stat_activity WHERE "
                        f"query = '{sql}' AND state = 'active'") == [(1,)]
    return running


def test_psql_ctrl_c_cancels_the_statement_on_its_backend(
        gw: Gateway, upstream_db: str) -> None:
    """psql's Ctrl+C sends a CancelRequest with the key the gateway gave it: the
    gateway sends the database's own cancel for that session's backend."""
    sql = "SELECT pg_sleep(60)"
    psql = subprocess.Popen([shutil.which("psql") or "psql", "-X", url(gw), "-c", sql],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stack.wait_until(_on_upstream(upstream_db, sql), 15, "the statement on its backend")
        psql.send_signal(signal.SIGINT)
        _, err = psql.communicate(timeout=15)
    finally:
        psql.kill()
    assert "canceling statement due to user request" in err
    assert not _on_upstream(upstream_db, sql)()

    def recorded() -> bool:
        return any(r["request"]["method"] == "CANCEL"
                   and r["outcome"]["detail"] == "cancel sent" for r in gw.records())

    stack.wait_until(recorded, 10, "the cancel's record")


def test_psycopg_cancel_from_another_thread(gw: Gateway, upstream_db: str) -> None:
    sql = "SELECT pg_sleep(61)"
    with psycopg.connect(url(gw), autocommit=True) as conn:
        sleeping = Held(lambda: conn.execute(sql))
        stack.wait_until(_on_upstream(upstream_db, sql), 15, "the statement on its backend")
        conn.cancel_safe(timeout=10)
        with pytest.raises(psycopg.errors.QueryCanceled):
            sleeping.result(15)
        assert conn.execute("SELECT 1").fetchone() == (1,)


# -- bad input: a protocol error and a record, never a crash, hang or passed statement ----


class _Raw:
    """A client of raw protocol bytes, over TLS, as the test writes them."""

    def __init__(self, gw: Gateway) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gw.ports.postgres), timeout=10)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def tls(self) -> None:
        self.send(struct.pack("!ii", 8, 80877103))
        assert self.sock.recv(1) == b"S"
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)

    def login(self, token: str = AGENT, **parameters: str) -> tuple[int, bytes]:
        """Logged in over TLS with a token (the agent's) and startup `parameters`: the
        cancel key the gateway gave."""
        self.tls()
        self.send(_startup(3 << 16, user="svc-pg-agent", database=DATABASE, **parameters))
        assert self.messages_until(b"R")[-1] == (b"R", struct.pack("!i", 3))
        self.send(b"p" + struct.pack("!i", 4 + len(token) + 1) + token.encode() + b"\x00")
        (key,) = [body for kind, body in self.messages_until(b"Z") if kind == b"K"]
        return struct.unpack("!i", key[:4])[0], key[4:]

    def query(self, sql: str) -> None:
        self.send(b"Q" + struct.pack("!i", 4 + len(sql) + 1) + sql.encode() + b"\x00")

    def messages_until(self, last: bytes) -> list[tuple[bytes, bytes]]:
        """Every message up to one of type `last` (or the connection's end)."""
        buffer, found = b"", []
        while True:
            while len(buffer) >= 5 and len(buffer) >= 1 + struct.unpack("!i", buffer[1:5])[0]:
                end = 1 + struct.unpack("!i", buffer[1:5])[0]
                found.append((buffer[:1], buffer[5:end]))
                buffer = buffer[end:]
                if found[-1][0] == last:
                    return found
            data = self.sock.recv(65536)
            if not data:
                return found
            buffer += data

    def fatal(self) -> dict[str, str]:
        """The FATAL ErrorResponse that ends the session, by field."""
        kind, body = self.messages_until(b"E")[-1]
        assert kind == b"E"
        fields = {f[:1]: f[1:] for f in body.split(b"\x00") if f}
        assert fields[b"S"] == b"FATAL"
        self.sock.close()
        return {k.decode(): v.decode() for k, v in fields.items()}


def test_a_gssapi_encryption_request_is_declined_and_tls_follows(gw: Gateway) -> None:
    """libpq built with GSSAPI asks for GSS encryption first (gssencmode=prefer): 'N'
    at once, and the client goes on to TLS and logs in."""
    client = _Raw(gw)
    client.send(struct.pack("!ii", 8, 80877104))
    assert client.sock.recv(1) == b"N"
    client.login()
    client.query("SELECT 1")
    kinds = [kind for kind, _ in client.messages_until(b"Z")]
    assert kinds == [b"T", b"D", b"C", b"Z"]
    client.sock.close()


def _startup(version: int, **parameters: str) -> bytes:
    body = struct.pack("!i", version) + b"".join(
        k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in parameters.items()) + b"\x00"
    return struct.pack("!i", 4 + len(body)) + body


def _recorded(gw: Gateway, method: str, trace: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def there() -> bool:
        found[:] = [r for r in gw.records()
                    if r["request"]["method"] == method and trace.endswith(r["trace_id"])]
        return bool(found)

    stack.wait_until(there, 10, f"the {method} record of trace {trace}")
    return found[0]


@pytest.mark.parametrize(("name", "after_login", "data", "sqlstate", "says"), [
    ("unknown protocol version", False, _startup(2 << 16, user="a", database=DATABASE),
     "0A000", "tollgate speaks 3.0"),
    ("oversize startup", False, struct.pack("!ii", 1 << 20, 3 << 16), "08P01",
     "startup packet of"),
    ("unknown message type", True, b"\x01" + struct.pack("!i", 4), "08P01",
     "unknown message type"),
    ("oversize message", True, b"Q" + struct.pack("!i", 1 << 30), "08P01",
     "over the 16777216 this gateway accepts"),
    ("length shorter than itself", True, b"Q" + struct.pack("!i", 2), "08P01",
     "message of length"),
    # A query that is not text in the session's encoding is no protocol error: it gets
    # 22021 and the session goes on (test_postgres_encodings_e2e.py).
])
def test_bad_input_gets_a_protocol_error_and_a_record(
        gw: Gateway, name: str, after_login: bool, data: bytes, sqlstate: str,
        says: str) -> None:
    client = _Raw(gw)
    if after_login:
        client.login()
    client.send(data)
    error = client.fatal()
    assert error["C"] == sqlstate and says in error["M"], (name, error)
    record = _recorded(gw, "PROTOCOL" if after_login else "LOGIN", error["D"])
    assert record["outcome"]["action"] == "deny" and says in record["outcome"]["detail"]


def test_a_truncated_message_is_recorded_and_never_runs(gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("INSERT INTO scratch VALUES (77)")
    client = _Raw(gw)
    client.login()
    client.send(b"Q" + struct.pack("!i", 100) + b"DELETE FROM scratch")
    client.sock.close()

    def recorded() -> bool:
        return any(r["request"]["method"] == "PROTOCOL"
                   and "truncated" in (r["outcome"]["detail"] or "") for r in gw.records())

    stack.wait_until(recorded, 10, "the truncated message's record")
    assert upstream(upstream_db, "SELECT count(*) FROM scratch WHERE id = 77") == [(1,)]
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("DELETE FROM scratch WHERE id = 77")


def test_the_fronts_spans_are_the_documented_ones(gw: Gateway, otlp: Any) -> None:
    """Every attribute of the PostgreSQL front's spans is in docs/telemetry.md with the
    type it has (tests/test_telemetry_docs.py holds the HTTP front's), and the rows the
    page marks PostgreSQL's are all emitted."""
    with psycopg.connect(url(gw), autocommit=True) as conn:
        assert conn.execute("SELECT email FROM customers WHERE id = 1").fetchone()

    def postgres(span) -> bool:  # type: ignore[no-untyped-def]
        return bool(span.attributes.get("db.system") == "postgresql")

    # This test's own SELECT among them (one table: db.collection.name), not only the
    # spans earlier tests on this gateway left, which satisfy the rest.
    spans = otlp.wait_for(lambda all_: any(
        postgres(s) and "tollgate.postgres.upstream_auth" in s.attributes for s in all_)
        and any(s.attributes.get("tollgate.postgres.commands") for s in all_)
        and any(postgres(s) and s.attributes.get("db.collection.name") == "customers"
                for s in all_))
    check_front([s for s in spans if s.attributes.get("db.system") == "postgresql"],
                ("db.", "tollgate.postgres."))


def test_ctrl_c_reaching_another_replica_cancels_on_the_one_holding_the_session(
        make_gateway: GatewayFactory, pg_url: str, upstream_db: str) -> None:
    """Envoy may hand a CancelRequest's connection to any replica: the one that gets it
    finds the key in the shared store and hands it to the one holding the session."""
    gw = make_gateway(replicas=2, targets=[shop(upstream_db)], postgres={},
                      settings={"store": {"url": pg_url}})
    fronts = []
    for path in (gw.config_path, gw.config_path.with_name("tollgate-1.yaml")):
        front = config.load(path).postgres
        assert front is not None
        fronts.append(front.address_of(0)[1])
    client = _Raw(gw)
    process_id, secret = client.login()
    with psycopg.connect(pg_url) as store:
        ((holder,),) = store.execute("SELECT address FROM session_keys WHERE front = "
                                     "'postgres' AND id = %s", (process_id,)).fetchall()
    (other,) = [port for port in fronts if holder != f"127.0.0.1:{port}"]
    sql = "SELECT pg_sleep(62)"
    client.query(sql)
    stack.wait_until(_on_upstream(upstream_db, sql), 15, "the statement on its backend")
    with socket.create_connection(("127.0.0.1", other), timeout=10) as canceller:
        canceller.sendall(struct.pack("!ii", 16, 80877102) + struct.pack("!i", process_id)
                          + secret)
    answers = client.messages_until(b"Z")
    (error,) = [body for kind, body in answers if kind == b"E"]
    assert b"C57014\x00" in error  # query_canceled
    client.sock.close()


def test_a_hold_that_ends_first_leaves_an_approval_the_same_statement_then_uses(
        make_gateway: GatewayFactory, upstream_db: str) -> None:
    """The client waits no longer than approvals.max_hold_seconds: then it is refused,
    told where an approver decides; approved meanwhile, the same statement runs."""
    gw = make_gateway(targets=[shop(upstream_db)], postgres={},
                      settings={"approvals": {"max_hold_seconds": 1}})
    statement = "UPDATE scratch SET id = id"
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as held:
            conn.execute(statement)
        diag = held.value.diag
        assert "(pending)" in (diag.message_detail or "")
        assert "run the statement again once it is approved" in (diag.message_hint or "")
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        (approval,) = [a for a in answer["approvals"] if a["request"]["body"] == statement]
        status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA,
                        {"reason": "a no-op update"})
        assert status == 200
        conn.execute(statement)  # runs: no refusal
    _, shown = api(gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert shown["status"] == "used"


@pytest.mark.parametrize("encoding", ["SJIS", "BIG5", "GBK"])
def test_a_client_only_encoding_is_refused_saying_which_are_read(
        gw: Gateway, encoding: str) -> None:
    """In SJIS, `ā\\'` (UTF-8 C4 81 5C 27) is a katakana, a two-byte character eating
    the backslash, and a quote that ends the string: the database would read a
    statement the policy did not. The encodings a database may have are read (LATIN9,
    EUC_JP: tests/e2e/test_postgres_encodings_e2e.py); the client-only ones refused."""
    done = subprocess.run(
        [shutil.which("psql") or "psql", "-X", "-A", "-t", url(gw), "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGCLIENTENCODING": encoding})
    assert done.returncode != 0
    assert (f"client_encoding '{encoding}' is not read by tollgate: a client-only "
            "encoding whose two-byte characters can end in an ASCII byte") in done.stderr
    assert "It reads UTF8, LATIN1, LATIN2" in done.stderr


def test_sql_ascii_and_utf8_clients_read_utf8_rows(gw: Gateway) -> None:
    """psql in a C locale asks for SQL_ASCII: taken, and the database is asked for UTF8
    (the rows as tollgate reads and masks them)."""
    for encoding in ("SQL_ASCII", "UTF8"):
        done = subprocess.run(
            [shutil.which("psql") or "psql", "-X", "-A", "-t", url(gw), "-c",
             "SHOW client_encoding", "-c", "SELECT ssn FROM customers WHERE id = 1"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "PGCLIENTENCODING": encoding})
        assert done.returncode == 0, done.stderr
        shown, ssn = done.stdout.split()
        assert shown == "UTF8" and "078-05-1120" not in ssn


def test_a_pipeline_with_a_refused_statement_keeps_what_came_before(
        gw: Gateway, upstream_db: str) -> None:
    """psycopg's pipeline mode sends Parse/Bind/Execute for several statements before
    one Sync: the refused one fails where it stands, the statements before it ran,
    those after it are skipped (as PostgreSQL skips to the Sync after an error), and
    the connection is usable afterwards."""
    with psycopg.connect(url(gw)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="DROP"), \
                conn.pipeline():
            first = conn.execute("SELECT count(*) FROM customers")
            conn.execute("INSERT INTO scratch VALUES (501)")
            conn.execute("DROP TABLE customers")
            conn.execute("INSERT INTO scratch VALUES (502)")
        assert first.fetchone() == (2,)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2,)
    # In one transaction (psycopg's default): the failed pipeline rolled back entirely.
    assert upstream(upstream_db, "SELECT count(*) FROM scratch WHERE id > 500") == [(0,)]
