"""One parse of a PostgreSQL text for every reader of it.

A statement's text is read by the interpreter (pglast_reader.py), then by the front's
own readers of what it may reach, lock, name or measure (extproc/postgres/: reach,
locks, namespace, estimate, effect): each asked libpg_query for the same tree, a parse
and its JSON each time. `parse_json` keeps the JSON text of the few texts of the moment,
keyed by the text itself (never by a digest, which two texts could share); each reader
loads its own tree from it, so none sees what another changed. A text that does not
parse raises as libpg_query does, each time (nothing is kept of it); a text over
KEPT_CHARS is parsed and not kept, so the cache holds at most KEPT texts of KEPT_CHARS
and their trees (about twelve times the text: a few MB at most).
"""

from __future__ import annotations

import functools

from pglast import parser as pg_parser

ParseError = pg_parser.ParseError
KEPT = 64
KEPT_CHARS = 4096


def parse_json(text: str) -> str:
    """libpg_query's parse tree of `text` as JSON text (ParseError where it fails)."""
    if len(text) > KEPT_CHARS:
        return pg_parser.parse_sql_json(text)
    return _kept(text)


@functools.lru_cache(maxsize=KEPT)
def _kept(text: str) -> str:
    return pg_parser.parse_sql_json(text)
