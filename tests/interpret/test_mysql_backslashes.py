"""MySQL texts read in the escaping the server lexes them in: with backslashes as escapes,
or as themselves (NO_BACKSLASH_ESCAPES), where the MySQL front knows which from the
server's status; both ways where it does not. And what may change that escaping within a
text, or for the next: a SET of sql_mode, an EXECUTE."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot.tokens import TokenType

from extproc.interpret.sql import analyze
from extproc.interpret.sql.sqlglot_reader import (
    parsed,
    sql_mode_change,
    tokenize,
    within_strings,
)
from extproc.mysql.effect import written
from tests.support.mysql_literals import binary_literal

VERSION = "5.5.5-10.11.19-MariaDB"
UNREAD = re.compile("[\x00\udc80-\udcff]")


def kinds(text: str, backslashes: bool | None) -> str:
    found = analyze(text, "mysql", VERSION, backslashes)
    if found["error"] is not None:
        return "ERROR"
    return " ".join(s["kind"] for s in found["statements"])


@pytest.mark.parametrize(("text", "escaping", "literal"), [
    # PyMySQL's escaped quote: a string to its end where backslashes escape
    ("SELECT _binary'\\'\udcff'", True, False),
    # its doubled quote, where they do not: a string either way
    ("SELECT _binary'\\''\udcff'", False, True),
    # `\'` then `'...'` is two strings where backslashes escape nothing
    ("SELECT '\\'' \udcff '", False, True),
    ("SELECT 'a\\\\' \udcff '", False, False),
    ("SELECT _binary'a\x00\\\\\udcff' ", True, True),
])
def test_a_byte_is_a_value_where_the_servers_escaping_puts_it_in_a_string(
        text: str, escaping: bool, literal: bool) -> None:
    at = [text.index("\udcff")]
    assert within_strings(text, "mysql", at, True) is escaping
    assert within_strings(text, "mysql", at, False) is literal
    # Not known: it must be inside a string both ways.
    assert within_strings(text, "mysql", at) is (escaping and literal)


@pytest.mark.parametrize(("text", "escaping", "literal", "either"), [
    ("SELECT 'a\\'; DROP TABLE x; -- '", "select", "select drop", "select select drop"),
    ("SELECT 'x\\''; DROP TABLE x; -- '", "select drop", "select", "select drop select"),
    # "..." a string or a name (ANSI_QUOTES, which no status says): both, either way
    ('SELECT "a\\"; DROP TABLE x; -- "', "select select drop", "select drop select",
     "select select drop select"),
    ("SELECT 'a\\'', \"b\\\"; DROP TABLE x; -- \"", "select select drop", "ERROR",
     "select select drop"),
    ("SELECT 'no backslash'; SELECT 2", "select select", "select select", "select select"),
])
def test_a_text_is_read_in_the_escaping_the_server_said(
        text: str, escaping: str, literal: str, either: str) -> None:
    assert kinds(text, True) == escaping
    assert kinds(text, False) == literal
    assert kinds(text, None) == either


@pytest.mark.parametrize("text", [
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'x\\'; DROP TABLE t; -- '",
    "SET @@session.sql_mode = ''; SELECT 1",
    "SET @a = 1, SESSION sql_mode = DEFAULT; SELECT 1",
    "/*!40101 SET sql_mode = 'ANSI_QUOTES' */; SELECT \"a\"",
    "EXECUTE s; SELECT 1",
    "EXECUTE IMMEDIATE 'SET sql_mode = 1'; SELECT 1",
    "SET STATEMENT sql_mode = '' FOR SELECT 1; SELECT 2",
])
def test_a_change_of_sql_mode_ends_its_text(text: str) -> None:
    """The server lexes what follows it in the mode it sets, which no reading of the whole
    text follows (the first, read in either escaping, hides the DROP that runs)."""
    for backslashes in (True, False, None):
        found = analyze(text, "mysql", VERSION, backslashes)
        assert found["statements"] == [] and "must end its text" in str(found["error"])


@pytest.mark.parametrize("text", [
    "SELECT 1; SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "SET GLOBAL sql_mode = ''; SELECT 1",
    "SET @m = @@sql_mode; SELECT 'sql_mode', 'execute'", "SELECT 1; EXECUTE s",
])
def test_a_text_may_end_with_a_change_of_sql_mode_or_only_read_it(text: str) -> None:
    assert analyze(text, "mysql", VERSION, True)["error"] is None


@pytest.mark.parametrize(("text", "change"), [
    ("SELECT 1", False),
    ("INSERT INTO t VALUES ('sql_mode'), ('EXECUTE')", False),
    ("CALL flip()", False),  # a stored program puts its caller's mode back
    ("SET GLOBAL sql_mode = ''", False),
    ("SET @@global.sql_mode = ''", False),
    ("SET @m = @@sql_mode", False),
    ("SET NAMES utf8mb4", False),
    ("CREATE PROCEDURE p() SET sql_mode = ''", False),
    ("SET sql_mode = 'NO_BACKSLASH_ESCAPES'", True),
    ("SET SESSION sql_mode = ''", True),
    ("SET LOCAL sql_mode = DEFAULT", True),
    ("SET @@sql_mode = ''", True),
    ("SET @@session.sql_mode := ''", True),
    ("SET @@local.SQL_MODE = ''", True),
    ("SET `sql_mode` = ''", True),
    ("SET @a = 1, sql_mode = ''", True),
    ("SELECT 1; SET sql_mode = ''", True),
    ("/*!40101 SET sql_mode = '' */", True),
    ("/*M!999999 SET sql_mode = '' */", False),  # a version above the server's: a comment
    ("EXECUTE s", None),  # what it runs was prepared before: maybe a SET of it
    ("EXECUTE IMMEDIATE 'SET sql_mode = 1'", None),
    ("PREPARE s FROM 'SET sql_mode = 1'", None),
    ("SET STATEMENT sql_mode = '' FOR SELECT 1", None),
    ("SET sql_mode = (", None),  # it does not parse
])
def test_what_a_text_did_to_the_sessions_sql_mode(text: str, change: bool | None) -> None:
    assert sql_mode_change(text, True, VERSION) is change


def test_a_change_read_otherwise_in_one_lexing_is_not_known() -> None:
    """`"..."` is a string, or a name under ANSI_QUOTES, in which a backslash escapes
    nothing: a SET of sql_mode either way in the first two, in one lexing only in the
    last."""
    assert sql_mode_change('SET sql_mode = "ANSI_QUOTES"', True) is True
    assert sql_mode_change('SET @a = "x", sql_mode = 1', True) is True
    assert sql_mode_change('SELECT "a\\"; SET sql_mode = 1; -- "', True) is None


def test_a_writes_columns_are_read_as_the_server_lexes_it() -> None:
    """Where backslashes escape nothing the UPDATE also sets `id`, which a cascade on it
    reaches: read in the server's escaping, not the default one."""
    text = "UPDATE t SET a = 'x\\', id = 5 -- '"
    found = written(text, "db", [], backslashes=False)
    assert not isinstance(found, str) and found.columns == {"a", "id"}
    found = written(text, "db", [], backslashes=True)
    assert not isinstance(found, str) and found.columns == {"a"}
    assert len(parsed('SELECT "a"', "mysql", True)) == 2  # "..." a string, and a name


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=64) | st.lists(st.sampled_from(
    [b"'", b"\\", b"\x00", b'"', b"\xff", b"\xc3", b"\xa9", b"\n", b"\x1a", b"%", b"_",
     b"--", b"/*", b"#", b";"]), max_size=24).map(b"".join), backslashes=st.booleans())
def test_a_drivers_binary_literal_reads_back_as_its_bytes(value: bytes,
                                                          backslashes: bool) -> None:
    """The bytes PyMySQL and mysqlclient write as `_binary'...'`, in the escaping they
    chose by the server's status: one string in the reader's lexing of that escaping,
    holding the bytes themselves; the statement around it is the one INSERT."""
    payload = b"INSERT INTO t VALUES (1, " + binary_literal(value, backslashes) + b")"
    text = payload.decode("utf-8", "surrogateescape")
    positions = [found.start() for found in UNREAD.finditer(text)]
    assert within_strings(text, "mysql", positions, backslashes)
    strings = [t for t in tokenize(text, "mysql", backslashes)
               if t.token_type is TokenType.STRING]
    assert len(strings) == 1
    assert strings[0].text.encode("utf-8", "surrogateescape") == value
    assert kinds(UNREAD.sub("\ufffd", text), backslashes) == "insert"


def test_a_dialect_of_one_lexing_reads_alike_whatever_the_escaping_said() -> None:
    for backslashes in (True, False, None):
        found = analyze("SELECT 'a\\'; DROP TABLE x", "sqlite", backslashes=backslashes)
        assert [s["kind"] for s in found["statements"]] == ["select", "drop"]
