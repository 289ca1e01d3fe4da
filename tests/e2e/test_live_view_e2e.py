"""The live view tells what the record will tell, end to end: an agent's OpenSSH shell
through the real SSH front and sshd, with lines the default pack refuses (`cat .env`,
`rm -rf *`) and one it holds for an approval (`sudo`), watched through the stream
(`tollgate sessions watch --json`, the API the recordings page reads) and on the
recordings page's live view in Debian's Chromium (headless).

Each record of the session, refusals and the hold's approval included, reaches the
watch, and placed by the record's own order it reads as the recordings page shows the
session; a watcher attends for as long as the stream is open, well past the attendance's
staleness; someone starting to watch is said as such, never as a decision; the page's
status line is about the watch once signed in. axe-core finds no serious violation in
the live view at 1280 and 390 px.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from extproc.exchange.presence import STALE_SECONDS
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import api, pending_where
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_live_attach_e2e import WAIT, Client, Watch, ssh_tty
from tests.e2e.test_live_sessions_e2e import SECURITY, VIEWER, listed
from tests.e2e.test_ssh_e2e import OPS, web
from tests.support.axe import serious_violations
from tests.support.gateway import Gateway, module_gateway
from tests.support.sshd import Sshd

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# The lines typed, each with what the agent's terminal shows once it is answered.
LINES = [("echo one-$((0+1))", "one-1"), ("cat .env", "refused: credential"),
         ("echo two-$((1+1))", "two-2"), ("rm -rf *", "refused: destructive")]
HELD = "sudo -n true 2>/dev/null; echo held-$((1+2))"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "liveview", targets=[web(host)], ssh={},
                        settings={"approvals": {"max_hold_seconds": 60}}) as running:
        yield running


def opened(gw: Gateway, sub: str, tmp_path: Path) -> tuple[Client, str]:
    """An agent's shell, answered once: (the client, its live session's id)."""
    client = ssh_tty(gw, sub, tmp_path)
    client.send("echo ready-$((40+2))\r")
    client.out.wait(lambda line: "ready-42" in line, "the shell")
    (session,) = listed(gw, sub)
    return client, str(session["session_id"])


def typed(client: Client, lines: list[tuple[str, str]]) -> None:
    """Each line typed once the one before it was answered."""
    for line, answer in lines:
        client.send(line + "\r")
        client.out.wait(lambda shown, answer=answer: answer in shown and "echo" not in shown,
                        f"the answer to {line!r}")


def records(watch: Watch) -> list[dict[str, Any]]:
    """The records the watch brought, placed by the record's order."""
    found = [json.loads(line)["record"] for _, line in watch.out.lines
             if line and json.loads(line)["event"] == "record"]
    return sorted(found, key=lambda r: (r["started_us"], r["writer"], r["seq"]))


def beats(watch: Watch, count: int) -> None:
    """Until the stream said `count` times that nothing was new (a second apart)."""
    watch.out.until(lambda lines: sum(json.loads(line)["event"] == "beat"
                                      for line in lines) >= count, f"{count} beats")


def test_the_watch_brings_every_record_refusals_and_holds_in_the_record_s_order(
        gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-view-stream"
    client, session_id = opened(gw, sub, tmp_path)
    watch = Watch(gw, session_id, token=VIEWER)
    watch.event("session")
    typed(client, LINES)
    # A held line: said while it waits (it is not in the record until decided).
    client.send(HELD + "\r")
    watch.event("activity", lambda e: e["holds"] == 1)
    approval = pending_where(gw, lambda a: (a["request"]["body"] or {}).get(
        "command") == HELD, OPS, "the sudo's approval")
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", OPS,
                    {"reason": "maintenance"})
    assert status == 200
    client.out.wait(lambda line: "held-3" in line and "echo" not in line, "the held line run")
    watch.event("activity", lambda e: e["holds"] == 0)
    client.send("exit\r")
    watch.event("ended")
    client.close()
    shown = records(watch)
    # What the recordings page reads of the session, in its order.
    status, page = api(gw, "GET", f"/recordings/sessions/{session_id}", SECURITY)
    assert status == 200, page
    assert [r["id"] for r in shown] == [r["id"] for r in page["records"]]
    lines = [(r["content"]["request"]["body"]["value"], r["action"]) for r in shown
             if r["kind"] == "exchange" and r["method"] == "LINE"]
    assert lines == [("echo ready-$((40+2))", "allow"), ("echo one-$((0+1))", "allow"),
                     ("cat .env", "deny"), ("echo two-$((1+1))", "allow"),
                     ("rm -rf *", "deny"), (HELD, "allow"), ("exit", "allow")]
    # The hold is recorded as it begins to wait, before the line's own record.
    held = [(r["kind"], r["action"]) for r in shown if r["method"] == "LINE"
            and r["content"]["request"]["body"]["value"] == HELD]
    assert held == [("decision", "hold"), ("exchange", "allow")], held
    # Records that are no decision are said as what they are.
    assert [r["said"] for r in shown if r["kind"] == "moderation"] == [
        "dana started watching"]
    (approved,) = [r for r in shown if r["kind"] == "approval"]
    assert approved["said"] == (f"approval {approval['id']} approved by olga: "
                                "maintenance"), approved["said"]
    assert all(r["said"] is None for r in shown if r["kind"] in ("exchange", "decision"))


def test_a_watcher_attends_for_as_long_as_the_watch_is_open(
        gw: Gateway, tmp_path: Path) -> None:
    sub = "svc-view-attending"
    client, session_id = opened(gw, sub, tmp_path)
    watch = Watch(gw, session_id)
    _, first = watch.event("session")
    assert [a["who"] for a in first["attendees"]] == ["sec-sam"]
    beats(watch, int(STALE_SECONDS) + 2)  # past the time an unbeaten row is nobody's
    status, answer = api(gw, "GET", f"/sessions/live/{session_id}/attendance", SECURITY)
    assert status == 200, answer
    assert [a["who"] for a in answer["attendees"]] == ["sec-sam"], answer
    changes = [json.loads(line)["attendees"] for _, line in watch.out.lines
               if line and json.loads(line)["event"] == "attendance"]
    assert changes == [], "the stream said the watcher was gone while it watched"
    watch.leave()
    stack.wait_until(lambda: api(gw, "GET", f"/sessions/live/{session_id}/attendance",
                                 SECURITY)[1]["attendees"] == [], WAIT, "the watcher gone")
    client.send("exit\r")
    client.close()


def test_the_page_shows_the_session_as_the_record_will(
        gw: Gateway, tmp_path: Path, page: Page) -> None:
    sub = "svc-view-page"
    client, session_id = opened(gw, sub, tmp_path)
    cli = Watch(gw, session_id)  # sec-sam watches from the command line
    cli.event("session")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{gw.admin_url}/recordings/ui#live={session_id}")
    page.fill("#token", VIEWER)
    page.click("#login button[type=submit]")
    expect(page.locator("#live-status")).to_contain_text(f"Watching ssh of {sub}",
                                                         timeout=WAIT_MS)
    # The status line is about the watch, signed in: no call to paste a token.
    expect(page.locator("#status")).to_contain_text("Watching live since")
    expect(page.locator("#status")).not_to_contain_text("Paste your token")
    typed(client, LINES)
    client.send(HELD + "\r")
    expect(page.locator("#live-holds")).to_contain_text("1 exchange waits now",
                                                        timeout=WAIT_MS)
    entries = page.locator("#live-records li")
    # In the record's order (the shell's first line began before anyone watched), the
    # refusals among the allowed lines, and each watch said as what it is.
    expect(entries).to_contain_text([
        re.compile(r"allowed typed on .*: echo ready-\$\(\(40\+2\)\)"),
        "sec-sam started watching", "dana started watching",
        re.compile(r"allowed typed on .*: echo one-"),
        re.compile(r"refused typed on .*: cat \.env"),
        re.compile(r"allowed typed on .*: echo two-"),
        re.compile(r"refused typed on .*: rm -rf \*"),
        re.compile(r"held typed on .*: sudo -n true")], timeout=WAIT_MS)
    for watching in entries.filter(has_text="started watching").all():
        expect(watching).not_to_contain_text("allow")
    # Both watchers attend, long after an unbeaten row would have gone stale.
    beats(cli, int(STALE_SECONDS) + 2)
    attending = page.locator("#live-attending")
    expect(attending).to_contain_text("sec-sam (watch, moderator)")
    expect(attending).to_contain_text("dana (watch)")
    assert serious_violations(page) == [], "the live view at 1280 px"
    page.set_viewport_size(PHONE)
    assert serious_violations(page) == [], "the live view at 390 px"
    approval = pending_where(gw, lambda a: (a["request"]["body"] or {}).get(
        "command") == HELD, OPS, "the sudo's approval")
    assert api(gw, "POST", f"/approvals/{approval['id']}/deny", OPS,
               {"reason": "not now"})[0] == 200
    expect(page.locator("#live-holds")).to_be_hidden(timeout=WAIT_MS)
    client.send("exit\r")
    expect(page.locator("#live-status")).to_contain_text("Ended: the session closed",
                                                         timeout=WAIT_MS)
    cli.event("ended")
    client.close()
