"""The watch over who waits on an agent's lock (extproc/exchange/lock_waits.py), its beat
alone, with a stand-in for the server's answer; the fronts' questions to real PostgreSQL
and MariaDB in tests/e2e/test_database_roles_e2e.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from extproc.config import Match, PostgresTarget, Target
from extproc.exchange.lock_waits import Holding, LockWatch, Waiter, first_word
from extproc.identity import Authenticated

SHOP = Target(name="shop", match=Match(database="shop"), protocol="postgres",
              postgres=PostgresTarget(upstream="127.0.0.1:5432", user="gateway"))
AGENT: Authenticated = {"authenticated": True, "sub": "agent-7", "iss": None, "aud": [],
                        "email": None, "groups": [], "jti": None}


class Server:
    """What the target's server says waits, per beat; the questions it was asked."""

    def __init__(self, *answers: list[Waiter] | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, list[int]]] = []

    async def ask(self, target: Target, ids: Sequence[int]) -> list[Waiter]:
        self.asked.append((target.name, list(ids)))
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer


def watch(server: Server, holdings: list[Holding]) -> tuple[LockWatch, list[str]]:
    alerts: list[str] = []

    async def alert(holding: Holding, message: str, key: str) -> None:
        alerts.append(f"{key}: {message}")

    return LockWatch(lambda: holdings, server.ask, alert), alerts


HELD = Holding("s-1", AGENT, SHOP, 4242)
WAIT = Waiter(4242, 777, "dba", "UPDATE")


async def test_nothing_is_asked_while_no_session_is_in_a_transaction() -> None:
    server = Server()
    beat, alerts = watch(server, [])
    await beat.once()
    assert server.asked == [] and alerts == []


async def test_a_wait_seen_at_two_beats_in_a_row_is_told_once_per_beat() -> None:
    server = Server([WAIT], [WAIT], [])
    beat, alerts = watch(server, [HELD, Holding("s-2", AGENT, SHOP, 99)])
    await beat.once()
    assert alerts == []  # a wait of a moment is no news
    await beat.once()
    assert server.asked == [("shop", [99, 4242])] * 2
    assert alerts == ["s-1 777: dba's session 777 (UPDATE) waits on a lock held by "
                      "agent-7's session s-1 on shop (the database's connection 4242, in "
                      "a transaction for 0 s at least)"]
    await beat.once()  # the wait is over
    assert len(alerts) == 1


async def test_a_wait_that_comes_and_goes_between_beats_is_not_told() -> None:
    server = Server([WAIT], [], [WAIT])
    beat, alerts = watch(server, [HELD])
    for _ in range(3):
        await beat.once()
    assert alerts == []


async def test_a_waiter_on_a_connection_no_session_here_holds_is_not_told() -> None:
    other = Waiter(1, 777, "dba", None)
    server = Server([other], [other])
    beat, alerts = watch(server, [HELD])
    await beat.once()
    await beat.once()
    assert alerts == []


async def test_a_question_that_fails_is_said_once_and_asked_again(
        caplog: pytest.LogCaptureFixture) -> None:
    refused = PermissionError("PROCESS privilege required")
    server = Server(refused, refused, [WAIT], [WAIT])
    beat, alerts = watch(server, [HELD])
    with caplog.at_level(logging.WARNING, "tollgate.locks"):
        for _ in range(4):
            await beat.once()
    assert [r.getMessage() for r in caplog.records] == [
        "target shop: who waits on the agents' locks could not be asked: "
        "PROCESS privilege required"]
    assert len(alerts) == 1


def test_a_waiting_statement_is_named_by_its_first_word_alone() -> None:
    assert first_word("update customers set ssn = '078-05-1120'") == "UPDATE"
    assert first_word("  /* x */ DELETE") is None
    assert first_word(None) is None and first_word("") is None
