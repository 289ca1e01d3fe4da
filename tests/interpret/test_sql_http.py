"""Where a `sql-http` target's SQL is found (`SqlHttp`), and what it reads there.

Each case is a request as the servicer builds it (headers, then the body decoded by
`http.message.decode_request_body`), read by the target's interpreter. Positives and
negatives side by side: a place the target does not name is not read, and a place it
names that holds something other than text is an error, never "no SQL".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.codecs.message import decode_request_body, request_view
from extproc.codecs.refusal import Refusal
from extproc.config import Sql
from extproc.interpret import SqlHttp


def read(
    path: str = "/sql", body: bytes | str | dict[str, Any] | list[Any] | None = None,
    content_type: str | None = None, method: str = "POST", **settings: Any,
) -> dict[str, Any]:
    """input.sql for one request (a POST unless `method` says) to a target with these `sql`
    settings."""
    if isinstance(body, dict | list):
        body, content_type = json.dumps(body), content_type or "application/json"
    raw = body.encode() if isinstance(body, str) else body
    headers = {":method": method, ":path": path}
    if content_type:
        headers["content-type"] = content_type
    request = request_view(headers, ())
    if raw:
        request["body"] = decode_request_body(headers, raw)
    return SqlHttp(Sql(**settings)).request(request)


def kinds(meaning: dict[str, Any]) -> list[str]:
    assert meaning["error"] is None, meaning["error"]
    return [s["kind"] for s in meaning["statements"]]


@pytest.mark.parametrize(
    ("request_args", "settings", "expected"),
    [
        ({"body": {"sql": "DROP TABLE t"}}, {}, ["drop"]),
        ({"body": {"SQL": "DROP TABLE t"}}, {}, ["drop"]),
        ({"body": {"sql": "SELECT 1", "Sql": "DROP TABLE t"}}, {}, ["select", "drop"]),
        ({"body": {"query": {"text": "TRUNCATE t"}}}, {"json_field": "query.text"}, ["truncate"]),
        ({"path": "/db?sql=DELETE+FROM+t+WHERE+id%3D1"}, {}, ["delete"]),
        ({"path": "/db?SQL=DROP+TABLE+t"}, {}, ["drop"]),
        ({"path": "/db?sql=SELECT+1&sql=DROP+TABLE+t"}, {}, ["select", "drop"]),
        ({"path": "/db?q=DROP+TABLE+t"}, {"query_param": "q", "json_field": None}, ["drop"]),
        ({"body": "sql=DR%4FP%20TABLE%20t", "content_type": "application/x-www-form-urlencoded"},
         {}, ["drop"]),
        ({"body": "DROP TABLE t", "content_type": "text/plain"}, {"raw_body": True}, ["drop"]),
        ({"body": "DROP TABLE t", "content_type": "application/sql"}, {"raw_body": True},
         ["drop"]),
        # A JSON object sent as text: frameworks that parse bodies whatever their type run it.
        ({"body": '{"sql": "DROP TABLE t"}', "content_type": "text/plain"}, {}, ["drop"]),
        ({"body": '{"sql": "DROP TABLE t"}', "content_type": "application/octet-stream"}, {},
         ["drop"]),
    ],
    ids=[
        "json-field", "json-field-any-case", "json-field-both-cases", "json-nested-field",
        "query-parameter", "query-parameter-any-case", "query-parameter-repeated",
        "other-query-parameter", "form-body", "raw-text-body", "raw-sql-body",
        "json-object-as-text", "json-object-as-octet-stream",
    ],
)
def test_sql_is_found_where_the_target_says_it_travels(
    request_args: dict[str, Any], settings: dict[str, Any], expected: list[str]
) -> None:
    assert kinds(read(**request_args, **settings)) == expected


@pytest.mark.parametrize(
    ("request_args", "settings"),
    [
        ({"body": {"query": "DROP TABLE t"}}, {}),
        ({"body": {"params": {"sql": "DROP TABLE t"}}}, {}),
        ({"path": "/db?query=DROP+TABLE+t"}, {}),
        ({"path": "/db?sql=DROP+TABLE+t"}, {"query_param": None}),
        ({"body": "DROP TABLE t", "content_type": "text/plain"}, {}),
        ({"body": {"sql": "DROP TABLE t"}}, {"json_field": None, "raw_body": True}),
        ({"body": "sql=DROP+TABLE+t", "content_type": "application/x-www-form-urlencoded"},
         {"query_param": None, "raw_body": True}),
        ({"body": "{not json", "content_type": "text/plain"}, {}),
    ],
    ids=[
        "other-json-field", "nested-json-field", "other-query-parameter", "query-not-named",
        "text-body-without-raw-body", "json-body-with-raw-body-only", "form-body-not-raw",
        "braced-text-that-is-not-json",
    ],
)
def test_places_the_target_does_not_name_are_not_read(
    request_args: dict[str, Any], settings: dict[str, Any]
) -> None:
    assert kinds(read(**request_args, **settings)) == []


@pytest.mark.parametrize(
    ("request_args", "settings", "error"),
    [
        ({"body": {"sql": ["DROP TABLE t"]}}, {},
         "the body's sql field is a JSON array, not a string"),
        ({"body": {"sql": {"text": "DROP TABLE t"}}}, {},
         "the body's sql field is a JSON object, not a string"),
        ({"body": {"sql": 1}}, {}, "the body's sql field is a JSON number, not a string"),
        ({"body": ["DROP TABLE t"]}, {},
         "the body is a JSON array, not an object with a sql field"),
        ({"body": '"DROP TABLE t"', "content_type": "application/json"}, {},
         "the body is a JSON string, not an object with a sql field"),
        ({"body": b"DROP TABLE t; \xff", "content_type": "application/octet-stream"},
         {"raw_body": True}, "a body of type application/octet-stream is not SQL text"),
        ({"body": '{"sql": "\\ud800"}', "content_type": "text/plain"}, {},
         "the body is JSON that cannot be read: it escapes a lone surrogate"),
    ],
    ids=["field-is-a-list", "field-is-an-object", "field-is-a-number", "body-is-a-list",
         "body-is-a-string", "raw-body-not-text", "json-as-text-with-lone-surrogate"],
)
def test_a_named_place_holding_no_text_is_an_error(
    request_args: dict[str, Any], settings: dict[str, Any], error: str
) -> None:
    meaning = read(**request_args, **settings)
    assert meaning["statements"] == []
    assert meaning["error"].startswith(error), meaning["error"]


def test_a_null_field_or_no_body_is_no_sql() -> None:
    assert kinds(read(body={"sql": None})) == []
    assert kinds(read()) == []


def test_text_over_max_bytes_is_an_error_not_parsed() -> None:
    meaning = read(body={"sql": "SELECT 1" + " " * 100}, max_bytes=100)
    assert meaning["statements"] == []
    assert meaning["error"] == (
        "SQL text of 108 characters exceeds this target's limit of 100 (sql.max_bytes)"
    )


def test_statements_over_max_statements_are_an_error_nested_ones_counted() -> None:
    cte = "WITH a AS (DELETE FROM t WHERE x RETURNING 1) SELECT 1;"
    assert len(read(body={"sql": cte * 2}, max_statements=4)["statements"]) == 4
    meaning = read(body={"sql": cte * 3}, max_statements=4)
    assert meaning["statements"] == []
    assert meaning["error"] == (
        "6 SQL statements exceed this target's limit of 4 (sql.max_statements)"
    )


def test_the_first_error_of_several_texts_is_reported_and_no_statement_passes() -> None:
    meaning = read("/db?sql=SELECT+1", body={"sql": "SELEC 1"})
    assert meaning["statements"] == []
    assert meaning["error"] == 'syntax error at or near "SELEC", at index 0'


def test_multiple_counts_top_level_statements_across_places() -> None:
    assert read("/db?sql=SELECT+1", body={"sql": "SELECT 2"})["multiple"] is True
    nested = read(body={"sql": "WITH a AS (DELETE FROM t WHERE x RETURNING 1) SELECT 1"})
    assert (len(nested["statements"]), nested["multiple"]) == (2, False)


def test_the_dialect_is_the_targets() -> None:
    meaning = read(body={"sql": "SELECT `a` FROM t"}, dialect="mysql")
    assert (meaning["dialect"], kinds(meaning)) == ("mysql", ["select"])
    assert read(body={"sql": "SELECT `a` FROM t"})["error"] is not None  # not PostgreSQL


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16", "utf-32", "utf-8-sig"])
def test_a_json_object_in_another_unicode_encoding_is_read_as_python_reads_it(
    codec: str
) -> None:
    """json.loads(bytes) (what FastAPI and Flask call) detects UTF-16/32 and a BOM."""
    raw = json.dumps({"sql": "DROP TABLE t"}).encode(codec)
    if codec in ("utf-16-le", "utf-8-sig"):  # no byte invalid in UTF-8: it arrives as text
        assert kinds(read(body=raw, content_type="text/plain")) == ["drop"]
        assert kinds(read(body=raw)) == ["drop"]
    else:  # a byte order mark invalid in UTF-8: refused before any reading
        with pytest.raises(Refusal, match="not valid UTF-8"):
            read(body=raw, content_type="text/plain")


def test_a_body_that_is_not_text_is_refused_on_any_sql_target() -> None:
    meaning = read(body=b"\xff\xfe{\x00", content_type="application/octet-stream")
    assert meaning["error"] == "a body of type application/octet-stream is not SQL text"
    multipart = read(body='--B\r\nContent-Disposition: form-data; name="sql"\r\n\r\nDROP\r\n',
                     content_type="multipart/form-data; boundary=B")
    assert multipart["error"].startswith("a multipart/form-data body is not read for SQL")


DATASETTE = {"json_field": None, "dialect": "sqlite"}


@pytest.mark.parametrize(
    ("request_args", "settings", "unread"),
    [
        ({"path": "/shop/t/-/drop", "body": {"confirm": True}}, DATASETTE, True),
        ({"path": "/shop/t/-/insert", "body": {"row": {"sql": "x"}}}, DATASETTE, True),
        ({"path": "/shop/t/1/-/delete?sql=select+1"}, DATASETTE, True),
        ({"path": "/shop/t/-/drop?sql=select+1", "body": {"confirm": True}}, DATASETTE, True),
        ({"body": {"query": "SELECT 1"}}, {}, True),
        ({"body": "SELECT 1", "content_type": "text/plain"}, {}, True),
        ({"method": "PUT"}, {}, True),
        ({"method": "PATCH", "body": {}}, {}, True),
        ({"method": "DELETE", "path": "/tables/t"}, {}, True),
        ({"method": "get", "path": "/shop/t.json"}, {}, True),
        ({"body": {"sql": "SELECT 1"}}, {}, False),
        ({"body": {"sql": ""}}, {}, False),
        ({"path": "/shop/-/execute-write", "body": "sql=DELETE+FROM+t+WHERE+id%3D1",
          "content_type": "application/x-www-form-urlencoded"}, DATASETTE, False),
        ({"body": "SELECT 1", "content_type": "text/plain"}, {"raw_body": True}, False),
        ({"body": {"sql": ["DROP TABLE t"]}}, {}, False),
        ({"method": "GET", "path": "/shop/t.json"}, DATASETTE, False),
        ({"method": "GET", "path": "/shop.json?sql=select+1"}, DATASETTE, False),
        ({"method": "HEAD", "path": "/shop/t.json"}, DATASETTE, False),
        ({"method": "OPTIONS", "path": "/shop/t/-/drop"}, DATASETTE, False),
    ],
    ids=[
        "drop-api", "insert-api-with-a-sql-key-in-a-row", "row-delete-with-sql-in-the-query",
        "drop-api-with-sql-in-the-query", "other-json-field", "text-body-not-read",
        "put-without-body", "patch-empty-object", "delete-method", "lower-case-method",
        "json-field", "empty-sql-text", "form-body", "raw-body", "field-not-text-is-an-error",
        "get", "get-with-sql", "head", "options",
    ],
)
def test_a_write_is_read_only_by_the_sql_its_body_carries(
    request_args: dict[str, Any], settings: dict[str, Any], unread: bool
) -> None:
    """What a write changes is in its body: a write whose body carries no SQL is unread,
    whatever SQL its query string holds (Datasette ignores `?sql=` on a write)."""
    assert read(**request_args, **settings)["unread_write"] is unread


def test_sql_in_the_query_of_an_unread_write_is_still_judged() -> None:
    meaning = read("/shop/t/1/-/delete?sql=DROP+TABLE+t", **DATASETTE)
    assert meaning["unread_write"] is True
    assert kinds(meaning) == ["drop"]


# Datasette runs the SQL it is sent on its query page and execute-write only.
DATASETTE_PATHS = {"dialect": "sqlite", "paths": ["/shop/-/query*", "/*/-/execute-write"]}
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("request_args", "settings", "unread"),
    [
        ({"path": "/shop/t/-/drop", "body": {"confirm": True, "sql": "select 1"}},
         DATASETTE_PATHS, True),
        # JSON to Datasette (its drop parses any body as JSON), a form to the gateway.
        ({"path": "/shop/t/-/drop", "body": '{"confirm": true, "x": "&sql=select 1&"}',
          "content_type": FORM}, DATASETTE_PATHS, True),
        ({"path": "/shop/delete_all", "body": "sql=select+1", "content_type": FORM},
         DATASETTE_PATHS, True),
        ({"path": "/shop/-/queries/store", "body": {"name": "q", "sql": "DELETE FROM t"}},
         DATASETTE_PATHS, True),
        ({"path": "/shop/-/execute-writ%65", "body": {"sql": "select 1"}}, DATASETTE_PATHS,
         True),
        ({"path": "/shop/-/execute-write/", "body": {"sql": "select 1"}}, DATASETTE_PATHS, True),
        ({"path": "/shop/-/execute-write", "body": {"sql": "DELETE FROM t WHERE id = 1"}},
         DATASETTE_PATHS, False),
        ({"path": "/shop/-/execute-write", "body": "sql=select+1", "content_type": FORM},
         DATASETTE_PATHS, False),
        ({"path": "/shop/-/query.json", "body": {"sql": "select 1"}}, DATASETTE_PATHS, False),
        ({"method": "GET", "path": "/shop/t.json?sql=select+1"}, DATASETTE_PATHS, False),
        # No paths: SQL counts on every path, the decoy included (a warning at start).
        ({"path": "/shop/t/-/drop", "body": {"confirm": True, "sql": "select 1"}},
         {"dialect": "sqlite"}, False),
    ],
    ids=[
        "decoy-json-on-drop", "decoy-form-in-json-on-drop", "decoy-form-on-stored-query",
        "sql-stored-to-run-later", "escaped-listed-path", "listed-path-with-trailing-slash",
        "execute-write-json", "execute-write-form", "query-page", "get-elsewhere",
        "decoy-without-paths",
    ],
)
def test_a_writes_sql_counts_only_where_the_upstream_runs_it(
    request_args: dict[str, Any], settings: dict[str, Any], unread: bool
) -> None:
    assert read(**request_args, **settings)["unread_write"] is unread


def test_sql_off_the_paths_is_still_judged() -> None:
    """Reading more only refuses more: a path the gateway takes for unlisted but the
    upstream runs SQL at (an encoding, a trailing slash) gets its SQL judged."""
    meaning = read("/shop/t/-/drop", {"confirm": True, "sql": "DROP TABLE t"}, **DATASETTE_PATHS)
    assert (kinds(meaning), meaning["unread_write"]) == (["drop"], True)
    meaning = read("/shop/-/qu%65ry?sql=DROP+TABLE+t", method="GET", **DATASETTE_PATHS)
    assert (kinds(meaning), meaning["unread_write"]) == (["drop"], False)
