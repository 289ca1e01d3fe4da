"""MariaDB Connector/C (Debian's libmariadb3, the library the `mariadb` client is built on),
driven through ctypes: the real client library's COM_CHANGE_USER (mysql_change_user) and
COM_FIELD_LIST (mysql_list_fields), which no Python driver of the suite sends.

Only what the tests need: a TLS connection (the server's certificate not verified, as
`--skip-ssl-verify-server-cert`), queries with their rows as text, and the two commands.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

_LIBRARY = "libmariadb.so.3"
# enum mysql_option (mariadb/mysql.h).
_OPT_SSL_VERIFY_SERVER_CERT = 21
_OPT_SSL_ENFORCE = 38
_OPT_CONNECT_TIMEOUT = 0


class MariaDbError(Exception):
    """What the library reported: `code` (mysql_errno) and its message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(_LIBRARY)
    handle = ctypes.c_void_p
    text = ctypes.c_char_p
    signatures: dict[str, tuple[list[type], type | None]] = {
        "mysql_init": ([handle], handle),
        "mysql_options": ([handle, ctypes.c_int, ctypes.c_void_p], ctypes.c_int),
        "mysql_real_connect": ([handle, text, text, text, text, ctypes.c_uint, text,
                                ctypes.c_ulong], handle),
        "mysql_change_user": ([handle, text, text, text], ctypes.c_char),
        "mysql_reset_connection": ([handle], ctypes.c_int),
        "mysql_list_fields": ([handle, text, text], handle),
        "mysql_real_query": ([handle, text, ctypes.c_ulong], ctypes.c_int),
        "mysql_store_result": ([handle], handle),
        "mysql_num_fields": ([handle], ctypes.c_uint),
        "mysql_fetch_row": ([handle], ctypes.POINTER(ctypes.c_char_p)),
        "mysql_fetch_field_direct": ([handle, ctypes.c_uint], handle),
        "mysql_free_result": ([handle], None),
        "mysql_thread_id": ([handle], ctypes.c_ulong),
        "mysql_errno": ([handle], ctypes.c_uint),
        "mysql_error": ([handle], text),
        "mysql_close": ([handle], None),
    }
    for name, (arguments, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, result
    return lib


class Connection:
    """One logged-in connection of the library's."""

    def __init__(self, lib: ctypes.CDLL, handle: int) -> None:
        self._lib, self._handle = lib, handle

    def _failed(self) -> MariaDbError:
        return MariaDbError(self._lib.mysql_errno(self._handle),
                            (self._lib.mysql_error(self._handle) or b"").decode())

    @property
    def thread_id(self) -> int:
        """The connection id the handshake announced."""
        return int(self._lib.mysql_thread_id(self._handle))

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        """A statement's rows, as text (none for a statement without a result)."""
        raw = sql.encode()
        if self._lib.mysql_real_query(self._handle, raw, len(raw)):
            raise self._failed()
        result = self._lib.mysql_store_result(self._handle)
        if not result:
            if self._lib.mysql_errno(self._handle):
                raise self._failed()
            return []
        try:
            count = self._lib.mysql_num_fields(result)
            rows = []
            while row := self._lib.mysql_fetch_row(result):
                rows.append(tuple(None if row[i] is None else row[i].decode()
                                  for i in range(count)))
            return rows
        finally:
            self._lib.mysql_free_result(result)

    def change_user(self, user: str, password: str, database: str | None) -> None:
        """COM_CHANGE_USER (mysql_change_user); MariaDbError when refused."""
        if self._lib.mysql_change_user(self._handle, user.encode(), password.encode(),
                                       None if database is None else database.encode()) != b"\x00":
            raise self._failed()

    def reset(self) -> None:
        """COM_RESET_CONNECTION (mysql_reset_connection); MariaDbError when refused."""
        if self._lib.mysql_reset_connection(self._handle):
            raise self._failed()

    def list_fields(self, table: str, wildcard: str | None = None) -> list[str]:
        """COM_FIELD_LIST (mysql_list_fields): the names of the columns it answers."""
        result = self._lib.mysql_list_fields(
            self._handle, table.encode(), None if wildcard is None else wildcard.encode())
        if not result:
            raise self._failed()
        try:
            names = []
            for i in range(self._lib.mysql_num_fields(result)):
                field = self._lib.mysql_fetch_field_direct(result, i)
                # MYSQL_FIELD starts with `char *name`.
                names.append(ctypes.cast(field, ctypes.POINTER(ctypes.c_char_p))[0].decode())
            return names
        finally:
            self._lib.mysql_free_result(result)


@contextmanager
def connect(host: str, port: int, user: str, password: str, database: str | None,
            tls: bool = True) -> Iterator[Connection]:
    """A connection, over TLS unless told (MariaDbError when the login is refused),
    closed after."""
    lib = _library()
    handle = lib.mysql_init(None)
    enforce, verify, timeout = ctypes.c_char(tls), ctypes.c_char(0), ctypes.c_uint(10)
    lib.mysql_options(handle, _OPT_SSL_ENFORCE, ctypes.byref(enforce))
    lib.mysql_options(handle, _OPT_SSL_VERIFY_SERVER_CERT, ctypes.byref(verify))
    lib.mysql_options(handle, _OPT_CONNECT_TIMEOUT, ctypes.byref(timeout))
    connection = Connection(lib, handle)
    try:
        if not lib.mysql_real_connect(handle, host.encode(), user.encode(), password.encode(),
                                      None if database is None else database.encode(), port,
                                      None, 0):
            raise connection._failed()
        yield connection
    finally:
        lib.mysql_close(handle)
