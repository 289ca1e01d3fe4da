"""What a SQL text does to the portals and statements the PostgreSQL front keeps (pure):
the cursors it declares, fetches or moves, closes, and what drops a whole map."""

from __future__ import annotations

import pytest

from extproc.interpret.sql import analyze
from extproc.postgres import namespace


def use(text: str) -> namespace.Use:
    return namespace.read(analyze(text))


@pytest.mark.parametrize(("text", "declared"), [
    ("DECLARE c CURSOR FOR SELECT 1", (("c", False),)),
    ("DECLARE c BINARY NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", (("c", False),)),
    ("DECLARE \"Big\" CURSOR WITH HOLD FOR SELECT 1", (("Big", True),)),
    ("DECLARE U&\"\\0063\" SCROLL CURSOR WITH HOLD FOR TABLE t", (("c", True),)),
])
def test_a_declare_names_its_cursor_and_whether_it_is_held(
        text: str, declared: tuple[tuple[str, bool], ...]) -> None:
    assert use(text).declared == declared


@pytest.mark.parametrize("text", [
    "FETCH ALL FROM c", "FETCH c", "FETCH BACKWARD 2 IN c", "MOVE FORWARD 3 FROM c",
    "MOVE ABSOLUTE 0 IN \"c\"", "SELECT 1; FETCH NEXT FROM c",
])
def test_fetch_and_move_name_the_cursor_they_read(text: str) -> None:
    read = use(text)
    assert read.fetched == {"c"} and not read.declared and not read.closed


def test_a_text_that_declares_and_fetches_names_both() -> None:
    read = use("DECLARE c CURSOR FOR SELECT 1; FETCH ALL FROM c; CLOSE c")
    assert (read.declared, read.fetched, read.closed) == ((("c", False),), {"c"}, {"c"})


@pytest.mark.parametrize(("text", "statements", "portals"), [
    ("CLOSE ALL", False, True),
    ("DISCARD ALL", True, True),
    ("DEALLOCATE ALL", True, False),
    ("CLOSE c", False, False),
])
def test_what_drops_a_whole_map(text: str, statements: bool, portals: bool) -> None:
    read = use(text)
    assert (read.drops_statements, read.drops_portals) == (statements, portals)


def test_the_gateways_own_names_are_found_in_cursor_statements() -> None:
    assert use("FETCH ALL FROM tollgate_effect").owned == ["tollgate_effect"]
    assert use("DECLARE Tollgate_S1 CURSOR FOR SELECT 1").owned == ["tollgate_s1"]


@pytest.mark.parametrize(("text", "sent"), [
    ("EXECUTE q", 'EXECUTE "tollgate_s9"'),
    ('execute "Q"(1, $$;$$);', 'execute "tollgate_s9"(1, $$;$$);'),
    ("/* é */ DEALLOCATE PREPARE q", '/* é */ DEALLOCATE PREPARE "tollgate_s9"'),
    ("DEALLOCATE\n  q ;", 'DEALLOCATE\n  "tollgate_s9" ;'),
    ("PREPARE q(oid) AS SELECT $1", 'PREPARE "tollgate_s9"(oid) AS SELECT $1'),
])
def test_a_lone_execute_deallocate_or_prepare_is_sent_under_the_gateways_name(
        text: str, sent: str) -> None:
    assert namespace.renamed(text, "tollgate_s9") == sent


@pytest.mark.parametrize("text", ["SELECT 1", "EXPLAIN EXECUTE q", "CREATE TABLE t AS EXECUTE q"])
def test_any_other_text_is_not_renamed(text: str) -> None:
    assert namespace.renamed(text, "tollgate_s9") is None


def test_execute_names_the_statement_it_runs() -> None:
    assert use("EXPLAIN ANALYZE EXECUTE q(1)").executed == {"q"}
    assert use("DEALLOCATE PREPARE q").deallocated == {"q"}
