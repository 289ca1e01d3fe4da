"""MySQL's protocol numbers (MariaDB's too): capability and status bits, command bytes,
column types and flags, a response's first byte, character sets.

Every part of the front needs some of them without needing a codec: the login
negotiates capabilities, the session dispatches on command bytes and reads status bits,
the masker asks a column's type. Names are the servers' own (MySQL's and MariaDB's
sources and docs), so each can be looked up there.
"""

from __future__ import annotations

# -- capabilities (the handshake's 32 bits; docs: "Capabilities Flags") ---------------------

CLIENT_LONG_PASSWORD = 1 << 0  # MariaDB: CLIENT_MYSQL, cleared by a MariaDB server
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25  # MySQL 8
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26  # MySQL 8
CLIENT_QUERY_ATTRIBUTES = 1 << 27  # MySQL 8
CLIENT_MULTI_FACTOR_AUTHENTICATION = 1 << 28  # MySQL 8
CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
CLIENT_REMEMBER_OPTIONS = 1 << 31

# MariaDB's extended capabilities: bits 32-63 of its 64-bit set, carried in the last 4
# bytes of the handshake's and the response's reserved filler when the server clears
# CLIENT_LONG_PASSWORD (CLIENT_MYSQL). They are kept apart, as `mariadb_capabilities`,
# shifted down: MARIADB_CLIENT_PROGRESS is 1 << 32 in MariaDB's own sources. This codec
# reads neither progress reports nor extended or cached metadata: a front must not
# grant those to a client it parses for.
MARIADB_CLIENT_PROGRESS = 1 << 0
MARIADB_CLIENT_COM_MULTI = 1 << 1  # gone since 10.6; the bit stays reserved
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 2
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 3
MARIADB_CLIENT_CACHE_METADATA = 1 << 4

# -- server status (OK and EOF packets) -----------------------------------------------------

SERVER_STATUS_IN_TRANS = 1 << 0
SERVER_STATUS_AUTOCOMMIT = 1 << 1
SERVER_MORE_RESULTS_EXISTS = 1 << 3
SERVER_QUERY_NO_GOOD_INDEX_USED = 1 << 4
SERVER_QUERY_NO_INDEX_USED = 1 << 5
SERVER_STATUS_CURSOR_EXISTS = 1 << 6
SERVER_STATUS_LAST_ROW_SENT = 1 << 7
SERVER_STATUS_DB_DROPPED = 1 << 8
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9
SERVER_STATUS_METADATA_CHANGED = 1 << 10
SERVER_QUERY_WAS_SLOW = 1 << 11
SERVER_PS_OUT_PARAMS = 1 << 12
SERVER_STATUS_IN_TRANS_READONLY = 1 << 13
SERVER_SESSION_STATE_CHANGED = 1 << 14

# -- commands (a command packet's first byte) -----------------------------------------------

COM_SLEEP = 0x00
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_CONNECT = 0x0B
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_TIME = 0x0F
COM_DELAYED_INSERT = 0x10
COM_CHANGE_USER = 0x11
COM_BINLOG_DUMP = 0x12
COM_TABLE_DUMP = 0x13
COM_CONNECT_OUT = 0x14
COM_REGISTER_SLAVE = 0x15
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_DAEMON = 0x1D
COM_BINLOG_DUMP_GTID = 0x1E
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB

# -- column types (ColumnDefinition's `type`; docs: "enum_field_types") ---------------------

MYSQL_TYPE_DECIMAL = 0
MYSQL_TYPE_TINY = 1
MYSQL_TYPE_SHORT = 2
MYSQL_TYPE_LONG = 3
MYSQL_TYPE_FLOAT = 4
MYSQL_TYPE_DOUBLE = 5
MYSQL_TYPE_NULL = 6
MYSQL_TYPE_TIMESTAMP = 7
MYSQL_TYPE_LONGLONG = 8
MYSQL_TYPE_INT24 = 9
MYSQL_TYPE_DATE = 10
MYSQL_TYPE_TIME = 11
MYSQL_TYPE_DATETIME = 12
MYSQL_TYPE_YEAR = 13
MYSQL_TYPE_NEWDATE = 14
MYSQL_TYPE_VARCHAR = 15
MYSQL_TYPE_BIT = 16
MYSQL_TYPE_JSON = 245
MYSQL_TYPE_NEWDECIMAL = 246
MYSQL_TYPE_ENUM = 247
MYSQL_TYPE_SET = 248
MYSQL_TYPE_TINY_BLOB = 249
MYSQL_TYPE_MEDIUM_BLOB = 250
MYSQL_TYPE_LONG_BLOB = 251
MYSQL_TYPE_BLOB = 252
MYSQL_TYPE_VAR_STRING = 253
MYSQL_TYPE_STRING = 254
MYSQL_TYPE_GEOMETRY = 255

# The string-like types: CHAR, VARCHAR, TEXT and the BLOBs, JSON, ENUM, SET, whose values
# are strings in either protocol (a text may stand in for one).
STRING_TYPES = frozenset({
    MYSQL_TYPE_VARCHAR, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_STRING, MYSQL_TYPE_TINY_BLOB,
    MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_BLOB, MYSQL_TYPE_JSON,
    MYSQL_TYPE_ENUM, MYSQL_TYPE_SET})

# -- column flags (ColumnDefinition's `flags`) ----------------------------------------------

NOT_NULL_FLAG = 1 << 0
PRI_KEY_FLAG = 1 << 1
UNIQUE_KEY_FLAG = 1 << 2
MULTIPLE_KEY_FLAG = 1 << 3
BLOB_FLAG = 1 << 4
UNSIGNED_FLAG = 1 << 5
ZEROFILL_FLAG = 1 << 6
BINARY_FLAG = 1 << 7
ENUM_FLAG = 1 << 8
AUTO_INCREMENT_FLAG = 1 << 9
TIMESTAMP_FLAG = 1 << 10
SET_FLAG = 1 << 11
NUM_FLAG = 1 << 15

# -- a response's first byte ----------------------------------------------------------------

OK_HEADER = 0x00
AUTH_MORE_DATA_HEADER = 0x01
LOCAL_INFILE_HEADER = 0xFB  # the server asks the client for one of its files
EOF_HEADER = 0xFE  # also an AuthSwitchRequest's, by where it comes
ERR_HEADER = 0xFF

CHARSET_UTF8MB4_GENERAL_CI = 45
CHARSET_BINARY = 63


def _names(prefix: str) -> dict[int, str]:
    return {value: name for name, value in globals().items()
            if name.startswith(prefix) and isinstance(value, int)}


COMMAND_NAMES = _names("COM_")
TYPE_NAMES = _names("MYSQL_TYPE_")


def command_name(command: int) -> str:
    """A command byte's name, for records and errors (`COM_0x42` for an unknown one)."""
    return COMMAND_NAMES.get(command, f"COM_0x{command:02x}")


def type_name(column_type: int) -> str:
    return TYPE_NAMES.get(column_type, f"MYSQL_TYPE_{column_type}")
