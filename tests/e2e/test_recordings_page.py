"""The recordings page in a real browser (Debian's Chromium, headless, driven by
Playwright) over real sessions recorded through a real Envoy and tollgate.

An agent runs once, under one `x-session-id`: it asks the demo model (an `llm` target)
with a prompt carrying markup, the model answers with a tool call, the agent runs the
SQL it named (allowed, its answer masked), sends an UPDATE the default pack holds (an
approver approves it, with a reason), then tries a DROP (refused). A reader opens
`/recordings/ui` on the admin port and sees the run as a timeline: the prompt, the
model's tool call, the request it caused, the approval, the decisions with their rules,
each entry with its chain place and its trace linked to Jaeger (`recordings.trace_url`). The
markup is shown as text. Screenshots are taken and checked (size, not blank, the refused
entry's red marker). Every read the page made is in the record, as an `access`.

The same gateway records an agent's interactive SSH shell on Debian's sshd (a line
allowed, one refused, one more, `exit`), an MCP session through the `mcp` SDK's client to
its FastMCP server (initialize, notifications, a tool call), and a dozen short SQL runs.
The page lists them all with their kinds and counts, as `tollgate audit sessions` sums
them up, sorted by any column and a page at a time; plays the shell's recording with
asciinema-player served by tollgate (play and pause, speed, a marker per decided line that
leads to its decision), or says in a line that the player is missing and shows the
decisions and a text transcript; collapses the MCP plumbing. Keyboard alone reaches
everything; screenshots at a desktop and a phone width keep the controls in view;
axe-core finds no serious violation; the browser asks nothing of any host but the
gateway's.

Playwright never downloads a browser here: without Debian's Chromium
(tests/support/browser.py) these tests fail.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from extproc.admin.recordings.api import PLAYER_FILES
from extproc.quickstart import stack
from extproc.recording.sessions import Summary, listing
from extproc.store import connect
from tests.e2e.test_approvals_e2e import DBA, Held, api, pending_for
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_mcp_e2e import mcp_route
from tests.e2e.test_mcp_e2e import session as mcp_session
from tests.e2e.test_monitor_page import MARKUP, screenshot
from tests.e2e.test_ssh_e2e import connect as ssh_connect
from tests.e2e.test_ssh_e2e import first_typed, read_until, web
from tests.recordings.test_sessions import VENDOR
from tests.support import png, tokens
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.gateway import Gateway, module_gateway, route
from tests.support.mcp_server import McpServer
from tests.support.sshd import Sshd

READER = tokens.token("ada", ["auditors"])
AGENT = tokens.token("svc-recorded", ["agents"])
VIEWPORT = {"width": 1280, "height": 1400}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
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
def tools() -> Iterator[McpServer]:
    with McpServer() as running:
        yield running


@pytest.fixture(scope="module")
def player(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's player folder (`recordings.player_dir`): a copy of the one `make`
    installed, which a test may empty for a while."""
    folder = tmp_path_factory.mktemp("player")
    for name in PLAYER_FILES:
        installed = VENDOR / name
        if not installed.is_file():
            pytest.fail(f"no {installed}: `make` installs it from the npm registry")
        shutil.copyfile(installed, folder / name)
    return folder


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, host: Sshd,  # type: ignore[no-untyped-def]
       tools: McpServer, player: Path) -> Iterator[Gateway]:
    with module_gateway(
            tmp_path_factory, otlp, "recordings_page",
            targets=[{"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
                      "sql": {"dialect": "sqlite"}, "environment": "test"},
                     {"name": "model", "match": {"route": "llm"}, "protocol": "llm",
                      "environment": "test"},
                     web(host),
                     {"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp",
                      "environment": "test"}],
            routes=[route("llm", "/v1/"), mcp_route("mcp", "/mcp", "mcp")],
            clusters={"mcp": tools.port}, ssh={},
            settings={"recordings": {"trace_url": JAEGER,
                                     "player_dir": str(player)}}) as running:
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


def in_thread(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `work` on an event loop of its own thread: the browser's (sync Playwright)
    runs one in this thread already."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work()).result(timeout=120)


@dataclass
class Shell:
    session: str
    lines: list[dict[str, Any]]  # its LINE records, in order: allowed, refused, allowed, exit


@pytest.fixture(scope="module")
def shell(gw: Gateway, host: Sshd) -> Shell:
    """An agent's interactive shell through the gateway (a terminal, as `ssh -t` gives):
    a line allowed, a destructive one refused, another allowed (which runs two seconds),
    `exit`; once its SHELL record and its four LINE records are written."""
    victim = host.put("precious.txt", b"keep\n")

    async def typed() -> None:
        async with ssh_connect(gw, token=AGENT) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(80, 24),
                                                encoding=None)
            process.stdin.write(b"echo ready-$((40+2))\r")
            await read_until(process.stdout, b"ready-42")
            process.stdin.write(f"rm -rf / {victim}\r".encode())
            assert b"tollgate: refused" in await read_until(process.stdout, b"[trace ")
            # The host takes two seconds over it: the recording lasts long enough to be
            # paused while it plays.
            process.stdin.write(b"sleep 2; echo after-$((1+1))\r")
            await read_until(process.stdout, b"after-2")
            process.stdin.write(b"exit\r")
            await process.wait_closed()

    in_thread(typed)
    lines = gw.terminal_lines(first_typed, 4, "SHELL")
    assert [r["outcome"]["action"] for r in lines] == ["allow", "deny", "allow", "allow"]
    return Shell(lines[0]["session_id"], lines)


@pytest.fixture(scope="module")
def mcp_run(gw: Gateway) -> str:
    """An MCP session through the gateway (initialize, its notification, tools/list, a
    tool call), once its tool call is recorded: its session id."""
    path = f"/srv/notes-{secrets.token_hex(3)}.txt"

    async def used() -> None:
        async with mcp_session(gw, AGENT) as client:
            await client.list_tools()  # the gateway learns the server's tools
            await client.call_tool("read_file", {"path": path})

    in_thread(used)
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records("exchange")
                    if ((r["meaning"] or {}).get("mcp") or {}).get("method") == "tools/call"
                    and path in r["what"]]
        return bool(found)

    stack.wait_until(recorded, 15, "the MCP tool call's record")
    return str(found[0]["session_id"])


@pytest.fixture(scope="module")
def runs(gw: Gateway) -> list[str]:
    """A dozen short runs (a SELECT each, under a session of its own): more sessions than
    a page shows."""
    sessions = [f"short-{n:02d}-{secrets.token_hex(2)}" for n in range(12)]
    for session in sessions:
        reply = gw.request("POST", "/sql", {"sql": "SELECT 1"},
                           headers={"x-session-id": session}, token=AGENT)
        assert reply.status == 200, reply.body
    stack.wait_until(lambda: set(sessions) <= {r["session_id"] for r in gw.records("exchange")},
                     10, "the short runs' records")
    return sessions


def summed(gw: Gateway) -> dict[str, Summary]:
    """The week's sessions as `tollgate audit sessions` sums them up (its own code)."""
    store = connect(gw.store_url)
    try:
        now = int(time.time() * 1e6)
        return {s.session_id: s for s in listing(store, since_us=now - 7 * 86_400_000_000,
                                                 until_us=now + 1, limit=200)}
    finally:
        store.close()


def open_page(page: Page, gw: Gateway, token: str, place: str) -> None:
    page.goto(gw.admin_url + "/recordings/ui" + place)
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def requests_elsewhere(page: Page) -> list[str]:
    """Every URL the page asks for from a host other than the gateway's (filled as it
    goes): what a test asserts is empty."""
    elsewhere: list[str] = []
    page.on("request", lambda request: None if urlsplit(request.url).hostname == "127.0.0.1"
            else elsewhere.append(request.url))
    return elsewhere


def terminal_of(page: Page) -> Locator:
    """The session's terminal recording, once it is read and its player ready."""
    terminal = page.locator("#terminals section.terminal")
    expect(terminal).to_have_count(1, timeout=WAIT_MS)
    expect(terminal.locator(".verdict")).to_contain_text(
        "verified: its size and SHA-256 are those record ", timeout=WAIT_MS)
    expect(terminal.locator("button.play")).to_be_visible(timeout=WAIT_MS)
    expect(terminal.locator(".screen .ap-wrapper")).to_have_count(1, timeout=WAIT_MS)
    return terminal


def focused_entry(page: Page) -> str | None:
    return page.evaluate("document.activeElement.matches('#timeline li.entry') "
                         "? document.activeElement.dataset.id : null")


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
    expect(page.locator("#session-name")).to_have_text(re.compile(
        r"^svc-recorded on \S.*, began "))
    expect(page.locator("#session-rule")).to_have_text(
        "the agent's own x-session-id header, which every exchange here sent (header)")
    # What each exchange does, in one line (the record's `what`).
    expect(entries.nth(1).locator(".head .what")).to_have_text(SELECT)
    expect(entries.nth(3).locator(".head .what")).to_have_text("DROP TABLE customers")
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
    # Folded by part, what it did and how it ended open; its times also in the viewer's.
    expect(article.locator('details.part[data-part="what"]')).to_have_attribute("open", "")
    expect(article.locator('details.part[data-part="request"]')).not_to_have_attribute(
        "open", "")
    expect(article.locator('details.part[data-part="what"] pre')).to_contain_text(
        "DROP TABLE customers")
    expect(article.locator('details.part[data-part="decisions"] pre')).to_contain_text(
        "sql.destructive")
    shown = page.evaluate("withTimes({approval: {decided_us: 1700000000000000}, n_us: 'x'})")
    assert shown["n_us"] == "x"  # a time is a whole number of microseconds, nothing else
    assert re.fullmatch(r"1700000000000000 \(.*2023.*\)", shown["approval"]["decided_us"])
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
    expect(row.locator("td").nth(2)).to_have_text("LLM + SQL")
    expect(row.locator("td").nth(3)).to_have_text("svc-recorded")
    row.locator("a.session").click()
    expect(page.locator('#timeline li.entry[data-kind="exchange"]')).to_have_count(
        4, timeout=WAIT_MS)

    page.click("#forget")
    page.fill("#token", AGENT)
    page.click("#login button[type=submit]")
    status = page.locator("#status")
    expect(status).to_have_text("forbidden: agents never read recordings", timeout=WAIT_MS)


def test_the_text_field_finds_the_run_that_sent_it(gw: Gateway, run: Run,
                                                   page: Page) -> None:
    """Which run sent "SET phone = phone"? The Text field finds it (any case) and only
    runs whose masked record holds it; the session is named by whose run on what."""
    open_page(page, gw, READER, "")
    page.fill("#text", "set PHONE = phone")
    page.click("#search button[type=submit]")
    rows = page.locator("#session-list tbody tr")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    expect(rows.first).to_have_attribute("data-session", run.session)
    expect(rows.first.locator("td").nth(1)).to_contain_text("svc-recorded on ")
    assert "text=set+PHONE+%3D+phone" in page.evaluate("location.hash")
    page.fill("#text", "a text no run ever sent")
    page.click("#search button[type=submit]")
    expect(rows).to_have_text(["No session found."], timeout=WAIT_MS)


def cells(row: Locator) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def test_the_list_kinds_counts_sorted_paged_and_by_kind(
        gw: Gateway, run: Run, shell: Shell, mcp_run: str, runs: list[str],
        page: Page) -> None:
    """Each session with its kind, identity, start, duration and counts, as `tollgate
    audit sessions` sums it up; a column's header sorts by it (again: the other way);
    the API pages (the page asks for one page at a time); the kind filter."""
    elsewhere = requests_elsewhere(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if "/recordings/sessions?" in request.url else None)
    truth = summed(gw)
    open_page(page, gw, READER, "#limit=100")
    rows = page.locator("#session-list tbody tr")
    expect(rows).to_have_count(len(truth), timeout=WAIT_MS)
    for session, kind in ((run.session, "LLM + SQL"), (shell.session, "SSH"),
                          (mcp_run, "MCP"), (runs[0], "SQL")):
        expected = truth[session]
        row = cells(page.locator(f'#session-list tr[data-session="{session}"]'))
        # Named by whose and where, its id beside.
        named = f"svc-recorded on {', '.join(sorted(expected.targets))}"
        assert row[1:4] == [f"{named}\n{session}", kind, "svc-recorded"], row
        assert row[5:] == [str(n) for n in (expected.exchanges, expected.allowed,
                                             expected.refused, expected.held,
                                             expected.masked)], (session, row)
    assert cells(page.locator(f'#session-list tr[data-session="{shell.session}"]'))[7] == "1"
    assert cells(page.locator(f'#session-list tr[data-session="{run.session}"]'))[8] == "1"

    header = page.locator('#session-list th[data-sort="refused"]')
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending", timeout=WAIT_MS)
    expect(page.locator('#session-list th[data-sort="start"]')).to_have_attribute(
        "aria-sort", "none")
    most = max(s.refused for s in truth.values())
    expect(rows.first.locator("td").nth(7)).to_have_text(str(most), timeout=WAIT_MS)
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending", timeout=WAIT_MS)
    expect(rows.first.locator("td").nth(7)).to_have_text("0", timeout=WAIT_MS)
    refused = [int(cells(rows.nth(i))[7]) for i in range(rows.count())]
    assert refused == sorted(refused)

    duration = page.locator('#session-list th[data-sort="duration"]')
    duration.locator("button").click()
    expect(duration).to_have_attribute("aria-sort", "descending", timeout=WAIT_MS)
    longest = max(truth.values(), key=lambda s: s.duration_us).session_id
    expect(rows.first).to_have_attribute("data-session", longest, timeout=WAIT_MS)

    page.select_option("#limit", "10")
    page.select_option("#kind", "")
    page.click("#search button[type=submit]")
    expect(page.locator("#page-place")).to_have_text("Page 1: sessions 1 to 10", timeout=WAIT_MS)
    expect(rows).to_have_count(10)
    expect(page.locator("#previous")).to_be_disabled()
    first_page = [rows.nth(i).get_attribute("data-session") for i in range(10)]
    page.click("#next")
    expect(page.locator("#page-place")).to_have_text(
        f"Page 2: sessions 11 to {min(20, len(truth))}", timeout=WAIT_MS)
    expect(page.locator("#previous")).to_be_enabled()
    second_page = [rows.nth(i).get_attribute("data-session") for i in range(rows.count())]
    assert not set(first_page) & set(second_page)
    assert asked[-1].endswith("limit=10&sort=duration&order=desc&offset=10"), asked[-1]
    page.click("#previous")
    expect(page.locator("#page-place")).to_have_text("Page 1: sessions 1 to 10", timeout=WAIT_MS)

    page.select_option("#kind", "ssh")
    page.click("#search button[type=submit]")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    expect(rows.first).to_have_attribute("data-session", shell.session)
    assert "kind=ssh" in asked[-1]
    assert elsewhere == []


def test_an_ssh_session_plays_with_a_marker_per_decided_line(
        gw: Gateway, shell: Shell, page: Page) -> None:
    """The shell's recording, checked against its record, plays in the page with
    asciinema-player from the gateway itself: play and pause, speed; a marker on its
    timeline per decided line, which shows that moment and focuses its decision in the
    list (the refused line's is red); the list leads back to the recording. The session
    is labelled as the SSH connection it is."""
    elsewhere = requests_elsewhere(page)
    loaded: list[str] = []
    page.on("response", lambda response: loaded.append(f"{response.status} {response.url}")
            if "/recordings/player/" in response.url else None)
    open_page(page, gw, READER, f"#session={shell.session}")
    terminal = terminal_of(page)
    expect(page.locator("#session-rule")).to_contain_text(
        "one SSH connection: tollgate names each connection an agent opens")
    expect(page.locator("#session-summary")).to_contain_text("SSH · svc-recorded · web-1")
    for name in ("asciinema-player.min.js", "asciinema-player.css"):
        assert f"200 {gw.admin_url}/recordings/player/{name}" in loaded, loaded

    ticks, markers = terminal.locator(".track .tick"), terminal.locator("ol.markers button")
    expect(ticks).to_have_count(4)
    expect(markers).to_have_count(4)
    expect(markers.nth(0)).to_have_text(re.compile(
        r"^0:0\d\.\d allow: typed on \S+@web-1: echo ready-\$\(\(40\+2\)\)$"))
    expect(markers.nth(1)).to_have_text(
        re.compile(r"^0:0\d\.\d deny: typed on \S+@web-1: rm -rf /"))
    expect(ticks.nth(1)).to_have_class(re.compile(r"\bdeny\b"))
    assert "deny" not in (ticks.nth(0).get_attribute("class") or "")

    play, screen = terminal.locator("button.play"), terminal.locator(".screen")
    position = terminal.locator("input.position")
    terminal.locator("select.speed").select_option("0.5")
    expect(screen).to_have_attribute("data-speed", "0.5")
    play.click()
    expect(play).to_have_text("Pause", timeout=WAIT_MS)
    expect(terminal).to_have_attribute("data-playing", "true")
    play.click()
    expect(play).to_have_text("Play", timeout=WAIT_MS)
    expect(terminal).to_have_attribute("data-playing", "false")
    assert float(position.input_value()) < float(position.get_attribute("max") or 0)
    terminal.locator("select.speed").select_option("8")
    expect(screen).to_have_attribute("data-speed", "8")
    play.click()
    expect(screen).to_contain_text("after-2", timeout=WAIT_MS)  # played to its end
    expect(play).to_have_text("Play", timeout=WAIT_MS)

    refused = shell.lines[1]
    ticks.nth(1).click()
    expect(page.locator("#timeline li.entry:focus")).to_have_attribute(
        "data-id", refused["id"], timeout=WAIT_MS)
    expect(page.locator("#timeline li.entry:focus")).to_have_class(re.compile(r"\bdeny\b"))
    expect(screen).to_contain_text("ready-42", timeout=WAIT_MS)  # the moment it was decided
    expect(screen).not_to_contain_text("after-2")
    markers.nth(2).click()
    expect(page.locator("#timeline li.entry:focus")).to_have_attribute(
        "data-id", shell.lines[2]["id"], timeout=WAIT_MS)
    # And back: a decided line's entry plays the recording from its decision.
    entry = page.locator(f'#timeline li.entry[data-id="{refused["id"]}"]')
    entry.locator("button.at").click()
    expect(play).to_be_focused()
    expect(terminal.locator(".clock")).to_have_text(
        re.compile(r"^" + re.escape(markers.nth(1).inner_text().split(" ")[0]) + " / "))
    assert elsewhere == []


@pytest.fixture
def no_player(player: Path, tmp_path: Path) -> Iterator[None]:
    """The gateway's player folder emptied for one test (as an install without npm has
    it), then filled again."""
    for name in PLAYER_FILES:
        (player / name).rename(tmp_path / name)
    try:
        yield
    finally:
        for name in PLAYER_FILES:
            (tmp_path / name).rename(player / name)


@pytest.mark.usefixtures("no_player")
def test_without_the_player_a_line_says_so_and_the_decisions_and_transcript_remain(
        gw: Gateway, shell: Shell, page: Page) -> None:
    """Where tollgate was installed without npm, the gateway answers the player's files
    with a 404: the page says so in one line, and the session's decisions and the
    recording's text transcript are all there."""
    status, answer = api(gw, "GET", "/recordings/player/asciinema-player.min.js", READER)
    assert (status, answer["error"]) == (404, "not_found")
    open_page(page, gw, READER, f"#session={shell.session}")
    terminal = page.locator("#terminals section.terminal")
    missing = terminal.locator(".player-missing")
    expect(missing).to_be_visible(timeout=WAIT_MS)
    expect(missing).to_have_text(re.compile(r"^The terminal player is not installed on this "
                                            r"gateway .*text transcript show the session\.$"))
    expect(terminal.locator(".controls")).to_be_hidden()
    transcript = terminal.locator("pre.transcript")
    expect(transcript).to_be_visible()
    expect(transcript).to_contain_text("ready-42")
    expect(transcript).to_contain_text("after-2")
    assert "\\x1b" not in transcript.inner_text()  # escape sequences dropped, not shown
    expect(terminal.locator("ol.markers button")).to_have_count(4)
    lines = page.locator("#timeline li.entry", has_text="@web-1: ")
    expect(lines).to_have_count(4)
    expect(lines.nth(1)).to_contain_text("request: deny by ")


def test_mcp_plumbing_is_collapsed_until_asked_for(gw: Gateway, mcp_run: str,
                                                    page: Page) -> None:
    """An MCP session: its tool call shown; its initialize, notification, listing, event
    stream and end collapsed behind a toggle that counts them and says what they are;
    grouped by its MCP session."""
    plumbing = [r for r in gw.records("exchange") if r["session_id"] == mcp_run
                and ((r["meaning"] or {}).get("mcp") or {}).get("method") != "tools/call"]
    methods = {r["meaning"]["mcp"].get("method") for r in plumbing}
    assert {"initialize", "notifications/initialized", "tools/list"} <= methods, methods
    open_page(page, gw, READER, f"#session={mcp_run}")
    call = page.locator("#timeline li.entry", has_text="MCP tool call read_file(")
    expect(call).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#session-rule")).to_contain_text("one MCP session: the "
                                                          "Mcp-Session-Id")
    hidden = page.locator("#timeline li.entry.plumbing")
    expect(hidden).to_have_count(len(plumbing))
    for i in range(len(plumbing)):
        expect(hidden.nth(i)).to_be_hidden()
    toggle = page.locator("#plumbing")
    expect(toggle).to_have_text(re.compile(
        f"^Show {len(plumbing)} MCP protocol exchanges \\(initialize, notifications, "
        "listings(, event streams)?(, the session's end)?\\)$"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_have_text(re.compile(f"^Hide {len(plumbing)} MCP protocol"))
    expect(page.locator("#timeline li.entry.plumbing", has_text="MCP initialize")).to_be_visible()
    toggle.click()
    expect(hidden.first).to_be_hidden()
    expect(call).to_be_visible()


def tab_to(page: Page, selector: str, most: int = 120) -> None:
    """Tab (and nothing else) until the focus is on `selector`'s element."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement !== null && "
                         "document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{most} Tabs never reached {selector}")


def test_keyboard_alone_signs_in_sorts_opens_plays_and_follows_a_marker(
        gw: Gateway, shell: Shell, page: Page) -> None:
    """Without a mouse: sign in, sort the list, open the shell's session, play and pause
    it, follow a decided line's marker to its decision."""
    page.goto(gw.admin_url + "/recordings/ui#kind=ssh")
    tab_to(page, "#token")
    page.keyboard.type(READER)
    page.keyboard.press("Enter")
    link = page.locator(f'#session-list tr[data-session="{shell.session}"] a.session')
    expect(link).to_be_visible(timeout=WAIT_MS)
    tab_to(page, '#session-list th[data-sort="refused"] button')
    page.keyboard.press("Enter")
    expect(page.locator('#session-list th[data-sort="refused"]')).to_have_attribute(
        "aria-sort", "descending", timeout=WAIT_MS)
    tab_to(page, f'#session-list tr[data-session="{shell.session}"] a.session')
    page.keyboard.press("Enter")
    terminal = terminal_of(page)
    play = terminal.locator("button.play")
    tab_to(page, "#terminals button.play")
    page.keyboard.press("Enter")
    expect(play).to_have_text("Pause", timeout=WAIT_MS)
    page.keyboard.press("Space")
    expect(play).to_have_text("Play", timeout=WAIT_MS)
    tab_to(page, "#terminals select.speed")
    page.keyboard.press("ArrowDown")
    expect(terminal.locator(".screen")).to_have_attribute("data-speed", "2", timeout=WAIT_MS)
    tab_to(page, "#terminals ol.markers li:nth-child(2) button")
    page.keyboard.press("Enter")
    assert focused_entry(page) == shell.lines[1]["id"]


def check_screen(page: Page, shots: Path, name: str, size: dict[str, int],
                 controls: list[Locator]) -> None:
    """A screenshot of the viewport: a PNG of its size, not blank; the controls inside
    it (once scrolled to), and the page no wider than it."""
    data = page.screenshot()
    assert png.size(data) == (size["width"], size["height"])
    image = png.decode(screenshot(shots, name, data).read_bytes())
    assert len(image.colours()) > 20, f"{name} is (nearly) blank"
    wider = page.evaluate("""(width) => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > width + 1)
        .map((e) => e.tagName + '.' + e.className).slice(0, 8)""", size["width"])
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"], (
        name, wider)
    for control in controls:
        control.scroll_into_view_if_needed()
        box = control.bounding_box()
        assert box is not None and box["width"] > 0, (name, control)
        assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (name, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (name, box)


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_screens_at_a_desktop_and_a_phone_width_and_no_serious_axe_violation(
        gw: Gateway, shell: Shell, mcp_run: str, browser: Browser, tmp_path: Path,
        size: dict[str, int]) -> None:
    """The list, an SSH session with its player and an MCP session with its plumbing
    shown: each screenshot a non-blank PNG of the viewport's size, the page no wider than
    the screen, the controls within it; axe-core finds no serious or critical violation
    on any of them."""
    width = "desktop" if size is DESKTOP else "phone"
    with tab(browser, viewport=size) as page:
        elsewhere = requests_elsewhere(page)
        open_page(page, gw, READER, "")
        expect(page.locator("#session-list tbody tr").first).to_be_visible(timeout=WAIT_MS)
        check_screen(page, tmp_path, f"recordings-list-{width}.png", size, [
            page.locator("#search button[type=submit]"), page.locator("#next")])
        assert serious_violations(page) == []

        page.goto(gw.admin_url + f"/recordings/ui#session={shell.session}")
        terminal = terminal_of(page)
        terminal.scroll_into_view_if_needed()
        check_screen(page, tmp_path, f"recordings-ssh-{width}.png", size, [
            terminal.locator("button.play"), terminal.locator("select.speed"),
            terminal.locator("input.position"), terminal.locator(".track .tick").nth(3),
            terminal.locator("ol.markers button").first, terminal.locator(".screen")])
        assert serious_violations(page) == []

        page.goto(gw.admin_url + f"/recordings/ui#session={mcp_run}")
        toggle = page.locator("#plumbing")
        expect(toggle).to_be_visible(timeout=WAIT_MS)
        toggle.click()
        check_screen(page, tmp_path, f"recordings-mcp-{width}.png", size, [toggle])
        assert serious_violations(page) == []
        assert elsewhere == []
