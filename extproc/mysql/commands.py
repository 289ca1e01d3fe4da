"""The commands whose arguments the session must read before it decides them, besides a
statement's text and the prepared statements' (prepared.py): COM_CHANGE_USER (who the
session becomes), COM_FIELD_LIST (which table's columns it lists), COM_PROCESS_KILL
(which connection it ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from extproc.mysql.flags import (
    CLIENT_CONNECT_ATTRS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_SECURE_CONNECTION,
    COM_CHANGE_USER,
    COM_FIELD_LIST,
    COM_PROCESS_KILL,
)
from extproc.mysql.framing import (
    INT2,
    ProtocolViolation,
    Reader,
    as_bytes,
    as_text,
    cstring,
    expect_header,
    lenenc_str,
)
from extproc.mysql.handshake import parse_connect_attrs


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER: the session goes on as another user, authenticated anew.

    Laid out as the handshake response's tail: the auth response (1-byte length with
    CLIENT_SECURE_CONNECTION), the database, then, when the client sends more, its
    character set, its auth plugin (CLIENT_PLUGIN_AUTH) and attributes
    (CLIENT_CONNECT_ATTRS), by the capabilities the login agreed.
    """

    username: str
    auth_response: bytes = b""
    database: str = ""
    charset: int = 0
    auth_plugin: str = ""
    connect_attrs: dict[str, str] = field(default_factory=dict)


def parse_change_user(payload: bytes, capabilities: int) -> ChangeUser:
    """A COM_CHANGE_USER as servers read it, its auth response's length one byte (with
    CLIENT_SECURE_CONNECTION). mysql-connector-python (pure Python) writes that length
    length-encoded, which differs past 250 bytes (a token as mysql_clear_password's
    answer): a request the one-byte reading cannot take is read so, if that takes it."""
    try:
        return _parse_change_user(payload, capabilities, False)
    except ProtocolViolation as exc:
        if not capabilities & CLIENT_SECURE_CONNECTION:
            raise
        try:
            return _parse_change_user(payload, capabilities, True)
        except ProtocolViolation:
            raise exc from None


def _parse_change_user(payload: bytes, capabilities: int, lenenc: bool) -> ChangeUser:
    r = Reader(payload)
    expect_header(r, COM_CHANGE_USER, "a COM_CHANGE_USER")
    username = as_text(r.cstring())
    secure = capabilities & CLIENT_SECURE_CONNECTION
    auth_response = (r.fixed(r.lenenc_int() if lenenc else r.int1()) if secure
                     else r.cstring())
    database = as_text(r.cstring())
    charset, auth_plugin, attrs = 0, "", {}
    if r.remaining:
        charset = r.int2()
    if capabilities & CLIENT_PLUGIN_AUTH and r.remaining:
        auth_plugin = as_text(r.cstring())
    if capabilities & CLIENT_CONNECT_ATTRS and r.remaining:
        attrs = parse_connect_attrs(r.lenenc_str())
    r.done()
    return ChangeUser(username, auth_response, database, charset, auth_plugin, attrs)


def encode_change_user(request: ChangeUser, capabilities: int) -> bytes:
    auth = request.auth_response
    out = [bytes((COM_CHANGE_USER,)), cstring(request.username)]
    if capabilities & CLIENT_SECURE_CONNECTION:
        if len(auth) > 0xFF:
            raise ValueError(f"an auth response of {len(auth)} bytes in a COM_CHANGE_USER")
        out.append(bytes((len(auth),)) + auth)
    else:
        out.append(cstring(auth))
    out += [cstring(request.database), INT2.pack(request.charset)]
    if capabilities & CLIENT_PLUGIN_AUTH:
        out.append(cstring(request.auth_plugin))
    if capabilities & CLIENT_CONNECT_ATTRS:
        out.append(lenenc_str(b"".join(lenenc_str(as_bytes(k)) + lenenc_str(as_bytes(v))
                                       for k, v in request.connect_attrs.items())))
    return b"".join(out)


class FieldList(NamedTuple):
    """COM_FIELD_LIST (deprecated; the mariadb client's auto-rehash sends it): the
    columns of a table of the current database whose names match a LIKE `wildcard`
    (empty: all). Either is None when its bytes are not UTF-8."""

    table: str | None
    wildcard: str | None


def parse_field_list(payload: bytes) -> FieldList:
    """The table, NUL-terminated, then the wildcard to the end. A table without its NUL
    is refused: MariaDB reads on past the packet's end for one."""
    r = Reader(payload)
    expect_header(r, COM_FIELD_LIST, "a COM_FIELD_LIST")
    table, wildcard = r.cstring(), r.rest()
    return FieldList(_utf8(table), _utf8(wildcard))


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_field_list(table: str, wildcard: str = "") -> bytes:
    return bytes((COM_FIELD_LIST,)) + cstring(table) + as_bytes(wildcard)


def parse_process_kill(payload: bytes) -> int:
    """COM_PROCESS_KILL's connection id (the command form of KILL CONNECTION)."""
    r = Reader(payload)
    expect_header(r, COM_PROCESS_KILL, "a COM_PROCESS_KILL")
    connection_id = r.int4()
    r.done()
    return connection_id
