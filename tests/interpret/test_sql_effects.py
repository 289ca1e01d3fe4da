"""Effects of SQL statements (extproc/interpret/sql/effects.py), per dialect: what running
a statement does, whatever its name. Each claim about what a server does with a text was
checked on PostgreSQL 15 and MariaDB 10.11 (see tests/policy/test_pack_bypass.py)."""

from __future__ import annotations

import pytest

from extproc.interpret.sql import analyze
from extproc.interpret.sql.sqlglot_reader import within_strings


def top(text: str, dialect: str = "postgres") -> tuple[list[str], bool | None]:
    result = analyze(text, dialect)
    assert result["error"] is None, result["error"]
    first = result["statements"][0]
    return first["effects"], first["bounded"]


@pytest.mark.parametrize(("dialect", "text", "effects", "bounded"), [
    # reads and plain writes
    ("postgres", "SELECT * FROM t", ["read"], None),
    ("postgres", "SELECT nextval('s')", ["read", "write"], True),
    ("postgres", "INSERT INTO t VALUES (1)", ["write"], True),
    ("postgres", "INSERT INTO t SELECT * FROM u", ["write"], True),
    ("postgres", "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1", ["write"], True),
    ("postgres", "UPDATE t SET v = 1 WHERE id = $1", ["write"], True),
    ("postgres", "DELETE FROM t WHERE id = 1 AND true", ["write"], True),
    ("postgres", "DELETE FROM t WHERE CURRENT OF c", ["write"], True),
    ("postgres", "COPY t FROM STDIN", ["write"], True),
    ("postgres", "COPY (SELECT 1) TO STDOUT", ["read"], None),
    ("postgres", "MERGE INTO t USING (VALUES (1)) s(id) ON t.id = s.id "
     "WHEN MATCHED THEN UPDATE SET v = 1", ["write"], True),
    # writes that may change every row
    ("postgres", "DELETE FROM t", ["write"], False),
    ("postgres", "DELETE FROM t WHERE true", ["write"], False),
    ("postgres", "DELETE FROM t WHERE 1 = 1", ["write"], False),
    ("postgres", "DELETE FROM t WHERE $1", ["write"], False),
    ("postgres", "DELETE FROM t WHERE id = 1 OR NOT false", ["write"], False),
    ("postgres", "UPDATE t SET v = 1 WHERE v = v", ["write"], False),
    ("postgres", "INSERT INTO t SELECT * FROM t ON CONFLICT (id) DO UPDATE SET v = NULL",
     ["write"], False),
    ("postgres", "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", ["write"], False),
    # as many rows as s has: an upsert from a query
    ("postgres", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = 1",
     ["write"], False),
    ("postgres", "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE",
     ["write"], False),
    ("postgres", "CALL p()", ["write"], False),
    ("sqlite", "INSERT OR REPLACE INTO t SELECT rowid, 1 FROM t", ["write"], False),
    ("sqlite", "DELETE FROM t WHERE 1", ["write"], False),
    ("mysql", "INSERT INTO t SELECT * FROM t ON DUPLICATE KEY UPDATE v = NULL", ["write"], False),
    ("mysql", "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE v = NULL", ["write"], True),
    ("tsql", "MERGE INTO t USING s ON 1 = 1 WHEN MATCHED THEN DELETE;", ["write"], False),
    ("tsql", "EXEC dbo.cleanup", ["write"], False),
    # destroy
    ("postgres", "DROP TABLE t", ["destroy"], None),
    ("postgres", "ALTER TABLE t DROP COLUMN c", ["destroy", "schema"], None),
    ("postgres", "SELECT lo_unlink(1)", ["destroy", "read"], None),
    ("mysql", "CREATE OR REPLACE TABLE t (a int)", ["destroy", "schema"], None),
    ("snowflake", "CREATE OR REPLACE TABLE t (a int)", ["destroy", "schema"], None),
    ("mysql", "ALTER TABLE t ENGINE=BLACKHOLE", ["destroy", "schema"], None),
    ("mysql", "ALTER TABLE t ENGINE=InnoDB", ["schema"], None),
    # destroy: data that stays but is taken away from the applications reading it
    ("postgres", "ALTER TABLE t RENAME TO u", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t RENAME COLUMN a TO b", ["destroy", "schema"], None),
    ("postgres", "ALTER VIEW v RENAME TO w", ["destroy", "schema"], None),
    ("postgres", "ALTER SCHEMA s RENAME TO x", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t SET SCHEMA archive", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t ENABLE ROW LEVEL SECURITY", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t FORCE ROW LEVEL SECURITY", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t ALTER a DROP DEFAULT", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t ALTER a DROP NOT NULL", ["destroy", "schema"], None),
    ("postgres", "ALTER TABLE t DROP CONSTRAINT c", ["destroy", "schema"], None),
    ("postgres", "CREATE POLICY p ON t AS RESTRICTIVE USING (false)", ["destroy", "schema"],
     None),
    ("postgres", "ALTER POLICY p ON t USING (false)", ["destroy", "schema"], None),
    ("postgres", "VACUUM FULL t", ["destroy", "maintenance"], None),
    ("postgres", "VACUUM (FULL, ANALYZE) t", ["destroy", "maintenance"], None),
    ("postgres", "CLUSTER t USING i", ["destroy", "maintenance"], None),
    ("postgres", "CLUSTER", ["destroy", "maintenance"], None),
    ("postgres", "LOCK TABLE t", ["destroy", "maintenance"], None),
    ("postgres", "LOCK TABLE t IN SHARE MODE", ["destroy", "maintenance"], None),
    ("mysql", "ALTER TABLE t RENAME TO u", ["destroy", "schema"], None),
    ("mysql", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT", ["destroy", "schema"], None),
    ("sqlite", "ALTER TABLE t RENAME COLUMN a TO b", ["destroy", "schema"], None),
    ("snowflake", "ALTER TABLE a SWAP WITH b", ["destroy", "schema"], None),
    # ... and schema changes that leave applications what they read
    ("postgres", "ALTER TABLE t ALTER a SET DEFAULT 0", ["schema"], None),
    ("postgres", "ALTER TABLE t ALTER a SET NOT NULL", ["schema"], None),
    ("postgres", "ALTER TABLE t RENAME CONSTRAINT c TO d", ["schema"], None),
    ("postgres", "ALTER INDEX i RENAME TO j", ["schema"], None),
    ("postgres", "ALTER POLICY p ON t RENAME TO q", ["schema"], None),
    ("postgres", "ALTER FUNCTION f() RENAME TO g", ["schema"], None),
    ("postgres", "ALTER TABLE t DISABLE ROW LEVEL SECURITY", ["schema"], None),
    ("postgres", "CREATE POLICY p ON t USING (owner = current_user)", ["schema"], None),
    ("postgres", "VACUUM t", ["maintenance"], None),
    ("postgres", "VACUUM (FULL false) t", ["maintenance"], None),
    ("postgres", "VACUUM (FULL 0) t", ["maintenance"], None),
    ("postgres", "LOCK TABLE t IN ROW EXCLUSIVE MODE", ["maintenance"], None),
    ("postgres", "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE", ["maintenance"], None),
    # server
    ("postgres", "COPY t TO '/tmp/x'", ["read", "server"], None),
    ("postgres", "COPY t FROM '/etc/passwd'", ["server", "write"], True),
    ("postgres", "SELECT pg_read_file('/etc/passwd')", ["read", "server"], None),
    ("postgres", "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", ["schema", "server"], None),
    ("mysql", "SELECT LOAD_FILE('/etc/passwd')", ["read", "server"], None),
    ("tsql", "EXEC xp_cmdshell 'whoami'", ["server"], None),
    ("tsql", "EXECUTE master..xp_cmdshell 'dir'", ["server"], None),
    ("tsql", "SELECT * FROM OPENROWSET('SQLNCLI', 'Server=x;', 'SELECT 1') AS a",
     ["read", "server"], None),
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')", ["read", "server"], None),
    ("duckdb", "COPY t TO '/tmp/t.csv'", ["read", "server"], None),
    ("sqlite", "ATTACH DATABASE '/tmp/x.db' AS x", ["server"], None),
    # privilege
    ("postgres", "ALTER ROLE agent SUPERUSER", ["privilege", "schema"], None),
    ("postgres", "GRANT ALL ON t TO PUBLIC", ["privilege"], None),
    ("postgres", "SET ROLE postgres", ["privilege", "session"], None),
    ("postgres", "SET SESSION AUTHORIZATION postgres", ["privilege", "session"], None),
    ("postgres", "ALTER TABLE t OWNER TO agent", ["privilege", "schema"], None),
    # configuration
    ("postgres", "SET search_path = app", ["session"], None),
    ("postgres", "SET standard_conforming_strings = off", ["configuration", "session"], None),
    ("postgres", "ALTER DATABASE d SET standard_conforming_strings = off",
     ["configuration", "schema"], None),
    ("postgres", "ALTER SYSTEM SET archive_command = 'x'", ["configuration", "schema"], None),
    ("postgres", "SELECT set_config('a.b', 'c', false)", ["read", "session"], None),
    ("postgres", "SELECT set_config('role', 'postgres', false)", ["privilege", "read", "session"],
     None),
    ("postgres", "SELECT set_config($1, 'off', false)", ["configuration", "read", "session"],
     None),
    # A named encoding the PostgreSQL front follows (or refuses); one given as a value
    # only known when it runs reconfigures.
    ("postgres", "SELECT set_config('client_encoding', 'SJIS', false)",
     ["read", "session"], None),
    ("postgres", "SELECT set_config('client_encoding', $1, false)",
     ["configuration", "read", "session"], None),
    ("postgres", "SET client_encoding = 'UTF-8'", ["session"], None),
    ("postgres", "RESET ROLE", ["session"], None),
    ("postgres", "CLOSE ALL", ["session"], None),
    ("postgres", "UNLISTEN *", ["session"], None),
    ("postgres", "NOTIFY c, 'x'", ["session", "write"], True),
    ("redshift", "SELECT set_config('a.b', 'c', false)", ["configuration", "read"], None),
    ("mysql", "SET GLOBAL max_connections = 1", ["configuration", "session"], None),
    ("mysql", "SET PERSIST local_infile = 1", ["configuration", "session"], None),
    ("mysql", "SET @@global.general_log = 1", ["configuration", "session"], None),
    ("mysql", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", ["configuration", "session"], None),
    ("mysql", "SET NAMES sjis", ["configuration", "session", "unreadable"], None),
    ("mysql", "SET SESSION wait_timeout = 10", ["session"], None),
    ("tsql", "SET QUOTED_IDENTIFIER OFF", ["configuration", "session"], None),
    # dynamic
    ("postgres", "DO $$BEGIN END$$", ["dynamic"], None),
    ("postgres", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
     ["dynamic", "schema"], None),
    ("postgres", "SELECT query_to_xml('DELETE FROM t', true, false, '')", ["dynamic", "read"],
     None),
    # A table, a cursor, a schema or the database read by a name in a string.
    ("postgres", "SELECT table_to_xml('customers', true, false, '')", ["dynamic", "read"],
     None),
    ("postgres", "SELECT pg_catalog.cursor_to_xml('c', 10, true, false, '')",
     ["dynamic", "read"], None),
    ("postgres", "SELECT schema_to_xml_and_xmlschema('public', true, false, '')",
     ["dynamic", "read"], None),
    ("postgres", "SELECT database_to_xml(true, false, '')", ["dynamic", "read"], None),
    ("postgres", "SELECT ts_rewrite('a'::tsquery, 'SELECT ssn::tsquery, ''b''::tsquery "
     "FROM customers')", ["dynamic", "read"], None),
    ("postgres", "SELECT * FROM dblink('x', 'DROP TABLE t') AS r(s text)",
     ["dynamic", "read", "server"], None),
    ("tsql", "EXEC('DROP TABLE t')", ["dynamic"], None),
    ("tsql", "EXEC sp_executesql N'DROP TABLE t'", ["dynamic"], None),
    ("mysql", "PREPARE s FROM @v", ["dynamic", "session"], None),
    ("mysql", "EXECUTE IMMEDIATE CONCAT('DROP ', 'TABLE t')", ["dynamic"], None),
    ("mysql", "PREPARE s FROM 'DROP ' 'TABLE t'", ["dynamic", "session"], None),
    # a prepared statement's string is read: its statements are nested under it
    ("mysql", "PREPARE s FROM 'DROP TABLE t'", ["session"], None),
    ("mysql", "EXECUTE s USING @a, 1", ["session"], None),
    ("mysql", "DROP PREPARE s", ["session"], None),
    # savepoints (sqlglot's MySQL parser knows ROLLBACK TO alone)
    ("mysql", "SAVEPOINT sp1", ["session"], None),
    ("mysql", "savepoint `a b`", ["session"], None),
    ("mysql", "RELEASE SAVEPOINT sp1", ["session"], None),
    ("mysql", "ROLLBACK TO SAVEPOINT sp1", ["session"], None),
    # mysqldump --single-transaction's (its characteristics in any order, comma-separated)
    ("mysql", "START TRANSACTION WITH CONSISTENT SNAPSHOT", ["session"], None),
    ("mysql", "start transaction read only, with consistent snapshot", ["session"], None),
    ("mysql", "START TRANSACTION WITH CONSISTENT SNAPSHOT, DROP", ["unknown"], None),
    # unknown
    ("mysql", "EXECUTE s USING (SELECT ssn FROM t)", ["unknown"], None),
    ("postgres", "CHECKPOINT", ["unknown"], None),
])
def test_effects(dialect: str, text: str, effects: list[str], bounded: bool | None) -> None:
    assert top(text, dialect) == (effects, bounded)


def test_tsql_exec_of_a_variable_is_dynamic() -> None:
    found = analyze("DECLARE @s nvarchar(99) = 'DROP TABLE t'; EXEC(@s)", "tsql")["statements"]
    assert [s["effects"] for s in found] == [["unknown"], ["dynamic"]]


@pytest.mark.parametrize(("dialect", "text", "kinds"), [
    # PostgreSQL with standard_conforming_strings off runs the DROP (checked on 15)
    ("postgres", "SELECT 'a\\', 'b; DROP TABLE t; --'", ["select", "select", "drop"]),
    # MariaDB with NO_BACKSLASH_ESCAPES runs the DROP (checked on 10.11)
    ("mysql", "SELECT 'a\\' ; DROP TABLE t; -- '", ["select", "select", "drop"]),
    ("postgres", "SELECT 'C:\\dir', E'\\n' WHERE 'a' ~ '\\d'", ["select"]),
    ("mysql", "SELECT 'a\\nb', 'c\\\\'", ["select"]),
    # the escaping lexing cannot end the string: only the standard one runs
    ("postgres", "SELECT 'it''s \\'", ["select"]),
])
def test_a_text_with_backslashes_is_read_both_ways(
    dialect: str, text: str, kinds: list[str]
) -> None:
    result = analyze(text, dialect)
    assert result["error"] is None
    assert [s["kind"] for s in result["statements"]] == kinds


def test_mysql_dash_dash_before_a_non_ascii_character_is_refused() -> None:
    """MariaDB reads `--\u00a0` as two minus signs (checked on 10.11): no comment."""
    text = "SELECT 1 --\u00a0 FROM (SELECT 1 AS `\u00a0`) x; DROP TABLE t"
    assert "--" in str(analyze(text, "mysql")["error"])
    assert analyze("SELECT 1 -- x\u00e9\n", "mysql")["error"] is None


@pytest.mark.parametrize(("text", "read"), [
    ("INSERT INTO t VALUES ('a--\u00e9'), (_binary'--\ufffd')", True),  # values
    ("SELECT 1 --\u00e9", False),
    ("SELECT `--\u00e9`", False),  # a name: refused as anywhere else
    ("SELECT '--\u00a0'", False),  # a Unicode space, which a second reading makes one
    ("PREPARE s FROM 'SELECT 1 --\u00e9 x'", False),  # SQL, in the string it prepares
])
def test_mysql_dash_dash_before_a_non_ascii_character_is_a_value_in_a_string(
        text: str, read: bool) -> None:
    """A BLOB's bytes hold `--` before any byte: inside a string literal that is a value,
    which no reading takes for a comment."""
    for backslashes in (True, False, None):
        found = analyze(text, "mysql", backslashes=backslashes)
        assert (found["error"] is None) is read, found["error"]


def test_a_savepoint_is_read_as_one_statement_of_its_text() -> None:
    """Beside others, and never a column named savepoint: each statement as it is."""
    statements = analyze("SAVEPOINT s; DROP TABLE t; SELECT savepoint FROM x",
                         dialect="mysql", server_version="10.11.19-MariaDB")["statements"]
    assert [(s["kind"], s["effects"]) for s in statements] == [
        ("transaction", ["session"]), ("drop", ["destroy"]), ("select", ["read"])]
    assert analyze("SAVEPOINT a b", dialect="mysql")["error"]


@pytest.mark.parametrize(("text", "inside"), [
    ("INSERT INTO t VALUES (_binary'a\udcffb')", True),
    ("SELECT N'\udcff', 'x'", True),
    ("SELECT 1 \udcff", False),
    ("SELECT `\udcff`", False),
    ("SELECT 1 /* \udcff */", False),
    ('SELECT "\udcff"', False),  # a name, where ANSI_QUOTES is on
    ("SELECT '\\' \udcff '", False),  # outside the string, where backslashes escape nothing
])
def test_a_byte_no_reading_takes_is_a_value_only_inside_a_string(text: str,
                                                                 inside: bool) -> None:
    assert within_strings(text, "mysql", [text.index("\udcff")]) is inside
