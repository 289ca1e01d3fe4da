"""Writes judged by what the database measured, end to end: psql and asyncpg (simple
Query), psycopg and asyncpg (the extended protocol: Parse, Bind, Execute, Sync; psycopg's
pipelines) through a real Envoy and PostgreSQL front to the machine's PostgreSQL. The
statement's text and the planner see a small write; the database's state (a cascade, a
trigger, a view, statistics that lie) makes it large. The front runs it in a savepoint
or a transaction of its own, reads `pg_stat_xact_user_tables`, and the default pack
holds it on the effect: rolled back, the data intact. Holds wait 1 s here.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from extproc.postgres import messages as pg
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, api, approve_pending
from tests.e2e.test_postgres_e2e import _Raw, _startup, shop, upstream, url
from tests.support.databases import throwaway_database
from tests.support.gateway import Gateway, module_gateway

# The tables a write no text names empties (reach.py), each its own.
REACHED = ("outbox", "notes", "scratch", "vault", "ledger_copy", "swept", "outbox_copy",
           "viewed", "policed")
SETUP = (
    # orders 1..100; items: four per order 1, cascading from it.
    "CREATE TABLE orders (id int PRIMARY KEY, note text)",
    "INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 100) g",
    "CREATE TABLE items (id int PRIMARY KEY, order_id int REFERENCES orders ON DELETE CASCADE)",
    "INSERT INTO items SELECT g, 1 FROM generate_series(1, 4) g",
    # A view whose constant column matches every row.
    "CREATE TABLE secrets (id int PRIMARY KEY, v text)",
    "INSERT INTO secrets SELECT g, 's' || g FROM generate_series(1, 4) g",
    "CREATE VIEW tagged AS SELECT id, v, 'k'::text AS k FROM secrets",
    "CREATE VIEW graded AS SELECT id, v, CASE WHEN id > 0 THEN 'a' ELSE 'b' END AS g "
    "FROM secrets",
    # A trigger that empties another table.
    "CREATE TABLE events (id int PRIMARY KEY)",
    "INSERT INTO events SELECT g FROM generate_series(1, 100) g",
    "CREATE TABLE audit (id int PRIMARY KEY)",
    "INSERT INTO audit SELECT g FROM generate_series(1, 4) g",
    "CREATE FUNCTION wipe() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN DELETE FROM audit; RETURN OLD; END $$",
    "CREATE TRIGGER wipe AFTER DELETE ON events FOR EACH ROW EXECUTE FUNCTION wipe()",
    "ANALYZE",
    # Statistics of ten rows, where there are twenty thousand (never analysed since).
    "CREATE TABLE ledger (n int, kind text) WITH (autovacuum_enabled = false)",
    "INSERT INTO ledger SELECT g, 'a' FROM generate_series(1, 10) g",
    "ANALYZE ledger",
    "INSERT INTO ledger SELECT g, 'k' FROM generate_series(11, 20000) g",
    "CREATE TABLE small (id int PRIMARY KEY, name text)",
    "INSERT INTO small SELECT g, 'n' || g FROM generate_series(1, 100) g",
    # The extended protocol's: carts 1..3 have four lines each, carts 4..9 one; deleting
    # one of the first cascades to 4 of 18 lines (over 20%).
    "CREATE TABLE carts (id int PRIMARY KEY, note text)",
    "INSERT INTO carts SELECT g, 'c' || g FROM generate_series(1, 100) g",
    "CREATE TABLE lines (id int PRIMARY KEY, cart_id int REFERENCES carts ON DELETE CASCADE)",
    "INSERT INTO lines SELECT g, (g - 1) / 4 + 1 FROM generate_series(1, 12) g",
    "INSERT INTO lines SELECT g, g - 9 FROM generate_series(13, 18) g",
    "ANALYZE carts, lines",
    # Writes no text names (reach.py): each empties a table of four rows of its own.
    *(f"CREATE TABLE {t} (id int PRIMARY KEY)" for t in REACHED),
    *(f"INSERT INTO {t} SELECT g FROM generate_series(1, 4) g" for t in REACHED),
    "CREATE TABLE inbox (id int PRIMARY KEY)",
    "CREATE FUNCTION clear_outbox() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN DELETE FROM outbox; RETURN NEW; END $$",
    "CREATE TRIGGER clear_outbox AFTER INSERT ON inbox FOR EACH ROW "
    "EXECUTE FUNCTION clear_outbox()",
    "CREATE TABLE drafts (id int PRIMARY KEY)",
    "CREATE RULE clear_notes AS ON INSERT TO drafts DO ALSO DELETE FROM notes",
    "CREATE FUNCTION purge() RETURNS int LANGUAGE sql AS "
    "$$ DELETE FROM scratch; SELECT 1 $$",
    "CREATE FUNCTION \"Purge_Quietly\"() RETURNS int LANGUAGE sql SECURITY DEFINER AS "
    "$$ DELETE FROM vault; SELECT 1 $$",
    "CREATE FUNCTION matches(n int) RETURNS bool LANGUAGE plpgsql AS "
    "$$ BEGIN DELETE FROM ledger_copy; RETURN n = 1; END $$",
    "CREATE PROCEDURE sweep() LANGUAGE sql AS $$ DELETE FROM swept $$",
    # Code that runs as a relation is read: a view's (beneath another view), a policy's.
    "CREATE FUNCTION seen(n int) RETURNS bool LANGUAGE plpgsql AS "
    "$$ BEGIN DELETE FROM viewed; RETURN n > 0; END $$",
    "CREATE VIEW visible AS SELECT id FROM small WHERE seen(id)",
    "CREATE VIEW visible_too AS SELECT id FROM visible",
    "CREATE FUNCTION allowed(n int) RETURNS bool LANGUAGE plpgsql AS "
    "$$ BEGIN DELETE FROM policed; RETURN true; END $$",
    "CREATE TABLE fenced (id int PRIMARY KEY)",
    "INSERT INTO fenced SELECT g FROM generate_series(1, 4) g",
    "ALTER TABLE fenced ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY fence ON fenced USING (allowed(id))",
    # The pipeline tests' own, apart from the writes the module's other tests sum to
    # (blast.split).
    "CREATE TABLE shelves (id int PRIMARY KEY, note text)",
    "INSERT INTO shelves SELECT g, 's' || g FROM generate_series(1, 100) g",
    # Emptied one row at a time (blast.split).
    "CREATE TABLE trickle (id int PRIMARY KEY)",
    "INSERT INTO trickle SELECT g FROM generate_series(1, 10) g",
)


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with throwaway_database("tollgate_effect") as database:
        with psycopg.connect(database, autocommit=True) as conn:
            for sql in SETUP:
                conn.execute(sql)
        yield database


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "effect", targets=[shop(upstream_db)],
                        postgres={}, settings={"approvals": {"max_hold_seconds": 1}}
                        ) as running:
        yield running


def psql(gw: Gateway, *sql: str) -> subprocess.CompletedProcess[str]:
    command = [shutil.which("psql") or "psql", "-X", "-A", "-t", url(gw)]
    for text in sql:
        command += ["-c", text]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def count(upstream_db: str, table: str) -> int:
    ((n,),) = upstream(upstream_db, f"SELECT count(*) FROM {table}")
    return int(n)


@pytest.mark.parametrize(("sql", "reason", "table", "rows"), [
    ("DELETE FROM orders WHERE id = 1",
     "would delete 4 rows of public.items (through a cascade, trigger or view from "
     "public.orders)", "items", 4),
    ("DELETE FROM events WHERE id = 7",
     "would delete 4 rows of public.audit (through a cascade, trigger or view from "
     "public.events)", "audit", 4),
    ("DELETE FROM tagged WHERE k = 'k'",
     "would delete 4 rows of public.secrets (a table of 4 rows)", "secrets", 4),
    ("DELETE FROM graded WHERE g = 'a'",
     "would delete 4 rows of public.secrets (a table of 4 rows)", "secrets", 4),
    ("UPDATE tagged SET v = 'gone' WHERE k = 'k'",
     "would update 4 rows of public.secrets (a table of 4 rows)", "secrets", 4),
    ("DELETE FROM ledger WHERE kind = 'k'",
     "would delete 19990 rows of public.ledger (a table of 20000 rows)", "ledger", 20000),
])
def test_a_small_looking_write_is_held_on_what_it_did_and_rolled_back(
        gw: Gateway, upstream_db: str, sql: str, reason: str, table: str, rows: int) -> None:
    done = psql(gw, sql)
    assert reason in done.stderr, done.stderr
    assert "blast.effect" in done.stderr
    assert count(upstream_db, table) == rows
    _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
    (approval,) = [a for a in answer["approvals"] if a["request"]["body"] == sql]
    assert reason in approval["reasons"]
    assert upstream(upstream_db, "SELECT count(*) FROM secrets WHERE v = 'gone'") == [(0,)]


def test_a_small_write_passes_with_its_answers_and_status(gw: Gateway,
                                                          upstream_db: str) -> None:
    done = psql(gw, "INSERT INTO small VALUES (1001, 'x')",
                "DELETE FROM small WHERE id = 1001 RETURNING id, name")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["INSERT 0 1", "1001|x", "DELETE 1"]
    assert count(upstream_db, "small") == 100


async def test_transaction_status_and_the_clients_savepoints_stay_the_clients(
        gw: Gateway, upstream_db: str) -> None:
    conn = await asyncpg.connect(url(gw), ssl="require")
    try:
        assert await conn.execute("UPDATE small SET name = 'a' WHERE id = 1") == "UPDATE 1"
        assert not conn.is_in_transaction()
        assert upstream(upstream_db, "SELECT name FROM small WHERE id = 1") == [("a",)]
        await conn.execute("BEGIN")
        await conn.execute("SAVEPOINT mine")
        assert await conn.execute("UPDATE small SET name = 'b' WHERE id = 2") == "UPDATE 1"
        assert conn.is_in_transaction()
        await conn.execute("ROLLBACK TO SAVEPOINT mine")
        assert await conn.execute("UPDATE small SET name = 'c' WHERE id = 3") == "UPDATE 1"
        await conn.execute("COMMIT")
        assert not conn.is_in_transaction()
        # Held inside the client's transaction: refused, the transaction failed as a
        # refusal leaves it, nothing of the cascade done.
        await conn.execute("BEGIN")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"public\.items"):
            await conn.execute("DELETE FROM orders WHERE id = 1")
        await conn.execute("ROLLBACK")
        # A write that fails runs as it would: the database's error, the status kept.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("UPDATE small SET id = 5 WHERE id = 4")
        assert not conn.is_in_transaction()
    finally:
        await conn.close()
    assert upstream(upstream_db, "SELECT id, name FROM small WHERE id IN (1, 2, 3) "
                                 "ORDER BY id") == [(1, "a"), (2, "n2"), (3, "c")]
    assert count(upstream_db, "items") == 4


def approve(gw: Gateway, sql: str) -> None:
    """`sql` held on its effect, and its approval given."""
    assert "blast.effect" in psql(gw, sql).stderr
    approve_pending(gw, sql)


def test_an_approved_write_runs_once_and_one_that_grew_is_refused(
        gw: Gateway, upstream_db: str) -> None:
    sql = "DELETE FROM orders WHERE id = 1"
    approve(gw, sql)
    # The cascade grows after the approval: the retry changes more than was approved.
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("INSERT INTO items VALUES (5, 1)")
    done = psql(gw, sql)
    assert "it deleted 5 rows of public.items where the approved run deleted 4" in (
        done.stderr), done.stderr
    assert count(upstream_db, "items") == 5
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("DELETE FROM items WHERE id = 5")
    # Approved as it is, it runs.
    approve(gw, sql)
    done = psql(gw, sql)
    assert done.returncode == 0 and done.stdout.strip() == "DELETE 1", done.stderr
    assert count(upstream_db, "items") == 0
    # Its approver sees what the approved statement did.
    _, listed = api(gw, "GET", "/approvals?status=used", DBA)
    newest = next(a for a in listed["approvals"] if a["request"]["body"] == sql)

    def answered() -> Any:
        return api(gw, "GET", f"/approvals/{newest['id']}", DBA)[1]["wait"]["answered"]

    # The retry's record is written a moment after its answer.
    stack.wait_until(lambda: answered()["detail"] == "DELETE 1", 10, "the retry's record")
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("INSERT INTO orders VALUES (1, 'o1')")
        admin.execute("INSERT INTO items SELECT g, 1 FROM generate_series(1, 4) g")


def test_what_cannot_be_measured_waits_saying_why(gw: Gateway, upstream_db: str) -> None:
    done = psql(gw, "BEGIN; DELETE FROM small WHERE id = 50; COMMIT")
    assert "blast.effect_unknown" in done.stderr
    assert "cannot be measured: it runs TRANSACTION" in done.stderr
    assert count(upstream_db, "small") == 100


def test_the_record_carries_the_effect_it_was_held_on(gw: Gateway) -> None:
    sql = "DELETE FROM events WHERE id = 9"
    psql(gw, sql)
    text = str(gw.record_of(sql))
    assert "blast.effect" in text and "would delete 4 rows of public.audit" in text


@pytest.mark.parametrize(("sql", "table", "why"), [
    ("INSERT INTO inbox VALUES (1)", "outbox", "has a trigger"),
    ("INSERT INTO drafts VALUES (1)", "notes", "has a rule"),
    ("SELECT purge()", "scratch", "it calls public.purge"),
    ('SELECT "Purge_Quietly"()', "vault", "it calls public.Purge_Quietly"),
    ("SELECT id FROM small WHERE matches(id)", "ledger_copy", "it calls public.matches"),
    ("SELECT count(*) FROM visible", "viewed", 'reading "visible" runs public.seen'),
    ("SELECT * FROM visible_too LIMIT 1", "viewed", 'reading "visible_too" runs public.seen'),
])
def test_a_write_no_text_names_is_measured_and_held_on_what_it_did(
        gw: Gateway, upstream_db: str, sql: str, table: str, why: str) -> None:
    """A trigger or a rule on the table an INSERT fills, a function a SELECT calls
    (SECURITY DEFINER, inside a WHERE): measured as the write it is, held, undone."""
    done = psql(gw, sql)
    assert f"would delete 4 rows of public.{table}" in done.stderr, done.stderr
    assert "blast.effect" in done.stderr
    assert count(upstream_db, table) == 4
    deny(gw, sql)
    assert why in reaches(gw, sql)


def test_a_read_through_a_row_security_policy_is_measured(gw: Gateway) -> None:
    """A policy's expression runs as its table is read (for roles it applies to: the
    gateway's account here owns the table, which the policy spares, so nothing is
    deleted): the read is measured, saying why."""
    sql = "SELECT count(*) FROM fenced"
    assert psql(gw, sql).stdout == "4\n"
    assert 'reading "fenced" runs public.allowed' in reaches(gw, sql)


def reaches(gw: Gateway, sql: str) -> str:
    """Why the front measured `sql` though its text writes nothing (its span says)."""
    return str(gw.otlp.span_of(gw.record_of(sql)).attributes.get("tollgate.sql.reaches", ""))


def test_a_copy_or_call_that_runs_the_databases_code_waits_saying_why(
        gw: Gateway, upstream_db: str) -> None:
    """COPY ... FROM into a table with a trigger, and CALL, cannot be measured: held."""
    copied = subprocess.run([shutil.which("psql") or "psql", "-X", url(gw), "-c",
                             "COPY inbox FROM STDIN"], input="7\n", capture_output=True,
                            text=True, timeout=30, check=False)
    assert "blast.effect_unknown" in copied.stderr, copied.stderr
    assert "COPY ... FROM takes its rows from the client" in copied.stderr
    called = psql(gw, "CALL sweep()")
    assert "blast.effect_unknown" in called.stderr, called.stderr
    assert count(upstream_db, "outbox") == count(upstream_db, "swept") == 4
    assert upstream(upstream_db, "SELECT count(*) FROM inbox") == [(0,)]
    deny(gw, "COPY inbox FROM STDIN", "CALL sweep()")


async def test_the_extended_protocol_measures_a_write_no_text_names(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege,
            match=re.escape("would delete 4 rows of public.outbox")):
        conn.execute("INSERT INTO inbox VALUES (%s)", (2,))
    aconn = await asyncpg.connect(url(gw), ssl="require")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError,
                           match=re.escape("would delete 4 rows of public.scratch")):
            await aconn.fetchval("SELECT purge() + $1", 0)
    finally:
        await aconn.close()
    assert count(upstream_db, "outbox") == count(upstream_db, "scratch") == 4
    deny(gw, "INSERT INTO inbox VALUES ($1)", "SELECT purge() + $1")


def test_reads_and_inserts_that_reach_no_code_pass_unmeasured(gw: Gateway) -> None:
    sql = "SELECT count(*), max(id) FROM small WHERE id > 99 AND lower(name) = name"
    done = psql(gw, sql, "INSERT INTO outbox_copy VALUES (5)",
                "DELETE FROM outbox_copy WHERE id = 5")
    assert done.stdout.splitlines() == ["1|100", "INSERT 0 1", "DELETE 1"], done.stderr
    for text in (sql, "INSERT INTO outbox_copy VALUES (5)"):
        assert [d["phase"] for d in gw.record_of(text)["decisions"]] == ["request"]
        assert reaches(gw, text) == ""


def test_a_table_emptied_one_row_at_a_time_is_held_on_the_hours_sum(
        gw: Gateway, upstream_db: str) -> None:
    """Each DELETE of one row of ten is within the limits alone (one row: the floor);
    the third makes 3 of 10 this identity deleted within the hour, over 20%."""
    for n in (1, 2):
        done = psql(gw, f"DELETE FROM trickle WHERE id = {n}")
        assert done.stdout == "DELETE 1\n", done.stderr
    third = "DELETE FROM trickle WHERE id = 3"
    done = psql(gw, third)
    assert "blast.split" in done.stderr, done.stderr
    assert ("would delete 1 rows of public.trickle, after 2 rows of it this identity "
            "deleted within the hour (a table of about 10 rows)") in done.stderr
    assert count(upstream_db, "trickle") == 8
    deny(gw, third)


# -- the extended protocol ----------------------------------------------------------------

CASCADE = ("would delete 4 rows of public.lines (through a cascade, trigger or view from "
           "public.carts)")


def lines_of(upstream_db: str, cart: int) -> int:
    ((n,),) = upstream(upstream_db, f"SELECT count(*) FROM lines WHERE cart_id = {cart}")
    return int(n)


def note_of(upstream_db: str, cart: int) -> str:
    ((note,),) = upstream(upstream_db, f"SELECT note FROM carts WHERE id = {cart}")
    return str(note)


def executions(gw: Gateway, sql: str, count: int) -> list[dict[str, Any]]:
    """The records of `count` Executes of `sql` (waited for: records are written apart)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records() if r["request"]["method"] == "EXECUTE"
                    and (r["request"]["body"] or {}).get("value") == sql]
        return len(found) >= count

    stack.wait_until(written, 10, f"{count} records of {sql}")
    return found


def deny(gw: Gateway, *sql: str) -> None:
    """The holds of `sql` denied (an identity may have 10 pending: the module's holds
    would reach it)."""
    _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
    for approval in answer["approvals"]:
        if approval["request"]["body"] in sql:
            status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA,
                            {"reason": "a test's hold"})
            assert status == 200


def measured(record: dict[str, Any]) -> bool:
    """An Execute decided again on its measured effect: its Parse's decision, then the
    effect's."""
    return [d["phase"] for d in record["decisions"]] == ["request", "request"]


async def test_an_extended_cascade_is_held_on_what_it_did_and_rolled_back(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=re.escape(CASCADE)
                           ) as refused:
            conn.execute("DELETE FROM carts WHERE id = %s", (1,))
        assert "blast.effect" in str(refused.value.diag.message_detail)
        # The session goes on, idle, the cascade undone.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM lines WHERE cart_id = %s",
                            (1,)).fetchone() == (4,)
    aconn = await asyncpg.connect(url(gw), ssl="require")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=re.escape(CASCADE)):
            await aconn.execute("DELETE FROM carts WHERE id IN ($1)", 2)
        assert not aconn.is_in_transaction()
        assert await aconn.fetchval("SELECT count(*) FROM lines WHERE cart_id = $1", 2) == 4
    finally:
        await aconn.close()
    assert lines_of(upstream_db, 1) == lines_of(upstream_db, 2) == 4
    deny(gw, "DELETE FROM carts WHERE id = $1", "DELETE FROM carts WHERE id IN ($1)")


async def test_an_extended_write_within_the_limits_stands_with_its_answers(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        deleted = conn.execute("DELETE FROM carts WHERE id = %s RETURNING id, note", (4,))
        assert deleted.fetchall() == [(4, "c4")] and deleted.rowcount == 1
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    aconn = await asyncpg.connect(url(gw), ssl="require")
    try:
        sql = "UPDATE carts SET note = $1 WHERE id = $2 RETURNING note"
        # Prepared once (asyncpg's statement cache), executed twice: each measured.
        assert [r["note"] for r in await aconn.fetch(sql, "x", 5)] == ["x"]
        assert await aconn.fetchval(sql, "y", 5) == "y"
        # Several Executes in one batch (asyncpg's executemany): each measured.
        await aconn.executemany("UPDATE carts SET note = $1 WHERE id = $2",
                                [("m", 10), ("m", 11), ("m", 12)])
        # A write that fails fails as it would: the database's error, the status kept.
        with pytest.raises(asyncpg.UniqueViolationError):
            await aconn.execute("UPDATE carts SET id = $1 WHERE id = $2", 6, 7)
        assert not aconn.is_in_transaction()
    finally:
        await aconn.close()
    assert lines_of(upstream_db, 4) == 0 and note_of(upstream_db, 5) == "y"
    assert upstream(upstream_db, "SELECT count(*) FROM carts WHERE note = 'm'") == [(3,)]
    assert all(measured(r) for r in executions(gw, sql, 2))
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("INSERT INTO carts VALUES (4, 'c4')")
        admin.execute("INSERT INTO lines VALUES (13, 4)")


def test_an_extended_write_in_the_clients_transaction_is_the_clients(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw)) as conn:  # psycopg's BEGIN: the client's transaction
        assert conn.execute("UPDATE carts SET note = %s WHERE id = %s",
                            ("t", 6)).rowcount == 1
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SELECT note FROM carts WHERE id = 6").fetchone() == ("t",)
        # Held inside it: refused, the transaction failed as a refusal leaves it.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=re.escape(CASCADE)):
            conn.execute("DELETE FROM carts WHERE id = %s", (3,))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.rollback()
        # The client's ROLLBACK undoes what it let stand.
        assert conn.execute("SELECT note FROM carts WHERE id = 6").fetchone() == ("c6",)
    assert note_of(upstream_db, 6) == "c6" and lines_of(upstream_db, 3) == 4
    deny(gw, "DELETE FROM carts WHERE id = $1")


def test_a_pipelines_measured_write_ends_with_its_batch(gw: Gateway,
                                                        upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        # A later statement of the batch fails: the write goes with the batch's
        # transaction, as PostgreSQL's implicit one would take it.
        with pytest.raises(psycopg.errors.DivisionByZero), conn.pipeline():
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("p", 8))
            conn.execute("SELECT 1 / %s", (0,))
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("skipped", 9))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT note FROM carts WHERE id = 8").fetchone() == ("c8",)
        # An earlier statement fails: the write, and what follows, skipped to the Sync.
        with pytest.raises(psycopg.errors.DivisionByZero), conn.pipeline():
            conn.execute("SELECT 1 / %s", (0,))
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("p", 8))
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("skipped", 9))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # The measured write fails: what follows it in the batch is skipped, as the
        # database skips to the Sync.
        with pytest.raises(psycopg.errors.UniqueViolation), conn.pipeline():
            conn.execute("UPDATE carts SET id = %s WHERE id = %s", (6, 7))
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("skipped", 9))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # Measured after a read in the same batch, it stands, committed at the Sync.
        with conn.pipeline():
            counted = conn.execute("SELECT count(*) FROM carts")
            updated = conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("q", 8))
            conn.execute("UPDATE carts SET note = %s WHERE id = %s", ("q", 9))
        assert counted.fetchone() == (100,) and updated.rowcount == 1
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # The cascade in a pipeline: held on what it did (the planner not asked, the
        # table the statement writes is not named: not said to be a cascade's).
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match=re.escape("would delete 4 rows of public.lines (a table")
                           ), conn.pipeline():
            conn.execute("SELECT 1")
            conn.execute("DELETE FROM carts WHERE %s = id", (1,))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert note_of(upstream_db, 8) == note_of(upstream_db, 9) == "q"
    assert lines_of(upstream_db, 1) == 4
    deny(gw, "DELETE FROM carts WHERE $1 = id")


async def test_an_approved_extended_write_runs_once_and_one_that_grew_is_refused(
        gw: Gateway, upstream_db: str) -> None:
    sql = "DELETE FROM carts WHERE id = $1::int"
    conn = await asyncpg.connect(url(gw), ssl="require")

    async def approve() -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=re.escape(CASCADE)):
            await conn.execute(sql, 1)
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        (approval,) = [a for a in answer["approvals"] if a["request"]["body"] == sql]
        status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA, {})
        assert status == 200

    try:
        await approve()
        # The cascade grows after the approval: the retry changes more than was approved.
        with psycopg.connect(upstream_db, autocommit=True) as admin:
            admin.execute("INSERT INTO lines VALUES (100, 1)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError,
                           match=r"it deleted 5 rows of public\.lines where the approved run "
                                 "deleted 4"):
            await conn.execute(sql, 1)
        assert not conn.is_in_transaction()
        assert lines_of(upstream_db, 1) == 5
        with psycopg.connect(upstream_db, autocommit=True) as admin:
            admin.execute("DELETE FROM lines WHERE id = 100")
        # Approved as it is, it runs (bound again, after its first run rolled back).
        await approve()
        assert await conn.execute(sql, 1) == "DELETE 1"
        assert not conn.is_in_transaction()
    finally:
        await conn.close()
    assert lines_of(upstream_db, 1) == 0
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("INSERT INTO carts VALUES (1, 'c1')")
        admin.execute("INSERT INTO lines SELECT g, 1 FROM generate_series(1, 4) g")


# -- the front's own statements leave nothing in the session ------------------------------

# What a session holds by name, as the client can list it: its prepared statements and
# its portals (a simple Query's own portal is not listed).
NAMED = ("SELECT name, statement FROM pg_catalog.pg_prepared_statements UNION ALL "
         "SELECT name, statement FROM pg_catalog.pg_cursors ORDER BY 1, 2")


def named(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """The session's named statements and portals (read by the simple protocol)."""
    return [(str(n), str(s)) for n, s in conn.execute(NAMED, prepare=False).fetchall()]


def the_clients(conn: psycopg.Connection[Any]) -> list[str]:
    """The texts of what the session holds by name, each held under the name the gateway
    gives a client's statement (the front's own are named otherwise)."""
    held = named(conn)
    assert all(re.fullmatch(r"tollgate_s\d+", name) for name, _ in held), held
    return [text for _, text in held]


@pytest.mark.parametrize("autocommit", [True, False], ids=["idle", "in-transaction"])
def test_a_measured_write_leaves_only_the_clients_statements_in_the_session(
        gw: Gateway, upstream_db: str, autocommit: bool) -> None:
    """The front measures each write with statements of its own (its readings, its
    savepoint, its transaction's COMMIT) and the planner's with one of its own: none of
    them is left for the client to see, whatever came of the write. (psycopg's ROLLBACK
    deallocates its statements: it prepares its own again.)"""
    update = "UPDATE carts SET note = %s WHERE id = %s"
    mine = ["UPDATE carts SET note = $1 WHERE id = $2"]
    with psycopg.connect(url(gw), autocommit=autocommit) as conn:
        # The simple protocol, then the extended one's unnamed statement.
        conn.execute("UPDATE carts SET note = 'h' WHERE id = 20", prepare=False)
        assert the_clients(conn) == []
        conn.execute(update, ("h", 21), prepare=False)
        assert the_clients(conn) == []
        # The client's own prepared statement.
        conn.execute(update, ("h", 22), prepare=True)
        assert the_clients(conn) == mine
        # Refused on its effect, rolled back to the savepoint; then failed in the
        # database: each followed by the client's statement again.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=re.escape(CASCADE)):
            conn.execute("DELETE FROM carts WHERE id = %s", (3,))
        if not autocommit:
            conn.rollback()
        assert the_clients(conn) == ([] if not autocommit else mine)
        conn.execute(update, ("h", 23), prepare=True)
        assert the_clients(conn) == mine
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE carts SET id = %s WHERE id = %s", (6, 7))
        if not autocommit:
            conn.rollback()
        conn.execute(update, ("h", 23), prepare=True)
        assert the_clients(conn) == mine
    assert lines_of(upstream_db, 3) == 4 and note_of(upstream_db, 23) == "h"
    deny(gw, "DELETE FROM carts WHERE id = $1")


def test_a_commit_failing_at_the_batchs_end_leaves_nothing_of_the_fronts(
        gw: Gateway, upstream_db: str) -> None:
    """The transaction the front opened for a measured write ends at the client's Sync
    with the front's COMMIT; a deferred constraint fails it, skipping the closes after
    it: the front closes its statement then."""
    with psycopg.connect(upstream_db, autocommit=True) as admin:
        admin.execute("CREATE TABLE pairs (id int PRIMARY KEY, other int REFERENCES pairs "
                      "DEFERRABLE INITIALLY DEFERRED)")
        admin.execute("INSERT INTO pairs VALUES (1, 1)")
    try:
        with psycopg.connect(url(gw), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("UPDATE pairs SET other = %s WHERE id = %s", (2, 1))
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert the_clients(conn) == []
        assert upstream(upstream_db, "SELECT other FROM pairs") == [(1,)]
    finally:
        with psycopg.connect(upstream_db, autocommit=True) as admin:
            admin.execute("DROP TABLE pairs")


@pytest.mark.parametrize("write", [
    "UPDATE carts SET note = 's' WHERE id = 26",  # the simple protocol
    "UPDATE carts SET note = %s WHERE id = 26",  # the extended one, the planner asked
])
@pytest.mark.parametrize("savepoint", ["tollgate_effect", "tollgate_estimate"])
def test_the_fronts_savepoints_are_gone_once_its_write_stands(
        gw: Gateway, upstream_db: str, write: str, savepoint: str) -> None:
    """In the client's transaction, the savepoints the front measured and estimated the
    write in are released with it: the database holds none of that name after."""
    with psycopg.connect(url(gw)) as conn:
        assert conn.execute(write, ("s",) if "%s" in write else None).rowcount == 1
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            conn.execute(f"RELEASE SAVEPOINT {savepoint}")
        conn.rollback()
    assert note_of(upstream_db, 26) == "c26"


class _Direct(_Raw):
    """A client of raw protocol bytes straight to the database, as the gateway's own
    role (no TLS, no token)."""

    def __init__(self, database: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", 5432), timeout=10)
        self.send(_startup(3 << 16, user="postgres", database=database))
        self.messages_until(b"Z")


def _pipelined(client: _Raw, begin: bool, shelf: int) -> list[tuple[bytes, bytes]]:
    """A measured write and what a pipeline sends after it in its batch (a Close of the
    write's statement, a listing of what the session holds by name), every answer up to
    the batch's ReadyForQuery; `begin`: inside the client's transaction."""
    if begin:
        client.query("BEGIN")
        client.messages_until(b"Z")
    write = f"UPDATE shelves SET note = 'r' WHERE id = {shelf}"
    client.send(b"".join((
        pg.encode_parse("w", write), pg.encode_bind(pg.Bind("", "w", (), (), ())),
        pg.encode_execute("", 0), pg.encode_close(b"S", "w"),
        pg.encode_parse("", NAMED), pg.encode_bind(pg.Bind("", "", (), (), ())),
        pg.encode_describe(b"P", ""), pg.encode_execute("", 0), pg.encode(b"S", b""))))
    answers = client.messages_until(b"Z")
    if begin:
        client.query("COMMIT")
        client.messages_until(b"Z")
    return answers


@pytest.mark.parametrize("begin", [False, True], ids=["idle", "in-transaction"])
def test_a_pipeline_after_a_measured_write_gets_its_own_answers(
        gw: Gateway, upstream_db: str, begin: bool) -> None:
    """The front's closes of its own statement are answered to it alone: every message
    the client pipelined after the measured write gets the answer the database gives it
    directly, and the session lists nothing of the front's."""
    client = _Raw(gw)
    client.login()
    try:
        through = _pipelined(client, begin, 24)
    finally:
        client.sock.close()
    direct = _Direct(upstream_db.rsplit("/", 1)[1])
    try:
        straight = _pipelined(direct, begin, 25)
    finally:
        direct.sock.close()
    # The listing's one row is its own unnamed portal, as the database lists it.
    assert [kind for kind, _ in through] == [
        b"1", b"2", b"C", b"3", b"1", b"2", b"T", b"D", b"C", b"Z"], through
    assert through == straight
    assert upstream(upstream_db, "SELECT note FROM shelves WHERE id IN (24, 25)") == [
        ("r",), ("r",)]
