"""The words searches filter by: every target protocol is of one session kind, so that
`tollgate audit sessions --kind` and the recordings page find every run (a MySQL run was
of no kind: `--kind sql` left it out)."""

from __future__ import annotations

import dataclasses
import typing

from extproc.codecs.vocabulary import SESSION_KINDS, session_kinds
from extproc.config import Target


def protocols() -> tuple[str, ...]:
    """Every protocol a target may speak (config.Target.protocol)."""
    (field,) = [f for f in dataclasses.fields(Target) if f.name == "protocol"]
    hints = typing.get_type_hints(Target)
    return typing.get_args(hints[field.name])


def test_every_target_protocol_is_of_exactly_one_session_kind() -> None:
    assert len(protocols()) == 9
    for protocol in protocols():
        assert len(session_kinds([protocol])) == 1, protocol
    assert set().union(*SESSION_KINDS.values()) == set(protocols())


def test_a_database_run_is_sql_whichever_database() -> None:
    for protocol in ("sql-http", "postgres", "mysql"):
        assert session_kinds([protocol]) == ["sql"]
