"""Sessions first-class in `tollgate audit`, run as the command it is on a real store
(SQLite, and PostgreSQL) written through the Recorder: agent runs of every kind listed
(`sessions`), the session of each record (`search`), and any run replayed whole, a
summary first (`replay --session`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from extproc.codecs.text import utc
from extproc.recording import Evidence
from extproc.recording.chain import Signer
from extproc.recording.record import RecordedTarget, grouped_session, started_us
from tests.cli.test_audit_cli import audit, one_line, write_config
from tests.recording.conftest import evidence, record
from tests.ssh.test_recordings import WEB_1, shell, store_chunks
from tests.support.databases import throwaway_database

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process

LLM = RecordedTarget("openai", "llm", "prod", {})
MCP = RecordedTarget("tools", "mcp", "prod", {})
SHOP = RecordedTarget("shop", "postgres", "prod", {})
CLUSTER = RecordedTarget("cluster", "k8s", "prod", {})
DAY = 86400
COLUMNS = ("START (UTC)", "SESSION", "IDENTITY", "KIND", "TARGETS", "DURATION", "EXCHANGES",
           "ALLOWED", "REFUSED", "HELD", "MASKED")


@dataclass(frozen=True)
class Runs:
    config: Path
    now: float
    token_session: str  # bob's run, grouped by his token
    shell_trace: str


def on(target: RecordedTarget, n: int, **kwargs: Any) -> Evidence:
    return evidence(n, target=target, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runs(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """A run of each kind in the last hour, an older one, one begun 8 days ago and
    active a minute ago, and an anonymous one (newest first), written once per store:

    anon-1 (30 s ago), bob's token run (5 min), k8s-1, ssh-1 (a 90 s shell, recorded),
    pg-1, mcp-1 (an MCP session), llm-1 (LLM and MCP; one masked, one held), run-1
    (alice: one allowed, one refused), long-1 (8 days ago); old-1 (10 days ago)."""
    tmp_path = tmp_path_factory.mktemp("audit-sessions")
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" \
            else stack.enter_context(throwaway_database())
        yield asyncio.run(_write_runs(url, tmp_path))


@pytest.fixture(scope="module")
def on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The same runs, on SQLite only: for what reads them with no query of its own."""
    tmp_path = tmp_path_factory.mktemp("audit-sessions")
    return asyncio.run(_write_runs(f"sqlite:///{tmp_path}/store.db", tmp_path))


async def _write_runs(url: str, tmp_path: Path) -> Runs:
    now = time.time()
    masked = on(LLM, 3, session="llm-1", method="POST", path="/v1/chat/completions",
                started=now - 3000)
    masked.masked = Counter({"EMAIL_ADDRESS": 2})
    held = on(LLM, 4, session="llm-1", method="POST", path="/v1/chat/completions",
              started=now - 2990)
    held.approval = {"id": "a-1", "via": "hold", "status": "approved", "decided_by": "carol"}
    held.duration_ms = 2000.0
    mcp = on(MCP, 5, method="POST", path="/mcp", started=now - 2400)
    mcp.headers["mcp-session-id"] = "mcp-1"
    found, chunks = shell(7, "ssh-1", started=now - 1200)
    found.duration_ms = 90_000.0
    tokened = [evidence(n, sub="bob", started=now - 300 + 60 * (n - 10)) for n in (10, 11)]
    for each in tokened:
        assert each.identity is not None and each.identity["authenticated"]
        each.identity = {**each.identity, "jti": "tok-bob"}
    anonymous = evidence(15, session="anon-1", started=now - 30)
    anonymous.identity = None
    await record(url, Signer.from_file(tmp_path / "audit.key", create=True), [
        evidence(1, sub="alice", session="run-1", started=now - 3600),
        evidence(2, sub="alice", session="run-1", action="deny", rules=("x",),
                 started=now - 3590),
        masked, on(MCP, 16, session="llm-1", method="POST", path="/mcp", started=now - 2995),
        held, mcp,
        on(SHOP, 6, session="pg-1", method="QUERY", path="/shop", body=b"select 1",
           started=now - 1800),
        found, on(WEB_1, 8, session="ssh-1", method="LINE", path="/web-1", started=now - 1190),
        on(CLUSTER, 9, session="k8s-1", path="/api/v1/namespaces/default/pods/web/exec",
           started=now - 600),
        *tokened, anonymous,
        evidence(12, session="old-1", started=now - 10 * DAY),
        evidence(13, session="long-1", started=now - 8 * DAY),
        evidence(14, session="long-1", started=now - 60),
    ])
    await store_chunks(url, "ssh-1", found.trace_id, chunks)
    token = grouped_session("token", "tok-bob", started_us(now - 300)).id
    return Runs(write_config(tmp_path, url), now, token, found.trace_id)


def table(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    """The sessions table's rows, each by column."""
    assert result.returncode == 0, result
    lines = result.stdout.split("\n\n")[0].splitlines()
    starts = [lines[0].index(name) for name in COLUMNS]
    assert lines[0].split("  ")[0] == COLUMNS[0]
    return [{name: line[a:b].strip() for name, a, b in zip(
        COLUMNS, starts, [*starts[1:], None], strict=True)} for line in lines[1:]]


def listed(runs: Runs, *args: str) -> list[str]:
    return [row["SESSION"] for row in table(audit(runs.config, "sessions", *args))]


# -- audit sessions ------------------------------------------------------------------


def test_sessions_lists_one_row_per_run_latest_begun_first(runs: Runs) -> None:
    rows = {row["SESSION"]: row for row in table(audit(runs.config, "sessions"))}
    assert list(rows) == ["anon-1", runs.token_session, "k8s-1", "ssh-1", "pg-1", "mcp-1",
                          "llm-1", "run-1", "long-1"]
    assert rows["run-1"] == {
        "START (UTC)": utc(started_us(runs.now - 3600)), "SESSION": "run-1",
        "IDENTITY": "alice", "KIND": "http", "TARGETS": "orders", "DURATION": "10 s",
        "EXCHANGES": "2", "ALLOWED": "1", "REFUSED": "1", "HELD": "0", "MASKED": "0"}
    # Two kinds of target; a masked exchange, and a held one (approved: allowed too),
    # which ended 2 s after it began.
    assert [rows["llm-1"][c] for c in COLUMNS[2:]] == [
        "svc-autogen", "llm+mcp", "openai, tools", "12 s", "3", "3", "0", "1", "1"]
    # The shell's exchange lasts as long as the shell: the session ends with it.
    assert [rows["ssh-1"][c] for c in COLUMNS[3:7]] == ["ssh", "web-1", "90 s", "2"]
    assert [rows[s]["KIND"] for s in ("k8s-1", "pg-1", "mcp-1")] == [
        "kubernetes", "sql", "mcp"]
    assert [rows[runs.token_session][c] for c in ("IDENTITY", "DURATION", "EXCHANGES")] == [
        "bob", "60 s", "2"]
    assert rows["anon-1"]["IDENTITY"] == "-"
    # Active a minute ago, begun 8 days ago: listed at its start, lasting all along.
    assert rows["long-1"]["START (UTC)"] == utc(started_us(runs.now - 8 * DAY))
    assert rows["long-1"]["DURATION"] == "192.0 h"


@pytest.mark.parametrize(("kind", "sessions"), [
    ("http", ["anon-1", "token", "run-1", "long-1"]), ("llm", ["llm-1"]),
    ("mcp", ["mcp-1", "llm-1"]), ("sql", ["pg-1"]), ("ssh", ["ssh-1"]),
    ("kubernetes", ["k8s-1"]),
])
def test_kind_lists_the_runs_that_reached_a_target_of_it(runs: Runs, kind: str,
                                                        sessions: list[str]) -> None:
    expected = [runs.token_session if s == "token" else s for s in sessions]
    assert listed(runs, "--kind", kind) == expected


def test_identity_target_and_period_choose_the_runs(runs: Runs) -> None:
    assert listed(runs, "--identity", "alice") == ["run-1"]
    assert listed(runs, "--identity", "bob", "--kind", "http") == [runs.token_session]
    assert listed(runs, "--target", "orders") == [
        "anon-1", runs.token_session, "run-1", "long-1"]
    # Runs with records in the period: long-1 was active 1 minute ago, old-1 is older.
    assert listed(runs, "--since", "2m") == ["anon-1", "long-1"]
    assert listed(runs, "--since", "30d")[-2:] == ["long-1", "old-1"]
    assert listed(runs, "--since", "30d", "--until", "9d") == ["old-1"]
    assert audit(runs.config, "sessions", "--identity", "nobody").stdout == (
        "no sessions match\n")


def test_limit_lists_a_page_and_says_how_to_list_the_next(runs: Runs) -> None:
    result = audit(runs.config, "sessions", "--limit", "3")
    assert [row["SESSION"] for row in table(result)] == ["anon-1", runs.token_session,
                                                         "k8s-1"]
    hint = result.stdout.splitlines()[-1]
    assert hint.startswith("the 3 latest begun; those begun before: --until ")
    until = hint.rsplit(" ", 1)[1]
    assert listed(runs, "--limit", "3", "--until", until) == ["ssh-1", "pg-1", "mcp-1"]


def test_json_prints_one_run_per_line(runs: Runs) -> None:
    result = audit(runs.config, "sessions", "--json", "--kind", "llm")
    assert result.returncode == 0, result
    (found,) = [json.loads(line) for line in result.stdout.splitlines()]
    first = started_us(runs.now - 3000)
    assert found == {
        "session_id": "llm-1", "identities": ["svc-autogen"], "kinds": ["llm", "mcp"],
        "protocols": ["llm", "mcp"], "targets": ["openai", "tools"], "first_us": first,
        "ended_us": started_us(runs.now - 2990) + 2_000_000,
        "duration_ms": (started_us(runs.now - 2990) + 2_000_000 - first) / 1000,
        "exchanges": 3, "allowed": 3, "refused": 0, "held": 1, "masked": 1}


def test_bad_arguments_are_one_line(on_sqlite: Runs) -> None:
    assert one_line(audit(on_sqlite.config, "sessions", "--limit", "0")) == (
        "--limit: expected a whole number > 0, got '0'")
    assert one_line(audit(on_sqlite.config, "sessions", "--since", "1h", "--until", "2h")) == (
        "--since 1h is not before --until 2h")
    assert one_line(audit(on_sqlite.config, "sessions", "--target", "nowhere")).startswith(
        "--target: no target 'nowhere' in ")


# -- audit search: each record's session -------------------------------------------------


def test_search_shows_each_records_session_and_finds_one_runs(on_sqlite: Runs) -> None:
    result = audit(on_sqlite.config, "search", "--limit", "3")
    assert result.returncode == 0, result
    header, *rows = result.stdout.splitlines()
    at = header.index("SESSION")
    assert header[at:].split() == ["SESSION", "TRACE"]
    assert [row[at:].split()[0] for row in rows] == ["anon-1", "long-1", on_sqlite.token_session]

    found = audit(on_sqlite.config, "search", "--session", "llm-1")
    assert [row.split()[2] for row in found.stdout.splitlines()[1:]] == [
        "writer-a:5", "writer-a:4", "writer-a:3"]  # held, the MCP call, masked
    only = audit(on_sqlite.config, "search", "--session", "llm-1", "--target", "tools", "--json")
    assert [json.loads(line)["target"]["name"] for line in only.stdout.splitlines()] == [
        "tools"]
    assert audit(on_sqlite.config, "search", "--session", "nothing").stdout == (
        "no records match\n")


# -- audit replay --session: the run first, then every exchange -------------------------


def test_replay_of_a_run_says_what_it_was_then_shows_each_exchange_when(on_sqlite: Runs) -> None:
    result = audit(on_sqlite.config, "replay", "--session", "llm-1")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "session llm-1: 3 records, oldest first",
        f"  svc-autogen; llm+mcp (openai, tools); began {utc(started_us(on_sqlite.now - 3000))} "
        "UTC, lasted 12 s; 3 exchanges: 3 allowed, 0 refused, 1 held, 1 masked"]
    heads = [line for line in lines if line.startswith("== ")]
    assert [head.split("UTC ", 1)[1] for head in heads] == [
        "+0 ms  target openai", "+5.0 s  target tools", "+10 s  target openai"]


@pytest.mark.parametrize(("session", "said"), [
    ("pg-1", "svc-autogen; sql (shop); began "),
    ("k8s-1", "svc-autogen; kubernetes (cluster); began "),
    ("mcp-1", "svc-autogen; mcp (tools); began "),
])
def test_replay_of_a_run_of_any_kind_shows_it(on_sqlite: Runs, session: str, said: str) -> None:
    result = audit(on_sqlite.config, "replay", "--session", session)
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[1].startswith(f"  {said}")
    assert result.stdout.count("\n== writer-a:") == 1


def test_replay_of_a_shell_says_what_it_was_then_plays_it(on_sqlite: Runs) -> None:
    result = audit(on_sqlite.config, "replay", "--session", "ssh-1", "--no-wait")
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[1].endswith(
        "; ssh (web-1); began " + utc(started_us(on_sqlite.now - 1200)) + " UTC, lasted 90 s; "
        "2 exchanges: 2 allowed, 0 refused, 0 held, 0 masked")
    assert f"== end of terminal recording {on_sqlite.shell_trace}: verified\n" in result.stdout


def test_replay_of_a_trace_says_no_run_summary(on_sqlite: Runs) -> None:
    """A trace of a run is part of it: no summary of the run from that part."""
    result = audit(on_sqlite.config, "replay", "--session", f"{1:032x}")
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[1] == ""
    assert result.stdout.count("\n== writer-a:") == 1


def test_text_finds_the_runs_and_records_that_hold_it(runs: Runs) -> None:
    """Which run sent `select 1`, whatever its case? A wildcard of the store's (`%`, `_`)
    is a character like any other, never a wildcard."""
    assert listed(runs, "--text", "SELECT 1") == ["pg-1"]
    assert listed(runs, "--text", "pods/web/exec") == ["k8s-1"]
    assert audit(runs.config, "sessions", "--text", "%").stdout == "no sessions match\n"
    assert audit(runs.config, "sessions", "--text", "sel_ct").stdout == "no sessions match\n"
    found = audit(runs.config, "search", "--text", "Select 1", "--kind", "exchange", "--json")
    assert [json.loads(line)["session_id"] for line in found.stdout.splitlines()] == ["pg-1"]


def test_an_mcp_answer_s_every_kept_part_is_told_in_its_line() -> None:
    """What tollgate kept of an MCP answer (names, binary items, counts, error codes, the
    instructions a result held) is told in words: a replay never stops on its shape."""
    from extproc.cli.audit import _mcp_line

    line = _mcp_line({"kind": "request", "method": "tools/call", "tool": None, "answer": {
        "hidden_tools": ["secret"], "dropped": {"a line that is no JSON": 2},
        "unidentified_errors": [-32700],
        "content": [{"type": "image", "mime_type": "image/png", "size": 12}],
        "instructions": [{"kind": "override", "excerpt": "ignore the previous rules"}]}})
    assert "hidden tools: secret" in line
    assert "dropped: a line that is no JSON x2" in line
    assert "unidentified errors: -32700" in line
    assert 'content: {"type": "image", "mime_type": "image/png", "size": 12}' in line
    assert "instructions: override ('ignore the previous rules')" in line
