"""How a COPY ... TO STDOUT writes its rows, so that they can be read value by value.

The PostgreSQL front masks a result by its columns' names (the field rules, the
derived columns of the lineage); COPY's rows come as lines of text or CSV, one
CopyData message each, with no names: the names are its query's (lineage.py), and
how a line splits into values is the statement's options — FORMAT, DELIMITER, NULL,
QUOTE, ESCAPE, HEADER — read here from its tree, old spellings (`CSV HEADER`) and new
(`WITH (FORMAT csv, HEADER)`) alike, as PostgreSQL's parser hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser as pg_parser

from extproc.interpret.sql.pg_parse import parse_json


@dataclass(frozen=True, slots=True)
class CopyOut:
    """A COPY TO STDOUT's line format (PostgreSQL's defaults: tab, `\\N`; CSV's: comma,
    empty, `"`). `header`: its first line names the columns; `encoding`: an ENCODING
    option, whose bytes are not UTF-8 unless it says so. (Its binary format the
    CopyOutResponse says.)"""

    csv: bool = False
    delimiter: str = "\t"
    null: str = "\\N"
    quote: str = '"'
    escape: str = '"'
    header: bool = False
    encoding: str | None = None
    # The table it reads, as a quoted name (`"public"."customers"`): None for a query's
    # rows. The PostgreSQL front asks the catalog for its columns' types (copy_rows.py).
    relation: str | None = None


def copy_out(text: str) -> CopyOut | None:
    """The line format of `text` when it is one COPY ... TO STDOUT (None otherwise: other
    statements, several, or text that does not parse)."""
    try:
        statements = orjson.loads(parse_json(text)).get("stmts", [])
    except (pg_parser.ParseError, ValueError):
        return None
    if len(statements) != 1:
        return None
    copy = statements[0].get("stmt", {}).get("CopyStmt")
    if copy is None or copy.get("is_from") or "filename" in copy or copy.get("is_program"):
        return None
    options = {o["DefElem"]["defname"]: _value(o["DefElem"].get("arg"))
               for o in copy.get("options", ()) if "DefElem" in o}
    csv = str(options.get("format") or "text").lower() == "csv"
    quote = str(options.get("quote") or '"')
    return CopyOut(
        csv=csv,
        delimiter=str(options.get("delimiter") or ("," if csv else "\t")),
        null=str(options["null"]) if options.get("null") is not None else (
            "" if csv else "\\N"),
        quote=quote, escape=str(options.get("escape") or quote),
        header=_on(options.get("header", False)),
        encoding=None if options.get("encoding") is None else str(options["encoding"]),
        relation=_quoted(copy.get("relation")))


def _quoted(relation: dict[str, Any] | None) -> str | None:
    """A RangeVar's name, each part quoted as an identifier."""
    if relation is None:
        return None
    parts = [relation.get(k) for k in ("catalogname", "schemaname", "relname")]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts if p)


def _value(arg: Any) -> Any:
    """A DefElem's argument: a string, a number, a boolean; True when it has none (a
    bare `HEADER`); a list (FORCE_QUOTE's columns) as such."""
    if arg is None:
        return True
    if "String" in arg:
        return arg["String"].get("sval", "")
    if "Boolean" in arg:
        return bool(arg["Boolean"].get("boolval"))
    if "Integer" in arg:
        return arg["Integer"].get("ival", 0)
    return arg


def _on(value: Any) -> bool:
    """HEADER's value as PostgreSQL reads a boolean option (`match` is for COPY FROM)."""
    if isinstance(value, str):
        return value.lower() in ("true", "on", "1", "yes", "match")
    return bool(value)
