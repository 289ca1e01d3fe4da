"""pglast parses exactly what the real PostgreSQL server parses.

The gateway trusts pglast's verdict ("parses" or "syntax error") for texts a PostgreSQL
server will run, so the two are compared on a corpus of valid and invalid texts.

Nothing in the corpus is ever executed. PostgreSQL's simple-query protocol parses the whole
text before it runs the first statement, so every text is sent as
`BEGIN; SET LOCAL ...; SELECT 1/0; <text>`: a text that does not parse fails with its parse
error before anything runs, one that parses fails at the division by zero (SQLSTATE 22012),
and the statements after it never run. As a second guard it happens in a scratch database,
in a transaction that is rolled back, and the corpus holds no statement that could harm the
server if the guard failed. A canary CREATE TABLE proves that nothing ran.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from pglast import parser as pg_parser
from psycopg import pq, sql

from extproc.interpret.sql import analyze

pytestmark = pytest.mark.e2e  # this machine's PostgreSQL

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=10"
CANARY = "CREATE TABLE parity_canary (a int)"

# (text, whether PostgreSQL parses it)
CORPUS: list[tuple[str, bool]] = [
    (CANARY, True),
    ("SELECT 1", True),
    ("select * from t where a = 1 order by 2 limit 3", True),
    ("DrOp/**/TABLE x", True),
    ("SELECT 1; DROP TABLE x", True),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", True),
    ("WITH a AS (WITH b AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM b) SELECT * FROM a",
     True),
    ("INSERT INTO t SELECT * FROM (WITH d AS (DELETE FROM s RETURNING *) SELECT * FROM d) q",
     True),
    ("COPY t TO PROGRAM 'true'", True),
    ("COPY t FROM PROGRAM 'true'", True),
    ("COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)", True),
    ("DO $$ BEGIN NULL; END $$", True),
    ("DO $x$ BEGIN RAISE NOTICE '$$'; END $x$", True),
    ("SELECT 1 /* a /* nested */ b */", True),
    ("SELECT 1 -- ; DROP TABLE x", True),
    ("SELECT 'a''b', E'\\n', $$x$$, $t$y$t$, U&'\\0041', B'101', X'FF'", True),
    ("SELECT '; DROP TABLE x; --'", True),
    ('SELECT "Users".id FROM "Users"', True),
    ('SELECT U&"d\\0061t\\+000061" FROM t', True),
    ("EXPLAIN ANALYZE DELETE FROM t", True),
    ("CREATE TABLE x AS SELECT 1", True),
    ("SELECT * INTO x FROM t", True),
    ("VACUUM FULL t", True),
    ("CREATE DATABASE tollgate_parity_never_created", True),
    ("DROP DATABASE IF EXISTS tollgate_parity_never_created", True),
    ("SELECT pg_terminate_backend(0) WHERE false", True),
    ("CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u", True),
    ("PREPARE p AS DELETE FROM t WHERE id = $1", True),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", True),
    ("SELECT * FROM t FOR UPDATE SKIP LOCKED", True),
    ("LISTEN c; NOTIFY c, 'x'", True),
    ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b", True),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", True),
    ("ALTER TABLE t DROP COLUMN a, ALTER COLUMN b TYPE text", True),
    ("GRANT SELECT ON t TO PUBLIC", True),
    ("SET LOCAL statement_timeout = 0", True),
    ("CALL p()", True),
    ("TRUNCATE a, b CASCADE", True),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", True),
    ("BEGIN; DROP TABLE x; ROLLBACK", True),
    ("SELECT 1 AS x\u00a0y", True),  # U+00A0 is a letter to PostgreSQL
    ("", True),
    ("-- only a comment", True),
    ("DR/**/OP TABLE x", False),
    ("hello world", False),
    ("SELECT FROM WHERE", False),
    ("SELECT 'unterminated", False),
    ("SELECT $$unterminated", False),
    ("SELECT 1 /* unterminated", False),
    ("SELECT 1 /* a /* b */ still open", False),
    ("DELETE t", False),
    ("SELECT 1\\; DROP TABLE x", False),
    ("SELECT * FROM t WHERE", False),
    ("INSERT INTO t VALUES (1", False),
    ("UPDATE t SET = 1", False),
    ("CREATE TABLE (a int)", False),
    ("SELECT 1 UNION", False),
    ("WITH d AS (DELETE FROM t RETURNING *)", False),
    ("SELECT 1; SELEC 2", False),
    ("SELECT 1 LIMIT 1 LIMIT 2", False),
    ("SELECT 123abc", False),
    ("SELECT E'\\u12'", False),
    ("SELECT U&'\\zzzz'", False),
]

# Syntax newer than some servers (pglast 8.7 is PostgreSQL 18's parser): (text, since).
NEWER: list[tuple[str, int]] = [
    ("SELECT 0x1F", 160000),
    ("SELECT 1_000_000", 160000),
    ("SELECT '{}' IS JSON", 160000),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *", 170000),
    ("SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a int PATH '$'))", 170000),
]

# PostgreSQL takes these characters for letters; analyze() reads them as spaces on purpose
# (a client that does would run the DROP), so its verdict differs from the server's.
READ_AS_SPACES = ["DROP\u00a0TABLE x", "DR\u200bOP TABLE x", "DELETE\u3000FROM t"]


@pytest.fixture(scope="module")
def server() -> Iterator[psycopg.Connection]:
    name = f"tollgate_sql_parity_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )
        try:
            with psycopg.connect(f"{ADMIN_DSN} dbname={name}", autocommit=True) as conn:
                yield conn
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


def server_parses(conn: psycopg.Connection, text: str) -> bool:
    guarded = f"BEGIN; SET LOCAL statement_timeout = '5s'; SELECT 1/0; {text}"
    result = conn.pgconn.exec_(guarded.encode())
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    conn.pgconn.exec_(b"ROLLBACK")
    assert result.status == pq.ExecStatus.FATAL_ERROR and sqlstate is not None
    return sqlstate == b"22012"


def pglast_parses(text: str) -> bool:
    try:
        pg_parser.parse_sql_json(text)
    except pg_parser.ParseError:
        return False
    return True


def test_pglast_and_analyze_agree_with_the_server(server: psycopg.Connection) -> None:
    disagreements = [
        (text, expected, got)
        for text, expected in CORPUS
        for got in [(server_parses(server, text), pglast_parses(text),
                     analyze(text)["error"] is None)]
        if got != (expected, expected, expected)
    ]
    assert disagreements == []
    canary = server.execute("SELECT to_regclass('parity_canary')").fetchone()
    assert canary == (None,), "a corpus statement was executed"


def test_newer_syntax_is_the_only_divergence(server: psycopg.Connection) -> None:
    version = server.info.server_version
    for text, since in NEWER:
        assert (server_parses(server, text), pglast_parses(text)) == (version >= since, True)


def test_unicode_spaces_are_the_deliberate_divergence(server: psycopg.Connection) -> None:
    for text in READ_AS_SPACES:
        assert (server_parses(server, text), pglast_parses(text)) == (False, False)
        assert analyze(text)["statements"][0]["kind"] in {"drop", "delete"}
