"""The names the PostgreSQL front keeps (extproc/postgres/names.py): its prepared
statements and portals by the client's names, as statements use them. Plain data: no
session, no socket, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.interpret.sql import analyze
from extproc.policy import Decision
from extproc.postgres import namespace
from extproc.postgres.names import Names, Portal, Prepared
from extproc.postgres.refusals import NameRefused
from extproc.postgres.state import Pending


def statement(name: str, upstream: str = "") -> Prepared:
    return Prepared(name, upstream, "SELECT 1", None, Decision("allow"), "r1", 1,
                    namespace.Use())


def test_each_named_statement_gets_a_new_name_of_the_gateways() -> None:
    names = Names()
    assert names.upstream_name("") == ""
    assert [names.upstream_name("q"), names.upstream_name("q")] == [
        f"{namespace.PREFIX}s1", f"{namespace.PREFIX}s2"]


def test_drops_and_declared_cursors_change_the_maps() -> None:
    """DISCARD ALL keeps the unnamed statement (SQL cannot name it) and drops every
    portal; a DECLARE's cursors run under the declaring statement."""
    names = Names()
    names.statements.update({"": statement(""), "q": statement("q", "tollgate_s1")})
    names.portals["p"] = Portal("p", "p", names.statements["q"], (), 0)
    declaring = statement("")
    declared = names.apply(namespace.Use(drops_statements=True, drops_portals=True,
                                         declared=(("c", False), ("h", True))),
                           declaring, 3)
    assert list(names.statements) == [""]
    assert [(p.name, p.statement is declaring, p.cycle, p.hold) for p in declared] == [
        ("c", True, 3, False), ("h", True, 3, True)]
    assert set(names.portals) == {"c", "h"}


def test_a_portal_is_held_for_sure_within_its_cycle_or_with_hold() -> None:
    names = Names()
    names.portals.update({"a": Portal("a", "a", statement(""), (), 1),
                          "b": Portal("b", "b", statement(""), (), 1, hold=True)})
    assert names.holds("a", 1) and names.holds("b", 1)
    assert not names.holds("a", 2) and names.holds("b", 2) and not names.holds("x", 1)
    assert names.cursor_problem(namespace.Use(declared=(("a", False),)), 1) == (
        "42P03", "duplicate_cursor", 'cursor "a" already exists')
    problem = names.cursor_problem(namespace.Use(fetched=frozenset({"gone"})), 1)
    assert problem is not None and problem[:2] == ("34000", "unknown_portal")
    names.end_portals(2)
    assert list(names.portals) == ["b"]


def test_what_failed_is_forgotten_only_if_it_is_still_the_one_named() -> None:
    names = Names()
    old, new = statement("q", "tollgate_s1"), statement("q", "tollgate_s2")
    names.statements["q"] = new
    names.forget(Pending(b"P", statement=old))
    assert names.statements["q"] is new
    names.forget(Pending(b"P", statement=new))
    assert "q" not in names.statements
    cursor = Portal("c", "c", statement(""), (), 0, declared=True)
    names.portals["c"] = cursor
    names.forget(Pending(b"Q", declared=(cursor,)))
    assert names.portals == {}


def read(text: str) -> tuple[namespace.Use, dict[str, Any]]:
    meaning = analyze(text, "postgres")
    return namespace.read(meaning), meaning


def test_sqls_prepare_goes_under_a_name_of_the_gateways_and_its_execute_is_read_as_it() -> None:
    """pg_dump's catalog reads (PREPARE dumpFunc ... ; EXECUTE dumpFunc('1')): the
    EXECUTE returns what its PREPARE's statement returns, so its columns are those; a
    name in use is refused as the database would; what failed, or DEALLOCATE, drops it."""
    names = Names()
    prepare = "PREPARE q(int) AS SELECT id, md5(ssn) AS h FROM customers WHERE id = $1"
    use, meaning = read(prepare)
    query = names.query(use, meaning)
    assert query is not None and query.upstream == f"{namespace.PREFIX}s1"
    assert names.renamed(use, meaning, prepare, query) == \
        f'PREPARE "{namespace.PREFIX}s1"(int) AS SELECT id, md5(ssn) AS h FROM ' \
        "customers WHERE id = $1"
    names.queries[query.name] = query
    with pytest.raises(NameRefused) as again:
        names.query(use, meaning)
    assert again.value.code == "42P05"
    use, meaning = read("EXECUTE q(1)")
    [top] = names.executes(use, meaning)["statements"]
    assert top["columns"] == [
        {"name": "id", "sources": ["id"], "plain": True, "known": True},
        {"name": "h", "sources": ["ssn"], "plain": False, "known": True}]
    assert meaning["statements"][0]["columns"][0]["known"] is False  # read, not changed
    assert names.renamed(use, meaning, "EXECUTE q(1)") == f'EXECUTE "{namespace.PREFIX}s1"(1)'
    # Anything but one EXECUTE of it returns what no reading knows.
    for other in ("EXECUTE q(1); SELECT 1", "EXECUTE other(1)", "EXPLAIN EXECUTE q(1)"):
        use, meaning = read(other)
        assert names.executes(use, meaning) is meaning, other
    names.forget(Pending(b"Q", query=query))
    assert names.queries == {}
    names.queries[query.name] = query
    names.apply(read("DEALLOCATE q")[0], None, 0)
    assert names.queries == {}
    for text in ("PREPARE a AS SELECT 1; SELECT 2", "SELECT 1"):
        assert names.query(*read(text)) is None, text
