"""The monitor page in a real browser: Debian's Chromium (its headless shell),
driven by Playwright, against a real Envoy and tollgate.

The gateway's store holds what tollgate writes there: two identities' activity counts
over the last hour (seeded as the tracker's upserts leave them) and their alerts and
refused exchanges (written through a real Recorder, chained and masked: the same DROP
refused again and again, by both), beside what a live agent does through Envoy while the
page is open (a refused DROP, counted by the gateway's own tracker). An approver opens
`/monitor/ui` on tollgate's admin port with their own token and sees, for a time range
they choose, per identity the chart (allowed, refused, held, masked values: each series
with its own dash and marker shape, a tooltip on each point, the same numbers as a
table), the refusals with identical ones together (how many times, what, by whom), the
alerts, each linking to its records on the recordings page. The page is used with the
keyboard alone, at a desktop's width and a phone's, checked by axe-core, and loads
nothing from outside the gateway. Screenshots are taken and checked: the size asked
for, not blank, the chart's four series drawn in their colours, the controls inside the
viewport. They are kept in the test's temporary folder, and copied to
$TOLLGATE_SCREENSHOTS when it names a folder.

Playwright never downloads a browser here: without Debian's Chromium
(tests/support/browser.py) these tests fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from playwright.sync_api import Browser, Locator, Page, expect

from extproc.codecs.inert import terminal
from extproc.quickstart import stack
from extproc.recording import Evidence
from extproc.recording.chain import Signer
from tests.e2e.test_approvals_page import WAIT_MS, foreign_token
from tests.monitor.conftest import alert, counts, refusal, series
from tests.recording.conftest import record
from tests.support import png, tokens
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.gateway import Gateway, module_gateway

DBA = tokens.token("dana", ["dba"])
SEEDED = "svc-monitor"
OTHER = "svc-monitor-other"
LIVE = "svc-monitor-live"
DENIED = "svc-monitor-denied"  # its held UPDATE was denied by an approver
VIEWPORT = {"width": 1280, "height": 1000}
DESKTOP, PHONE = VIEWPORT, {"width": 390, "height": 844}
# The page reads again every 5 s; the gateway's tracker writes its counts every 2 s.
REFRESH_MS = 15_000
MARKUP = "<img src=x onerror=window.__pwned=1>"
DROP = "DROP TABLE customers"
SERIES = ("allowed", "refusals", "holds", "masked")
COLOURS = {"allowed": (0x1F, 0x6F, 0xEB), "refusals": (0xD1, 0x24, 0x2F),
           "holds": (0x82, 0x50, 0xDF), "masked": (0x9A, 0x67, 0x00)}
# The seeded hour, minutes back from the minute of seeding: none near the hour's edge,
# so the minute turning while the tests run moves the series but loses none of it.
HOUR = {
    0: {"exchanges": 6, "refusals": 1},
    3: {"exchanges": 14, "refusals": 4, "masked:email": 9, "masked:iban": 3, "holds": 2},
    4: {"exchanges": 20, "refusals": 2, "masked:email": 6},
    10: {"exchanges": 8, "masked:phone": 2},
    25: {"exchanges": 12, "refusals": 6, "holds": 1},
    40: {"exchanges": 3},
    48: {"exchanges": 9, "masked:email": 4, "holds": 3},
}


def total(metric: str, minutes: range = range(60)) -> int:
    """The seeded hour's total of a series (over those minutes back)."""
    found = 0
    for back, metrics in HOUR.items():
        if back not in minutes:
            continue
        exchanges, refused = metrics.get("exchanges", 0), metrics.get("refusals", 0)
        found += {"allowed": exchanges - refused, "refusals": refused,
                  "holds": metrics.get("holds", 0),
                  "masked": sum(v for m, v in metrics.items() if m.startswith("masked:"))
                  }[metric]
    return found


@dataclass
class Seeded:
    minute: int  # the clock minute of seeding
    alerts: list[str]  # trace ids, newest first
    drops: list[str]  # SEEDED's refused DROPs, newest first (the oldest 50 minutes ago)
    other_drop: str  # OTHER's refused DROP, 200 s ago
    grant: str  # SEEDED's refused request with markup, 10 minutes ago
    at: float  # when it was seeded (Unix seconds)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "monitor_page") as running:
        yield running


def denied_hold(n: int, started: float, trace: str) -> Evidence:
    """DENIED's UPDATE, held, then refused: an approver denied it, saying why."""
    found = refusal(n, DENIED, path="/sql", statement="UPDATE customers SET tier = 1",
                    started=started, trace=trace, rules=("sql.unbounded_write",),
                    reasons=("UPDATE without WHERE",))
    found.decisions[0] = dataclasses.replace(found.decisions[0], action="hold")
    found.outcome["tollgate.refusal"] = "approval_denied"
    found.approval = {"id": "ap-monitor", "via": "hold", "status": "denied",
                      "decided_by": "dana", "reason": "not during the freeze"}
    return found


@pytest.fixture(scope="module")
def seeded(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """SEEDED's hour of counts, its refusals (the same DROP three times, a request with
    markup once) and two alerts (one on the trace of the refusal that raised it, as
    tollgate records them); OTHER's minute and its one refused DROP."""
    minute = int(time.time() // 60)
    counts(gw.store_url, series(minute, f"sub:{SEEDED}", HOUR)
           + series(minute, f"sub:{OTHER}", {2: {"exchanges": 1, "refusals": 1}}))
    now = time.time()
    trace = [secrets.token_hex(16) for _ in range(7)]
    signer = Signer.from_file(tmp_path_factory.mktemp("seed") / "seed.key", create=True)
    # Through a real Recorder, on a loop of its own (Playwright's runs in this thread).
    written = record(gw.store_url, signer, [
        refusal(1, SEEDED, path="/sql", statement=DROP, started=now - 3000, trace=trace[0]),
        refusal(2, SEEDED, path=f"/sql/{MARKUP}\u202egnp.exe", started=now - 600,
                rules=("sql.privilege",), reasons=(f"a GRANT by an agent {MARKUP}",),
                trace=trace[1]),
        alert(3, SEEDED, rule="activity.administrative", severity="critical",
              message="an administrative action by an agent", started=now - 599,
              trace=trace[1]),
        refusal(4, SEEDED, path="/sql", statement=DROP, started=now - 300, trace=trace[2]),
        refusal(5, OTHER, path="/sql", statement=DROP, started=now - 200, trace=trace[4]),
        refusal(6, SEEDED, path="/sql", statement=DROP, started=now - 120, trace=trace[5]),
        alert(7, SEEDED, rule="activity.refusal_burst", severity="warning",
              message="5 refusals in a minute", trace_ids=(trace[0], trace[2]),
              started=now - 60, trace=trace[3]),
        denied_hold(8, started=now - 400, trace=trace[6]),
    ], writer_id="monitor-seed", checkpoint_every=2)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, written).result()
    return Seeded(minute=minute, alerts=[trace[3], trace[1]],
                  drops=[trace[5], trace[2], trace[0]], other_drop=trace[4], grant=trace[1],
                  at=now)


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


def checked_screenshot(page: Page, shots: Path, name: str, viewport: dict[str, int]) -> None:
    """A screenshot of the viewport: a PNG of its size, not (nearly) blank."""
    data = page.screenshot()
    assert data.startswith(b"\x89PNG") and len(data) > 5000, name
    assert png.size(data) == (viewport["width"], viewport["height"]), name
    image = png.decode(screenshot(shots, name, data).read_bytes())
    colours = image.colours()
    assert len(colours) > 50, f"{name} is (nearly) blank"
    assert colours.most_common(1)[0][1] < 0.95 * image.width * image.height, name


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


def group_row(page: Page, table: str, what: str) -> Locator:
    return page.locator(f"#{table} tbody tr").filter(
        has=page.locator("td.text", has_text=re.compile("^" + re.escape(what) + "$")))


def inside(page: Page, selector: str, viewport: dict[str, int]) -> None:
    """The element is drawn within the viewport's width (a phone scrolls down, not
    sideways)."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5, (selector, box)


def tab_to(page: Page, selector: str, most: int = 80) -> None:
    """Press Tab until the element focused matches `selector`."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


# -- the page itself -----------------------------------------------------------------------

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


def test_the_page_loads_nothing_from_outside_the_gateway(gw: Gateway, seeded: Seeded,
                                                          page: Page) -> None:
    """Every request the page makes, signed in, an identity shown, its range changed and
    its chart's table opened, goes to the gateway's admin port."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    open_page(page, gw, place=f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    page.check("#range input[value='6h']")
    expect(page.locator("#chart")).to_have_attribute("data-step", "300", timeout=WAIT_MS)
    page.click("#chart-data summary")
    expect(page.locator("#chart-table tbody tr")).to_have_count(72)
    assert any("/monitor/activity?identity=" in url for url in asked)
    assert [url for url in asked if not url.startswith(gw.admin_url + "/")] == []


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


# -- an identity's hour --------------------------------------------------------------------

def test_an_identity_s_hour_its_refusals_grouped_and_its_alerts(
        gw: Gateway, seeded: Seeded, page: Page, shots: Path) -> None:
    """The chart draws the seeded hour (60 minutes; allowed, refused, held and masked
    values as stored, masked values summed over detectors); the refusals are grouped,
    identical ones together with their count and what they did; the alerts are listed
    newest first, what agents wrote shown as text; each links to its trace's records on
    the recordings page. Screenshots of the page and of the chart are checked."""
    open_page(page, gw, place=f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    chart = page.locator("#chart")
    for name in SERIES:
        expect(chart.locator(f'polyline[data-series="{name}"]')).to_have_count(1)
    for name in SERIES:
        found = values(page, name)
        assert len(found) == 60 and sum(found) == total(name), name
    # The busiest minute is drawn at the top of the chart's scale (a nice round one).
    assert int(chart.get_attribute("data-max") or 0) >= max(
        m.get("exchanges", 0) for m in HOUR.values())
    assert chart.locator("polyline").first.get_attribute("points").count(",") == 60  # type: ignore[union-attr]
    expect(page.locator("#totals")).to_contain_text(
        f"In this range: {total('allowed')} allowed, {total('refusals')} refused, "
        f"{total('holds')} held, {total('masked')} masked values")
    expect(page.locator("#range input[value='1h']")).to_be_checked()
    expect(page.locator("#per")).to_have_text("per minute")

    # Refusals, identical ones together: the DROP three times (the newest first among
    # its traces), the request with markup once; what agents wrote shown as text.
    groups = page.locator("#groups tbody tr")
    expect(groups).to_have_count(2)
    drops = group_row(page, "groups", DROP)
    expect(drops.locator("td").nth(0)).to_have_text("3")
    assert (drops.get_attribute("data-traces") or "").split() == seeded.drops
    expect(drops.locator("td").nth(2)).to_have_text("destructive SQL: DROP (sql.destructive)")
    expect(drops.locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={seeded.drops[0]}")
    expect(drops.locator("a.related")).to_have_count(2)
    # One identity's refusals link to its sessions on that target.
    target = drops.locator("td").nth(3).inner_text()
    expect(drops.locator("a.sessions")).to_have_attribute(
        "href", f"/recordings/ui#identity={SEEDED}&target={target}")
    # First and last seen: relative, the UTC time (as the CLI and the report say it) on hover.
    for seen in (drops.locator("time").nth(0), drops.locator("time").nth(1)):
        expect(seen).to_have_text(re.compile(r" ago$"))
        expect(seen).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    marked = groups.nth(1)
    assert marked.locator("td.text").inner_text() == terminal(
        f"POST /sql/{MARKUP}\u202egnp.exe")
    expect(marked.locator("td").nth(2)).to_have_text(
        f"a GRANT by an agent {MARKUP} (sql.privilege)")
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # Every identity's, in the range: the DROP four times, by both identities.
    everyone = group_row(page, "all-groups", DROP)
    expect(everyone.locator("td").nth(0)).to_have_text("4")
    expect(everyone.locator("td").nth(4)).to_have_text(f"{SEEDED}, {OTHER}")
    expect(everyone.locator("a.sessions")).to_have_count(0)  # whose? two identities
    assert (everyone.get_attribute("data-traces") or "").split() == [
        seeded.drops[0], seeded.other_drop, *seeded.drops[1:]]

    alerts = page.locator("#alerts tbody tr")
    expect(alerts).to_have_count(2)
    assert [alerts.nth(i).get_attribute("data-trace") for i in range(2)] == seeded.alerts
    expect(alerts.nth(0).locator("td").nth(2)).to_have_text("activity.refusal_burst")
    expect(alerts.nth(1).locator("td").nth(1)).to_have_text("critical")
    expect(alerts.nth(1).locator("td").nth(1)).to_have_class("severity-critical")
    expect(alerts.nth(0).locator("a.related")).to_have_count(2)
    expect(alerts.nth(1).locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={seeded.alerts[1]}")

    # The overview: the seeded identity, its range's totals.
    row = page.locator(f'#identities tr[data-identity="{SEEDED}"]')
    expect(row).to_have_class("selected")
    expect(row.locator("a.sessions")).to_have_attribute(
        "href", f"/recordings/ui#identity={SEEDED}")
    expect(row.locator("td").nth(1)).to_have_text(str(total("allowed")))
    expect(row.locator("td").nth(3)).to_have_text(str(total("holds")))

    checked_screenshot(page, shots, "monitor-page.png", VIEWPORT)
    drawn = chart.screenshot()
    box = chart.bounding_box()
    assert box is not None
    drawn_size = png.size(drawn)
    assert abs(drawn_size[0] - box["width"]) <= 2 and abs(drawn_size[1] - box["height"]) <= 2
    image = png.decode(screenshot(shots, "monitor-chart.png", drawn).read_bytes())
    for name, colour in COLOURS.items():
        assert image.near(colour) > 40, f"the chart has no {name} series in its screenshot"


def test_series_are_told_apart_without_colour_and_each_point_has_a_tooltip(
        gw: Gateway, seeded: Seeded, page: Page) -> None:
    """Each series has its own dash and marker shape, drawn in the legend beside its name;
    each point with a count has a marker whose tooltip says which series and how many;
    pointing at a minute shows a tooltip with all four counts; the chart's table holds
    every bucket's numbers."""
    open_page(page, gw, place=f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    chart = page.locator("#chart")
    shapes, dashes = {}, {}
    for name in SERIES:
        marks = chart.locator(f'g.markers[data-series="{name}"] path')
        found = values(page, name)
        expect(marks).to_have_count(sum(1 for v in found if v))
        shapes[name] = {marks.nth(i).get_attribute("data-shape") for i in range(marks.count())}
        dashes[name] = chart.locator(f'polyline[data-series="{name}"]').get_attribute(
            "stroke-dasharray")
        index = found.index(max(found))
        title = chart.locator(f'g.markers[data-series="{name}"] path[data-index="{index}"] title')
        expect(title).to_have_text(re.compile(rf": {found[index]} "))
    assert all(len(s) == 1 for s in shapes.values()), shapes
    assert len({next(iter(s)) for s in shapes.values()}) == 4, shapes
    assert len(set(dashes.values())) == 4, dashes
    legend = page.locator("#legend li")
    expect(legend).to_have_text(["allowed", "refused", "held", "masked values"])
    for i, name in enumerate(SERIES):
        assert legend.nth(i).locator("path").get_attribute("data-shape") == next(
            iter(shapes[name]))

    # Pointing at the minute of 3 minutes back (wherever the minute has turned to).
    refused, masked = values(page, "refusals"), values(page, "masked")
    index = next(i for i in range(60) if refused[i] == 4 and masked[i] == 12)
    tip = page.locator("#tip")
    expect(tip).to_be_hidden()
    slot = chart.locator("rect.slot").nth(index)
    area = slot.bounding_box()
    assert area is not None
    # Near the axis, below any marker (a point with a count is drawn higher).
    slot.hover(position={"x": area["width"] / 2, "y": area["height"] - 2})
    expect(tip).to_be_visible()
    expect(tip).to_have_text(re.compile(r": 10 allowed, 4 refused, 2 held, 12 masked values$"))
    expect(slot.locator("title")).to_have_text(tip.inner_text())
    page.mouse.move(0, 0)
    expect(tip).to_be_hidden()

    details = page.locator("#chart-data")
    expect(page.locator("#chart-table")).to_be_hidden()
    page.click("#chart-data summary")
    expect(details).to_have_attribute("open", "")
    rows = page.locator("#chart-table tbody tr")
    expect(rows).to_have_count(60)
    expect(rows.nth(index).locator("td")).to_have_text([re.compile("."), "10", "4", "2", "12"])
    for column, name in enumerate(SERIES, start=1):
        cells = page.locator(f"#chart-table tbody td:nth-child({column + 1})").all_inner_texts()
        assert sum(int(c) for c in cells) == total(name), name


def test_the_time_range_the_page_and_the_api_honour(gw: Gateway, seeded: Seeded,
                                                     page: Page) -> None:
    """The last 15 minutes: the DROPs of the last 15 minutes alone; 6 hours: in buckets
    of 5 minutes; a custom range (from, to) of the minutes around 25 back: its counts
    alone, and no refusal; the range is kept in the URL, and in the overview's links."""
    open_page(page, gw, place=f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    chart = page.locator("#chart")

    page.check("#range input[value='15m']")
    expect(chart).to_have_attribute("data-buckets", "15", timeout=WAIT_MS)
    assert "range=15m" in page.evaluate("location.hash")
    drops = group_row(page, "groups", DROP)
    expect(drops.locator("td").nth(0)).to_have_text("2")
    expect(group_row(page, "all-groups", DROP).locator("td").nth(0)).to_have_text("3")
    expect(page.locator("#groups tbody tr")).to_have_count(2)  # the GRANT 10 minutes ago
    expect(page.locator(f'#identities tr[data-identity="{SEEDED}"] a.identity')).to_have_attribute(
        "href", re.compile("range=15m"))

    page.check("#range input[value='6h']")
    expect(chart).to_have_attribute("data-step", "300", timeout=WAIT_MS)
    expect(chart).to_have_attribute("data-buckets", "72")
    expect(page.locator("#per")).to_have_text("per 5 minutes")
    assert sum(values(page, "refusals")) == total("refusals")
    expect(group_row(page, "groups", DROP).locator("td").nth(0)).to_have_text("3")

    page.check("#range input[value='custom']")
    expect(page.locator("#custom")).to_be_visible()
    since, until = (seeded.minute - 27) * 60, (seeded.minute - 20) * 60
    def utc(seconds: int) -> str:  # as the page says times, and reads its range
        return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(seconds))

    page.fill("#since", utc(since))
    page.fill("#until", utc(until))
    page.click("#apply")
    expect(chart).to_have_attribute("data-buckets", "7", timeout=WAIT_MS)
    hash_now = page.evaluate("location.hash")
    assert f"since={since}" in hash_now and f"until={until}" in hash_now
    window = range(21, 28)
    for name in SERIES:
        assert sum(values(page, name)) == total(name, window), name
    expect(page.locator("#groups tbody td.empty")).to_have_text("No refusal in this range.")
    expect(page.locator("#range input[value='custom']")).to_be_checked()
    expect(page.locator("#range-said")).to_have_text(
        f"From {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(since))} UTC to "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(until))} UTC (7 minutes), "
        "per minute.")


# -- keyboard, phone, accessibility --------------------------------------------------------

def test_the_keyboard_alone_reaches_and_works_every_control(
        gw: Gateway, seeded: Seeded, page: Page) -> None:
    """With Tab, the arrow keys, Enter and nothing else: sign in, change the range, choose
    an identity, read the chart's points one by one, open its table."""
    page.goto(gw.admin_url + "/monitor/ui")
    tab_to(page, "#token")
    page.keyboard.type(DBA)
    page.keyboard.press("Enter")
    expect(page.locator("#monitor")).to_be_visible(timeout=WAIT_MS)

    tab_to(page, "#range input[value='1h']")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#range input[value='6h']")).to_be_checked()
    expect(page.locator("#chart")).to_have_attribute("data-step", "300", timeout=WAIT_MS)
    assert "range=6h" in page.evaluate("location.hash")

    tab_to(page, f'#identities tr[data-identity="{SEEDED}"] a.identity')
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    expect(page.locator(f'#identities tr[data-identity="{SEEDED}"]')).to_have_class("selected")

    tab_to(page, "#chart")
    tip = page.locator("#tip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-index", "71")  # the latest bucket first
    page.keyboard.press("ArrowLeft")
    expect(tip).to_have_attribute("data-index", "70")
    page.keyboard.press("Home")
    expect(tip).to_have_attribute("data-index", "0")
    page.keyboard.press("End")
    expect(tip).to_have_attribute("data-index", "71")
    expect(tip).to_have_text(re.compile(r"\d+ allowed, \d+ refused, \d+ held, \d+ masked values"))

    tab_to(page, "#chart-data summary")
    expect(tip).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.locator("#chart-data")).to_have_attribute("open", "")
    expect(page.locator("#chart-table tbody tr")).to_have_count(72)
    # The refusals' records are reached the same way.
    tab_to(page, "#groups a.record")
    assert page.evaluate("document.activeElement.getAttribute('href')").startswith(
        "/recordings/ui#record=")


def test_a_denied_hold_says_who_denied_it_and_why(gw: Gateway, seeded: Seeded,
                                                  page: Page) -> None:
    """A refusal that was an approver's denial names the approval, the approver and the
    reason, where the refusals are grouped (as the agent itself was told)."""
    open_page(page, gw, place=f"#identity={DENIED}")
    expect(page.locator("#who")).to_have_text(DENIED, timeout=WAIT_MS)
    row = group_row(page, "groups", "UPDATE customers SET tier = 1")
    expect(row.locator("td").nth(2)).to_contain_text(
        "approval ap-monitor was denied by dana: not during the freeze", timeout=WAIT_MS)


SECURITY = tokens.token("sasha", ["security"])  # views the monitor, reads the record


def slot_centre(page: Page, title_start: str) -> tuple[float, float]:
    """Where, in the page, the chart's bucket whose tooltip begins so is."""
    slot = page.locator("#chart rect.slot").filter(
        has=page.locator("title", has_text=re.compile("^" + re.escape(title_start))))
    box = slot.bounding_box()
    assert box is not None, title_start
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_minutes_brushed_on_the_chart_lead_to_their_sessions(
        gw: Gateway, seeded: Seeded, page: Page) -> None:
    """Dragged across two minutes of the chart: they are marked, and a link names them;
    it opens the recordings page on the sessions with records in those minutes (the
    refused GRANT of 10 minutes ago and its alert), no other."""
    open_page(page, gw, SECURITY, f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    first = int((seeded.at - 600) // 60 * 60)  # the GRANT's minute, then the next
    start = slot_centre(page, time.strftime("%H:%M", time.gmtime(first)))
    end = slot_centre(page, time.strftime("%H:%M", time.gmtime(first + 60)))
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=4)
    page.mouse.up()
    expect(page.locator("#chart rect.brush")).to_have_attribute("visibility", "visible")
    link = page.locator("#brushed-link")
    expect(link).to_have_text(
        f"Sessions of {SEEDED} from {time.strftime('%H:%M', time.gmtime(first))} to "
        f"{time.strftime('%H:%M', time.gmtime(first + 120))} UTC (2 min) →")
    expect(link).to_have_attribute(
        "href", f"/recordings/ui#identity={SEEDED}&from={first}&until={first + 120}")
    link.click()
    expect(page.locator("#window")).to_contain_text(
        f"Sessions with records from {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(first))}"
        " UTC", timeout=WAIT_MS)
    rows = page.locator("#session-list tbody tr")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    # The GRANT's run (refusal 2 of the seed: its token's jti is j-2), not the DROPs'.
    expect(rows.first).to_have_attribute("data-session", re.compile(r"^token:j-2@"))


def test_the_keyboard_brushes_minutes_and_enter_opens_them(
        gw: Gateway, seeded: Seeded, page: Page) -> None:
    """Shift with the arrow keys chooses minutes from the one pointed at; Escape lets
    them go; Enter opens their sessions."""
    open_page(page, gw, SECURITY, f"#identity={SEEDED}")
    expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
    tab_to(page, "#chart")
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("Shift+ArrowLeft")
    link = page.locator("#brushed-link")
    expect(link).to_contain_text("(3 min)")
    page.keyboard.press("Escape")
    expect(page.locator("#brushed")).to_be_hidden()
    page.keyboard.press("Shift+ArrowLeft")
    expect(link).to_contain_text("(2 min)")
    href = link.get_attribute("href")
    page.keyboard.press("Enter")
    expect(page.locator("#window")).to_be_visible(timeout=WAIT_MS)
    assert href is not None and page.url.endswith(href)


@pytest.mark.parametrize("name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_at_a_desktop_s_width_and_a_phone_s(gw: Gateway, seeded: Seeded, browser: Browser,
                                           shots: Path, name: str,
                                           viewport: dict[str, int]) -> None:
    """Every control and the chart inside the viewport's width, nothing wider than it;
    on a phone one column, the chart drawn at its width, the refusals' rows as cards
    whose values are labelled. Screenshots of both are checked."""
    with tab(browser, viewport=viewport) as page:
        open_page(page, gw, place=f"#identity={SEEDED}")
        expect(page.locator("#who")).to_have_text(SEEDED, timeout=WAIT_MS)
        expect(page.locator("#groups tbody tr")).to_have_count(2)
        for selector in ("#range input[value='15m']", "#range input[value='custom']",
                         "#chart", f'#identities tr[data-identity="{SEEDED}"] a.identity',
                         "#groups tbody tr", "#all-groups tbody tr", "#chart-data summary",
                         "#legend", "#forget"):
            inside(page, selector, viewport)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        # Each table within its own part of the page, overlapping none.
        for table, part in (("#identities", "#overview"), ("#groups", "#detail"),
                            ("#alerts", "#detail"), ("#all-groups", "#all-refusals")):
            inner, outer = (page.locator(s).bounding_box() for s in (table, part))
            assert inner and outer and inner["x"] >= outer["x"] - 0.5 and (
                inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5), table
        chart = page.locator("#chart")
        drawn_width = page.evaluate("document.getElementById('chart').viewBox.baseVal.width")
        box = chart.bounding_box()
        assert box is not None and abs(drawn_width - box["width"]) <= 12, (drawn_width, box)
        label = page.locator("#groups tbody tr").first.locator("td").nth(1).evaluate(
            "(td) => getComputedStyle(td, '::before').content")
        if name == "phone":
            assert label == '"What: "'
            overview = page.locator("#overview").bounding_box()
            detail = page.locator("#detail").bounding_box()
            assert overview and detail and detail["y"] >= overview["y"] + overview["height"]
        else:
            assert label in ("none", "normal")
        checked_screenshot(page, shots, f"monitor-{name}.png", viewport)
        chart.scroll_into_view_if_needed()
        checked_screenshot(page, shots, f"monitor-{name}-chart.png", viewport)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_serious_violation(gw: Gateway, seeded: Seeded, browser: Browser,
                                        viewport: dict[str, int]) -> None:
    """axe-core signed out, and on an identity with its chart's tooltip shown and its
    table open, the custom range's fields shown: no violation of impact serious or
    critical."""
    with tab(browser, viewport=viewport) as page:
        open_page(page, gw, None, place=f"#identity={SEEDED}")
        assert serious_violations(page) == [], "signed out"
        page.fill("#token", DBA)
        page.click("#login button[type=submit]")
        expect(page.locator("#groups tbody tr")).to_have_count(2, timeout=WAIT_MS)
        assert serious_violations(page) == [], "an identity"
        page.click("#chart-data summary")
        page.check("#range input[value='custom']")
        expect(page.locator("#custom")).to_be_visible()
        page.focus("#chart")
        expect(page.locator("#tip")).to_be_visible()
        assert serious_violations(page) == [], "the tooltip, the table, the custom range"


# -- live ----------------------------------------------------------------------------------

def test_what_an_agent_does_shows_up_live(gw: Gateway, seeded: Seeded, page: Page,
                                          shots: Path) -> None:
    """With the page open on an agent, a DROP it sends through Envoy is refused and, with
    no reload, appears among its refusals, what it did and its record linked, and in the
    chart's current minute (counted by the gateway's tracker)."""
    agent = tokens.token(LIVE, ["agents"], ttl=600)
    open_page(page, gw, place=f"#identity={LIVE}")
    expect(page.locator("#who")).to_have_text(LIVE, timeout=WAIT_MS)
    expect(page.locator("#groups tbody td.empty")).to_have_text("No refusal in this range.")
    assert sum(values(page, "allowed")) + sum(values(page, "refusals")) == 0

    reply = gw.request("POST", "/sql", {"sql": DROP}, token=agent)
    assert reply.status == 403 and reply.trace_id
    row = page.locator(f'#groups tbody tr[data-traces="{reply.trace_id}"]')
    expect(row).to_be_visible(timeout=REFRESH_MS)
    expect(row.locator("td.text")).to_have_text(DROP)
    expect(row.locator("td").nth(0)).to_have_text("1")
    stack.wait_until(lambda: sum(values(page, "refusals")) >= 1, REFRESH_MS / 1000,
                     "the refusal counted in the chart")
    expect(page.locator(f'#identities tr[data-identity="{LIVE}"]')).to_be_visible()
    expect(row.locator("a.record")).to_have_attribute(
        "href", f"/recordings/ui#record={reply.trace_id}")
    screenshot(shots, "monitor-live.png", page.screenshot())
