"""What running a SQL statement does: the effect classes policies decide on.

A statement's name says little about its effect — `SELECT lo_unlink(1)` destroys data,
`INSERT OR REPLACE ... SELECT` rewrites a whole table, `SET sql_mode = ...` changes how the
server reads every later text — so each statement read by either back-end (pglast_reader.py,
sqlglot_reader.py) is given the classes of what it does, in `effects`:

- `read`: returns data; `write`: changes rows (with `bounded` saying whether the rows are
  limited, see the back-ends); `schema`: creates or alters objects without losing data;
  `maintenance`: VACUUM, ANALYZE, REINDEX, CLUSTER, REFRESH, LOCK; `session`: transaction
  control, session settings, PREPARE/EXECUTE, NOTIFY;
- `destroy`: loses data or schema (DROP, TRUNCATE, a destructive ALTER action, CREATE OR
  REPLACE TABLE, MySQL's ENGINE=BLACKHOLE, lo_unlink), or takes them away from the
  applications that use them though they stay (WITHDRAWING_ACTIONS: a table renamed or moved
  to another schema, row-level security enabled, a default or NOT NULL they rely on dropped;
  a restrictive or altered row policy; CLUSTER, VACUUM FULL and a LOCK that block readers or
  writers: see the back-ends);
- `server`: reaches the server's files, programs, processes or other servers (COPY to or
  from a file or a program, pg_read_file, LOAD_FILE, xp_cmdshell, OPENROWSET, dblink,
  ATTACH, LOAD, foreign servers, KILL of a thread);
- `privilege`: roles, grants, owners, SET ROLE; `configuration`: the server's or the
  database's settings (ALTER SYSTEM, SET GLOBAL / PERSIST, ALTER DATABASE/ROLE ... SET,
  set_config read by sqlglot) and, at any scope, the settings that change how later texts
  are lexed (standard_conforming_strings, sql_mode, a client character set other than
  UTF-8), or a setting whose name only the running statement knows. A session setting
  otherwise (SET, RESET, set_config read by pglast: see `settings`) is `session`; which
  of those a session may change is the policy's to say;
- `dynamic`: runs SQL or code carried as a string, which no parser here reads (DO, a
  function or procedure body, EXECUTE of a string, sp_executesql, query_to_xml, dblink);
- `unreadable`: after it, the server reads or runs SQL in a way no reading here follows:
  a MySQL client character set whose characters can end in a backslash or a quote (gbk,
  big5, sjis, cp932, gb18030: the server then reads `'\xbf\\'` as one character and a
  quote, where the gateway read an escaped quote), or one only the server knows
  (DEFAULT, an expression); init_connect, SQL the server runs as each connection opens;
  or writes its answers in a character set the MySQL front does not read them in (a
  results character set but UTF-8's, by SET NAMES, CHARACTER SET or
  character_set_results, NULL and binary too: masking would read other text than the
  client does);
- `unknown`: a statement nobody could name (kind "other").

The back-ends add what only their trees show (a COPY's file, a SET's scope, an EXEC's
target); `classify` adds what the kind, object, ALTER actions and called functions say.
"""

from __future__ import annotations

from collections.abc import Iterable

# Base effect of each statement kind the back-ends name.
_KIND_EFFECTS: dict[str, str] = {
    "select": "read", "show": "read", "explain": "read", "insert": "write",
    "update": "write", "delete": "write", "merge": "write", "call": "write",
    "drop": "destroy", "truncate": "destroy", "alter": "schema", "create": "schema",
    "comment": "schema", "grant": "privilege", "revoke": "privilege", "do": "dynamic",
    "copy": "read", "set": "session", "reset": "session", "discard": "session",
    "prepare": "session", "execute": "session", "transaction": "session", "notify": "session",
    "vacuum": "maintenance", "analyze": "maintenance", "reindex": "maintenance",
    "cluster": "maintenance", "refresh": "maintenance", "lock": "maintenance", "close": "session",
    "load": "server", "attach": "server", "kill": "server", "pragma": "configuration",
}
# CREATE of these defines code whose body is a string, or brings code into the server.
_ROUTINES = frozenset({
    "function", "procedure", "operator", "cast", "aggregate", "language", "extension",
    "event_trigger", "transform",
})
_ROLES = frozenset({"role", "user", "group"})
# Objects that connect the server to others.
_REMOTE = frozenset({"server", "user_mapping", "foreign_data_wrapper", "subscription"})
# ALTER actions that lose data (PostgreSQL's AlterTableType names, as both back-ends give).
DESTRUCTIVE_ACTIONS = frozenset({
    "drop_column", "drop_constraint", "alter_column_type", "drop_identity", "drop_expression",
    "detach_partition", "drop_inherit", "drop_of", "discard_tablespace",
})
# ALTER actions that take data away from the applications reading it, though it stays: rows
# that no row policy admits disappear (enable/force_row_security), Snowflake's SWAP WITH
# gives the name another table's rows, a dropped default or NOT NULL breaks the inserts and
# reads that relied on it (as a dropped constraint does, above).
WITHDRAWING_ACTIONS = frozenset({
    "enable_row_security", "force_row_security", "drop_default", "drop_not_null", "swap_table",
})
# ALTER actions that change the name applications find an object by; they take it away
# from them when the object holds data they read (NAMED_DATA), not an index or a constraint.
RENAMING_ACTIONS = frozenset({"rename", "rename_column", "set_schema"})
NAMED_DATA = frozenset({
    "table", "view", "materialized_view", "foreign_table", "sequence", "column", "schema",
    "database",
})
# Settings that change how the server lexes the texts sent after them, at any scope: the
# gateway reads with the defaults, so a text could mean one thing here and another there.
LEXING_SETTINGS = frozenset({
    "standard_conforming_strings", "backslash_quote", "client_encoding", "sql_mode",
    "character_set_client", "names", "character set", "charset", "quoted_identifier",
})
# Settings whose change is a change of identity (MySQL's SET PASSWORD changes the
# gateway's own account's).
IDENTITY_SETTINGS = frozenset({"role", "session_authorization", "password"})
# MySQL's names of the client character set, the one the server lexes texts in.
CLIENT_CHARSET_SETTINGS = frozenset({"names", "character set", "charset",
                                     "character_set_client"})
# MySQL's names of the results character set, the one the server writes answers in: the
# front reads answers as UTF-8, so in any other (utf16 puts a NUL before each ASCII
# letter; binary or NULL sends each value in its column's own set) every detector of the
# mask reads something else than the client. SET NAMES and SET CHARACTER SET set it too.
RESULTS_CHARSET_SETTINGS = frozenset({"names", "character set", "charset",
                                      "character_set_results"})
# Client character sets whose two-byte characters can end in an ASCII byte: `\` (0x5c)
# or a quote there is part of a character, no escape (MySQL refuses ucs2, utf16 and
# utf32 as a client's).
SWALLOWING_CHARSETS = frozenset({"big5", "cp932", "gbk", "gb18030", "sjis"})
# Settings whose value is SQL the server runs unread.
RUN_SETTINGS = frozenset({"init_connect"})
# The name a setting is reported under when the text does not say which one it is
# (`set_config($1, ...)`, `set_config(name || '', ...)`): it may be any, so it is taken
# for one that reconfigures.
UNNAMED_SETTING = "*"
# Client encodings the gateway reads texts in (names as PostgreSQL compares them: letters
# and digits, any case), PostgreSQL's and MySQL's names of UTF-8: setting one of them
# changes nothing in how a text is read.
_READ_ENCODINGS = frozenset({"utf8", "unicode", "utf8mb4", "utf8mb3"})


def setting_effects(name: str, value: str | None = None, reset: bool = False) -> set[str]:
    """What changing setting `name` (to `value`, or back to the session's start if `reset`)
    does beyond the session: how texts lex, or who runs them. `value` None: not one
    constant."""
    name = name.lower()
    if reset:
        return set()  # back to what the session started with, the gateway's own choice
    charsets = CLIENT_CHARSET_SETTINGS | RESULTS_CHARSET_SETTINGS
    if name in charsets and value is not None and _encoding(value) in _READ_ENCODINGS:
        return set()
    if name == "client_encoding" and value is not None:
        return set()  # PostgreSQL's front follows it, or refuses one it does not read
    if name in RUN_SETTINGS or name in RESULTS_CHARSET_SETTINGS or (
            name in CLIENT_CHARSET_SETTINGS and not _safe_charset(value)):
        return {"configuration", "unreadable"}
    if name in LEXING_SETTINGS or name == UNNAMED_SETTING:
        return {"configuration"}
    if name in IDENTITY_SETTINGS:
        return {"privilege"}
    return set()


def _safe_charset(value: str | None) -> bool:
    """Whether a client character set, as a setting's value names it, lexes a text as
    UTF-8 does: named (not DEFAULT, the server's own; not a number, a collation's id that
    may be gbk's 28), and no character of it ends in an ASCII byte."""
    if value is None:
        return False
    name = _encoding(value)
    return not (name.isdigit() or name in SWALLOWING_CHARSETS or name == "default")


def _encoding(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isascii() and ch.isalnum())


# Functions by effect (lower-case, unqualified, as the back-ends list them).
_FUNCTION_EFFECTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys((
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
        "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_file_write",
        "pg_file_rename", "pg_file_unlink", "lo_import", "lo_export", "pg_terminate_backend",
        "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
        "load_extension", "load_file", "readfile", "writefile", "xp_cmdshell", "openrowset",
        "opendatasource", "openquery", "read_csv", "read_csv_auto", "read_parquet",
        "read_json", "read_json_auto", "read_text", "read_blob",
    ), ("server",)),
    **dict.fromkeys((
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
        "dblink_open",
    ), ("server", "dynamic")),
    # SQL in a string, or a table, schema, database or cursor named in one, read whole
    # (its columns unknown to the statement's reader: lineage and masking see none).
    **dict.fromkeys((
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat",
        "ts_rewrite", "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
        "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
    ), ("dynamic",)),
    **dict.fromkeys(("lo_unlink",), ("destroy",)),
    **dict.fromkeys((
        "nextval", "setval", "lo_create", "lo_creat", "lo_put", "lo_from_bytea", "lo_truncate",
        "lowrite", "pg_notify", "pg_advisory_lock", "pg_advisory_xact_lock",
    ), ("write",)),
    # What sqlglot reads: the postgres back-end reads each call's setting (SETTING_FUNCTIONS).
    "set_config": ("configuration",),
}
# Functions that change a run-time setting: the postgres back-end reports each call in the
# statement's `settings`, whose effects replace the function's.
SETTING_FUNCTIONS = frozenset({"set_config"})


def classify(
    kind: str, obj: str | None, alter_actions: Iterable[str], functions: Iterable[str],
    found: Iterable[str],
) -> list[str]:
    """The sorted effect classes of a statement; `found`: those its back-end saw itself."""
    effects = set(found)
    # What a COPY or a T-SQL EXEC does, its back-end says (PostgreSQL's EXECUTE: session).
    if not (kind in ("copy", "execute") and effects):
        effects.add(_KIND_EFFECTS.get(kind, "unknown"))
    if kind == "create":
        if obj in _ROUTINES:
            effects.add("dynamic")
        elif obj in _REMOTE:
            effects.add("server")
    if obj in _ROLES and kind in ("create", "alter", "drop"):
        effects.add("privilege")
    if kind == "alter":
        effects.update(_alter_effects(obj, alter_actions))
    if kind == "cluster":
        effects.add("destroy")  # it rewrites its tables under a lock no reader passes
    if kind == "drop" and obj == "owned":
        effects.add("privilege")
    for name in functions:
        effects.update(_FUNCTION_EFFECTS.get(name, ()))
    return sorted(effects)


def _alter_effects(obj: str | None, actions: Iterable[str]) -> set[str]:
    """What an ALTER does beyond changing the schema: to the server's settings, to
    privileges, to data (DESTRUCTIVE_ACTIONS: a dropped column, a column's new type ...;
    WITHDRAWING_ACTIONS and a renamed or moved NAMED_DATA object: data applications lose)."""
    effects: set[str] = set()
    if obj == "system":
        effects.add("configuration")
    elif obj in ("default_privileges", "owned"):
        effects.add("privilege")
    for action in actions:
        if action in DESTRUCTIVE_ACTIONS or action in WITHDRAWING_ACTIONS or (
                action in RENAMING_ACTIONS and obj in NAMED_DATA):
            effects.add("destroy")
        elif action == "change_owner":
            effects.add("privilege")
    return effects
