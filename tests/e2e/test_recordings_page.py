"""The recordings page in a real browser (Debian's Chromium, headless, driven by
Playwright) over a real session recorded through a real Envoy and tollgate.

An agent runs once, under one `x-session-id`: it asks the demo model (an `llm` target)
with a prompt carrying markup, the model answers with a tool call, the agent runs the
SQL it named (allowed, its answer masked), sends an UPDATE the default pack holds (an
approver approves it, with a reason), then tries a DROP (refused). A reader opens
`/recordings/ui` on the admin port and sees the run as a timeline: the prompt, the
model's tool call, the request it caused, the approval, the decisions with their rules,
each entry with its chain place and its trace linked to Jaeger (`recordings.trace_url`). The
markup is shown as text. Screenshots are taken and checked (size, not blank, the refused
entry's red marker). Every read the page made is in the record, as an `access`.

Playwright never downloads a browser here: without /usr/bin/chromium these tests fail.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, Held, api, pending_for
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_monitor_page import MARKUP, screenshot
from tests.support import png, tokens
from tests.support.gateway import Gateway, module_gateway, route

READER = tokens.token("ada", ["auditors"])
AGENT = tokens.token("svc-recorded", ["agents"])
VIEWPORT = {"width": 1280, "height": 1400}
JAEGER = "http://jaeger.test/trace/{trace_id}"
RED = (0xD1, 0x24, 0x2F)  # a refused entry's marker
SELECT = "SELECT name, email FROM customers LIMIT 2"
UPDATE = "UPDATE customers SET phone = phone"  # held for group:dba by the default pack
REASON = "ticket 7: phones normalised"
TOOLS = [{"type": "function", "function": {
    "name": "run_sql", "description": "Query the database",
    "parameters": {"type": "object", "properties": {"sql": {"type": "string"}}}}}]


@dataclass
class Run:
    session: str
    traces: list[str]  # the model call's, the SELECT's, the UPDATE's, the DROP's


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(
            tmp_path_factory, otlp, "recordings_page",
            targets=[{"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
                      "sql": {"dialect": "sqlite"}, "environment": "test"},
                     {"name": "model", "match": {"route": "llm"}, "protocol": "llm",
                      "environment": "test"}],
            routes=[route("llm", "/v1/")],
            settings={"recordings": {"trace_url": JAEGER}}) as running:
        yield running


@pytest.fixture(scope="module")
def run(gw: Gateway) -> Run:
    """One agent run through the gateway (its UPDATE held, and approved by an approver
    of group dba), its records written."""
    session = f"run-{secrets.token_hex(4)}"
    headers = {"x-session-id": session}
    asked = gw.request("POST", "/v1/chat/completions", {
        "model": "tollgate-demo", "tools": TOOLS,
        "messages": [{"role": "user", "content": f"Use run_sql: `{SELECT}` {MARKUP}"}],
    }, headers=headers, token=AGENT)
    assert asked.status == 200, asked.body
    assert "run_sql" in asked.body.decode()
    selected = gw.request("POST", "/sql", {"sql": SELECT}, headers=headers, token=AGENT)
    held = Held(lambda: gw.request("POST", "/sql", {"sql": UPDATE}, headers=headers,
                                   token=AGENT, timeout=40))
    approval = pending_for(gw, UPDATE)
    assert api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA,
               {"reason": REASON})[0] == 200
    updated = held.result()
    dropped = gw.request("POST", "/sql", {"sql": "DROP TABLE customers"}, headers=headers,
                         token=AGENT)
    assert (selected.status, updated.status, dropped.status) == (200, 200, 403)
    stack.wait_until(lambda: len([r for r in gw.records("exchange")
                                  if r["session_id"] == session]) == 4,
                     10, f"the four exchanges of session {session}")
    return Run(session, [asked.trace_id, selected.trace_id, updated.trace_id,
                         dropped.trace_id])


def open_page(page: Page, gw: Gateway, token: str, place: str) -> None:
    page.goto(gw.admin_url + "/recordings/ui" + place)
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def test_a_session_as_a_timeline_agent_text_inert(gw: Gateway, run: Run, page: Page,
                                                  tmp_path: Path) -> None:
    """The run's four exchanges, oldest first: the prompt (its markup as text), the
    model's tool call, the SELECT it caused, the held UPDATE with its approval (who, when,
    why) and the approver's act, the refused DROP with its rule and the alert it raised on
    its trace; each with its
    chain place and its trace linked to Jaeger; the session's rule shown. A record link
    opens that record as stored. Screenshots checked; the page's reads are recorded."""
    open_page(page, gw, READER, f"#session={run.session}")
    entries = page.locator('#timeline li.entry[data-kind="exchange"]')
    expect(entries).to_have_count(4, timeout=WAIT_MS)
    # The alert the DROP raised, on its trace: in the session with it, last.
    expect(page.locator("#timeline li.entry").last).to_have_attribute("data-kind", "alert")
    expect(page.locator("#timeline li.entry").last).to_contain_text("Alert")
    expect(page.locator("#session-id")).to_have_text(run.session)
    expect(page.locator("#session-rule")).to_have_text("(grouped by header)")
    prompt, select, update, drop = (entries.nth(i) for i in range(4))
    expect(prompt.locator(".part").first).to_contain_text(f"user: Use run_sql: `{SELECT}`")
    expect(prompt.locator(".part").first).to_contain_text(MARKUP)
    expect(prompt).to_contain_text("Its tool calls")
    expect(prompt).to_contain_text("run_sql(")
    expect(select).to_contain_text("Caused by the model's tool call")
    expect(select).to_contain_text(SELECT)
    expect(update).to_contain_text("request: hold by ")
    expect(update.locator(".part", has_text="Approval")).to_contain_text(
        re.compile(f"by dana at .* — {REASON}"))
    # The approver's act is a record of its own, on the held request's trace.
    approved = page.locator('#timeline li.entry[data-kind="approval"]')
    expect(approved).to_have_count(1)
    assert approved.locator("a.trace").get_attribute("href") == JAEGER.replace(
        "{trace_id}", run.traces[2])
    expect(drop).to_have_class(re.compile(r"\bdeny\b"))
    expect(drop).to_contain_text("request: deny by ")
    expect(drop).to_contain_text("DROP TABLE customers")
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    for entry, trace in zip((prompt, select, update, drop), run.traces, strict=True):
        expect(entry.locator("a.trace")).to_have_attribute(
            "href", JAEGER.replace("{trace_id}", trace))
        expect(entry.locator(".chain").nth(1)).to_contain_text("(matches its content)")

    data = page.screenshot(full_page=True)
    width, height = png.size(data)
    assert width == VIEWPORT["width"] and height >= 600
    image = png.decode(screenshot(tmp_path, "recordings-session.png", data).read_bytes())
    colours = image.colours()
    assert len(colours) > 50, "the page's screenshot is (nearly) blank"
    assert image.near(RED) > 20, "the refused entry's marker is not drawn"

    drop.locator("a.record").click()
    article = page.locator("#record article.record")
    expect(article).to_have_count(1, timeout=WAIT_MS)
    expect(article.locator("pre.content")).to_contain_text("DROP TABLE customers")
    expect(article.locator(".chain").nth(1)).to_contain_text("(matches its content)")

    def recorded() -> bool:
        reads = [r["meaning"]["access"] for r in gw.records("access")
                 if (r["identity"] or {}).get("sub") == "ada"]
        return {"session", "records"} <= {read["endpoint"] for read in reads}

    stack.wait_until(recorded, 10, "the page's reads in the record")


def test_sessions_found_by_identity_and_agents_refused(gw: Gateway, run: Run,
                                                       page: Page) -> None:
    """The search form finds the run by its agent; an agent's own token reads nothing."""
    open_page(page, gw, READER, "")
    page.fill("#identity", "svc-recorded")
    page.click("#search button[type=submit]")
    row = page.locator(f'#session-list tr[data-session="{run.session}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row.locator("td").nth(3)).to_have_text("demo, model")
    row.locator("a.session").click()
    expect(page.locator('#timeline li.entry[data-kind="exchange"]')).to_have_count(
        4, timeout=WAIT_MS)

    page.click("#forget")
    page.fill("#token", AGENT)
    page.click("#login button[type=submit]")
    status = page.locator("#status")
    expect(status).to_have_text("forbidden: agents never read recordings", timeout=WAIT_MS)
