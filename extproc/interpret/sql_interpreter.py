"""`input.sql`: the SQL a request carries, over HTTP (`SqlHttp`) or from a database front
(`WireSql`), read by the SQL readers (sql/) within the target's limits, and summed up
for the span as OpenTelemetry's database conventions have it.

Apart from sql/, which reads a text and knows no request: this knows where a request
carries its SQL, and what a target's settings allow.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from extproc.codecs.jsonenc import json_type
from extproc.codecs.message import NotJsonText, is_json, media_type, parse_json
from extproc.config import Sql
from extproc.interpret.base import Plain

if TYPE_CHECKING:
    from extproc.codecs.message import Request
    from extproc.interpret.sql import SqlReading, Statement


class SqlHttp(Plain):
    """SQL carried over HTTP: a JSON field, a query parameter or the whole body.

    A request that may write (any method but GET, HEAD, OPTIONS) and whose body carries no
    SQL is `unread_write`: a server's JSON write API (Datasette's `POST /db/t/-/drop`,
    `/-/insert`, a row's `/-/delete`) changes data with no SQL text to judge. SQL in the
    query string does not make such a request read: Datasette ignores `?sql=` on a
    write, so `POST /db/t/1/-/delete?sql=select+1` would pass for a SELECT. Nor does SQL
    in the body of a write off the target's `sql.paths`, where the upstream runs none:
    Datasette drops a table sent `{"confirm": true, "sql": "select 1"}`. SQL is still
    read and judged everywhere, as reading more only refuses more.
    """

    key = "sql"

    def __init__(self, settings: Sql) -> None:
        from extproc.codecs.paths import path_matcher
        from extproc.interpret import sql
        from extproc.interpret.query_text import query_text

        sql.load(settings.dialect)
        self._analyze, self._query_text = sql.analyze, query_text
        self._settings = settings
        # Whether the upstream runs the SQL a request to a path carries (sql.paths).
        self._runs_sql: Callable[[str], bool] = (
            (lambda _path: True) if settings.paths is None else path_matcher(settings.paths))

    def request(self, request: Request) -> SqlReading:
        body_texts, problem = self._body_texts(request)
        reading = read_sql(self._query_texts(request) + body_texts, self._settings,
                           self._analyze, problem)
        reading["unread_write"] = (reading["error"] is None
                                   and request["method"] not in _READ_METHODS
                                   and not (body_texts and self._runs_sql(request["path"])))
        return reading

    def attributes(self, meaning: SqlReading, _request: Request | None) -> dict[str, Any]:
        return sql_attributes(meaning, self._query_text)

    def _query_texts(self, request: Request) -> list[str]:
        """The SQL texts of the query parameter the target names, in any case (`?SQL=`)."""
        name = self._settings.query_param
        return [] if name is None else _named(request["query"], name, flatten=True)

    def _body_texts(self, request: Request) -> tuple[list[str], str | None]:
        """Every SQL text the body carries where the target says SQL travels; and a problem
        when such a place holds something that is not text (it cannot be read, so it must
        not pass as "no SQL").

        Each place is read at least as widely as a server might read it, since a reading
        wider than the server's only refuses more: names in any case (`{"Sql": ...}`), a
        form body as query parameters, and a JSON object sent under another content type
        (many frameworks parse a body as JSON whatever its type, and Python's
        json.loads(bytes) reads UTF-16 and UTF-32 too). A body that cannot be read at all
        (binary, multipart) is refused.
        """
        settings, body = self._settings, request["body"]
        media = media_type(request["headers"].get("content-type", ""))
        if media.startswith("multipart/"):
            return [], f"a {media} body is not read for SQL; send JSON, a form or text"
        if body is None and media and not _readable_media(media):
            return [], f"a body of type {media} is not SQL text"
        texts: list[str] = []
        if settings.query_param is not None and media == _FORM and isinstance(body, str):
            form = parse_qs(body, keep_blank_values=True)
            texts += _named(form, settings.query_param, flatten=True)
        if settings.json_field is not None and body is not None:
            problem = self._json_texts(body, is_json(media), texts)
            if problem:
                return texts, problem
        if settings.raw_body and not is_json(media) and media != _FORM and isinstance(body, str):
            texts.append(body)
        return texts, None

    def _json_texts(self, body: Any, declared_json: bool, texts: list[str]) -> str | None:
        """Add the SQL of `json_field` to `texts`; a problem if it is not text."""
        field_name = self._settings.json_field
        if not declared_json and isinstance(body, str):
            body, problem = _undeclared_json(body)
            if problem is not None or not isinstance(body, dict):
                return problem
        if not isinstance(body, dict):
            return f"the body is a JSON {json_type(body)}, not an object with a {field_name} field"
        values: list[Any] = [body]
        for key in self._settings.json_path:
            values = [v for d in values if isinstance(d, dict) for v in _named(d, key)]
        for value in values:
            if isinstance(value, str):
                texts.append(value)
            elif value is not None:
                return f"the body's {field_name} field is a JSON {json_type(value)}, not a string"
        return None


def sql_attributes(meaning: SqlReading, query_text: QueryText) -> dict[str, Any]:
    """A SQL reading in brief, for the span: the kinds and tables of its statements; and
    as OpenTelemetry's database conventions have it (`db.*`), with its statements' text
    as `query_text` gives it (query_text.py's, which its interpreter loads)."""
    statements = meaning["statements"]
    found: dict[str, Any] = {
        "tollgate.sql.kinds": tuple(s["kind"] for s in statements),
        "tollgate.sql.tables": tuple(sorted({t for s in statements for t in s["tables"]})),
        **({"tollgate.sql.error": meaning["error"]} if meaning["error"] else {}),
        "db.system.name": _DB_SYSTEMS.get(meaning["dialect"], meaning["dialect"]),
    }
    top = [s for s in statements if not s["nested"]]
    if not top:
        return found
    if len(top) == 1:  # most exchanges: spared the batch's loops (this runs on every one)
        operation = _operation(top[0])
        tables = top[0]["tables"]
        words = [operation, *tables]
        if len(tables) == 1:
            found["db.collection.name"] = tables[0]
    else:
        operations = [_operation(s) for s in top]
        words = [w for s, op in zip(top, operations, strict=True) for w in (op, *s["tables"])]
        operation = "BATCH" + (f" {operations[0]}" if len(set(operations)) == 1 else "")
    found["db.operation.name"] = operation
    found["db.query.summary"] = _summary(words)
    text = query_text(top, meaning["dialect"])
    if text:
        found["db.query.text"] = text
    return found


# The statements' text for db.query.text, sanitized, in the dialect.
QueryText = Callable[[list["Statement"], str], str]
# db.system.name of each dialect with a well-known one; any other is the dialect's name,
# the DBMS's own in lower case, as the conventions ask of a DBMS they do not list.
_DB_SYSTEMS = {"postgres": "postgresql", "tsql": "microsoft.sql_server",
               "oracle": "oracle.db", "redshift": "aws.redshift", "spark2": "spark",
               "prql": "other_sql"}
# Statement kinds that name no one operation: the statement's first word does.
_UNNAMED_KINDS = frozenset({"other", "transaction"})
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/|#[^\n]*)*([A-Za-z_]{1,32})\b", re.S)
# The conventions' bound on a query summary.
_SUMMARY_CHARS = 255


def _operation(statement: Statement) -> str:
    """A statement's db.operation.name: its kind, upper-case (SELECT, DROP ...), or its
    first word where the kind names no one operation (BEGIN, COMMIT, FETCH ...)."""
    kind = statement["kind"]
    if kind in _UNNAMED_KINDS:
        first = _FIRST_WORD.match(statement["text"])
        if first:
            return first[1].upper()
    return kind.upper()


def _summary(words: list[str]) -> str:
    """db.query.summary: each statement's operation and tables, in order, cut between
    words at 255 characters (an operation is one short word: the first always fits)."""
    summary = " ".join(words)
    if len(summary) <= _SUMMARY_CHARS:
        return summary
    cut = summary[:_SUMMARY_CHARS + 1]
    return cut[:cut.rindex(" ")]


def read_sql(texts: list[str], settings: Sql, analyze: Callable[[str, str], Any],
             problem: str | None = None) -> SqlReading:
    """`input.sql` for these texts, within the settings' limits (a text or a count over
    them is an error, which the pack refuses); `problem`: an error found before."""
    statements: list[Statement] = []
    error = problem
    for text in texts:
        if len(text) > settings.max_bytes:
            error = error or (f"SQL text of {len(text)} characters exceeds this target's "
                              f"limit of {settings.max_bytes} (sql.max_bytes)")
            continue
        found = analyze(text, settings.dialect)
        statements += found["statements"]
        error = error or found["error"]
    if len(statements) > settings.max_statements:
        error = error or (f"{len(statements)} SQL statements exceed this target's limit "
                          f"of {settings.max_statements} (sql.max_statements)")
    return {
        "dialect": settings.dialect,
        "statements": [] if error else statements,
        "multiple": sum(not s["nested"] for s in statements) > 1,
        "error": error,
        "unread_write": False,
    }


# The request header a database front gives the server's version in (MySQL's handshake's).
SERVER_VERSION = "server-version"
# The request header the MySQL front says in how the server lexes a backslash in a string:
# "on" (an escape), "off" (itself: NO_BACKSLASH_ESCAPES); absent, it is not known.
BACKSLASH_ESCAPES = "backslash-escapes"
_ESCAPING = {"on": True, "off": False}


class WireSql(Plain):
    """SQL from a database's own protocol, as its front puts it in the request's body:
    the text of a PostgreSQL Query or Parse, of a MySQL COM_QUERY or COM_STMT_PREPARE.
    Read in the target's dialect (`settings.dialect`): PostgreSQL's own parser for
    PostgreSQL, as the database will read it; sqlglot's MySQL dialect for MySQL."""

    key = "sql"

    def __init__(self, settings: Sql) -> None:
        from extproc.interpret import sql
        from extproc.interpret.query_text import query_text

        sql.load(settings.dialect)
        self._analyze, self._query_text = sql.analyze, query_text
        self._settings = settings

    def request(self, request: Request) -> SqlReading:
        body = request["body"]
        if not isinstance(body, str):  # the front always sends the text: fail closed
            return read_sql([], self._settings, self._analyze, "no SQL text to read")
        # The server's version and escaping, where the front knows them (its reading of
        # MySQL's executable comments and strings depends on them).
        version = request["headers"].get(SERVER_VERSION)
        backslashes = _ESCAPING.get(request["headers"].get(BACKSLASH_ESCAPES, ""))
        return read_sql([body], self._settings, functools.partial(
            self._analyze, server_version=version, backslashes=backslashes))

    def attributes(self, meaning: SqlReading, _request: Request | None) -> dict[str, Any]:
        return sql_attributes(meaning, self._query_text)


_FORM = "application/x-www-form-urlencoded"
# Methods that only read, as the pack's http.read_only has them. A request of any other
# method writes, and its body must carry the SQL it runs (input.sql.unread_write).
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _undeclared_json(body: str) -> tuple[Any, str | None]:
    """A text body not declared JSON, read as JSON where it may be an object: the value
    (None when it is no JSON), and a problem when it is JSON that cannot be read."""
    if "\x00" in body or body.startswith("\ufeff"):
        # UTF-16/32 (NUL bytes are valid UTF-8) or a byte order mark: decoded as
        # json.loads(bytes) would, which detects the encoding.
        try:
            return json.loads(body.encode("utf-8", "surrogatepass")), None
        except ValueError:
            return None, None
    if not body.lstrip().startswith("{"):
        return None, None  # text that is no JSON object: not where this SQL travels
    try:
        return parse_json(body), None
    except NotJsonText as exc:
        return None, f"the body is JSON that cannot be read: {exc}"
    except ValueError:
        return None, None


def _readable_media(media: str) -> bool:
    """Media whose body reaches the interpreter as text or JSON whenever it has one (an
    undecodable one is refused before): for these, no body means an empty one."""
    return is_json(media) or media == _FORM or media.startswith("text/")


def _named(mapping: dict[str, Any], name: str, flatten: bool = False) -> list[Any]:
    """The values under `name` in any case; `flatten`: each a list of values (a query)."""
    wanted = name.lower()
    found = [value for key, value in mapping.items() if key.lower() == wanted]
    return [v for value in found for v in value] if flatten else found
