"""The MySQL front's reading of a write's effect, without a server (extproc/mysql/
effect.py): which tables a text writes, where cascades and triggers reach, how the
counters' difference is charged. The end-to-end tests are
tests/e2e/test_measured_effect_mysql.py."""

from __future__ import annotations

import pytest

from extproc.interpret.sql import analyze
from extproc.mysql.effect import (
    Reached,
    Target,
    Written,
    called,
    cascades,
    difference,
    keys,
    literal,
    routines_query,
    trigger_tables,
    written,
)

SHOP = "shop"


def t(table: str, schema: str = SHOP) -> Target:
    return Target(schema, table)


@pytest.mark.parametrize(("text", "expected"), [
    ("customers", "'customers'"),
    ("it's", "CONVERT(X'69742773' USING utf8mb4)"),
    ("a\\", "CONVERT(X'615c' USING utf8mb4)"),
    ("ü", "CONVERT(X'c3bc' USING utf8mb4)"),
    ("", "CONVERT(X'' USING utf8mb4)"),
])
def test_a_name_is_a_literal_no_sql_mode_reads_otherwise(text: str, expected: str) -> None:
    assert literal(text) == expected


@pytest.mark.parametrize(("text", "tables", "deletes", "columns"), [
    ("DELETE FROM orders WHERE id = 1", [t("orders")], True, frozenset()),
    ("DELETE c FROM other.customers c JOIN orders o ON o.c = c.id",
     [t("customers", "other")], True, frozenset()),
    ("UPDATE customers SET Name = 'x', `email` = 'y' WHERE id = 1", [t("customers")],
     False, frozenset({"name", "email"})),
    ("INSERT INTO log (n) VALUES (1) ON DUPLICATE KEY UPDATE n = n + 1", [t("log")],
     False, frozenset({"n"})),
    ("INSERT INTO archive SELECT * FROM orders", [t("archive")], False, frozenset()),
])
def test_the_written_tables_and_what_is_written(text: str, tables: list[Target],
                                                 deletes: bool,
                                                 columns: frozenset[str]) -> None:
    assert written(text, SHOP, []) == Written(tables, deletes, columns)


def test_a_write_another_reading_finds_is_written_too() -> None:
    """The interpreter read another statement (another sql_mode): its tables count."""
    statements = [{"kind": "insert", "effects": ["write"], "tables": ["canary"]}]
    found = written('SELECT "a"', SHOP, statements)
    assert isinstance(found, Written) and found.tables == [t("canary")]


def test_an_unqualified_table_needs_a_database() -> None:
    assert "names no database" in str(written("DELETE FROM orders", None, []))


def key(child: str, parent: str, on_delete: str, on_update: str = "RESTRICT",
        column: str = "parent_id", referenced: str = "id") -> list[str]:
    return [SHOP, child, SHOP, parent, column, referenced, on_delete, on_update]


def test_delete_cascades_follow_on_and_set_null_counts_keys() -> None:
    rows = [key("items", "orders", "CASCADE"), key("parts", "items", "CASCADE"),
            key("notes", "orders", "SET NULL"), key("audit", "orders", "RESTRICT")]
    reached = cascades(rows, [(t("orders"), True, frozenset())], [])
    assert isinstance(reached, list)
    assert sorted(reached, key=lambda r: r.target.table) == [
        Reached(t("items"), None), Reached(t("notes"), "parent_id"), Reached(t("parts"), None)]


def test_an_update_cascades_only_from_the_key_it_sets() -> None:
    rows = [key("items", "orders", "RESTRICT", "CASCADE")]
    assert cascades(rows, [(t("orders"), False, frozenset({"note"}))], []) == []
    assert "ON UPDATE CASCADE" in str(cascades(rows, [(t("orders"), False,
                                                        frozenset({"id"}))], []))
    # Columns not read (an UPDATE through a view): any key may change.
    assert "ON UPDATE CASCADE" in str(cascades(rows, [(t("orders"), False, None)], []))


def test_a_cascade_no_count_shows_is_not_measured() -> None:
    rows = [key("items", "orders", "SET DEFAULT")]
    assert "SET DEFAULT" in str(cascades(rows, [(t("orders"), True, frozenset())], []))


def test_keys_join_their_rules_and_columns() -> None:
    rules = [[b"shop", b"fk1", b"items", b"orders", b"CASCADE", b"RESTRICT"]]
    columns = [[b"shop", b"fk1", b"items", b"order_id", b"shop", b"id"],
               [b"shop", b"fk2", b"other", b"x", b"shop", b"id"]]
    assert keys(rules, columns) == [["shop", "items", "shop", "orders", "order_id", "id",
                                     "CASCADE", "RESTRICT"]]


def test_a_triggers_tables_are_read_from_its_body() -> None:
    rows: list[list[bytes | None]] = [
        [b"shop", b"events", b"BEGIN DELETE FROM audit; INSERT INTO `other`.log2 (a) "
                             b"VALUES (1); UPDATE x.y SET a = 1; END"],
        [b"shop", b"events", b"SET @n = 1"]]
    assert trigger_tables(rows) == [t("audit"), t("log2", "other"), t("y", "x")]


def test_a_trigger_whose_body_the_role_may_not_read_is_not_guessed() -> None:
    """MariaDB shows a role without the TRIGGER privilege the trigger, its body NULL."""
    rows: list[list[bytes | None]] = [[b"shop", b"p", None]]
    assert trigger_tables(rows) == ("a trigger on shop.p runs a body the session's role "
                                    "may not read: what it writes is not known")


def test_the_counters_rest_is_charged_to_the_written_table() -> None:
    """A trigger deleted 4 rows of audit (counted, and in the counters); a cascade 2 of
    items (counted, not in the counters); the statement 1 of orders."""
    reached = [Reached(t("audit"), None, trigger=True), Reached(t("items"), None)]
    effect = difference([10, 0, 0, 4, 6], [10, 0, 5, 0, 4], [t("orders")], reached,
                        {t("orders"): 100})
    assert effect["tables"] == [
        {"table": "shop.orders", "inserted": 0, "updated": 0, "deleted": 1,
         "table_rows": 100},
        {"table": "shop.audit", "inserted": 0, "updated": 0, "deleted": 4, "table_rows": 4},
        {"table": "shop.items", "inserted": 0, "updated": 0, "deleted": 2, "table_rows": 6}]
    assert effect["rows"] == 7 and effect["written"] == ["shop.orders"]


def test_a_write_that_changed_nothing_has_no_tables() -> None:
    effect = difference([3, 3, 3], [3, 3, 3], [t("orders")], [], {})
    assert effect == {"measured": True, "tables": [], "rows": 0, "written": ["shop.orders"],
                      "unavailable": None}


def test_the_functions_a_text_calls_are_asked_about_by_name_in_any_case() -> None:
    statements = analyze("SELECT Purge(), count(*) FROM t WHERE x = shop.f(1)",
                         "mysql")["statements"]
    assert called(statements) == ["count", "f", "purge"]
    query = routines_query(["purge", "it's"])
    assert "ROUTINE_TYPE = 'FUNCTION'" in query
    assert "LOWER(ROUTINE_NAME) IN ('purge', CONVERT(X'69742773' USING utf8mb4))" in query


def test_rows_a_stored_function_wrote_are_charged_to_it() -> None:
    purge = t("purge()")
    effect = difference([10, 0, 0], [10, 0, 1200], [purge], [], {})
    assert effect["tables"] == [{"table": "shop.purge()", "inserted": 0, "updated": 0,
                                 "deleted": 1200, "table_rows": None}]
