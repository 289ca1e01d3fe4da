"""A statement read once per shape (extproc/interpret/sql/shapes.py), PostgreSQL's and
MySQL's: whatever its literals, a text's reading is the one a fresh reading of that text
gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.interpret.sql import SHAPES, Analysis, _analyze, analyze, pglast_reader, sqlglot_reader
from extproc.interpret.sql.pg_parse import parse_json
from extproc.interpret.sql.pglast_reader import shape_of
from extproc.interpret.sql.shapes import Shapes

# Statements whose literals are `{}`: reads, writes whose bounds compare them, settings,
# set_config's name, COPY's program, a cast, an IN list, a LIMIT, a CTE that writes.
TEMPLATES = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
    "select a, {} AS b FROM t WHERE c IN ({}, {}) LIMIT {} -- note 42",
    "SELECT * FROM t WHERE name = {} OR {} = {}",
    "UPDATE accounts SET balance = balance + {} WHERE id = {}",
    "DELETE FROM accounts WHERE id = {} OR {} = {}",
    "DELETE FROM accounts WHERE {} = {}",
    "UPDATE accounts SET n = {} WHERE id IN ({}, {})",
    "INSERT INTO t (a, b) VALUES ({}, {}) RETURNING id",
    "SELECT set_config({}, {}, false)",
    "SELECT current_setting({}), pg_sleep({})",
    "SET statement_timeout = {}",
    "COPY (SELECT {}) TO PROGRAM {}",
    "WITH gone AS (DELETE FROM t WHERE id = {} RETURNING *) SELECT {}::int FROM gone",
    "SELECT {}::regclass, nextval({})",
    "SELECT x FROM t /* {} */ WHERE y = {}; ",
    "SELECT 1; SELECT {}",
)
_PLAIN = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\\"),
                 max_size=12)
LITERALS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(abs(f))),
    _PLAIN.map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["TRUE", "FALSE", "NULL", "B'0101'", "X'1F'", "$$a'b$$",
                     "E'x\\'y'", "'caf\u00e9'", "'a\u00a0b'", "0", "1", "''",
                     "'search_path'", "'ls -l'", "'accounts'"]),
)


def fresh(text: str) -> Analysis:
    return _analyze(text, "postgres")


def fill(template: str, literals: list[str]) -> str:
    return template.format(*literals[: template.count("{}")])


@given(template=st.sampled_from(TEMPLATES),
       first=st.lists(LITERALS, min_size=4, max_size=4),
       then=st.lists(LITERALS, min_size=4, max_size=4))
def test_a_reading_is_a_fresh_readings_whatever_its_literals(
        template: str, first: list[str], then: list[str]) -> None:
    for text in (fill(template, first), fill(template, then)):
        assert analyze(text, "postgres") == _analyze(text, "postgres")


def test_the_same_statement_with_other_literals_is_not_read_again() -> None:
    shapes = Shapes()
    reads: list[str] = []

    def read(text: str) -> Analysis:
        reads.append(text)
        return _analyze(text, "postgres")

    for aid in (17, 4711, 2147483647):  # (one more is a numeric: another shape)
        text = f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"
        reading = shapes.analysis(text, pglast_reader.shape, read, read)
        assert reading == _analyze(text, "postgres")
        assert reading["statements"][0]["text"] == text[:-1]
    assert reads == ["SELECT abalance FROM pgbench_accounts WHERE aid = 17;"]
    assert shapes.hits == 2


@pytest.mark.parametrize("texts", [
    # A write's bounds compare its literals: 1 = 2 is false, 1 = 1 true.
    ("DELETE FROM t WHERE id = 5 OR 1 = 2", "DELETE FROM t WHERE id = 5 OR 1 = 1"),
    ("SET search_path = app", "SET search_path = public"),
    ("SELECT set_config('search_path', 'app', false)",
     "SELECT set_config('role', 'app', false)"),
])
def test_a_reading_that_looks_at_a_value_is_its_texts_own(texts: tuple[str, str]) -> None:
    shapes = Shapes()
    reads: list[str] = []

    def read(text: str) -> Analysis:
        reads.append(text)
        return _analyze(text, "postgres")

    for text in texts:
        assert shapes.analysis(text, pglast_reader.shape, read, read) == _analyze(text, "postgres")
    assert reads == list(texts)
    assert shapes.hits == 0


@pytest.mark.parametrize("text", [
    "SELECT 1; SELECT 2",  # statements cut from the text by position
    "SELECT 'caf\u00e9'",  # read two ways where a Unicode space could be one
    "SELECT E'a\\'b'",  # a backslash: read with either escaping
    "COPY t TO PROGRAM 'ls'",  # a string of the tree, not a constant
])
def test_what_reads_otherwise_is_never_shaped(text: str) -> None:
    shapes = Shapes()
    for each in (text, text.replace("2", "3").replace("ls", "rm").replace("caf", "cab")):
        shapes.analysis(each, pglast_reader.shape, fresh, fresh)
    assert shapes.hits == 0


def test_a_shape_keeps_kinds_and_drops_values_and_positions() -> None:
    one = shape_of(parse_json("SELECT a FROM t WHERE b = 1 AND c = 'x'"))
    assert one == shape_of(parse_json("SELECT a FROM t WHERE b = 12345 AND c = 'it''s'"))
    assert one != shape_of(parse_json("SELECT a FROM t WHERE b = 'x' AND c = 1"))
    assert one != shape_of(parse_json("SELECT a FROM u WHERE b = 1 AND c = 'x'"))
    assert "12345" not in shape_of(parse_json("SELECT 12345"))


def test_the_shapes_kept_are_bounded() -> None:
    shapes = Shapes(kept=2)
    for table in ("a", "b", "c"):
        shapes.analysis(f"SELECT x FROM {table} WHERE y = 1", pglast_reader.shape, fresh,
                        fresh)
    shapes.analysis("SELECT x FROM a WHERE y = 2", pglast_reader.shape, fresh, fresh)
    assert shapes.hits == 0  # `a`'s shape went first
    shapes.analysis("SELECT x FROM c WHERE y = 2", pglast_reader.shape, fresh, fresh)
    assert shapes.hits == 1


def test_the_process_reads_postgres_by_shape() -> None:
    before = SHAPES.hits
    analyze("SELECT x FROM shaped_here WHERE y = 1")
    analyze("SELECT x FROM shaped_here WHERE y = 2")
    assert SHAPES.hits == before + 1


# MySQL: what its front sends (the server's version, its escaping known), literals where
# they are operands and where they are not (LIMIT, INTERVAL, a function's argument).
MARIADB = "10.11.6-MariaDB-0+deb12u1"
MYSQL_TEMPLATES = (
    "SELECT c FROM sbtest1 WHERE id = {}",
    "SELECT id, name FROM customers WHERE id BETWEEN {} AND {} AND k BETWEEN 1 AND {}",
    "UPDATE t SET a = 1 WHERE id BETWEEN {} AND {}",
    "SELECT id, name FROM t WHERE a IN ({}, {}) AND b <> {} ORDER BY id LIMIT {}",
    "SELECT * FROM t WHERE created > NOW() - INTERVAL {} DAY AND k >= {}",
    "UPDATE accounts SET balance = balance + {} WHERE id = {}",
    "DELETE FROM accounts WHERE id = {} OR {} = {}",
    "DELETE FROM t WHERE id IN ({}, {}) LIMIT {}",
    "INSERT INTO t (a, b) VALUES ({}, {}), ({}, {})",
    "SELECT SLEEP({}), CONCAT(name, {}) FROM t WHERE name LIKE {}",
    "SET SESSION sql_mode = {}",
    "SELECT a FROM t WHERE b = {} {}",
    "SELECT 1; SELECT {}",
)
MYSQL_LITERALS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(abs(f))),
    _PLAIN.filter(lambda s: '"' not in s and "#" not in s and "{" not in s)
    .map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["TRUE", "NULL", "0x1F", "X'1F'", "b'01'", "'1 day'", "'ANSI_QUOTES'",
                     "'a\\'b'", '"x"', "1e3", "0", "''", "_utf8mb4'x'"]),
)


@given(template=st.sampled_from(MYSQL_TEMPLATES),
       first=st.lists(MYSQL_LITERALS, min_size=4, max_size=4),
       then=st.lists(MYSQL_LITERALS, min_size=4, max_size=4),
       backslashes=st.sampled_from([True, False, None]))
def test_a_mysql_reading_is_a_fresh_readings_whatever_its_literals(
        template: str, first: list[str], then: list[str], backslashes: bool | None) -> None:
    for text in (fill(template, first), fill(template, then)):
        assert (analyze(text, "mysql", MARIADB, backslashes)
                == _analyze(text, "mysql", MARIADB, backslashes))


def test_a_mysql_point_read_is_read_once_for_every_id() -> None:
    shapes = Shapes()
    reads: list[str] = []

    def read(text: str) -> Analysis:
        reads.append(text)
        return _analyze(text, "mysql", MARIADB, True)

    def shaper(text: str) -> tuple[str, str] | None:
        return sqlglot_reader.shape(text, "mysql", MARIADB, True)

    for n in (7, 123456, 42):
        text = f"SELECT c FROM sbtest1 WHERE id={n} ;"
        assert shapes.analysis(text, shaper, read, read) == _analyze(text, "mysql", MARIADB,
                                                                     True)
    assert reads == ["SELECT c FROM sbtest1 WHERE id=7 ;"] and shapes.hits == 2


@pytest.mark.parametrize("text", [
    "SELECT * FROM t LIMIT 5",  # a LIMIT's number is no operand
    "SELECT * FROM t WHERE d > NOW() - INTERVAL '1 day'",  # sqlglot reads the string
    "SELECT \"x\" FROM t WHERE id = 1",  # a name under ANSI_QUOTES
    "SELECT * FROM t WHERE id = 1 -- note",
    "SELECT 1; SELECT 2",
])
def test_a_mysql_literal_keeps_its_text_where_it_is_no_operand(text: str) -> None:
    shaped = sqlglot_reader.shape(text, "mysql", MARIADB, True)
    other = sqlglot_reader.shape(text.replace("1", "2").replace("5", "6"), "mysql", MARIADB,
                                 True)
    assert shaped is None or other is None or shaped[0] != other[0]


@pytest.mark.parametrize(("dialect", "primer", "attack"), [
    # A literal that would end its string early on another lexing, or hide a statement.
    ("postgres", "SELECT a FROM t WHERE b = 'x'", "SELECT a FROM t WHERE b = 'x'' OR ''1''=''1'"),
    ("postgres", "SELECT a FROM t WHERE b = 'x'", "SELECT a FROM t WHERE b = E'x\\' OR 1=1 --'"),
    ("postgres", "SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 1; DROP TABLE t"),
    ("postgres", "DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 1 OR 1 = 1"),
    ("postgres", "SELECT a FROM t WHERE b = $$x$$", "SELECT a FROM t WHERE b = $$x$$; DROP t"),
    ("mysql", "SELECT a FROM t WHERE b = 'x'", "SELECT a FROM t WHERE b = 'x\\' OR 1=1 -- '"),
    ("mysql", "SELECT a FROM t WHERE b = 'x'", 'SELECT a FROM t WHERE b = "x" OR "1"'),
    ("mysql", "SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 1 /*!50000 OR 1=1 */"),
    ("mysql", "SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 1 # \nOR 1=1"),
    ("mysql", "DELETE FROM t WHERE id = 1 LIMIT 1", "DELETE FROM t WHERE id = 1 LIMIT 0"),
    ("mysql", "DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 1 OR 1 = 1"),
])
def test_a_primed_shape_reads_an_attackers_variant_as_a_fresh_reading_does(
        dialect: str, primer: str, attack: str) -> None:
    version = MARIADB if dialect == "mysql" else None
    for text in (primer, primer, attack):
        assert analyze(text, dialect, version) == _analyze(text, dialect, version)
