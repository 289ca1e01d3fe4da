"""Which names of a text the PostgreSQL front asks the catalog about before deciding
whether it may write through the database's code (extproc/postgres/reach.py); the
answers, end to end, are tests/e2e/test_measured_effect.py's."""

from __future__ import annotations

import asyncio
import time

import pytest

from extproc.exchange.effect import Remembered
from extproc.postgres import messages as pg
from extproc.postgres import reach


@pytest.mark.parametrize(("text", "tables", "functions", "runs"), [
    ("INSERT INTO inbox VALUES (1)", {'"inbox"'}, set(), None),
    ('insert into "S"."Mixed" (id) values (1), (2)', {'"S"."Mixed"'}, set(), None),
    ("COPY inbox FROM STDIN", {'"inbox"'}, set(), None),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", {'"t"'}, set(), None),
    ("SELECT purge()", set(), {"purge"}, None),
    ('SELECT "Purge_Quietly"()', set(), {"Purge_Quietly"}, None),
    ("SELECT id FROM small WHERE public.matches(id)", set(), {"matches"}, None),
    ("SELECT count(*), lower(name) FROM t", set(), {"count", "lower"}, None),
    ("CALL app.sweep(1)", set(), set(), "it calls procedure app.sweep"),
    ("DO $$ BEGIN DELETE FROM t; END $$", set(), set(), "it runs a DO block"),
    ("SELECT 1; INSERT INTO a VALUES (f())", {'"a"'}, {"f"}, None),
])
def test_the_names_a_text_may_reach_the_databases_code_through(
        text: str, tables: set[str], functions: set[str], runs: str | None) -> None:
    found = reach.names(text)
    assert found is not None
    assert (found.tables, found.functions, found.runs) == (tables, functions, runs)


@pytest.mark.parametrize(("text", "relations", "controls"), [
    ("SELECT * FROM t WHERE id = 1", {'"t"'}, False),
    ('select a.x from "S".v a join w on true', {'"S"."v"', '"w"'}, False),
    ("WITH x AS (SELECT 1) SELECT * FROM x, y", {'"x"', '"y"'}, False),
    ("ROLLBACK TO SAVEPOINT s; SELECT * FROM v", {'"v"'}, True),
    ("SET search_path = a; SELECT * FROM v", {'"v"'}, False),
    ("TABLE v", {'"v"'}, False),
])
def test_every_relation_a_text_reads_is_named(text: str, relations: set[str],
                                             controls: bool) -> None:
    """A view's definition, a table's row security policy, may call a function as the
    relation is read: each relation is asked about."""
    found = reach.names(text)
    assert found is not None
    assert (found.relations, found.controls) == (relations, controls)


@pytest.mark.parametrize("text", [
    "SELECT 1 + 1",  # no call, no relation: not even parsed
    "COPY t TO STDOUT",  # a COPY out writes nothing
    "SELECT pg_catalog.now(), pg_catalog.lower('A')",  # named in pg_catalog: its own
    "SELECT (",  # unreadable: the interpreter's error, which the pack refuses
])
def test_texts_that_reach_nothing(text: str) -> None:
    assert reach.names(text) is None


def test_what_the_catalog_said_is_remembered_then_forgotten_after_a_schema_change() -> None:
    asked: list[bytes] = []

    async def ask(messages: list[bytes], cycles: int) -> list[pg.Message]:
        asked.extend(messages)
        raise TimeoutError  # no database here: the question is what is counted

    async def at_rest() -> None:
        return None

    remembered = Remembered()
    found = reach.names("SELECT purge()")
    assert found is not None
    why = asyncio.run(reach.reaches(ask, at_rest, lambda: b"I", found, remembered))
    assert why == ("what it may run of the database's code is not known: the database "
                   "did not answer in time")
    assert len(asked) == 3  # BEGIN ..., the catalog, ROLLBACK: one round trip
    remembered.remember("function purge", "public.purge", time.monotonic())
    assert asyncio.run(reach.reaches(ask, at_rest, lambda: b"I", found, remembered)) == (
        "it calls public.purge, defined in the database")
    assert len(asked) == 3  # remembered: not asked again
    remembered.forget_after({"statements": [{"effects": ["read"]}]})
    assert remembered.get("function purge", time.monotonic())[0]
    remembered.forget_after({"statements": [{"effects": ["schema"]}]})
    assert remembered.get("function purge", time.monotonic()) == (False, None)


def test_a_session_that_cannot_be_asked_is_taken_to_reach() -> None:
    async def ask(messages: list[bytes], cycles: int) -> list[pg.Message]:
        raise AssertionError("not asked")

    async def busy() -> str:
        return "it came in a pipeline"

    found = reach.names("INSERT INTO inbox VALUES (1)")
    assert found is not None
    assert asyncio.run(reach.reaches(ask, busy, lambda: b"I", found, Remembered())) == (
        "what it may run of the database's code is not known: it came in a pipeline")

    async def at_rest() -> None:
        return None

    # A failed transaction runs nothing until it ends; a text that may end it, anything.
    assert asyncio.run(reach.reaches(ask, at_rest, lambda: b"E", found, Remembered())) is None
    restores = reach.names("ROLLBACK TO SAVEPOINT s; INSERT INTO inbox VALUES (1)")
    assert restores is not None
    assert "the transaction has failed" in str(asyncio.run(
        reach.reaches(ask, at_rest, lambda: b"E", restores, Remembered())))


@pytest.mark.parametrize("text", [
    "SET search_path = shadow, public; INSERT INTO letters VALUES (1)",
    "RESET ALL; SELECT * FROM v",
    "DISCARD ALL; SELECT purge()",
    "SELECT set_config('search_path', 'shadow', false); SELECT * FROM v",
])
def test_a_text_that_changes_search_path_cannot_be_asked_about_ahead(text: str) -> None:
    found = reach.names(text)
    assert found is not None and found.runs is not None
    assert "search_path" in found.runs


def test_a_search_path_alone_names_nothing_and_forgets_what_was_said() -> None:
    assert reach.names("SET search_path = shadow, public") is None
    remembered: Remembered[str] = Remembered()
    remembered.remember("table letters", None, time.monotonic())
    assert remembered.forget_after({"statements": [{"effects": ["session"], "settings": [
        {"name": "search_path", "value": "shadow", "reset": False}]}]})
    assert remembered.get("table letters", time.monotonic()) == (False, None)
