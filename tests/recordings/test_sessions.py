"""The recordings API's sessions, on a real admin server over real stores (SQLite and
PostgreSQL): listed as `tollgate audit sessions` sums them up (recording/sessions.py),
sorted by each column and paged by the API, filtered by kind; one session with what
grouped it and its terminal recordings, each checked against its record; the page under
its own policy, and the terminal player it plays them with, served by tollgate (or a 404
saying why, where it was installed without npm)."""

from __future__ import annotations

import shutil
import time
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from extproc.admin.recordings import api as recordings_api
from extproc.codecs.cast import MEDIA_TYPE, CastWriter
from extproc.config import Match, Target
from extproc.recording import Evidence
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture, RecordedTarget
from extproc.recording.sessions import listing
from extproc.store import connect
from tests.recording.conftest import evidence, record
from tests.recordings.test_api import ORDERS_TEAM, accesses, serving
from tests.ssh.test_recordings import store_chunks

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "extproc" / "admin" / "recordings" / "vendor"
MODEL = Target(name="model", match=Match(route="llm"), protocol="llm", environment="test")
DB = Target(name="orders", match=Match(route="orders"), protocol="sql-http",
            environment="prod")
WEB_1 = RecordedTarget("web-1", "ssh", "prod", {})
TOOLS = Target(name="tools", match=Match(route="mcp"), protocol="mcp", environment="test")
NOW = time.time()


def exchange(n: int, session: str | None, target: Any, *, ago: float, action: str = "allow",
             method: str = "POST", lasted_ms: float = 100.0, sub: str = "svc-a",
             masked: bool = False) -> Evidence:
    found = evidence(n, action=action, sub=sub, target=target, method=method,
                     path=f"/{target.name}", session=session, started=NOW - ago)
    found.duration_ms = lasted_ms
    if masked:
        found.masked["email"] = 1
    return found


async def seed_sessions(url: str, signer: Signer) -> None:
    """Four sessions, begun in this order (oldest first):
    sql-1   SQL, svc-b: 3 exchanges (2 allowed, 1 refused, 1 masked), 30 s long
    llm-1   LLM + SQL, svc-a: 2 allowed, 5 s long
    ssh-1   SSH, svc-c: 1 allowed, 1 refused, 120 s long (its shell lasts)
    mcp-1   MCP, svc-a: 1 allowed, 0.2 s long
    """
    await record(url, signer, [
        exchange(1, "sql-1", DB, ago=600, sub="svc-b", masked=True),
        exchange(2, "sql-1", DB, ago=590, sub="svc-b"),
        exchange(3, "sql-1", DB, ago=580, sub="svc-b", action="deny", lasted_ms=10_000),
        exchange(4, "llm-1", MODEL, ago=500),
        exchange(5, "llm-1", DB, ago=496, lasted_ms=1000),
        exchange(6, "ssh-1", WEB_1, ago=400, sub="svc-c", method="SHELL",
                 lasted_ms=120_000),
        exchange(7, "ssh-1", WEB_1, ago=390, sub="svc-c", method="LINE", action="deny"),
        exchange(8, "mcp-1", TOOLS, ago=300, lasted_ms=200),
    ])


def ids(answer: dict[str, Any]) -> list[str]:
    return [s["session_id"] for s in answer["sessions"]]


async def test_sessions_summed_up_as_audit_sessions_sums_them_sorted_and_paged(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """Each session's kinds, identities, start, duration and counts, as recording/
    sessions.py's `listing` sums them; newest begun first, then sorted by each column
    either way; a page at a time (`more` says whether another follows); by kind."""
    await seed_sessions(store_url, signer)
    async with serving(store_url, tmp_path, signer) as api:
        _, newest = await api.get("/recordings/sessions")
        sorts = {}
        for sort in recordings_api.SORTS:
            for order in ("asc", "desc"):
                status, answer = await api.get(
                    f"/recordings/sessions?sort={sort}&order={order}")
                assert status == 200, answer
                sorts[sort, order] = ids(answer)
        _, first = await api.get("/recordings/sessions?sort=duration&limit=2")
        _, second = await api.get("/recordings/sessions?sort=duration&limit=2&offset=2")
        _, fast = await api.get("/recordings/sessions?limit=3&offset=1")
        _, ssh = await api.get("/recordings/sessions?kind=ssh")
        _, sql = await api.get("/recordings/sessions?kind=sql&sort=exchanges&order=asc")
        _, kubernetes = await api.get("/recordings/sessions?kind=kubernetes")
        bad = [(await api.get(path))[1]["error"] for path in (
            "/recordings/sessions?sort=secret", "/recordings/sessions?order=up",
            "/recordings/sessions?offset=-1", "/recordings/sessions?offset=9999",
            "/recordings/sessions?kind=ftp")]
    assert ids(newest) == ["mcp-1", "ssh-1", "llm-1", "sql-1"]
    assert newest["more"] is False and newest["sorted_among"] is None
    by_id = {s["session_id"]: s for s in newest["sessions"]}
    assert {sid: s["kinds"] for sid, s in by_id.items()} == {
        "mcp-1": ["mcp"], "ssh-1": ["ssh"], "llm-1": ["llm", "sql"], "sql-1": ["sql"]}
    assert {sid: (s["exchanges"], s["allowed"], s["refused"], s["held"], s["masked"])
            for sid, s in by_id.items()} == {
        "mcp-1": (1, 1, 0, 0, 0), "ssh-1": (2, 1, 1, 0, 0), "llm-1": (2, 2, 0, 0, 0),
        "sql-1": (3, 2, 1, 0, 1)}
    assert by_id["ssh-1"]["identities"] == ["svc-c"]
    assert by_id["ssh-1"]["duration_ms"] == pytest.approx(120_000, abs=1)
    # As `tollgate audit sessions` sums them up, from the same code.
    connection = connect(store_url)
    try:
        listed = listing(connection, since_us=0, until_us=int(time.time() * 1e6) + 1)
    finally:
        connection.close()
    assert [{k: v for k, v in s.items() if k != "kinds"} for s in newest["sessions"]] == [
        s.as_json() for s in listed]

    assert sorts["start", "desc"] == ["mcp-1", "ssh-1", "llm-1", "sql-1"]
    assert sorts["start", "asc"] == ["sql-1", "llm-1", "ssh-1", "mcp-1"]
    assert sorts["duration", "desc"] == ["ssh-1", "sql-1", "llm-1", "mcp-1"]
    assert sorts["duration", "asc"] == ["mcp-1", "llm-1", "sql-1", "ssh-1"]
    assert sorts["identity", "asc"] == ["llm-1", "mcp-1", "sql-1", "ssh-1"]
    assert sorts["kind", "asc"] == ["llm-1", "mcp-1", "sql-1", "ssh-1"]
    assert sorts["exchanges", "desc"] == ["sql-1", "ssh-1", "llm-1", "mcp-1"]
    assert sorts["refused", "desc"][:2] == ["ssh-1", "sql-1"]
    assert sorts["masked", "desc"][0] == "sql-1"
    assert sorts["allowed", "asc"][:2] == ["ssh-1", "mcp-1"]
    assert sorts["held", "desc"] == sorts["start", "desc"]  # all equal: newest first
    assert (ids(first), first["more"], first["sorted_among"]) == (["ssh-1", "sql-1"], True, 4)
    assert (ids(second), second["more"], second["offset"]) == (["llm-1", "mcp-1"], False, 2)
    assert (ids(fast), fast["more"]) == (["ssh-1", "llm-1", "sql-1"], False)
    assert ids(ssh) == ["ssh-1"]
    assert ids(sql) == ["llm-1", "sql-1"]
    assert ids(kubernetes) == []
    assert bad == ["bad_request"] * 5
    (page,) = [a["meaning"]["access"] for a in accesses(store_url)
               if a["meaning"]["access"]["query"] == {"sort": "duration", "limit": "2"}]
    assert (page["endpoint"], page["returned"]) == ("sessions", ["ssh-1", "sql-1"])


async def test_a_target_s_reader_sums_up_that_target_s_records_only(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """A session that reached two targets: a reader of one of them sees it made of that
    target's exchanges only, in the list and on its own."""
    await seed_sessions(store_url, signer)
    async with serving(store_url, tmp_path, signer,
                       target_readers={"orders": ("group:orders-team",)}) as api:
        _, listed = await api.get("/recordings/sessions", ORDERS_TEAM)
        _, llm = await api.get("/recordings/sessions/llm-1", ORDERS_TEAM)
    assert ids(listed) == ["llm-1", "sql-1"]
    mixed = listed["sessions"][0]
    assert (mixed["kinds"], mixed["targets"], mixed["exchanges"]) == (["sql"], ["orders"], 1)
    assert llm["summary"]["targets"] == ["orders"] and len(llm["records"]) == 1


def shell_session(session: str, ago: float) -> tuple[list[Evidence], list[bytes]]:
    """An SSH shell as the front records it: the SHELL exchange (its record keeps the
    recording's size and SHA-256), a line allowed and a line refused (each its own
    exchange, marked in the recording at its decision), and the recording's chunks."""
    started = NOW - ago
    shell = exchange(20, session, WEB_1, ago=ago, sub="svc-c", method="SHELL",
                     lasted_ms=9000)
    allowed = exchange(21, session, WEB_1, ago=ago - 1, sub="svc-c", method="LINE")
    refused = exchange(22, session, WEB_1, ago=ago - 3, sub="svc-c", method="LINE",
                       action="deny")
    cast = CastWriter(80, 24, "xterm", f"web-1 ({session})", started)
    chunks = [cast.take()]
    for at, text in ((0.5, "$ "), (1.0, "echo ready-$((40+2))\r\n")):
        cast.output(at, text)
    cast.marker(1.1, f"allow [trace {allowed.trace_id}]")
    cast.output(1.2, "ready-42\r\n$ ")
    chunks.append(cast.take())
    cast.marker(3.0, f"deny [trace {refused.trace_id}]")
    cast.output(3.1, "tollgate: refused\r\n$ ")
    chunks.append(cast.take())
    shell.response_body = BodyCapture(0)
    for chunk in chunks:
        shell.response_body.add(chunk)
    shell.response_type = MEDIA_TYPE
    return [shell, allowed, refused], chunks


async def test_a_session_says_what_grouped_it_and_serves_its_checked_recording(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """An SSH session is one connection (the front names it), an x-session-id one the
    agent's header, an unnamed one its token; the SSH session's recording is listed and
    answered as stored, checked against its SHELL record (a changed chunk: DOES NOT
    MATCH); the read is recorded with the record that vouches for it; a reader of other
    targets is not answered."""
    evidences, chunks = shell_session("ssh-9", 60)
    unnamed = exchange(30, None, DB, ago=50)
    await record(store_url, signer, [*evidences, exchange(31, "run-1", DB, ago=40), unnamed])
    recording = evidences[0].trace_id
    await store_chunks(store_url, "ssh-9", recording, chunks)
    async with serving(store_url, tmp_path, signer,
                       target_readers={"orders": ("group:orders-team",)}) as api:
        _, ssh = await api.get("/recordings/sessions/ssh-9")
        _, run = await api.get("/recordings/sessions/run-1")
        # Grouped by the writer, by its token: its session is named after it.
        (named,) = [r for r in (await api.get("/recordings/search?identity=svc-a"))[1][
            "records"] if r["trace_id"] == unnamed.trace_id]
        _, tokened = await api.get(f"/recordings/sessions/{quote(named['session_id'])}")
        status, played = await api.get(f"/recordings/terminal/{recording.upper()}")
        others = await api.get(f"/recordings/terminal/{recording}", ORDERS_TEAM)
        missing = await api.get(f"/recordings/terminal/{9:032x}")
        bad = await api.get("/recordings/terminal/not-a-trace")
        changed = connect(store_url)
        try:
            changed.execute("UPDATE terminal_recordings SET data = ? WHERE recording_id = ? "
                            "AND chunk = 1", (chunks[1].decode().replace("42", "43"),
                                              recording))
        finally:
            changed.close()
        _, tampered = await api.get(f"/recordings/terminal/{recording}")
    assert ssh["grouping"]["rule"] == "header"
    assert ssh["grouping"]["words"].startswith("one SSH connection: tollgate names each")
    assert run["grouping"] == {"rule": "header", "words": "the agent's own x-session-id "
                               "header, which every exchange here sent"}
    assert tokened["grouping"]["rule"] == "token"
    assert tokened["grouping"]["words"].startswith("the agent's token (its jti)")
    (listed,) = ssh["terminals"]
    assert (listed["recording_id"], listed["session_id"], listed["chunks"],
            listed["missing"], listed["bytes"]) == (recording, "ssh-9", 3, False,
                                                   len(b"".join(chunks)))
    assert ssh["summary"]["kinds"] == ["ssh"] and ssh["summary"]["refused"] == 1
    assert run["terminals"] == []
    assert status == 200
    assert played["cast"].encode() == b"".join(chunks)
    assert (played["verified"], played["chunks"], played["missing"]) == (True, 3, [])
    assert played["detail"].startswith("verified: its size and SHA-256 are those record ")
    assert tampered["verified"] is False
    assert "DOES NOT MATCH the record" in tampered["detail"]
    assert others == (404, {"error": "not_found",
                            "message": f"no terminal recording {recording}"})
    assert missing[0] == 404 and bad[1]["error"] == "bad_request"
    reads = [a["meaning"]["access"] for a in accesses(store_url)
             if a["meaning"]["access"]["endpoint"] == "terminal"]
    assert len(reads[0]["returned"]) == 1  # the SHELL exchange's record
    assert reads[0]["path"] == f"/recordings/terminal/{recording.upper()}"


async def test_the_page_runs_under_its_policy_and_its_player_is_served_or_said_missing(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """The page may compile the player's WebAssembly ('wasm-unsafe-eval', never
    'unsafe-eval') and load its stylesheet, and nothing from elsewhere; the player's two
    files come from tollgate (what `make` installed from the npm registry); installed
    without them, each is a 404 that says so, and the sessions are read all the same."""
    if not (VENDOR / "asciinema-player.min.js").is_file():
        pytest.fail(f"no {VENDOR}/asciinema-player.min.js: `make` installs it from the npm "
                    "registry (the Makefile's PLAYER)")
    evidences, chunks = shell_session("ssh-9", 60)
    await record(store_url, signer, evidences)
    await store_chunks(store_url, "ssh-9", evidences[0].trace_id, chunks)
    empty = tmp_path / "no-player"
    empty.mkdir()
    async with serving(store_url, tmp_path, signer) as api:
        page = await api.fetch("/recordings/ui", None)
        script = await api.fetch("/recordings/player/asciinema-player.min.js", None)
        style = await api.fetch("/recordings/player/asciinema-player.css", None)
    async with serving(store_url, tmp_path, signer, player=empty) as bare:
        absent = await bare.fetch("/recordings/player/asciinema-player.min.js", None)
        session = await bare.get("/recordings/sessions/ssh-9")
        terminal = await bare.get(f"/recordings/terminal/{evidences[0].trace_id}")
        # Put in its folder later (recordings.player_dir), it is served without a restart.
        shutil.copyfile(VENDOR / "asciinema-player.min.js", empty / "asciinema-player.min.js")
        added = await bare.fetch("/recordings/player/asciinema-player.min.js", None)
    policy = page[2]["Content-Security-Policy"].split("; ")
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert {"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} <= set(policy)
    assert "'unsafe-eval'" not in page[2]["Content-Security-Policy"]
    assert b'<script src="/recordings/ui.js"></script>' in page[1]
    assert (script[0], script[2]["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    assert script[1] == (VENDOR / "asciinema-player.min.js").read_bytes()
    assert script[1].startswith(b"/* @license ") and b"Apache-2.0" in script[1][:200]
    assert (style[0], style[2]["Content-Type"]) == (200, "text/css; charset=utf-8")
    assert absent[0] == 404
    assert orjson.loads(absent[1]) == {
        "error": "not_found", "message": "the terminal player is not installed here "
        "(asciinema-player.min.js: `make` puts it in extproc/admin/recordings/vendor/ "
        "from the npm registry, or recordings.player_dir names a folder holding it)"}
    assert added[:2] == (200, script[1])
    assert session[0] == 200 and len(session[1]["terminals"]) == 1
    assert terminal[0] == 200 and terminal[1]["verified"] is True


def test_a_wheel_carries_the_player() -> None:
    """The package data names the player's files (`make` puts them there; a wheel built
    after it carries them), its stylesheet and its licence too."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["extproc"]
    for name in ("asciinema-player.min.js", "asciinema-player.css", "LICENSE"):
        path = PurePosixPath("admin/recordings/vendor", name)
        assert any(path.match(pattern) and len(path.parts) == len(PurePosixPath(
            pattern).parts) for pattern in patterns), name
