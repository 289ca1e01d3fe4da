"""The comparison of a server's statement log with the record (tests/support/
statement_log.py), on logs and records written here: what it holds as the same
statement, what it attributes to the fronts, and what it reports, without a database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from extproc.postgres import effect, estimate
from tests.support import statement_log
from tests.support.statement_log import Difference, PgLogged, entries, my_compare, pg_compare

WRITE = {"kind": "update", "effects": ["write"]}


def record(method: str, text: str | None, action: str = "allow",
           statements: tuple[dict[str, Any], ...] = (), **body: Any) -> dict[str, Any]:
    """A record as the gateway writes one, with what the comparison reads of it."""
    value = None if text is None else {"value": text, "truncated": False, **body}
    if body.get("encoding") == "binary":
        value = {"sha256": body["sha256"], "encoding": "binary", "truncated": False}
    return {"request": {"method": method, "body": value, "path": "/shop"},
            "outcome": {"action": action, "detail": ""},
            "decisions": [{"action": action}],
            "meaning": {"sql": {"statements": list(statements)}}}


def session(*texts: str, name: str = "s1") -> list[PgLogged]:
    return [PgLogged(name, "", text) for text in texts]


def test_a_statement_ran_more_often_than_allowed_is_reported_with_both_counts() -> None:
    found = pg_compare(session("SELECT 1", "SELECT 1", "SELECT 2", ""),
                       [record("QUERY", "SELECT 1"), record("QUERY", "SELECT 2"),
                        record("QUERY", None), record("CONNECT", None)])
    assert not found.holds
    assert found.unrecorded == (Difference("'SELECT 1'", 2, 1),)
    assert "logged 2, recorded allowed 1: 'SELECT 1'" in found.explain()
    assert pg_compare(session("SELECT 1"), [record("QUERY", "SELECT 1")]).holds


def test_what_the_record_only_refused_and_the_server_ran_is_reported() -> None:
    found = pg_compare(session("DROP TABLE t"),
                       [record("PARSE", "DROP TABLE t", "deny")])
    assert found.refused == (Difference("'DROP TABLE t'", 1, 0),)
    assert found.unrecorded == (Difference("'DROP TABLE t'", 1, 0),)


def test_texts_kept_by_hash_or_masked_are_compared_as_the_record_keeps_them() -> None:
    binary = "SELECT '\udcff'"  # a byte that is no UTF-8, as surrogateescape reads it
    digest = hashlib.sha256(binary.encode("utf-8", "surrogateescape")).hexdigest()
    cut = "SELECT '" + "a" * 100 + "'"
    found = pg_compare(session(binary, cut, "SELECT 'fe80::1'"), [
        record("QUERY", "", encoding="binary", sha256=digest),
        {**record("QUERY", cut[:20]), "request": {"method": "QUERY", "path": "/", "body": {
            "value": cut[:20], "truncated": True,
            "sha256": hashlib.sha256(cut.encode()).hexdigest()}}},
        record("EXECUTE", "SELECT '[REDACTED:IP_ADDRESS]'")])
    assert found.holds, found.explain()
    assert found.logged == 3


def test_the_fronts_renaming_and_its_own_statements_are_attributed() -> None:
    """SQL's EXECUTE of a statement the protocol prepared names the front's name; its
    estimate explains a recorded statement; its measurement precedes a recorded write."""
    measured = "UPDATE t SET a = 1"
    logged = session(
        'EXECUTE "tollgate_s7"(1)',
        f"{estimate.MARK}BEGIN; SAVEPOINT tollgate_estimate",
        f"{estimate.MARK}EXPLAIN (FORMAT JSON, VERBOSE) {measured}",
        f"{effect.MARK}SAVEPOINT {effect.SAVEPOINT}; {effect.BEFORE}", measured,
        effect.AFTER, f"{effect.MARK}RELEASE SAVEPOINT {effect.SAVEPOINT}")
    found = pg_compare(logged, [record("EXECUTE", "EXECUTE q(1)"),
                                record("QUERY", measured, statements=(WRITE,))])
    assert found.holds, found.explain()
    assert (found.logged, found.own) == (7, 5)


def test_own_statements_of_no_recorded_statement_are_reported() -> None:
    """An EXPLAIN of what no record holds, a measurement before what the record holds
    as no write, and a text that only looks like the front's."""
    logged = session(f"{estimate.MARK}EXPLAIN (FORMAT JSON, VERBOSE) DELETE FROM t",
                     f"{effect.MARK}SAVEPOINT {effect.SAVEPOINT}; {effect.BEFORE}",
                     "SELECT 1", f"{effect.MARK}DROP TABLE t")
    found = pg_compare(logged, [record("QUERY", "SELECT 1")])
    assert sorted(d.statement for d in found.unrecorded) == sorted([
        repr(f"{estimate.MARK}EXPLAIN (FORMAT JSON, VERBOSE) DELETE FROM t"),
        repr("(the front measured the effect of what the record holds as no write it "
             "allowed) SELECT 1"),
        repr(f"{effect.MARK}DROP TABLE t")])


def test_a_json_log_reads_as_each_client_backends_statements() -> None:
    def line(message: str, **more: Any) -> str:
        # PostgreSQL writes what is no ASCII as it is: U+0085, U+2028 too.
        return json.dumps({"backend_type": "client backend", "error_severity": "LOG",
                           "session_id": "a.1", "message": message, **more},
                          ensure_ascii=False)

    lines = [
        line("statement: SELECT 1;\nSELECT 2"), line("execute <unnamed>: SELECT $1"),
        line("execute tollgate_s3/c1: FETCH"), line("execute fetch from tollgate_s3/c1: F"),
        line("statement: SELECT 3", application_name="harness"),
        line("connection authorized: user=postgres"),
        line("duplicate key", error_severity="ERROR"),
        json.dumps({"backend_type": "autovacuum worker", "message": "statement: VACUUM"}),
        line("statement: SELECT '\x85\u2028'")]
    logged = statement_log.pg_logged("\n".join(lines) + "\n" + lines[0][:20])
    assert [(e.text, e.application) for e in logged] == [
        ("SELECT 1;\nSELECT 2", ""), ("SELECT $1", ""), ("FETCH", ""), ("F", ""),
        ("SELECT 3", "harness"), ("SELECT '\x85\u2028'", "")]


GENERAL_LOG = (
    "/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-log (Debian 12). started with:\n"
    "Tcp port: 3306  Unix socket: /tmp/sock\n"
    "Time\t\t    Id Command\tArgument\n"
    "261127  8:56:50\t     3 Connect\troot@localhost on  using Socket\n"
    "\t\t     3 Query\tCREATE DATABASE shop\n"
    "\t\t     9 Connect\tdrivers@127.0.0.1 on shop using SSL/TLS\n"
    "\t\t     9 Query\tCREATE TABLE t\n(\n  a int\r\n)\n"
    "\t\t     9 Query\tselect @@autocommit\n"
    "\t\t     9 Init DB\tshop\n"
    "\t\t     9 Ping\t\n"
    "\t\t     9 Execute\tSELECT 'x', 2 FROM t\n"
    "\t\t     9 Quit\t\n")


def test_a_general_log_reads_as_each_threads_entries() -> None:
    log = entries(GENERAL_LOG + "\t\t     9 Qu")
    assert statement_log.threads_of(log, "drivers") == {9}
    assert [(command, text) for thread, command, text in log if thread == 9] == [
        ("Connect", "drivers@127.0.0.1 on shop using SSL/TLS"),
        ("Query", "CREATE TABLE t\n(\n  a int\r\n)"), ("Query", "select @@autocommit"),
        ("Init DB", "shop"), ("Ping", ""), ("Execute", "SELECT 'x', 2 FROM t"), ("Quit", "")]


def test_a_general_log_is_compared_as_the_server_trims_and_executes() -> None:
    mine = [(c, t) for n, c, t in entries(GENERAL_LOG) if n == 9]
    records = [record("QUERY", "  CREATE TABLE t\n(\n  a int\r\n)\n"),
               record("QUERY", "select @@autocommit;"), record("INIT_DB", "USE `shop`"),
               record("EXECUTE", "SELECT ?, ? FROM t")]
    assert my_compare(mine, records).holds
    found = my_compare(mine, records[:2])
    assert [(d.statement, d.logged, d.recorded) for d in found.unrecorded] == [
        ("Init DB: 'shop'", 1, 0), ("Execute: \"SELECT 'x', 2 FROM t\"", 1, 0)]
