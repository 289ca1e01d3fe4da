"""`WireSql`: the PostgreSQL front's statements read into input.sql."""

from __future__ import annotations

from typing import Any

from extproc.config import Sql
from extproc.interpret import WireSql


def request(body: Any) -> Any:
    return {"method": "QUERY", "path": "/shop", "query": {}, "headers": {}, "body": body}


def test_a_statement_is_read_by_postgresqls_parser() -> None:
    reading = WireSql(Sql()).request(request("SELECT 1; DROP TABLE customers"))
    assert [s["kind"] for s in reading["statements"]] == ["select", "drop"]
    assert reading["multiple"] and reading["error"] is None


def test_a_request_without_sql_text_is_an_error_not_an_empty_reading() -> None:
    """The front always sends the text; anything else fails closed (sql.unparseable)."""
    reading = WireSql(Sql()).request(request(None))
    assert reading["error"] == "no SQL text to read" and reading["statements"] == []


def test_a_text_over_the_limit_is_an_error() -> None:
    reading = WireSql(Sql(max_bytes=16)).request(request("SELECT 1 -- " + "x" * 20))
    assert "sql.max_bytes" in (reading["error"] or "")
