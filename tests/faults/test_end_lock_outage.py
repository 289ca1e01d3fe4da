"""A person's end or lock during a store outage is carried out at once on the replica that
took it, kept on its disk, and written to the store when the store is back, once.

Two replicas behind one Envoy share a PostgreSQL store of the test's own
(tests/support/pg_cluster.py), which the test stops for real; each replica keeps its own
folder (tests/support/gateway.py). psql clients, each an identity of its own, sit in a
long statement on a replica chosen by connecting to its PostgreSQL front directly. With
the store out, an end and a lock through replica 0's API (and the CLI) are answered 202
saying so; replica 0's own sessions end at once with the person's reason, while replica
1's go on (it cannot know yet). Once the store is back, the acts are in it and replica 1
ends its sessions too. A second test kills replica 0 (SIGKILL) before the store is back:
its restart writes what its disk kept, each act once, with its record, and a kept file
that outlived its write is not written again.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_live_sessions_e2e import SECURITY, VIEWER, Timed, sessions_cli
from tests.e2e.test_postgres_e2e import DATABASE, customers_database, shop
from tests.support import pg_cluster, tokens
from tests.support.gateway import FAST_EXPORT, POLICIES, Gateway, GatewayFactory, start_tollgate

pytestmark = [pytest.mark.e2e]

# How soon an act must be answered, and reach a client: the live sessions' bound.
REACH_SECONDS = 5.0
ACCEPTED = "accepted, not yet in the store"
WHEN_BACK = "written to the store when it returns"


@pytest.fixture
def store() -> Iterator[pg_cluster.Cluster]:
    with pg_cluster.cluster() as running:
        yield running


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    with customers_database("tollgate_kept") as url:
        yield url


@pytest.fixture
def pair(store: pg_cluster.Cluster, pg_db: str, make_gateway: GatewayFactory) -> Gateway:
    """Two replicas on `store` (set up first, so that it is stopped after them: a replica
    stopping on a stopped store waits its whole drain out)."""
    return make_gateway(POLICIES, targets=[shop(pg_db)], replicas=2, postgres={},
                        settings={"store": {"url": store.admin_url}})


def config_of(gw: Gateway, replica: int) -> dict[str, Any]:
    path = gw.config_path.with_name("tollgate.yaml" if replica == 0
                                    else f"tollgate-{replica}.yaml")
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def kept_folder(gw: Gateway, replica: int) -> Path:
    return gw.config_path.parent / config_of(gw, replica)["sessions"]["kept_dir"]


def front_url(gw: Gateway, replica: int, sub: str) -> str:
    """A psql URL to replica `replica`'s PostgreSQL front itself (not through Envoy)."""
    port = config_of(gw, replica)["postgres"]["listen"].rsplit(":", 1)[1]
    return (f"postgresql://agent:{tokens.token(sub, ['agents'])}@127.0.0.1:{port}/"
            f"{DATABASE}?sslmode=require&application_name=kept")


def sleeping(gw: Gateway, replica: int, sub: str) -> tuple[Timed, str]:
    """A psql client of `sub` in a long statement on `replica`, and its session id."""
    client = Timed(["psql", "-X", front_url(gw, replica, sub), "-c", "SELECT pg_sleep(120)"],
                   env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    found: list[dict[str, Any]] = []

    def listed() -> bool:
        status, answer = api(gw, "GET", f"/sessions/live?identity={sub}", VIEWER)
        assert status == 200, answer
        found[:] = answer["sessions"]
        return len(found) == 1 and found[0]["holds"] == 0 and found[0]["exchanges"] == 0
    stack.wait_until(listed, 20, f"the session of {sub} listed")
    assert found[0]["replica"] == f"replica-{replica}"
    return client, found[0]["session_id"]


def kept(gw: Gateway, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An act through replica 0's API while the store is out: answered 202, at once."""
    asked = time.monotonic()
    status, answer = api(gw, method, path, SECURITY, body)
    seconds = time.monotonic() - asked
    print(f"\n{path} answered {status} in {seconds * 1000:.0f} ms: {answer.get('effect')}")
    assert status == 202, answer
    assert seconds < REACH_SECONDS
    assert ACCEPTED in answer["effect"] and WHEN_BACK in answer["effect"], answer
    assert answer["kept"]["replica"] == "replica-0"
    return answer


def told(client: Timed, words: str) -> None:
    """The client ended, told `words` by tollgate."""
    client.done()
    assert words in client.err, client.err


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = connect(url)
    try:
        return connection.execute(sql, params)
    finally:
        connection.close()


def act_files(gw: Gateway) -> list[Path]:
    folder = kept_folder(gw, 0)
    return sorted(p for p in folder.iterdir() if p.suffix in (".act", ".record")) \
        if folder.exists() else []


def moderations(gw: Gateway, action: str, about: str) -> list[dict[str, Any]]:
    """The records of the acts `action` on session or identity `about`."""
    return [r for r in gw.records("moderation")
            if r["meaning"]["moderation"]["action"] == action
            and about in (r["meaning"]["moderation"].get("session"),
                          r["meaning"]["moderation"].get("identity"))]


def recorder_out(gw: Gateway, sub: str) -> psycopg.Connection[Any]:
    """A session of `sub` on replica 0, kept open: `failed` makes its record writer fail
    on the stopped store, so that acts after it cannot be admitted to the record."""
    return psycopg.connect(front_url(gw, 0, sub), autocommit=True, connect_timeout=10)


def failed(connection: psycopg.Connection[Any]) -> None:
    """Statements on replica 0 until one is refused because its record cannot be
    written (the store is out)."""
    def refused() -> bool:
        try:
            connection.execute("SELECT 1")
        except psycopg.Error as exc:
            return "audit record cannot be written" in str(exc)
        return False
    stack.wait_until(refused, 20, "replica 0's record writer to fail on the stopped store")


def test_end_and_lock_during_an_outage_apply_here_at_once_then_everywhere(
        pair: Gateway, store: pg_cluster.Cluster) -> None:
    here, here_id = sleeping(pair, 0, "svc-kept-here")
    there, there_id = sleeping(pair, 1, "svc-kept-there")
    locked_here, _ = sleeping(pair, 0, "svc-kept-lock")
    locked_there, _ = sleeping(pair, 1, "svc-kept-lock-2")
    store.stop()
    try:
        ended = kept(pair, "POST", f"/sessions/live/{here_id}/end", {"reason": "leak"})
        assert ended["ended"] is True
        assert f"session {here_id} ended on replica-0 now" in ended["effect"]
        assert ended["lock"]["identity"] == "svc-kept-here"
        told(here, "FATAL:  tollgate: this session was ended by sec-sam: leak")
        # Held by the other replica: kept here, for the store to carry it there.
        elsewhere = kept(pair, "POST", f"/sessions/live/{there_id}/end",
                         {"reason": "elsewhere", "lock_seconds": 600})
        assert elsewhere["ended"] is False and elsewhere["lock"] is None
        assert "is not held by replica-0" in elsewhere["effect"]
        kept(pair, "POST", "/sessions/locks",
             {"identity": "svc-kept-lock", "reason": "rotating", "seconds": 600})
        told(locked_here, "identity svc-kept-lock is locked until")
        # The CLI says the same, and exits 0.
        cli = sessions_cli(pair, "lock", "--identity", "svc-kept-lock-2", "--for", "10m",
                           "--reason", "rotating too")
        print(f"\ntollgate sessions lock: {cli.stdout.strip()}")
        assert cli.returncode == 0, cli.stderr
        assert ACCEPTED in cli.stdout and WHEN_BACK in cli.stdout
        # Replica 1 cannot know yet: its sessions go on.
        assert there.process.poll() is None and locked_there.process.poll() is None
        files = act_files(pair)
        assert [p.suffix for p in files] == [".act"] * 4, files
        assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
        assert stat.S_IMODE(kept_folder(pair, 0).stat().st_mode) == 0o700
    finally:
        store.start()
    back = time.monotonic()
    told(there, "FATAL:  tollgate: this session was ended by sec-sam: elsewhere")
    told(locked_there, "identity svc-kept-lock-2 is locked until")
    print(f"\nreplica 1 carried the kept acts out {time.monotonic() - back:.1f} s after the "
          "store came back")
    url = store.admin_url
    assert sorted(rows(url, "SELECT session_id, reason FROM ended_sessions")) == sorted(
        [(here_id, "leak"), (there_id, "elsewhere")])
    assert sorted(rows(url, "SELECT identity, reason FROM identity_locks")) == [
        ("svc-kept-here", "leak"), ("svc-kept-lock", "rotating"),
        ("svc-kept-lock-2", "rotating too"), ("svc-kept-there", "elsewhere")]
    assert rows(url, "SELECT COUNT(*) FROM kept_acts") == [(4,)]
    stack.wait_until(lambda: not act_files(pair), 10, "the kept files deleted")
    # Each act is recorded once, answered 202.
    for action, about in (("end", here_id), ("end", there_id), ("lock", "svc-kept-lock"),
                          ("lock", "svc-kept-lock-2")):
        stack.wait_until(lambda a=action, b=about: bool(moderations(pair, a, b)), 20,
                         f"the record of the {action} of {about}")
        (record,) = moderations(pair, action, about)
        assert record["response"]["status"] == 202


def test_kept_acts_outlive_a_kill_of_their_replica_and_are_written_once(
        pair: Gateway, store: pg_cluster.Cluster) -> None:
    there, there_id = sleeping(pair, 1, "svc-kept-killed-end")
    locked, _ = sleeping(pair, 1, "svc-kept-killed-lock")
    writer = recorder_out(pair, "svc-kept-writer")
    store.stop()
    try:
        failed(writer)
        # The record cannot be admitted either: it is kept with the act.
        ended = kept(pair, "POST", f"/sessions/live/{there_id}/end", {"reason": "killed"})
        assert ended["kept"]["why"].startswith("the audit record cannot be written")
        kept(pair, "POST", "/sessions/locks", {"identity": "svc-kept-killed-lock",
                                               "reason": "before the kill"})
        replica = pair.processes[0]
        replica.popen.send_signal(signal.SIGKILL)
        replica.popen.wait(10)
        files = act_files(pair)
        assert [p.suffix for p in files] == [".act", ".act"], files
        copies = {p.name: p.read_bytes() for p in files}
        # The records wait with their acts, the moderator's token redacted.
        assert all(b'"trace_id"' in data and SECURITY.encode() not in data
                   for data in copies.values())
    finally:
        store.start()
    writer.close()
    url = store.admin_url
    # Back, with replica 0 still down: nobody has written them, replica 1 goes on.
    assert rows(url, "SELECT COUNT(*) FROM ended_sessions") == [(0,)]
    assert rows(url, "SELECT COUNT(*) FROM identity_locks") == [(0,)]
    assert there.process.poll() is None and locked.process.poll() is None
    restarted = start_tollgate(pair.config_path, pair.ports.ext_proc,
                               pair.config_path.parent, FAST_EXPORT, "tollgate-again", 1)
    pair.processes[0] = pair.tollgate = restarted
    told(there, "FATAL:  tollgate: this session was ended by sec-sam: killed")
    told(locked, "identity svc-kept-killed-lock is locked until unlocked")
    stack.wait_until(lambda: not act_files(pair), 10, "the kept files deleted")
    assert rows(url, "SELECT session_id, reason FROM ended_sessions") == [(there_id, "killed")]
    # The end's lock (its default) found its identity in the store as it was written.
    assert rows(url, "SELECT identity, reason FROM identity_locks ORDER BY identity") == [
        ("svc-kept-killed-end", "killed"), ("svc-kept-killed-lock", "before the kill")]
    for action, about in (("end", there_id), ("lock", "svc-kept-killed-lock")):
        stack.wait_until(lambda a=action, b=about: bool(moderations(pair, a, b)), 20,
                         f"the record of the {action} of {about}")
    # Unlocked since; a kept file that outlived its write (a crash before its deletion)
    # comes back: it is not written again, the identity stays unlocked, one record each.
    status, answer = api(pair, "POST", "/sessions/locks/svc-kept-killed-lock/unlock",
                         SECURITY, {"reason": "done"})
    assert status == 200, answer
    folder = kept_folder(pair, 0)
    for name, data in copies.items():
        (folder / name).write_bytes(data)
        os.chmod(folder / name, 0o600)
    stack.wait_until(lambda: not act_files(pair), 10, "the outliving files dropped")
    assert rows(url, "SELECT identity FROM identity_locks") == [("svc-kept-killed-end",)]
    assert rows(url, "SELECT COUNT(*) FROM kept_acts") == [(2,)]
    assert "was written before" in restarted.tail(200)
    for action, about in (("end", there_id), ("lock", "svc-kept-killed-lock")):
        assert len(moderations(pair, action, about)) == 1
