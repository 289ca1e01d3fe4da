"""MySQL's executable comments (`/*!NNNNN ... */`, MariaDB's `/*M!NNNNNN ... */`) read as
the server runs them: the text inside as SQL when its version is at most the server's
(MariaDB leaving out MySQL 5.7's 50700-99999 in a `/*!`), else a comment. mysqldump sends
its settings so; before, every one was refused unread. Each reading is held against the
machine's MariaDB: what the server ran, by its side effects, is what the reader read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pymysql
import pytest

from extproc.interpret.sql import analyze
from extproc.interpret.sql.sqlglot_reader import executable_comments, server_version_id

MARIADB = "5.5.5-10.11.19-MariaDB-0+deb12u1"
VERSION = 101119


def test_a_mariadb_version_is_read_from_its_handshake_and_no_other() -> None:
    assert server_version_id(MARIADB) == VERSION
    assert server_version_id("11.4.2-MariaDB") == 110402
    assert server_version_id("8.0.36") is None  # MySQL's: its rule is not MariaDB's
    assert server_version_id(None) is None


@pytest.mark.parametrize(("text", "read"), [
    ("SELECT /*!40100 1+*/ 2", "SELECT   1+  2"),
    ("SELECT /*!101119 1+*/ 2", "SELECT   1+  2"),  # the server's own version runs
    ("SELECT /*!101120 1+*/ 2", "SELECT   2"),  # a later one does not
    ("SELECT /*!50700 1+*/ 2", "SELECT   2"),  # MySQL 5.7's: MariaDB leaves it out
    ("SELECT /*M!50700 1+*/ 2", "SELECT   1+  2"),  # ... unless marked MariaDB's
    ("SELECT /*M!999999 1+*/ 2", "SELECT   2"),
    ("SELECT /*!400000 1+*/ 2", "SELECT   2"),  # six digits: 40.0.0
    ("SELECT /*! 1+*/ 2", "SELECT   1+  2"),  # no version: always SQL
    ("SELECT /*!1 + */ 2", "SELECT  1 +   2"),  # under five digits: SQL from the `!`
    ("SELECT /*m!40100 1+*/ 2", "SELECT /*m!40100 1+*/ 2"),  # a plain comment
    ("SELECT '/*!40100 1+*/' 2", "SELECT '/*!40100 1+*/' 2"),  # inside a string
    ("SELECT /*!40100 '*/' */", "SELECT   '*/'  "),  # */ in a string inside it
    ("SELECT /*!40100 1 /* x */ + 2 */", "SELECT   1 /* x */ + 2  "),  # a comment inside
    ("SELECT /*!40100 '\\'*/' */", "SELECT   '\\'*/'  "),  # an escaped quote
    ("SELECT `/*!40100` /*!40100 */", "SELECT `/*!40100`    "),  # inside a name
    ("SELECT 1 -- /*!40100 +2 */\n", "SELECT 1 -- /*!40100 +2 */\n"),  # a line comment
])
def test_each_comment_reads_as_mariadb_runs_it(text: str, read: str) -> None:
    assert executable_comments(text, VERSION) == read


def test_no_backslash_escapes_ends_a_string_at_its_backslash() -> None:
    # `'\'` is a whole string there: the */ after it ends the comment.
    assert executable_comments("SELECT /*!40100 '\\' */ 1", VERSION, backslashes=False) \
        == "SELECT   '\\'   1"


@pytest.mark.parametrize(("text", "why"), [
    ("SELECT /*!40100 1 /*!40100 +2 */ */", "inside another"),
    ("SELECT /*!99999 1 /* x */ +2 */", "skips"),  # the server nests one comment here
    ("SELECT 1 /*!40100 -- x */ +1", "line comment"),
    ("SELECT 1 /*!40100 # x */ +1", "line comment"),
    ("SELECT /*!40100 1", "never closed"),
])
def test_what_only_the_server_can_read_is_refused(text: str, why: str) -> None:
    found = analyze(text, "mysql", MARIADB)
    assert found["statements"] == []
    assert why in (found["error"] or "")


def test_a_versioned_comment_is_refused_where_the_version_is_unknown() -> None:
    for version in (None, "8.0.36"):
        found = analyze("/*!40100 SET @@SQL_MODE='' */", "mysql", version)
        assert "does not know" in (found["error"] or "")
    # One without a version does not depend on it.
    assert analyze("/*! SET @a = 1 */", "mysql")["statements"][0]["kind"] == "set"


def test_mysqldumps_settings_are_read_as_the_settings_they_are() -> None:
    found = analyze("/*!40100 SET @@SQL_MODE='' */", "mysql", MARIADB)
    assert found["error"] is None
    assert [[c["name"] for c in s["stores"] or []] for s in found["statements"]] == [["sql_mode"]]
    hidden = analyze("SELECT 1 /*!40100 ; DROP TABLE customers */", "mysql", MARIADB)
    assert [s["kind"] for s in hidden["statements"]] == ["select", "drop"]
    skipped = analyze("SELECT 1 /*!999999 ; DROP TABLE customers */", "mysql", MARIADB)
    assert [s["kind"] for s in skipped["statements"]] == ["select"]


# -- against the real server -----------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[tuple[pymysql.connections.Connection, str]]:
    database = f"tollgate_comments_{secrets.token_hex(4)}"
    connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True,
                                 client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
            cursor.execute(f"USE {database}")
            cursor.execute("CREATE TABLE t (id int)")
        yield connection, database
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        connection.close()


SIDE_EFFECTS = [
    "INSERT INTO t VALUES (1) /*!40100 , (2) */ /*!101120 , (3) */",
    "INSERT INTO t VALUES (1) /*!50700 , (2) */ /*M!50700 , (3) */",
    "/*!40100 INSERT INTO t VALUES (1) */",
    "/*!999999 INSERT INTO t VALUES (1) */ SELECT 1",
    "/*M!100100 INSERT INTO t VALUES (7) */",
    "INSERT INTO t VALUES (/*!40100 LENGTH('*/') + */ 4)",
    "INSERT INTO t /*! VALUES (5) */",
    "INSERT INTO t VALUES (1 /*!40100 + 1 /* a comment */ + 1 */)",
]


@pytest.mark.parametrize("text", SIDE_EFFECTS)
def test_the_server_does_what_the_reader_read(
        server: tuple[pymysql.connections.Connection, str], text: str) -> None:
    """The rows the server inserted running `text` are those it inserts running the
    reader's reading of it, and the reader sees the INSERT exactly where one runs."""
    connection, _ = server
    version = connection.get_server_info()
    assert server_version_id(version) is not None, version

    def inserted(sql: str) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM t")
            cursor.execute(sql)
            while cursor.nextset():
                pass
            cursor.execute("SELECT id FROM t ORDER BY id")
            return [row[0] for row in cursor.fetchall()]

    ran = inserted(text)
    read = executable_comments(text, server_version_id(version))
    assert inserted(read) == ran
    kinds = [s["kind"] for s in analyze(text, "mysql", version)["statements"]]
    assert ("insert" in kinds) == bool(ran), (kinds, ran)
