"""The record is complete: proven against the database's own statement log (issue 36).

A cluster of the test's own logs every statement it runs (`log_statement = all`:
`statement: ...` for a simple Query, `execute <name>: ...` for each Execute, resumed
portals too). Hypothesis drives generated sessions through Envoy and the PostgreSQL front
— simple and extended protocol, names reused, refusals, holds that expire, cancels,
pipelines of several batches, transactions — and each session's server log is compared
with its record: every statement the server ran appears in the record, allowed, as often
as it ran; nothing the record only ever refused appears in the server's log
(tests/support/statement_log.py compares, and reads back what differs by design).
"""

from __future__ import annotations

import socket
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.postgres import encodings
from extproc.postgres import messages as pg
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA
from tests.e2e.test_postgres_cursors_e2e import OPENER
from tests.e2e.test_postgres_e2e import AGENT, _Raw
from tests.e2e.test_postgres_namespace_e2e import SYNC, bind, execute, parse, query, run
from tests.support import pg_cluster, statement_log
from tests.support.gateway import Gateway, module_gateway

ALLOWED = ["SELECT 1", "SELECT email FROM customers ORDER BY id",
           "SELECT count(*) FROM customers", "INSERT INTO scratch VALUES (1)",
           "SELECT id FROM scratch ORDER BY id LIMIT 3"]
REFUSED = ["DROP TABLE customers", "TRUNCATE scratch", "ALTER TABLE scratch DROP COLUMN id"]
SESSION = ["BEGIN", "COMMIT", "ROLLBACK", "PREPARE q AS SELECT email FROM customers",
           "EXECUTE q", "DEALLOCATE q", "DISCARD ALL", "EXECUTE tollgate_s1",
           "FETCH ALL FROM tollgate_p2", "SELECT 1; DROP TABLE customers"]
HELD = "DELETE FROM scratch"  # held for a dba's approval, which never comes: refused
SLEEP = "SELECT pg_sleep(0.3)"  # cancelled as it runs
STATEMENTS = ["", "a", "b"]
PORTALS = ["", "p"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory,
           otlp: Any) -> Iterator[tuple[Gateway, pg_cluster.Cluster]]:
    with pg_cluster.cluster() as cluster:
        with psycopg.connect(cluster.admin_url.rsplit("/", 1)[0] + "/shop",
                             autocommit=True) as shop:
            shop.execute("CREATE TABLE scratch (id int)")
            shop.execute(OPENER.replace("open_ssns", "open_cursor").replace("ssn", "email"))
        target = {"name": "shop", "protocol": "postgres", "match": {"database": "shop"},
                  "environment": "test",
                  "postgres": {"upstream": f"127.0.0.1:{cluster.port}", "user": "postgres",
                               "database": "shop", "sslmode": "disable"}}
        with module_gateway(tmp_path_factory, otlp, "differential", targets=[target],
                            postgres={},
                            settings={"approvals": {"max_hold_seconds": 1}}) as gw:
            yield gw, cluster


extended_op = st.one_of(
    st.tuples(st.just("parse"), st.sampled_from(STATEMENTS),
              st.sampled_from(ALLOWED + REFUSED + ["SELECT 1 +"])),
    st.tuples(st.just("bind"), st.sampled_from(PORTALS), st.sampled_from(STATEMENTS)),
    st.tuples(st.just("execute"), st.sampled_from(PORTALS), st.sampled_from([0, 1])),
    st.tuples(st.just("describe"), st.sampled_from([b"S", b"P"]),
              st.sampled_from(STATEMENTS + PORTALS)),
    st.tuples(st.just("close"), st.sampled_from([b"S", b"P"]),
              st.sampled_from(STATEMENTS + PORTALS)),
)
step = st.one_of(
    st.tuples(st.just("query"), st.sampled_from(ALLOWED + REFUSED + SESSION)),
    st.tuples(st.just("batch"), st.lists(extended_op, min_size=1, max_size=6)),
    st.tuples(st.just("pipeline"), st.lists(st.lists(extended_op, min_size=1, max_size=3),
                                            min_size=2, max_size=3)),
    st.tuples(st.just("hold"), st.just(HELD)),
    st.tuples(st.just("cancel"), st.just(SLEEP)),
)


def message(op: tuple[Any, ...]) -> bytes:
    kind, first, second = op
    if kind == "parse":
        return parse(first, second)
    if kind == "bind":
        return bind(first, second)
    if kind == "execute":
        return execute(first, second)
    if kind == "describe":
        return pg.encode_describe(first, second)
    return pg.encode_close(first, second)


def drive(gw: Gateway, client: _Raw, key: tuple[int, bytes], steps: list[Any]) -> None:
    for kind, what in steps:
        if kind in ("query", "hold"):
            run(client, query(what))
        elif kind == "batch":
            run(client, *map(message, what), SYNC)
        elif kind == "pipeline":
            run(client, *[m for batch in what for m in (*map(message, batch), SYNC)])
        else:  # a statement cancelled as it runs (or just after: either is fine here)
            client.send(query(what))
            with socket.create_connection(("127.0.0.1", gw.ports.postgres), 10) as cancel:
                cancel.sendall(struct.pack("!iii", 16, 80877102, key[0]) + key[1])
            client.messages_until(b"Z")


# Cursors, for a dba (the pack lets only the dba group DECLARE and FETCH): declared in
# SQL, read by FETCH, MOVE and the protocol's Describe and Execute, closed by CLOSE,
# the protocol's Close or their transaction's end; names shared with Binds.
CURSORS = ["DECLARE c CURSOR FOR SELECT email FROM customers ORDER BY id",
           "DECLARE h CURSOR WITH HOLD FOR SELECT id FROM customers ORDER BY id",
           "FETCH 1 FROM c", "FETCH ALL FROM h", "MOVE 1 IN c", "CLOSE c", "CLOSE h",
           "CLOSE ALL", "BEGIN", "COMMIT", "ROLLBACK", "SELECT open_cursor('c')"]
cursor_op = st.one_of(
    st.tuples(st.just("parse"), st.sampled_from([""]),
              st.sampled_from(["SELECT id FROM customers", *CURSORS[:4]])),
    st.tuples(st.just("bind"), st.sampled_from(["", "c", "h"]), st.just("")),
    st.tuples(st.just("execute"), st.sampled_from(["", "c", "h"]), st.sampled_from([0, 1])),
    st.tuples(st.just("describe"), st.just(b"P"), st.sampled_from(["c", "h"])),
    st.tuples(st.just("close"), st.just(b"P"), st.sampled_from(["c", "h"])),
)
cursor_step = st.one_of(
    st.tuples(st.just("query"), st.sampled_from(CURSORS)),
    st.tuples(st.just("batch"), st.lists(cursor_op, min_size=1, max_size=4)),
)
# Encodings changed midway (SET, RESET, SET LOCAL, rolled back), and texts written in
# any of them, the session's or not, in a Query or a batch after a change in it: what
# the server ran (its log, in the database's UTF8) is what the record says was read.
ENCODINGS = ["UTF8", "LATIN1", "LATIN9", "EUC_JP"]
ENCODED = ["SELECT 'été' AS v", "SELECT '山田 ①' AS v", "SELECT 'Zoë 5 €' AS v",
           "SELECT 'ascii' AS v", *(f"SET client_encoding TO '{e}'" for e in ENCODINGS),
           "SET LOCAL client_encoding TO 'LATIN1'", "RESET client_encoding", "BEGIN",
           "ROLLBACK", "COMMIT", "SELECT 1/0"]
encoded_text = st.tuples(st.sampled_from(ENCODED), st.sampled_from(ENCODINGS))
encoded_batch = st.lists(encoded_text, min_size=1, max_size=4)
encoding_step = st.one_of(
    st.tuples(st.just("query"), encoded_text),
    st.tuples(st.just("batch"), encoded_batch),
    # Batches and Queries sent at once: each read before the database answered those
    # before it, which may have changed the encoding, or failed and taken one back.
    st.tuples(st.just("pipeline"), st.lists(st.one_of(encoded_text, encoded_batch),
                                            min_size=2, max_size=3)),
)


def in_encoding(text: str, name: str) -> bytes:
    return encodings.for_session(name).encode(text, "replace")


def encoded_messages(kind: str, what: Any) -> list[bytes]:
    """A Query (`what`: a text and its encoding), a batch (a list of them) ended by a
    Sync, or a pipeline of either."""
    if kind == "query":
        return [pg.encode(b"Q", in_encoding(*what) + b"\x00")]
    if kind == "pipeline":
        return [m for part in what
                for m in encoded_messages("batch" if isinstance(part, list) else "query", part)]
    no_params = struct.pack("!hhh", 0, 0, 0)
    return [*(m for text in what for m in (
        pg.encode(b"P", b"\x00" + in_encoding(*text) + b"\x00\x00\x00"),
        pg.encode(b"B", b"\x00\x00" + no_params), pg.encode(b"E", b"\x00" + bytes(4)))),
        SYNC]


def drive_encoded(client: _Raw, steps: list[Any]) -> None:
    for kind, what in steps:
        run(client, *encoded_messages(kind, what))


DIFFERENTIAL = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture,
                                               HealthCheck.too_slow,
                                               HealthCheck.data_too_large])


@DIFFERENTIAL
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_every_statement_the_server_ran_is_in_the_record_allowed(
        logged: tuple[Gateway, pg_cluster.Cluster], steps: list[Any]) -> None:
    compare(logged, steps, AGENT)


@DIFFERENTIAL
@given(steps=st.lists(cursor_step, min_size=1, max_size=8))
def test_every_cursor_read_the_server_ran_is_in_the_record_allowed(
        logged: tuple[Gateway, pg_cluster.Cluster], steps: list[Any]) -> None:
    compare(logged, steps, DBA)


@DIFFERENTIAL
@given(steps=st.lists(encoding_step, min_size=1, max_size=8))
def test_every_text_the_server_ran_in_any_encoding_is_in_the_record_as_it_read_it(
        logged: tuple[Gateway, pg_cluster.Cluster], steps: list[Any]) -> None:
    compare(logged, steps, AGENT, encoded=True)


def compare(logged: tuple[Gateway, pg_cluster.Cluster], steps: list[Any],
            token: str, encoded: bool = False) -> None:
    """One generated session through the front, its record against the server's log."""
    gw, cluster = logged
    before = len(cluster.logged())
    client = _Raw(gw)
    try:
        key = client.login(token)
        if encoded:
            drive_encoded(client, steps)
        else:
            drive(gw, client, key, steps)
        sentinel = f"SELECT 'end of session {uuid.uuid4()}'"
        run(client, query(sentinel))
    finally:
        client.sock.close()
    # What every backend ran since (the sessions run one at a time), once it is logged.
    server: list[statement_log.PgLogged] = []

    def ended() -> bool:
        server[:] = cluster.logged()[before:]
        return any(entry.text == sentinel for entry in server)

    stack.wait_until(ended, 10, "the server's log")
    comparison = statement_log.pg_compare(server, gw.session_records(sentinel))
    assert comparison.holds, comparison.explain()
    assert [entry.text for entry in server].count(sentinel) == 1
