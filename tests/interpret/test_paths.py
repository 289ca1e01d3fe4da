"""`sql.paths` patterns: whole paths, `*` within one segment, odd paths matching none."""

from __future__ import annotations

import pytest

from extproc.codecs.paths import path_matcher, pattern_problem

DATASETTE = path_matcher(["/datasette/*/-/query*", "/datasette/*/-/execute-write", "/sql"])


@pytest.mark.parametrize("path", [
    "/datasette/shop/-/query", "/datasette/shop/-/query.json", "/datasette/shop/-/query.csv",
    "/datasette/shop/-/execute-write", "/sql",
])
def test_a_listed_path_matches(path: str) -> None:
    assert DATASETTE(path)


@pytest.mark.parametrize("path", [
    "/datasette/shop/t/-/query",  # `*` is one segment
    "/datasette/shop/-/execute-write/analyze",  # whole paths, not prefixes
    "/datasette/shop/archive/-/drop",
    "/sqlx", "/sql/", "/SQL", "/x/sql", "sql",
    "/datasette/sh%6fp/-/query",  # escapes, backslashes, empty and dot segments
    "/datasette/shop/-/execute-writ%65",
    "/datasette/a\\b/-/query",
    "/datasette//-/query",
    "/datasette/../-/query",
    "/datasette/./-/query",
    "/datasette/..;/-/query",
    "/sql/t/-/drop/../../..",
])
def test_any_other_path_matches_none(path: str) -> None:
    assert not DATASETTE(path)


@pytest.mark.parametrize(("pattern", "problem"), [
    ("sql", "'sql' is not a path: it must start with /"),
    ("/db/-/query?sql=x", "holds a space, a control character, ? or #"),
    ("/db /-/query", "holds a space, a control character, ? or #"),
    ("/db//-/query", "holds a % escape, a backslash or an empty, . or .. segment"),
    ("/db/../-/query", "holds a % escape, a backslash or an empty, . or .. segment"),
    ("/db%2F/-/query", "holds a % escape, a backslash or an empty, . or .. segment"),
    ("/db/**", "* matches within one segment; ** is not a pattern"),
])
def test_a_pattern_that_would_match_nothing_or_more_is_named(pattern: str, problem: str) -> None:
    assert problem in (pattern_problem(pattern) or "")


@pytest.mark.parametrize("pattern", ["/", "/sql", "/sql/", "/*/-/query*", "/a/*.json"])
def test_plain_patterns_are_valid(pattern: str) -> None:
    assert pattern_problem(pattern) is None
