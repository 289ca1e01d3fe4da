"""Statements a client library sends on its own, told apart in a refusal's message.

A driver, an ORM or psql sends statements nobody wrote: asyncpg's and psycopg's type
introspection, SQLAlchemy's schema reflection and `select pg_catalog.version()`, psql's
backslash commands, pgJDBC's and pgAdmin's session settings, a pool's reset (asyncpg:
`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`). Refused, their
error reaches code that never wrote them, often far from the line that caused them (a
driver's first read of a column of a domain type). So the message says whose statement
it is and shows its beginning. What marks one is its shape, as the SQL reader read it
(tests/interpret/driver_statements/ holds what the drivers send):

- a read of the system catalogs only (pg_catalog, information_schema, their functions);
- a connection reset: RESET ALL, DISCARD ALL, CLOSE ALL, UNLISTEN *;
- a setting, a SHOW or a transaction's control sent while the session opens (before
  anything else), where drivers send theirs.

A person may type any of these too: the message says so where the shape cannot tell.
"""

from __future__ import annotations

from typing import Any

from extproc.interpret.sql import one_line

# Statements of a session's own plumbing (a driver's settings, transactions, a reset).
_SESSION_KINDS = frozenset({"set", "show", "reset", "discard", "close", "transaction"})
# Functions that read the server's settings or catalogs, not a table's rows.
_CATALOG_FUNCTIONS = frozenset({
    "version", "current_schema", "current_schemas", "current_setting", "current_database",
    "current_user", "session_user", "current_role", "format_type", "to_regtype",
    "to_regclass", "to_regproc", "to_regnamespace", "obj_description", "col_description",
    "shobj_description", "has_table_privilege", "has_schema_privilege",
    "has_database_privilege", "has_column_privilege", "has_function_privilege",
    "pg_backend_pid", "pg_typeof", "pg_encoding_to_char", "pg_is_in_recovery",
    "pg_postmaster_start_time",
})
# Catalogs of secrets no driver reads (password hashes, user mappings' options).
_SECRET_CATALOGS = frozenset({"pg_shadow", "pg_authid", "pg_user_mapping",
                              "pg_user_mappings"})
_SETTING_FUNCTIONS = frozenset({"set_config", "current_setting", "pg_show_all_settings",
                                "pg_advisory_unlock_all"})
_EXCERPT = 80

CATALOG = "catalog"
RESET = "reset"
SETTING = "setting"


def shape(meaning: Any) -> str | None:
    """CATALOG, RESET or SETTING when the statements read as a client library's own
    (module docstring); None otherwise, or when they were not read."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    if not statements or meaning.get("error"):
        return None
    if all(_catalog_read(s) for s in statements):
        return CATALOG
    if not all(_plumbing(s) for s in statements):
        return None
    texts = " ".join(str(s.get("text", "")).upper() for s in statements)
    if any(reset in texts for reset in ("RESET ALL", "DISCARD ALL", "CLOSE ALL",
                                        "UNLISTEN *")):
        return RESET
    return SETTING


def note(found: str | None, opening: bool, text: str) -> str | None:
    """What a refusal's message adds about whose statement it is (None: nothing)."""
    shown = one_line(text, _EXCERPT) + ("…" if len(one_line(text)) > _EXCERPT else "")
    if found == CATALOG:
        return ("a statement of your client library's, not of your code: it reads only the "
                "system catalogs, as drivers, ORMs and psql do to learn the database's types "
                f"and tables: {shown}")
    if found == RESET:
        return ("a connection reset, as a pool sends when a connection is given back: if "
                f"your code did not send it, your client library did: {shown}")
    if found == SETTING and opening:
        return ("sent as the session opened, where client libraries send their own "
                f"settings: if your code did not send it, your client library did: {shown}")
    return None


def _catalog_read(statement: dict[str, Any]) -> bool:
    """A SELECT of nothing but the system catalogs (a table, or, with none, a function
    that reads the server's catalogs or settings)."""
    if statement.get("kind") != "select" or set(statement.get("effects") or ()) - {"read"}:
        return False
    tables = statement.get("tables") or []
    if tables:
        return all(_catalog_table(t) for t in tables)
    functions = statement.get("functions") or []
    return bool(functions) and all(
        f in _CATALOG_FUNCTIONS or f.startswith("pg_get_") or f.endswith("_is_visible")
        for f in functions)


def _catalog_table(name: str) -> bool:
    schema, _, table = name.rpartition(".")
    if table in _SECRET_CATALOGS:
        return False
    if schema:
        return schema.rpartition(".")[2] in ("pg_catalog", "information_schema")
    return table.startswith("pg_")


def _plumbing(statement: dict[str, Any]) -> bool:
    """A setting, a SHOW, a transaction's control, a reset (LISTEN/UNLISTEN too), or a
    SELECT of setting functions alone (asyncpg's `set_config('jit', 'off', false)`)."""
    kind = statement.get("kind")
    if kind in _SESSION_KINDS:
        return True
    if kind == "notify":
        return "write" not in (statement.get("effects") or ())  # NOTIFY sends
    return (kind == "select" and not statement.get("tables") and bool(
        statement.get("functions")) and set(statement["functions"]) <= _SETTING_FUNCTIONS)
