"""The monitor page in a real browser: Debian's Chromium (/usr/bin/chromium, headless),
driven by Playwright, against a real Envoy and tollgate.

The gateway's store holds what tollgate writes there: an identity's activity counts over
the last hour (seeded as the tracker's upserts leave them) and its alerts and refused
exchanges (written through a real Recorder, chained and masked), beside what a live
agent does through Envoy while the page is open (a refused DROP, counted by the
gateway's own tracker). An approver opens `/monitor/ui` on tollgate's admin port with
their own token and sees, per identity, the chart of the hour, the latest alerts and
refusals, each linking to its records on the recordings page. Screenshots are taken and
checked: the size asked for, not blank, the chart's three series drawn in their colours.
They are kept in the test's temporary folder, and copied to $TOLLGATE_SCREENSHOTS when it
names a folder.

Playwright never downloads a browser here: without /usr/bin/chromium these tests fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from extproc.codecs.inert import terminal
from extproc.quickstart import stack
from extproc.recording.chain import Signer
from tests.e2e.test_approvals_page import WAIT_MS, foreign_token
from tests.monitor.conftest import alert, counts, refusal, series
from tests.recording.conftest import record
from tests.support import png, tokens
from tests.support.gateway import Gateway, module_gateway

DBA = tokens.token("dana", ["dba"])
SEEDED = "svc-monitor"
LIVE = "svc-monitor-live"
VIEWPORT = {"width": 1280, "height": 1000}
# The page reads again every 5 s; the gateway's tracker writes its counts every 2 s.
REFRESH_MS = 15_000
MARKUP = "<img src=x onerror=window.__pwned=1>"
COLOURS = {"exchanges": (0x1F, 0x6F, 0xEB), "refusals": (0xD1, 0x24, 0x2F),
           "masked": (0xBF, 0x87, 0x00)}
# The seeded hour, minutes back from the minute of seeding: none near the hour's edge,
# so the minute turning while the tests run moves the series but loses none of it.
HOUR = {
    0: {"exchanges": 6, "refusals": 1},
    3: {"exchanges": 14, "refusals": 4, "masked:email": 9, "masked:iban": 3},
    4: {"exchanges": 20, "refusals": 2, "masked:email": 6},
    10: {"exchanges": 8, "masked:phone": 2},
    25: {"exchanges": 12, "refusals": 6},
    40: {"exchanges": 3},
    48: {"exchanges": 9, "masked:email": 4},
}


def total(metric: str) -> int:
    return sum(v for metrics in HOUR.values() for m, v in metrics.items()
               if m == metric or (metric == "masked" and m.startswith("masked:")))


@dataclass
class Seeded:
    alerts: list[str]  # trace ids, newest first
    refusals: list[str]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "monitor_page") as running:
        yield running


@pytest.fixture(scope="module")
def seeded(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """SEEDED's hour of counts, three refusals and two alerts in the gateway's store
    (one alert on the trace of the refusal that raised it, as tollgate records them)."""
    minute = int(time.time() // 60)
    counts(gw.store_url, series(minute, f"sub:{SEEDED}", HOUR))
    now = time.time()
    trace = [secrets.token_hex(16) for _ in range(4)]
    signer = Signer.from_file(tmp_path_factory.mktemp("seed") / "seed.key", create=True)
    # Through a real Recorder, on a loop of its own (Playwright's runs in this thread).
    written = record(gw.store_url, signer, [
        refusal(1, SEEDED, path="/sql", started=now - 900, trace=trace[0]),
        refusal(2, SEEDED, path=f"/sql/{MARKUP}\u202egnp.exe", started=now - 600,
                rules=("sql.privilege",), reasons=(f"a GRANT by an agent {MARKUP}",),
                trace=trace[1]),
        alert(3, SEEDED, rule="activity.administrative", severity="critical",
              message="an administrative action by an agent", started=now - 599,
              trace=trace[1]),
        refusal(4, SEEDED, path="/sql/latest", started=now - 120, trace=trace[2]),
        alert(5, SEEDED, rule="activity.refusal_burst", severity="warning",
              message="5 refusals in a minute", trace_ids=(trace[0], trace[2]),
              started=now - 60, trace=trace[3]),
    ], writer_id="monitor-seed", checkpoint_every=2)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, written).result()
    return Seeded(alerts=[trace[3], trace[1]], refusals=[trace[2], trace[1], trace[0]])


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def screenshot(shots: Path, name: str, data: bytes) -> Path:
    """Keep a screenshot (and a copy in $TOLLGATE_SCREENSHOTS, when set)."""
    path = shots / name
    path.write_bytes(data)
    keep = os.environ.get("TOLLGATE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    print(f"screenshot: {path}")
    return path


def open_page(page: Page, gw: Gateway, token: str | None = DBA, place: str = "") -> None:
    page.goto(gw.admin_url + "/monitor/ui" + place)
    if token is not None:
        page.fill("#token", token)
        page.click("#login button[type=submit]")


def values(page: Page, series: str) -> list[int]:
    text = page.locator(f'#chart polyline[data-series="{series}"]').get_attribute(
        "data-values")
    assert text is not None
    return [int(v) for v in text.split(",")]


def test_the_page_is_served_under_a_content_security_policy(gw: Gateway, page: Page) -> None:
    response = page.goto(gw.admin_url + "/monitor/ui")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
    assert (directives["default-src"], directives["script-src"]) == ("'none'", "'self'")
    for path in ("/ui/common.js", "/monitor/ui.js"):
        script = page.request.get(gw.admin_url + path)
        assert script.headers["content-security-policy"] == policy
    # No script but the admin pages' shared one and the page's own: no library, no CDN.
    assert page.evaluate("Array.from(document.scripts, s => s.src)") == [
        gw.admin_url + "/ui/common.js", gw.admin_url + "/monitor/ui.js"]


def test_without_a_token_or_with_a_bad_one_nothing_is_shown(gw: Gateway, page: Page) -> None:
    open_page(page, gw, None)
    status = page.locator("#status")
    expect(status).to_have_text(re.compile("Paste your token"))
    expect(page.locator("#monitor")).to_be_hidden()
    page.fill("#token", foreign_token("mallory", ["dba"]))
    page.click("#login button[type=submit]")
    expect(status).to_have_class("error", timeout=WAIT_MS)
    expect(status).to_have_text(re.compile(r"^unauthenticated: the token does not verify"))
    expect(page.locator("#monitor")).to_be_hidden()


def test_an_identity_s_hour_alerts_and_refusals_with_their_records(
        gw: Gateway, seeded: Seeded, page: Page, shots: Path) -> None:
    """The chart draws the seeded hour (60 minutes, each series' counts as stored, masked
    values summed over detectors); the alerts and refusals are listed newest first, what
    agents wrote shown as text; each links to its trace's records on the recordings page.
    Screenshots of the page and of the chart are checked."""
    open_page(page, gw, place=f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    chart = page.locator("#chart")
    for name in COLOURS:
        expect(chart.locator(f'polyline[data-series="{name}"]')).to_have_count(1)
    for name in COLOURS:
        found = values(page, name)
        assert len(found) == 60 and sum(found) == total(name), name
    # The busiest minute is drawn at the top of the chart's scale (a nice round one).
    assert int(chart.get_attribute("data-max") or 0) >= max(
        m.get("exchanges", 0) for m in HOUR.values())
    assert chart.locator("polyline").first.get_attribute("points").count(",") == 60  # type: ignore[union-attr]
    expect(page.locator("#totals")).to_contain_text(
        f"Last hour: {total('exchanges')} exchanges, {total('refusals')} refused, "
        f"{total('masked')} masked values")

    alerts = page.locator("#alerts tbody tr")
    expect(alerts).to_have_count(2)
    assert [alerts.nth(i).get_attribute("data-trace") for i in range(2)] == seeded.alerts
    expect(alerts.nth(0).locator("td").nth(2)).to_have_text("activity.refusal_burst")
    expect(alerts.nth(1).locator("td").nth(1)).to_have_text("critical")
    expect(alerts.nth(1).locator("td").nth(1)).to_have_class("severity-critical")
    expect(alerts.nth(0).locator("a.related")).to_have_count(2)
    refusals = page.locator("#refusals tbody tr")
    expect(refusals).to_have_count(3)
    assert [refusals.nth(i).get_attribute("data-trace") for i in range(3)] == seeded.refusals
    request = refusals.nth(1).locator("td").nth(2)
    assert request.inner_text() == terminal(f"POST /sql/{MARKUP}\u202egnp.exe")
    expect(refusals.nth(1).locator("td").nth(4)).to_have_text(f"a GRANT by an agent {MARKUP}")
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # The overview: the seeded identity, its hour and day.
    row = page.locator(f'#identities tr[data-identity="{SEEDED}"]')
    expect(row).to_have_class("selected")
    expect(row.locator("td").nth(1)).to_have_text(
        f"{total('exchanges')} / {total('exchanges')}")

    data = page.screenshot()
    assert png.size(data) == (VIEWPORT["width"], VIEWPORT["height"])
    whole = png.decode(screenshot(shots, "monitor-page.png", data).read_bytes())
    colours = whole.colours()
    assert len(colours) > 50, "the page's screenshot is (nearly) blank"
    assert colours.most_common(1)[0][1] < 0.95 * whole.width * whole.height
    drawn = chart.screenshot()
    box = chart.bounding_box()
    assert box is not None
    drawn_size = png.size(drawn)
    assert abs(drawn_size[0] - box["width"]) <= 2 and abs(drawn_size[1] - box["height"]) <= 2
    image = png.decode(screenshot(shots, "monitor-chart.png", drawn).read_bytes())
    for name, colour in COLOURS.items():
        assert image.near(colour) > 100, f"the chart has no {name} line in its screenshot"

    # An alert's records are on the recordings page (for its readers): the link says
    # where; tests/e2e/test_recordings_page.py reads them there.
    expect(alerts.nth(1).locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={seeded.alerts[1]}")
    expect(refusals.nth(0).locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={seeded.refusals[0]}")


def test_what_an_agent_does_shows_up_live(gw: Gateway, seeded: Seeded, page: Page,
                                          shots: Path) -> None:
    """With the page open on an agent, a DROP it sends through Envoy is refused and, with
    no reload, appears among its refusals (linking to its record) and in the chart's
    current minute (counted by the gateway's tracker)."""
    agent = tokens.token(LIVE, ["agents"], ttl=600)
    open_page(page, gw, place=f"#identity={LIVE}")
    expect(page.locator("#who")).to_have_text(LIVE, timeout=WAIT_MS)
    expect(page.locator("#refusals tbody td.empty")).to_have_text("No refusal in the last day.")
    assert sum(values(page, "exchanges")) == 0

    reply = gw.request("POST", "/sql", {"sql": "DROP TABLE customers"}, token=agent)
    assert reply.status == 403 and reply.trace_id
    row = page.locator(f'#refusals tbody tr[data-trace="{reply.trace_id}"]')
    expect(row).to_be_visible(timeout=REFRESH_MS)
    expect(row.locator("td").nth(2)).to_have_text("POST /sql")
    stack.wait_until(lambda: sum(values(page, "refusals")) >= 1, REFRESH_MS / 1000,
                     "the refusal counted in the chart")
    assert sum(values(page, "exchanges")) >= 1
    expect(page.locator(f'#identities tr[data-identity="{LIVE}"]')).to_be_visible()
    expect(row.locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={reply.trace_id}")
    screenshot(shots, "monitor-live.png", page.screenshot())
