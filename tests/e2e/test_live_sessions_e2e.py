"""Live sessions end to end: the sessions open now on the PostgreSQL, MySQL and SSH fronts,
listed, ended and locked through the admin API and `tollgate sessions`, as the real
clients (psql, the mariadb client, OpenSSH's ssh, psycopg, PyMySQL, asyncssh) see it.

One gateway for the module with the three fronts and the demo HTTP target; a last test
runs two replicas on one PostgreSQL store and ends, through one replica's API, a session
the other holds. Each test's clients act as an identity of their own, so a lock one test
sets never touches another's. How long an end takes to reach each client is measured
(printed with -s) and held to a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import psycopg
import pymysql
import pytest

from extproc.exchange.live import END_LOCK_SECONDS, utc_text
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_postgres_e2e import DATABASE as PG_DATABASE
from tests.e2e.test_postgres_e2e import customers_database, shop
from tests.e2e.test_ssh_e2e import LOGIN, askpass_env, openssh_password, web
from tests.support import tokens
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway, tollgate_config
from tests.support.line_shells import Pty
from tests.support.mysql_shop import AGENT_NAME, Account, shop_account, unverified_tls
from tests.support.mysql_shop import DATABASE as MY_DATABASE
from tests.support.sshd import Sshd

SECURITY = tokens.token("sec-sam", ["security"])
VIEWER = tokens.token("dana", ["dba"])  # the monitor's viewers see the list by default
# What an end may take to reach a client: the brief's ~2 s, with room for a busy machine.
REACH_SECONDS = 5.0


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    with customers_database("tollgate_live") as url:
        yield url


@pytest.fixture(scope="module")
def my_account() -> Iterator[Account]:
    with shop_account("tollgate_live") as made:
        yield made


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, pg_db: str,
       my_account: Account, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "live", targets=[
        *tollgate_config(POLICIES, "", 0, None)["targets"], shop(pg_db), my_account.target(),
        web(host)],
                        postgres={}, mysql={}, ssh={}, env=my_account.env) as running:
        yield running


def psql_url(gw: Gateway, token: str) -> str:
    return (f"postgresql://agent:{token}@127.0.0.1:{gw.ports.postgres}/"
            f"{PG_DATABASE}?sslmode=require&application_name=live")


def sessions_cli(gw: Gateway, *args: str, token: str = SECURITY
                 ) -> subprocess.CompletedProcess[str]:
    """`tollgate sessions ...` against the gateway's admin API."""
    return subprocess.run(
        [sys.executable, "-m", "extproc", "sessions", *args, "--url", gw.admin_url,
         "--token", token], capture_output=True, text=True, timeout=30, check=False)


def listed(gw: Gateway, identity: str, count: int = 1, replica: int = 0,
           ) -> list[dict[str, Any]]:
    """The live sessions of `identity`, once there are `count`, as the API lists them."""
    found: list[dict[str, Any]] = []

    def there() -> bool:
        status, answer = api(gw, "GET", f"/sessions/live?identity={identity}", VIEWER,
                             replica=replica)
        assert status == 200, answer
        found[:] = answer["sessions"]
        return len(found) == count
    stack.wait_until(there, 15, f"{count} live sessions of {identity}")
    return found


class Timed:
    """A client process, and when it exited (monotonic), watched from a thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.exited_at: float | None = None
        self.out = self.err = ""
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        self.out, self.err = self.process.communicate(timeout=60)
        self.exited_at = time.monotonic()

    def done(self, timeout: float = 30) -> Timed:
        self._thread.join(timeout)
        assert self.exited_at is not None, "the client never ended"
        return self


def end(gw: Gateway, session_id: str, reason: str, replica: int = 0,
        **more: Any) -> tuple[float, dict[str, Any]]:
    """End a session through replica `replica`'s API, its identity not locked unless
    `more` asks (`lock_seconds`: the API's default locks it out): when it was asked
    (monotonic), and the answer."""
    asked = time.monotonic()
    status, answer = api(gw, "POST", f"/sessions/live/{session_id}/end", SECURITY,
                         {"reason": reason, "lock_seconds": 0, **more}, replica=replica)
    assert status == 200, answer
    return asked, answer


def reached(name: str, asked: float, client: Timed) -> float:
    seconds = (client.done().exited_at or 0) - asked
    print(f"\nan end reached {name} in {seconds * 1000:.0f} ms")
    assert seconds < REACH_SECONDS
    return seconds


def moderation(gw: Gateway, session_id: str) -> dict[str, Any]:
    """The record of the end of `session_id`, once written."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records("moderation") if r["session_id"] == session_id]
        return bool(found)
    stack.wait_until(written, 10, f"the record of the end of {session_id}")
    return found[-1]


# -- list ----------------------------------------------------------------------------------


def test_list_shows_each_fronts_session_with_its_id_first(gw: Gateway) -> None:
    sub = "svc-live-list"
    token = tokens.token(sub, ["agents"])
    with contextlib.ExitStack() as open_:
        pg = open_.enter_context(psycopg.connect(psql_url(gw, token), autocommit=True))
        pg.execute("SELECT 1")
        my = pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME,
                             password=token, database=MY_DATABASE, ssl=unverified_tls(),
                             connect_timeout=10)
        open_.callback(my.close)

        async def ssh_open() -> None:
            async with asyncssh.connect(
                    "127.0.0.1", gw.ports.ssh, username=LOGIN, password=token,
                    known_hosts=None, client_keys=None, agent_path=None, config=None) as conn:
                await conn.run("true", check=False)
                listed(gw, sub, 3)
                shown = sessions_cli(gw, "list", "--identity", sub)
                assert shown.returncode == 0, shown.stderr
                lines = shown.stdout.splitlines()
                assert len(lines) == 3
                by_front = {line.split()[1]: line for line in lines}
                assert set(by_front) == {"postgres", "mysql", "ssh"}
                ids = {s["front"]: s["session_id"] for s in listed(gw, sub, 3)}
                for front, line in by_front.items():
                    assert line.split()[0] == ids[front]  # its id first
                    assert f" {sub} " in line
                assert " shop " in by_front["postgres"] and " shop-my " in by_front["mysql"]
                assert f" {LOGIN} " in by_front["ssh"]
                only = sessions_cli(gw, "list", "--identity", sub, "--front", "ssh", "--json")
                (session,) = json.loads(only.stdout)["sessions"]
                assert (session["front"], session["target"]) == ("ssh", LOGIN)
                # Counted as they end, written every couple of seconds: the command.
                stack.wait_until(lambda: any(
                    s["front"] == "ssh" and s["exchanges"] == 1 for s in listed(gw, sub, 3)),
                    10, "the SSH session's command counted")

        asyncio.run(ssh_open())
    # Closed: gone from the list within a write.
    listed(gw, sub, 0)


def test_the_list_is_for_its_viewers_only(gw: Gateway) -> None:
    status, answer = api(gw, "GET", "/sessions/live", tokens.token("svc-nosy", ["agents"]))
    assert (status, answer["error"]) == (403, "forbidden"), answer
    assert "sessions.viewers" in answer["message"]
    # A viewer may look, not end.
    status, answer = api(gw, "POST", "/sessions/live/nothing/end", VIEWER, {"reason": "x"})
    assert (status, answer["error"]) == (403, "forbidden"), answer
    assert "sessions.moderators" in answer["message"]
    status, answer = api(gw, "POST", "/sessions/live/nothing/end", SECURITY, {})
    assert (status, answer["error"]) == (400, "reason_required"), answer
    status, answer = api(gw, "POST", "/sessions/live/nothing/end", SECURITY, {"reason": "x"})
    assert (status, answer["error"]) == (404, "not_found"), answer


# -- end -----------------------------------------------------------------------------------


def test_psql_is_told_by_a_fatal_57p01_with_the_reason_and_the_end_is_recorded(
        gw: Gateway) -> None:
    sub = "svc-live-psql"
    psql = Timed(["psql", "-X", psql_url(gw, tokens.token(sub, ["agents"])), "-c",
                  "SELECT pg_sleep(30)"], env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    (session,) = listed(gw, sub)
    asked, answer = end(gw, session["session_id"], "runaway query")
    reached("psql", asked, psql)
    assert answer["ended"] is True, answer
    assert "FATAL:  tollgate: this session was ended by sec-sam: runaway query" in psql.err
    record = moderation(gw, session["session_id"])
    assert record["identity"]["sub"] == "sec-sam"
    assert record["meaning"]["moderation"] == {
        "action": "end", "session": session["session_id"], "reason": "runaway query",
        "identity": sub, "front": "postgres", "target": "shop",
        "replica": session["replica"]}
    # Nothing of the session's after its end: its statement ended, unrun.
    later = [r for r in gw.records("exchange") if r["session_id"] == session["session_id"]
             and r["started_at"] > record["started_at"]]
    assert later == []
    listed(gw, sub, 0)


def test_the_mariadb_client_is_told_by_an_err_with_the_reason(gw: Gateway) -> None:
    sub = "svc-live-mariadb"
    mariadb = Timed(
        ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql),
         "-u", AGENT_NAME, "--ssl", "--skip-ssl-verify-server-cert", "-D", MY_DATABASE,
         "-N", "-B", "-e", "SELECT SLEEP(30)"],
        env={**os.environ, "MYSQL_PWD": tokens.token(sub, ["agents"])})
    (session,) = listed(gw, sub)
    asked, _ = end(gw, session["session_id"], "too many rows read")
    reached("the mariadb client", asked, mariadb)
    assert "tollgate: this session was ended by sec-sam: too many rows read" in mariadb.err
    assert mariadb.process.returncode != 0
    moderation(gw, session["session_id"])


def test_openssh_is_told_on_stderr_and_the_connection_closes(
        gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-live-ssh"
    env = {**askpass_env(tmp_path)}
    askpass = Path(env["SSH_ASKPASS"])
    askpass.write_text(f"#!/bin/sh\necho '{tokens.token(sub, ['agents'])}'\n")
    ssh = Timed(["ssh", "-p", str(gw.ports.ssh), *openssh_password(tmp_path),
                 f"{LOGIN}@127.0.0.1", "sleep 30"], env=env)
    (session,) = listed(gw, sub)
    asked, answer = end(gw, session["session_id"], "off hours")
    assert answer["effect"] == (
        f"session {session['session_id']} ended on {session['replica']}; not locked: its "
        "client may reconnect at once"), answer
    assert answer["lock"] is None
    reached("ssh", asked, ssh)
    assert "tollgate: this session was ended by sec-sam: off hours" in ssh.err
    assert ssh.process.returncode == 255
    moderation(gw, session["session_id"])


async def test_asyncssh_shell_gets_the_message_on_stderr(gw: Gateway) -> None:
    sub = "svc-live-shell"
    async with asyncssh.connect("127.0.0.1", gw.ports.ssh, username=LOGIN,
                                password=tokens.token(sub, ["agents"]), known_hosts=None,
                                client_keys=None, agent_path=None, config=None) as conn:
        process = await conn.create_process(term_type="xterm", encoding=None)
        process.stdin.write(b"echo ready-$((40+2))\r")
        shown = b""
        while b"ready-42" not in shown:
            shown += await process.stdout.read(4096)
        (session,) = await asyncio.to_thread(listed, gw, sub)
        asked, _ = await asyncio.to_thread(
            end, gw, session["session_id"], "watching this one")
        told = await process.stderr.read()
        await process.wait_closed()
        seconds = time.monotonic() - asked
        print(f"\nan end reached an asyncssh shell in {seconds * 1000:.0f} ms")
    assert b"tollgate: this session was ended by sec-sam: watching this one" in told
    assert process.exit_status == 255


# -- lock ----------------------------------------------------------------------------------


def test_a_lock_ends_open_sessions_refuses_new_ones_on_every_front_until_unlocked(
        gw: Gateway) -> None:
    sub = "svc-live-locked"
    token = tokens.token(sub, ["agents"])
    with psycopg.connect(psql_url(gw, token), autocommit=True) as open_session:
        assert open_session.execute("SELECT 1").fetchone() == (1,)
        listed(gw, sub)
        locked = sessions_cli(gw, "lock", "--identity", sub, "--for", "1h", "--reason",
                              "leaked token")
        assert locked.returncode == 0, locked.stderr
        assert f"identity {sub} is locked until" in locked.stdout
        # The open session's next statement: its session was ended, saying why.
        with pytest.raises(psycopg.OperationalError) as refused:
            stack.wait_until(lambda: listed(gw, sub, 0) == [], 10, "the session ended")
            open_session.execute("SELECT 2")
        assert f"identity {sub} is locked until" in str(refused.value)
        assert "leaked token" in str(refused.value)
    # A new connection is refused at login, on each front, and an HTTP request too.
    done = subprocess.run(["psql", "-X", psql_url(gw, token), "-c", "SELECT 1"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and "is locked until" in done.stderr, done.stderr
    assert "leaked token" in done.stderr
    with pytest.raises(pymysql.err.OperationalError) as mysql_refused:
        pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME,
                        password=token, database=MY_DATABASE, ssl=unverified_tls(),
                        connect_timeout=10)
    assert "is locked until" in str(mysql_refused.value)
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_ssh_login(gw, token))
    reply = gw.request("GET", "/demo.json?sql=select+1", token=token)
    assert reply.status == 403 and reply.json()["error"] == "locked", reply.body
    locks = sessions_cli(gw, "locks")
    assert f"identity {sub} is locked" in locks.stdout
    records = [r for r in gw.records("moderation")
               if r["meaning"]["moderation"].get("identity") == sub]
    assert [r["meaning"]["moderation"]["action"] for r in records] == ["lock"]
    # Unlocked: it may act again, at once on this replica.
    unlocked = sessions_cli(gw, "unlock", "--identity", sub, "--reason", "rotated")
    assert unlocked.returncode == 0, unlocked.stderr
    with psycopg.connect(psql_url(gw, token), autocommit=True) as again:
        assert again.execute("SELECT 3").fetchone() == (3,)


async def _ssh_login(gw: Gateway, token: str) -> None:
    async with asyncssh.connect("127.0.0.1", gw.ports.ssh, username=LOGIN, password=token,
                                known_hosts=None, client_keys=None, agent_path=None,
                                config=None):
        pass


def test_a_locked_identitys_ssh_login_is_told_why(gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-live-locked-ssh"
    status, answer = api(gw, "POST", "/sessions/locks", SECURITY,
                         {"identity": sub, "reason": "under review"})
    assert status == 200, answer
    env = askpass_env(tmp_path)
    Path(env["SSH_ASKPASS"]).write_text(f"#!/bin/sh\necho '{tokens.token(sub, ['agents'])}'\n")
    done = subprocess.run(["ssh", "-p", str(gw.ports.ssh), *openssh_password(tmp_path),
                           "-o", "NumberOfPasswordPrompts=1", f"{LOGIN}@127.0.0.1", "true"],
                          env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 255
    assert f"tollgate: identity {sub} is locked until unlocked by sec-sam: under review" in \
        done.stderr, done.stderr
    status, _ = api(gw, "POST", f"/sessions/locks/{sub}/unlock", SECURITY, {})
    assert status == 200


def test_end_with_lock_ends_the_session_and_locks_its_identity(gw: Gateway) -> None:
    sub = "svc-live-endlock"
    token = tokens.token(sub, ["agents"])
    with psycopg.connect(psql_url(gw, token), autocommit=True) as conn:
        conn.execute("SELECT 1")
        (session,) = listed(gw, sub)
        done = sessions_cli(gw, "end", session["session_id"], "--reason", "exfiltration",
                            "--lock", "30m")
        assert done.returncode == 0, done.stderr
        until = _locked_until(gw, sub)
        assert until - time.time() == pytest.approx(30 * 60, abs=30)
        assert done.stdout == (f"session {session['session_id']} ended on "
                               f"{session['replica']}; {sub} is locked out until "
                               f"{utc_text(int(until * 1e6))}\n")
    refused = gw.request("GET", "/demo.json?sql=select+1", token=token)
    assert refused.status == 403 and "exfiltration" in refused.json()["message"]
    assert sessions_cli(gw, "unlock", "--identity", sub).returncode == 0


def _locked_until(gw: Gateway, identity: str) -> float:
    """When the lock of `identity` ends (seconds since the epoch), as the API lists it."""
    status, answer = api(gw, "GET", "/sessions/locks", VIEWER)
    assert status == 200, answer
    (lock,) = [lock for lock in answer["locks"] if lock["identity"] == identity]
    assert lock["until_us"] is not None, lock
    return int(lock["until_us"]) / 1e6


def test_psql_ended_with_the_defaults_cannot_reconnect_on_any_front(
        gw: Gateway, tmp_path: Path) -> None:
    """An interactive psql (on a terminal, as a person runs it) resets a lost connection
    by itself: an end with the API's defaults locks its identity out for 15 minutes, so
    the reset fails, and a new login on each front is refused, saying until when."""
    sub = "svc-live-reconnect"
    token = tokens.token(sub, ["agents"])
    client = Pty(["psql", "-X", "-n", "-P", "pager=off", psql_url(gw, token)],
                 {"HOME": str(tmp_path), "PGCONNECT_TIMEOUT": "10"})
    try:
        client.type(b"SELECT 40 + 2 AS answer;\n")
        client.shown("42")
        (session,) = listed(gw, sub)
        status, answer = api(gw, "POST", f"/sessions/live/{session['session_id']}/end",
                             SECURITY, {"reason": "runaway agent"})
        assert status == 200, answer
        # psql learns of the end at its next statement, and tries to reset the session.
        client.type(b"SELECT 6 * 7 AS again;\n")
        client.shown("Attempting reset: ")
        client.wait(lambda: b"Failed." in client.output or b"Succeeded." in client.output,
                    "the reset's outcome")
        assert b"Attempting reset: Failed." in client.output, client.output[-600:]
        client.type(b"SELECT 'still here' AS after;\n")
        client.shown("You are currently not connected to a database.")
    finally:
        client.close()
    assert answer["ended"] is True, answer
    until = answer["lock"]["until_us"] / 1e6
    assert until - time.time() == pytest.approx(END_LOCK_SECONDS, abs=30)
    assert answer["effect"] == (
        f"session {session['session_id']} ended on {session['replica']}; {sub} is "
        f"locked out until {answer['lock']['until']}"), answer
    told = f"identity {sub} is locked until {answer['lock']['until']} by sec-sam: runaway agent"
    done = subprocess.run(["psql", "-X", psql_url(gw, token), "-c", "SELECT 1"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and told in done.stderr, done.stderr
    with pytest.raises(pymysql.err.OperationalError) as mysql_refused:
        pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user=AGENT_NAME,
                        password=token, database=MY_DATABASE, ssl=unverified_tls(),
                        connect_timeout=10)
    assert told in str(mysql_refused.value)
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_ssh_login(gw, token))
    reply = gw.request("GET", "/demo.json?sql=select+1", token=token)
    assert reply.status == 403 and reply.json()["message"] == told, reply.body
    assert moderation(gw, session["session_id"])["meaning"]["moderation"][
        "lock_until_us"] == answer["lock"]["until_us"]
    assert sessions_cli(gw, "unlock", "--identity", sub).returncode == 0


def test_the_cli_locks_out_by_default_and_no_lock_lets_the_client_reconnect(
        gw: Gateway) -> None:
    sub = "svc-live-cli-end"
    token = tokens.token(sub, ["agents"])
    with psycopg.connect(psql_url(gw, token), autocommit=True) as conn:
        conn.execute("SELECT 1")
        (session,) = listed(gw, sub)
        done = sessions_cli(gw, "end", session["session_id"], "--reason", "too busy",
                            "--no-lock")
        assert done.returncode == 0, done.stderr
        assert done.stdout == (f"session {session['session_id']} ended on "
                               f"{session['replica']}; not locked: its client may "
                               "reconnect at once\n")
    with psycopg.connect(psql_url(gw, token), autocommit=True) as again:
        assert again.execute("SELECT 2").fetchone() == (2,)
        (session,) = listed(gw, sub)
        done = sessions_cli(gw, "end", session["session_id"], "--reason", "too busy")
        assert done.returncode == 0, done.stderr
        until = _locked_until(gw, sub)
        assert until - time.time() == pytest.approx(END_LOCK_SECONDS, abs=30)
        assert done.stdout == (f"session {session['session_id']} ended on "
                               f"{session['replica']}; {sub} is locked out until "
                               f"{utc_text(int(until * 1e6))}\n")
    with pytest.raises(psycopg.OperationalError, match=f"identity {sub} is locked until"):
        psycopg.connect(psql_url(gw, token), autocommit=True)
    both = sessions_cli(gw, "end", "x", "--reason", "r", "--lock", "1h", "--no-lock")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert sessions_cli(gw, "unlock", "--identity", sub).returncode == 0


# -- two replicas ---------------------------------------------------------------------------


def test_a_session_held_by_one_replica_is_ended_through_the_others_api(
        make_gateway: GatewayFactory, pg_url: str, pg_db: str) -> None:
    pair = make_gateway(POLICIES, targets=[shop(pg_db)], replicas=2,
                        postgres={}, settings={"store": {"url": pg_url}})
    sub = "svc-live-pair"
    token = tokens.token(sub, ["agents"])
    reaches = []
    for _ in range(2):
        client = Timed(["psql", "-X", psql_url(pair, token), "-c",
                        "SELECT pg_sleep(30)"], env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
        (session,) = listed(pair, sub)
        holder = int(session["replica"].rsplit("-", 1)[1])
        other = 1 - holder
        # The other replica lists it too.
        assert [s["session_id"] for s in listed(pair, sub, replica=other)] == \
            [session["session_id"]]
        asked, answer = end(pair, session["session_id"], "two replicas", replica=other)
        reaches.append(reached(f"psql through replica-{holder}, ended on replica-{other}",
                               asked, client))
        assert answer["ended"] is True, answer
        assert "FATAL:  tollgate: this session was ended by sec-sam: two replicas" in \
            client.err
        record = moderation(pair, session["session_id"])
        assert record["meaning"]["moderation"]["replica"] == f"replica-{holder}"


def test_a_held_statement_is_listed_as_waiting_and_ending_the_session_ends_the_wait(
        gw: Gateway) -> None:
    sub = "svc-live-held"
    client = Timed(["psql", "-X", psql_url(gw, tokens.token(sub, ["agents"])), "-c",
                    "DELETE FROM customers"], env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    stack.wait_until(lambda: [s["holds"] for s in listed(gw, sub)] == [1], 15,
                     "the held statement listed as waiting")
    (session,) = listed(gw, sub)
    asked, _ = end(gw, session["session_id"], "not while I watch")
    reached("psql waiting on a hold", asked, client)
    assert "FATAL:  tollgate: this session was ended by sec-sam: not while I watch" in \
        client.err


def test_a_session_of_another_worker_on_sqlite_ends_within_a_poll(
        make_gateway: GatewayFactory, pg_db: str) -> None:
    """No NOTIFY on SQLite: the worker holding the session reads its end at its next
    poll (POLL_SECONDS), the admin API being worker 0's."""
    pair = make_gateway(POLICIES, targets=[shop(pg_db)], workers=2, postgres={},
                        settings={"recording": {"writer_id": "solo"}})
    sub = "svc-live-worker"
    assert pair.ports.postgres_front is not None
    url = psql_url(pair, tokens.token(sub, ["agents"])).replace(
        f":{pair.ports.postgres}/", f":{pair.ports.postgres_front + 1}/")
    client = Timed(["psql", "-X", url, "-c", "SELECT pg_sleep(30)"],
                   env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    (session,) = listed(pair, sub)
    assert session["replica"] == "solo-w1", session
    asked, answer = end(pair, session["session_id"], "one poll away")
    reached("psql on worker 1 of a SQLite store", asked, client)
    assert answer["ended"] is True, answer
    assert "ended by sec-sam: one poll away" in client.err
