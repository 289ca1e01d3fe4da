"""Bytes as MySQL drivers write them into a statement's text: `_binary'...'`, the bytes
as they are but for the escapes the server's lexing needs. PyMySQL 1.2
(`escape_bytes_prefixed`, `_quote_bytes`) and mysqlclient (MariaDB Connector/C's
`mysql_real_escape_string`) escape alike, choosing by the status the server last sent:
with backslashes (NUL, LF, CR, ^Z, both quotes, the backslash) unless it said
NO_BACKSLASH_ESCAPES, then by doubling the quote alone."""

from __future__ import annotations

_ESCAPES = {0: b"\\0", ord("\n"): b"\\n", ord("\r"): b"\\r", 0x1A: b"\\Z",
            ord('"'): b'\\"', ord("'"): b"\\'", ord("\\"): b"\\\\"}


def binary_literal(value: bytes, backslashes: bool) -> bytes:
    """`value` as `_binary'...'`, escaped as a server whose backslashes escape (or not)
    reads it back to `value`."""
    if backslashes:
        inner = b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in value)
    else:
        inner = value.replace(b"'", b"''")
    return b"_binary'" + inner + b"'"
