"""The suite's throwaway PostgreSQL databases (tests/support/databases.py): made with
commits that do not wait for the disk, made ahead of the test and dropped off its path, never
left behind."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import databases
from tests.support.databases import PG_ADMIN, throwaway_database

pytestmark = pytest.mark.e2e


def exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (name,)).fetchone() is not None


def test_a_database_commits_without_waiting_for_the_disk_and_is_gone_once_dropped() -> None:
    with throwaway_database("tollgate_throwaway") as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as session:  # a client of its own, as tollgate is
            assert session.execute("SHOW synchronous_commit").fetchone() == ("off",)
    databases.wait_for_drops()
    assert not exists(name)


def test_a_drop_that_fails_is_named_when_the_drops_are_waited_for() -> None:
    dropper = databases._Dropper()
    dropper.drop('no"such')  # not a name the server can read: the DROP fails
    with pytest.raises(RuntimeError, match=r'throwaway databases not dropped: no"such: '):
        dropper.finish()


def test_the_next_database_is_made_ahead_and_dropped_if_never_taken() -> None:
    prefix = "tollgate_ahead"
    with throwaway_database(prefix) as url:
        taken = url.rsplit("/", 1)[1]
    ahead = databases._maker()._ahead[prefix].result()  # made while the test ran
    assert ahead != taken and exists(ahead)
    with throwaway_database(prefix) as url:
        assert url.endswith(f"/{ahead}")  # the next test takes it, and another is made
    following = databases._maker()._ahead[prefix].result()
    databases.wait_for_drops()  # the run's end: what was never taken goes too
    assert not any(exists(name) for name in (taken, ahead, following))
