"""A SQL statement's text for the span (`db.query.text`), every literal replaced by `?`.

OpenTelemetry's database conventions put a query's text on a span only sanitized: each
literal (a string, a number, a boolean, a bit or hex string, a dollar-quoted body)
replaced by a placeholder, so that the tracing backend gets the statement's shape and
none of the values it carries. The text is lexed by its dialect's own lexer, as the
parsers that read it for the policy lex it: PostgreSQL's scanner (pglast) for postgres,
sqlglot's tokenizer for the others. Comments are dropped (they can hold anything) and
blanks collapse to one space.

What cannot be lexed (a statement cut at `MAX_TEXT` inside a literal or a comment) gives
None: no text rather than one unsanitized. A quoted string holding a backslash ends the
text: a server that reads backslashes as escapes (PostgreSQL with
standard_conforming_strings off, MySQL by default) may read what follows as part of the
string, where the lexer saw words. SQLite reads a double-quoted name that is no column
as a string, so its double-quoted names are placeholders too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from extproc.interpret.sql import MAX_TEXT, Statement

PLACEHOLDER = "?"
# Agents repeat their queries: each (text, dialect) is lexed once while it stays cached.
_CACHE_SIZE = 1024
_PG_LITERALS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST",
                          "TRUE_P", "FALSE_P"})
_PG_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
_GLOT_LITERALS = frozenset({"STRING", "NUMBER", "BIT_STRING", "HEX_STRING", "BYTE_STRING",
                            "NATIONAL_STRING", "NATIONAL_RAW_STRING", "RAW_STRING",
                            "HEREDOC_STRING", "UNICODE_STRING", "TRUE", "FALSE"})
# What a lexeme is to the sanitized text: kept, replaced, or left out.
_WORD, _LITERAL, _COMMENT = 0, 1, 2
Lexeme = tuple[int, int, int]  # start, end (exclusive), what


def query_text(top: list[Statement], dialect: str) -> str:
    """db.query.text of a reading's top-level statements: their texts sanitized, joined by
    `; ` as the conventions join a batch's; cut at MAX_TEXT characters, of no more than
    twice as many read (a batch of long literals shrinks to little text, each costing its
    lexing on the event loop: ~0.4 ms per 1000 characters)."""
    texts: list[str] = []
    read = length = 0
    for statement in top:
        source = statement["text"]
        if texts and (read + len(source) > 2 * MAX_TEXT or length >= MAX_TEXT):
            break
        text = sanitized(source, dialect)
        if text is None:
            break
        texts.append(text)
        read += len(source)
        length += len(text) + 2
    return "; ".join(texts)[:MAX_TEXT]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def sanitized(text: str, dialect: str) -> str | None:
    """`text` with its literals replaced by `?` and its comments dropped (None: it could
    not be lexed)."""
    try:
        lexemes = _postgres(text) if dialect == "postgres" else _glot(text, dialect)
    except _Unlexable:
        return None
    out: list[str] = []
    last, blank = 0, False
    for start, end, what in lexemes:
        blank = blank or start > last
        last = end
        if what == _COMMENT:
            blank = True
            continue
        if blank and out:
            out.append(" ")
        blank = False
        if what == _WORD:
            out.append(text[start:end])
            continue
        out.append(PLACEHOLDER)
        if text[start] in "'\"" and "\\" in text[start:end]:
            break
    return "".join(out)


class _Unlexable(Exception):
    pass


def _postgres(text: str) -> Iterable[Lexeme]:
    from pglast import parser

    try:
        tokens = parser.scan(text)
    except parser.ParseError:
        raise _Unlexable from None
    return [(t.start, t.end + 1, _LITERAL if t.name in _PG_LITERALS
             else _COMMENT if t.name in _PG_COMMENTS else _WORD) for t in tokens]


def _glot(text: str, dialect: str) -> Iterable[Lexeme]:
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    from extproc.interpret.sql.sqlglot_reader import tokenize

    try:
        tokens = tokenize(text, dialect)
    except SqlglotError:
        raise _Unlexable from None
    quoted_names = dialect == "sqlite"
    return [(t.start, t.end + 1, _LITERAL if t.token_type.name in _GLOT_LITERALS or (
        quoted_names and t.token_type is TokenType.IDENTIFIER and text[t.start] == '"')
        else _WORD) for t in tokens]
