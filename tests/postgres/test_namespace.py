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
