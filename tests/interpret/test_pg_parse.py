"""One parse of a PostgreSQL text for every reader of it (extproc/interpret/sql/pg_parse.py)."""

from __future__ import annotations

import orjson
import pytest
from pglast import parser as pg_parser

from extproc.interpret.sql import analyze, pg_parse
from extproc.postgres import locks, reach

TEXT = "SELECT id FROM customers WHERE id = 4123 FOR UPDATE"


def test_the_tree_is_libpg_querys_own() -> None:
    assert pg_parse.parse_json(TEXT) == pg_parser.parse_sql_json(TEXT)


def test_the_interpreter_and_the_fronts_readers_share_one_parse() -> None:
    text = f"{TEXT} -- {id(object())}"  # new to this process
    pg_parse._kept.cache_clear()
    analyze(text, "postgres")
    reach.names.cache_clear()
    assert reach.names(text) is not None
    assert locks.locks(text, None)
    info = pg_parse._kept.cache_info()
    # Parsed once: the reading's shape (shapes.py), its reader, reach and locks share it.
    assert (info.misses, info.hits) == (1, 3)


def test_each_reader_loads_a_tree_of_its_own() -> None:
    first = orjson.loads(pg_parse.parse_json(TEXT))
    first["stmts"].clear()
    assert orjson.loads(pg_parse.parse_json(TEXT))["stmts"]


def test_a_text_that_does_not_parse_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(pg_parse.ParseError):
            pg_parse.parse_json("SELEC 1")
    assert pg_parse._kept.cache_info().currsize <= pg_parse.KEPT


def test_a_long_text_is_parsed_and_not_kept() -> None:
    text = "SELECT " + ", ".join(["1"] * (pg_parse.KEPT_CHARS // 3))
    pg_parse._kept.cache_clear()
    assert pg_parse.parse_json(text) == pg_parser.parse_sql_json(text)
    assert pg_parse._kept.cache_info().currsize == 0
