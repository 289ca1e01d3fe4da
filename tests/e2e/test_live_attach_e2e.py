"""Attaching people to live sessions, end to end: `tollgate sessions watch` (the session's
exchanges and a terminal's screen as they happen), moderated targets (a session that
waits until a moderator attends, and pauses when the last one leaves) and `tollgate
sessions join` (a moderator's line typed into an SSH session, decided and recorded with
its typist), with the real clients (psql, the mariadb client, OpenSSH's ssh) through the
real fronts and sshd; one test runs two replicas on one PostgreSQL store, and one watches
a shell on the recordings page (Debian's Chromium, headless) in the asciinema player's
live mode.

How long a watch takes to show an exchange, and a waiting session to go on once a
moderator attends, is measured (printed with -s) and held to a bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import Page, expect

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_live_sessions_e2e import SECURITY, VIEWER, end, listed, psql_url
from tests.e2e.test_postgres_e2e import DATABASE as PG_DATABASE
from tests.e2e.test_postgres_e2e import customers_database, shop
from tests.e2e.test_ssh_e2e import LOGIN, askpass_env, openssh_password, web
from tests.support import tokens
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway
from tests.support.mysql_shop import AGENT_NAME, Account, shop_account
from tests.support.sshd import Sshd

MODERATED_DB = "shop_moderated"
MODERATED_MY_DB = "shop_my_moderated"
MODERATED_LOGIN = "web-mod"
# What a watch may take to show an exchange (the brief: within a second).
SHOWN_SECONDS = 1.0
# What a waiting session may take to go on once a moderator attends (a poll, at worst).
PROCEEDS_SECONDS = 2.0
WAIT = 20.0  # a deadline for what the tests wait on, never a pause


def moderated_shop(pg_db: str) -> dict[str, Any]:
    return {**shop(pg_db), "name": "shop-moderated", "match": {"database": MODERATED_DB},
            "labels": {"moderated": "true"}}


def moderated_web(host: Sshd) -> dict[str, Any]:
    return {**web(host), "name": MODERATED_LOGIN, "match": {"login": MODERATED_LOGIN},
            "labels": {"moderated": "true"}}


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    with customers_database("tollgate_attach") as url:
        yield url


@pytest.fixture(scope="module")
def my_account() -> Iterator[Account]:
    with shop_account("tollgate_attach") as made:
        yield made


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, pg_db: str,
       host: Sshd, my_account: Account) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "attach", targets=[
            shop(pg_db), moderated_shop(pg_db), web(host), moderated_web(host),
            {**my_account.target("shop-my-moderated", MODERATED_MY_DB),
             "labels": {"moderated": "true"}}],
                        postgres={}, ssh={}, mysql={}, env=my_account.env) as running:
        yield running


class Lines:
    """A process's output stream read line by line on a thread, each line with when it
    came (the wall clock: compared with when the gateway stored a moderator's attendance,
    on the same machine); waited on with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append((time.time(), line))
                self._changed.notify_all()
        with self._changed:
            self.lines.append((time.time(), ""))  # the end
            self._changed.notify_all()

    def wait(self, found: Callable[[str], bool], what: str,
             timeout: float = WAIT) -> tuple[float, str]:
        """The first line `found` accepts (when it came, the line)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for at, line in self.lines:
                    if line and found(line):
                        return at, line
                left = deadline - time.monotonic()
                assert left > 0, f"never seen: {what}; got {self.text()!r}"
                self._changed.wait(left)

    def until(self, found: Callable[[list[str]], bool], what: str,
              timeout: float = WAIT) -> float:
        """When the lines so far first made `found` true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for n, (at, _) in enumerate(self.lines):
                    if found([line for _, line in self.lines[:n + 1] if line]):
                        return at
                left = deadline - time.monotonic()
                assert left > 0, f"never seen: {what}; got {self.text()!r}"
                self._changed.wait(left)

    def text(self) -> str:
        return "".join(line for _, line in self.lines)


class Watch:
    """`tollgate sessions watch|join ID --json` against one replica's admin API: its
    events as they come."""

    def __init__(self, gw: Gateway, session_id: str, token: str = SECURITY,
                 command: str = "watch", replica: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "extproc", "sessions", command, session_id, "--json",
             "--url", f"http://127.0.0.1:{gw.replica_admin_ports[replica]}",
             "--token", token], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.out = Lines(self.process.stdout)  # type: ignore[arg-type]

    def event(self, kind: str, found: Callable[[dict[str, Any]], bool] = lambda _: True,
              timeout: float = WAIT) -> tuple[float, dict[str, Any]]:
        def matches(line: str) -> bool:
            event = json.loads(line)
            return bool(event["event"] == kind and found(event))
        at, line = self.out.wait(matches, f"a {kind} event", timeout)
        return at, json.loads(line)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def leave(self) -> None:
        """The watcher goes (its stream closed as a Ctrl-C would)."""
        self.process.kill()
        self.process.wait(10)

    def done(self) -> int:
        if self.process.stdin is not None:
            self.process.stdin.close()
        return self.process.wait(WAIT)


class Client:
    """An interactive client (psql reading stdin, ssh -tt) and its output, as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.out = Lines(self.process.stdout)  # type: ignore[arg-type]
        self.err = Lines(self.process.stderr)  # type: ignore[arg-type]

    def send(self, text: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()
        return time.time()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def psql(gw: Gateway, sub: str, database: str = PG_DATABASE) -> Client:
    url = psql_url(gw, tokens.token(sub, ["agents"])).replace(f"/{PG_DATABASE}?",
                                                               f"/{database}?")
    return Client(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=0", url],
                  env={**os.environ, "PGCONNECT_TIMEOUT": "10"})


def ssh_tty(gw: Gateway, sub: str, tmp_path: Path, login: str = LOGIN) -> Client:
    """OpenSSH's ssh with a terminal (-tt: its stdin a pipe), as the agent `sub`."""
    env = askpass_env(tmp_path)
    Path(env["SSH_ASKPASS"]).write_text(f"#!/bin/sh\necho '{tokens.token(sub, ['agents'])}'\n")
    return Client(["ssh", "-tt", "-p", str(gw.ports.ssh), *openssh_password(tmp_path),
                   f"{login}@127.0.0.1"], env=env)


def screen(watch: Watch, text: str) -> float:
    """When the watch's screen first showed `text` (its chunks' output joined: a chunk
    may cut it)."""
    return watch.out.until(lambda lines: text in _screen_text(lines), f"{text!r} on screen")


def _screen_text(lines: list[str]) -> str:
    shown = []
    for line in lines:
        event = json.loads(line)
        if event["event"] == "screen":
            for cast_line in event["cast"].splitlines():
                cast = json.loads(cast_line)
                if isinstance(cast, list) and cast[1] == "o":
                    shown.append(cast[2])
    return "".join(shown)


# -- watch ---------------------------------------------------------------------------------


def test_watch_shows_psql_statements_within_a_second_masked_as_recorded(
        gw: Gateway) -> None:
    sub = "svc-watch-psql"
    client = psql(gw, sub)
    client.send("SELECT 1;\n")
    client.out.wait(lambda line: line.strip() == "1", "psql's first answer")
    (session,) = listed(gw, sub)
    watch = Watch(gw, session["session_id"], token=VIEWER)  # a viewer may watch
    _, opened = watch.event("session")
    assert opened["session"]["session_id"] == session["session_id"]
    assert [a["who"] for a in opened["attendees"]] == ["dana"]
    seconds = []
    for n in range(3):
        client.send(f"SELECT {n} + 40 AS answer, email FROM customers ORDER BY id LIMIT 1;\n")
        answered, _ = client.out.wait(lambda line, n=n: line.startswith(f"{n + 40}|"),
                                      f"answer {n}")
        shown, event = watch.event("record", lambda e, n=n: f"{n} + 40" in str(
            e["record"]["content"]["request"]["body"]))
        seconds.append(shown - answered)
        record = event["record"]
        assert record["action"] == "allow" and record["kind"] == "exchange"
        # Masked as recorded: the address the client got is not in what the watch shows.
        assert "@" not in json.dumps(record["content"]["response"]), record["content"]
    print(f"\na watch showed psql's statements {', '.join(f'{s * 1000:.0f}' for s in seconds)}"
          " ms after psql had its answer")
    assert max(seconds) < SHOWN_SECONDS
    end(gw, session["session_id"], "seen enough")
    _, ended = watch.event("ended")
    assert ended["by"] == "sec-sam" and ended["reason"] == "seen enough", ended
    assert watch.done() == 0
    client.close()
    # The watch is a record of the session, naming its watcher.
    watched = [r for r in gw.records("moderation") if r["session_id"] == session["session_id"]
               and r["meaning"]["moderation"]["action"] == "watch"]
    assert [r["identity"]["sub"] for r in watched] == ["dana"]


def test_watch_is_for_viewers_and_join_for_moderators(gw: Gateway) -> None:
    sub = "svc-watch-refused"
    client = psql(gw, sub)
    client.send("SELECT 1;\n")
    (session,) = listed(gw, sub)
    path = f"/sessions/live/{session['session_id']}"
    agent = tokens.token("svc-nosy", ["agents"])
    for token, route, code in ((agent, "/watch", "forbidden"),
                               (VIEWER, "/watch?join=1", "forbidden"),
                               (SECURITY, "/watch?join=1", "not_joinable")):
        status, answer = api(gw, "GET", path + route, token)
        assert answer["error"] == code, (route, answer)
        assert status in (403, 409)
    status, answer = api(gw, "POST", path + "/input", SECURITY, {"keys": "ls\r"})
    assert (status, answer["error"]) == (409, "not_joined"), answer
    status, answer = api(gw, "GET", "/sessions/live/no-such/watch", SECURITY)
    assert (status, answer["error"]) == (404, "not_found"), answer
    refused = subprocess.run(
        [sys.executable, "-m", "extproc", "sessions", "watch", session["session_id"],
         "--url", gw.admin_url, "--token", agent], capture_output=True, text=True,
        timeout=30, check=False)
    assert refused.returncode == 1 and "403 forbidden" in refused.stderr, refused.stderr
    # As a person reads it: the session, who attends, each exchange, the end.
    text = Client([sys.executable, "-m", "extproc", "sessions", "watch",
                   session["session_id"], "--url", gw.admin_url, "--token", VIEWER])
    text.out.wait(lambda line: line.startswith(f"watching session {session['session_id']}: "
                                               f"postgres of {sub} on shop"), "the session")
    text.out.wait(lambda line: line == "attending: dana (watch)\n", "who attends")
    client.send("SELECT 'typed-now';\n")
    text.out.wait(lambda line: "allow" in line and "typed-now" in line, "the statement")
    end(gw, session["session_id"], "text mode seen")
    text.out.wait(lambda line: "ended by sec-sam: text mode seen" in line, "the end")
    assert text.process.wait(WAIT) == 0
    client.close()


def test_watch_shows_an_ssh_screen_as_it_is_written(gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-watch-ssh"
    client = ssh_tty(gw, sub, tmp_path)
    client.send("echo ready-$((40+2))\r")
    client.out.wait(lambda line: "ready-42" in line, "the shell's first answer")
    (session,) = listed(gw, sub)
    watch = Watch(gw, session["session_id"])
    screen(watch, "ready-42")  # the screen so far, whole
    sent = client.send("echo watched-$((6*7))\r")
    answered, _ = client.out.wait(lambda line: "watched-42" in line, "the agent's answer")
    shown = screen(watch, "watched-42")
    print(f"\na watch showed an SSH session's output {(shown - answered) * 1000:.0f} ms "
          f"after ssh did ({(answered - sent) * 1000:.0f} ms after it was typed)")
    assert shown - answered < SHOWN_SECONDS
    client.send("exit\r")
    _, ended = watch.event("ended")
    assert ended["by"] is None and "closed" in ended["message"], ended
    client.close()


# -- moderated targets ---------------------------------------------------------------------


def test_a_moderated_ssh_session_waits_for_a_moderator_and_pauses_without_one(
        gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-moderated-ssh"
    client = ssh_tty(gw, sub, tmp_path, MODERATED_LOGIN)
    # The shell waits, the agent told why on stderr.
    client.err.wait(lambda line: "needs a moderator present" in line, "the wait's message")
    stack.wait_until(lambda: [s["holds"] for s in listed(gw, sub)] == [1], WAIT,
                     "the shell listed as waiting")
    (session,) = listed(gw, sub)
    client.send("echo opened-$((40+2))\r")
    watch = Watch(gw, session["session_id"])
    opened, _ = client.out.wait(lambda line: "opened-42" in line, "the shell once moderated")
    first = opened - attended(watch)
    # The last moderator leaves: the next line waits, the agent told so on its terminal.
    watch.leave()
    stack.wait_until(lambda: _attendance(gw, session["session_id"]) == [], WAIT,
                     "the watcher gone")
    client.send("echo paused-$((40+2))\r")
    client.out.wait(lambda line: "needs a moderator present" in line, "the pause's message")
    assert not any("paused-42" in line and "echo" not in line
                   for _, line in client.out.lines)
    again = Watch(gw, session["session_id"])
    resumed, _ = client.out.wait(lambda line: "paused-42" in line and "echo" not in line,
                                 "the line once a moderator is back")
    second = resumed - attended(again)
    print(f"\na moderated SSH session went on {first * 1000:.0f} ms and "
          f"{second * 1000:.0f} ms after a moderator attended")
    assert max(first, second) < PROCEEDS_SECONDS
    client.send("exit\r")
    again.event("ended")
    client.close()
    lines = [r for r in gw.records("exchange") if r["session_id"] == session["session_id"]
             and r["request"]["method"] == "LINE"]
    assert [r["outcome"].get("moderators") for r in lines] == ["sec-sam"] * len(lines)


def attended(watch: Watch) -> float:
    """When the watch's moderator began to attend (stored), as the gateway says."""
    _, opened = watch.event("session")
    (me,) = [a for a in opened["attendees"] if a["who"] == "sec-sam"]
    return float(me["since_us"]) / 1e6


def _attendance(gw: Gateway, session_id: str) -> list[Any]:
    status, answer = api(gw, "GET", f"/sessions/live/{session_id}/attendance", SECURITY)
    assert status == 200, answer
    return list(answer["attendees"])


def test_a_moderated_psql_session_s_statements_wait_until_a_moderator_attends(
        gw: Gateway) -> None:
    sub = "svc-moderated-psql"
    client = psql(gw, sub, MODERATED_DB)
    client.send("SELECT 40 + 2;\n")
    client.err.wait(lambda line: "needs a moderator present" in line, "psql's NOTICE")
    (session,) = listed(gw, sub)
    assert client.out.lines == []  # it waits: no answer yet
    watch = Watch(gw, session["session_id"])
    answered, _ = client.out.wait(lambda line: line.strip() == "42", "the answer")
    seconds = answered - attended(watch)
    print(f"\na moderated psql statement went on {seconds * 1000:.0f} ms "
          "after a moderator attended")
    assert seconds < PROCEEDS_SECONDS
    # While the moderator stays, statements go on at once.
    client.send("SELECT 43;\n")
    client.out.wait(lambda line: line.strip() == "43", "the next answer")
    client.close()
    watch.event("ended")
    (record,) = [r for r in gw.records("exchange") if r["session_id"] ==
                 session["session_id"] and "40 + 2" in str(r["request"]["body"])]
    assert record["outcome"]["moderators"] == "sec-sam"


def test_a_moderated_mariadb_session_s_statements_wait_until_a_moderator_attends(
        gw: Gateway) -> None:
    """MySQL's protocol has no word for a wait: the client just waits, listed as such."""
    sub = "svc-moderated-mariadb"
    client = Client(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P",
                     str(gw.ports.mysql), "-u", AGENT_NAME, "--ssl",
                     "--skip-ssl-verify-server-cert", "-D", MODERATED_MY_DB, "-N", "-B",
                     "-e", "SELECT 40 + 2"],
                    env={**os.environ, "MYSQL_PWD": tokens.token(sub, ["agents"])})
    stack.wait_until(lambda: [s["holds"] for s in listed(gw, sub)] == [1], WAIT,
                     "the statement listed as waiting")
    (session,) = listed(gw, sub)
    assert client.out.lines == []
    watch = Watch(gw, session["session_id"])
    answered, _ = client.out.wait(lambda line: line.strip() == "42", "the answer")
    seconds = answered - attended(watch)
    print(f"\na moderated mariadb statement went on {seconds * 1000:.0f} ms "
          "after a moderator attended")
    assert seconds < PROCEEDS_SECONDS
    client.close()
    watch.event("ended")


# -- join ----------------------------------------------------------------------------------


def test_a_joined_moderator_types_lines_decided_and_recorded_with_the_typist(
        gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-joined-ssh"
    client = ssh_tty(gw, sub, tmp_path)
    client.send("echo ready-$((40+2))\r")
    client.out.wait(lambda line: "ready-42" in line, "the shell")
    (session,) = listed(gw, sub)
    peer = Watch(gw, session["session_id"], command="join")
    peer.event("session", lambda e: e["role"] == "join")
    peer.type("echo joined-$((6*7))")
    client.out.wait(lambda line: "joined-42" in line and "echo" not in line,
                    "the joined line's output on the agent's terminal")
    screen(peer, "joined-42")
    peer.type("rm -rf /")
    client.out.wait(lambda line: "destructive command" in line, "the joined line refused")
    client.send("exit\r")
    peer.event("ended")
    assert peer.done() == 0
    client.close()
    lines = {r["request"]["body"]["value"]: r for r in gw.records("exchange")
             if r["session_id"] == session["session_id"] and r["request"]["method"] == "LINE"}
    typed = lines["echo joined-$((6*7))"]
    assert typed["request"]["headers"]["x-tollgate-typist"] == "sec-sam"
    assert typed["outcome"]["action"] == "allow"
    refused = lines["rm -rf /"]
    assert refused["request"]["headers"]["x-tollgate-typist"] == "sec-sam"
    assert refused["outcome"]["action"] == "deny"
    assert "x-tollgate-typist" not in lines["echo ready-$((40+2))"]["request"]["headers"]


# -- two replicas ---------------------------------------------------------------------------


def test_a_moderator_watching_through_one_replica_lets_the_others_session_go_on(
        make_gateway: GatewayFactory, pg_url: str, pg_db: str) -> None:
    pair = make_gateway(POLICIES, targets=[moderated_shop(pg_db)], replicas=2,
                        postgres={}, settings={"store": {"url": pg_url}})
    sub = "svc-moderated-pair"
    client = psql(pair, sub, MODERATED_DB)
    client.send("SELECT 40 + 2;\n")
    client.err.wait(lambda line: "needs a moderator present" in line, "psql's NOTICE")
    (session,) = listed(pair, sub)
    other = 1 - int(session["replica"].rsplit("-", 1)[1])
    watch = Watch(pair, session["session_id"], replica=other)
    answered, _ = client.out.wait(lambda line: line.strip() == "42", "the answer")
    went_on = answered - attended(watch)
    # ... and the watch, through the other replica, shows the statement.
    shown, _ = watch.event("record", lambda e: "40 + 2" in str(
        e["record"]["content"]["request"]["body"]))
    print(f"\nthrough the other replica: went on {went_on * 1000:.0f} ms "
          f"after a moderator attended, shown {(shown - answered) * 1000:.0f} ms after")
    assert went_on < PROCEEDS_SECONDS
    assert shown - answered < SHOWN_SECONDS
    client.close()
    _, ended = watch.event("ended")
    assert ended["by"] is None, ended


# -- the recordings page's live view -------------------------------------------------------


def test_the_recordings_page_shows_a_shells_screen_and_lines_as_they_happen(
        gw: Gateway, tmp_path: Path, page: Page) -> None:
    sub = "svc-watch-page"
    client = ssh_tty(gw, sub, tmp_path)
    client.send("echo ready-$((40+2))\r")
    client.out.wait(lambda line: "ready-42" in line, "the shell")
    (session,) = listed(gw, sub)
    page.goto(f"{gw.admin_url}/recordings/ui#session={session['session_id']}")
    page.fill("#token", SECURITY)
    page.click("#login button[type=submit]")
    page.click("#live-watch")  # offered: the session is open
    expect(page.locator("#live-status")).to_contain_text(f"Watching ssh of {sub}",
                                                         timeout=WAIT_MS)
    expect(page.locator("#live-attending")).to_contain_text("sec-sam (watch, moderator)")
    screen = page.locator("#live-screens .ap-wrapper")
    expect(screen).to_contain_text("ready-42", timeout=WAIT_MS)  # the screen so far
    client.send("echo live-$((6*7))\r")
    client.out.wait(lambda line: "live-42" in line, "the agent's answer")
    expect(screen).to_contain_text("live-42", timeout=WAIT_MS)  # in the live player
    expect(page.locator("#live-records li")).to_contain_text(
        ["sec-sam started watching"], timeout=WAIT_MS)
    client.send("exit\r")
    expect(page.locator("#live-status")).to_contain_text("Ended: the session closed",
                                                         timeout=WAIT_MS)
    expect(page.locator("#live-records")).to_contain_text("echo live-$((6*7))")
    client.close()
