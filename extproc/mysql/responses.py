"""OK, ERR and EOF: the answers any command may get, and what ends a result set's rows.

Their layouts follow the capabilities agreed at login (CLIENT_PROTOCOL_41,
CLIENT_SESSION_TRACK; with CLIENT_DEPRECATE_EOF an OK takes an EOF's place), which the
caller passes in.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from extproc.mysql.flags import (
    CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41,
    CLIENT_SESSION_TRACK,
    CLIENT_TRANSACTIONS,
    EOF_HEADER,
    ERR_HEADER,
    OK_HEADER,
    SERVER_SESSION_STATE_CHANGED,
)
from extproc.mysql.framing import (
    INT2,
    MAX_PAYLOAD,
    ProtocolViolation,
    Reader,
    as_bytes,
    as_text,
    expect_header,
    lenenc_int,
    lenenc_str,
)

_WORDS = struct.Struct("<HH")  # (status, warnings) or (warnings, status)


class Ok(NamedTuple):
    """An OK packet. `session_state`: the raw session-tracking entries (with
    CLIENT_SESSION_TRACK, when `status` has SERVER_SESSION_STATE_CHANGED)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: str = ""
    session_state: bytes = b""


class Err(NamedTuple):
    """An ERR packet. A pre-4.1 one carries no SQLSTATE: it reads as HY000 ("general
    error"), as the client libraries read it. MariaDB's progress reports (code 0xFFFF)
    come only to clients that ask (MARIADB_CLIENT_PROGRESS)."""

    code: int
    sqlstate: str
    message: str


class Eof(NamedTuple):
    warnings: int = 0
    status: int = 0


def is_err(payload: bytes) -> bool:
    return payload[:1] == b"\xff"


def is_eof(payload: bytes) -> bool:
    """An EOF packet: 0xFE and under 9 bytes (a row starting with 0xFE, an 8-byte length,
    is longer)."""
    return payload[:1] == b"\xfe" and len(payload) < 9


def is_ok(payload: bytes, capabilities: int) -> bool:
    """An OK where one may come: 0x00, or, with CLIENT_DEPRECATE_EOF, 0xFE and at least 7
    bytes (the OK that replaces a result set's closing EOF)."""
    return payload[:1] == b"\x00" or (
        payload[:1] == b"\xfe" and bool(capabilities & CLIENT_DEPRECATE_EOF)
        and 7 <= len(payload) < MAX_PAYLOAD)


def ends_rows(payload: bytes, capabilities: int) -> bool:
    """Whether a packet where a row may come ends the rows instead: an ERR, an EOF, or
    with CLIENT_DEPRECATE_EOF an OK-as-EOF (any 0xFE shorter than a split packet: a row
    whose first value's length takes 0xFE is 16 MiB or more)."""
    if payload[:1] == b"\xff":
        return True
    if payload[:1] != b"\xfe":
        return False
    return len(payload) < (MAX_PAYLOAD if capabilities & CLIENT_DEPRECATE_EOF else 9)


def parse_ok(payload: bytes, capabilities: int) -> Ok:
    r = Reader(payload)
    header = r.int1()
    if header != OK_HEADER and not (header == EOF_HEADER and is_ok(payload, capabilities)):
        raise ProtocolViolation(f"an OK packet starting with 0x{header:02x}")
    affected_rows, last_insert_id = r.lenenc_int(), r.lenenc_int()
    status = warnings = 0
    if capabilities & CLIENT_PROTOCOL_41:
        status, warnings = r.int2(), r.int2()
    elif capabilities & CLIENT_TRANSACTIONS:
        status = r.int2()
    session_state = b""
    if capabilities & CLIENT_SESSION_TRACK:
        info = r.lenenc_str() if r.remaining else b""
        if status & SERVER_SESSION_STATE_CHANGED:
            session_state = r.lenenc_str()
    else:
        info = r.rest()
    r.done()
    return Ok(affected_rows, last_insert_id, status, warnings, as_text(info), session_state)


def without_status(payload: bytes, capabilities: int, bits: int) -> bytes:
    """An OK or EOF packet's payload with the status `bits` cleared: the front's own
    transaction, around a write it measures, hidden from a client that opened none."""
    if is_ok(payload, capabilities) and capabilities & CLIENT_PROTOCOL_41:
        r = Reader(payload, 1)
        r.lenenc_int()
        r.lenenc_int()
        at = r.pos
    elif is_eof(payload) and len(payload) == 5:
        at = 3
    else:
        return payload
    status = int.from_bytes(payload[at:at + 2], "little") & ~bits
    return payload[:at] + status.to_bytes(2, "little") + payload[at + 2:]


def encode_ok(affected_rows: int = 0, last_insert_id: int = 0, status: int = 0,
              warnings: int = 0, info: str = "", *,
              capabilities: int = CLIENT_PROTOCOL_41, session_state: bytes = b"",
              eof: bool = False) -> bytes:
    """An OK packet as a client of these capabilities reads it; `eof`: the 0xFE one that
    closes a result set under CLIENT_DEPRECATE_EOF."""
    if eof and not capabilities & CLIENT_DEPRECATE_EOF:
        raise ValueError("an OK in an EOF's place without CLIENT_DEPRECATE_EOF")
    out = [bytes((EOF_HEADER if eof else OK_HEADER,)), lenenc_int(affected_rows),
           lenenc_int(last_insert_id)]
    if capabilities & CLIENT_PROTOCOL_41:
        out.append(_WORDS.pack(status, warnings))
    elif capabilities & CLIENT_TRANSACTIONS:
        out.append(INT2.pack(status))
    if capabilities & CLIENT_SESSION_TRACK:
        changed = bool(status & SERVER_SESSION_STATE_CHANGED)
        if info or changed:  # else left off, as MariaDB leaves it (clients read it optional)
            out.append(lenenc_str(as_bytes(info)))
        if changed:
            out.append(lenenc_str(session_state))
        elif session_state:
            raise ValueError("session state without SERVER_SESSION_STATE_CHANGED")
    elif session_state:
        raise ValueError("session state without CLIENT_SESSION_TRACK")
    else:
        out.append(as_bytes(info))
    return b"".join(out)


def parse_err(payload: bytes) -> Err:
    r = Reader(payload)
    expect_header(r, ERR_HEADER, "an ERR packet")
    code = r.int2()
    sqlstate = "HY000"
    if payload[r.pos:r.pos + 1] == b"#":
        r.pos += 1
        sqlstate = r.fixed(5).decode("latin-1")
    return Err(code, sqlstate, as_text(r.rest()))


def encode_err(code: int, sqlstate: str, message: str) -> bytes:
    if len(sqlstate) != 5 or not sqlstate.isascii():
        raise ValueError(f"an SQLSTATE of {sqlstate!r}: five ASCII characters")
    return (bytes((ERR_HEADER,)) + INT2.pack(code) + b"#" + sqlstate.encode("ascii")
            + as_bytes(message))


def parse_eof(payload: bytes) -> Eof:
    if not is_eof(payload):
        raise ProtocolViolation("not an EOF packet (0xFE, under 9 bytes)")
    if len(payload) == 1:  # pre-4.1
        return Eof()
    r = Reader(payload, 1)
    eof = Eof(r.int2(), r.int2())
    r.done()
    return eof


def encode_eof(warnings: int = 0, status: int = 0) -> bytes:
    return bytes((EOF_HEADER,)) + _WORDS.pack(warnings, status)
