"""What a PostgreSQL session (sans-IO, tests/support/wire_session.py) asks the catalog
about the names its statements hold (extproc/postgres/reach.py): once per name while
what it said is remembered, and again once search_path changes what a name names (the
default pack refuses that change: sql.setting; a pack may allow it)."""

from __future__ import annotations

from extproc.postgres import estimate
from extproc.postgres import messages as pg
from tests.support.wire_session import Result, pg_answers, postgres_session

INSERT = "INSERT INTO letters VALUES (1)"
RESULTS = {INSERT: Result(tag="INSERT 0 1"),
           "SET search_path = shadow, public": Result(tag="SET"),
           "SET work_mem = 1000": Result(tag="SET")}


async def test_a_name_is_asked_about_again_once_search_path_changes() -> None:
    async with postgres_session(RESULTS) as wired:
        counts = []
        for text in (INSERT, INSERT, "SET work_mem = 1000", INSERT,
                     "SET search_path = shadow, public", INSERT):
            wired.client.send(pg.encode_query(text))
            await pg_answers(wired.client)
            counts.append(sum(t.startswith(estimate.MARK) and "letters" in t
                              for t in wired.database.all_texts))
        # Asked at the first INSERT; remembered through a SET of anything else; asked
        # again after search_path changed.
        assert counts == [1, 1, 1, 1, 1, 2]
