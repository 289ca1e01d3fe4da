"""Three people's walkthroughs of the admin pages, played in Debian's Chromium against a
real gateway (Envoy, tollgate, the demo's SQL upstream, Debian's sshd behind the SSH
front), for the docs' pages in docs/walkthroughs/: an approver (dana, group dba), a
security engineer (sam, group security: a sessions moderator and a reader of the record)
and an auditor (ada, group auditors: a reader).

Each step is checked by axe-core at 1280 px and at 390 px wide and, given a folder, shot
at both widths as viewport screenshots (PNG, reduced to 256 colours: the pages are flat
colours and text), named `STEP-1280.png` and `STEP-390.png`. A serious or critical
violation at any step fails the run, listing them all.

    .venv/bin/python -m tests.support.walkthroughs docs/walkthroughs/img

(`make walkthroughs`). tests/e2e/test_walkthroughs_e2e.py plays them without writing images.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import Held, api, pending_for
from tests.e2e.test_live_attach_e2e import ssh_tty
from tests.e2e.test_live_sessions_e2e import listed
from tests.e2e.test_live_view_e2e import typed
from tests.e2e.test_ssh_e2e import web
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.axe import serious_violations
from tests.support.browser import chromium, tab
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, Reply, tollgate_config
from tests.support.sshd import start_sshd
from tests.support.walkthrough_steps import APPROVER, AUDITOR, IMAGES, SECURITY, WIDTHS, Step

WAIT_MS = 15_000  # the longest any condition is waited for in the browser

AGENT_NAME = "svc-autogen"
AGENT = tokens.token(AGENT_NAME, ["agents"])
SHELL_AGENT = "svc-deploy"  # the agent whose SSH shell the security engineer ends
DANA = tokens.token("dana", ["dba"])
SAM = tokens.token("sam", ["security"])
ADA = tokens.token("ada", ["auditors"])
RUN = "nightly-cleanup"  # the agent's run (its x-session-id), which the auditor reads
REFUSED = "DROP TABLE customers"
HELD = "DELETE FROM customers"


@dataclass
class Camera:
    """Checks each step with axe at both widths and, given `out`, shoots it at both."""

    out: Path | None
    violations: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # each step's stem, as it was checked
    shot: list[Path] = field(default_factory=list)

    def take(self, page: Page, step: Step, focus: Locator | None = None) -> None:
        """`step` at each width, `focus` (else the top) at the top of the view; back at
        the first width."""
        for width, viewport in WIDTHS.items():
            page.set_viewport_size(viewport)
            if focus is not None:
                focus.evaluate("(e) => { e.scrollIntoView({block: 'start'}); "
                               "window.scrollBy(0, -12); }")
            for found in serious_violations(page):
                self.violations.append(f"{step.name} at {width} px: {found}")
            if self.out is not None:
                self.shot.append(small_png(page.screenshot(),
                                           self.out / f"{step.name}-{width}.png"))
        self.taken.append(step.name)
        page.set_viewport_size(next(iter(WIDTHS.values())))


def small_png(data: bytes, path: Path) -> Path:
    """The screenshot `data` written to `path` in 256 colours (a fifth of its size)."""
    with Image.open(io.BytesIO(data)) as shot:
        shot.convert("RGB").quantize(256).save(path, optimize=True)
    return path


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#token", token)
    page.click("#login button[type=submit]")


# -- the approver -------------------------------------------------------------------------

def run_sql(gw: Gateway, text: str, timeout: float = 90) -> Reply:
    """The agent's statement, in its run."""
    return gw.request("POST", "/sql", {"sql": text}, headers={"x-session-id": RUN},
                      token=AGENT, timeout=timeout)


def approver(gw: Gateway, browser: Browser, camera: Camera) -> None:
    """dana sees the agent's held DELETE, reads why and what the agent did before (a
    refused DROP TABLE), approves it, reads what it then did, and the decided history."""
    assert run_sql(gw, "SELECT count(*) FROM customers").status == 200
    assert run_sql(gw, REFUSED).status == 403

    def refusal_recorded() -> bool:
        code, found = api(gw, "GET", f"/recordings/search?identity={AGENT_NAME}", ADA)
        return code == 200 and any(r["action"] == "deny" for r in found["records"])

    stack.wait_until(refusal_recorded, 15, "the agent's refused DROP in the record")
    held = Held(lambda: run_sql(gw, HELD))
    approval = pending_for(gw, HELD)
    with tab(browser, viewport=WIDTHS[1280]) as page:
        sign_in(page, gw.admin_url + "/approvals/ui", DANA)
        row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
        expect(row.locator("button.approve")).to_be_visible(timeout=WAIT_MS)
        camera.take(page, APPROVER[0], row)

        row.locator("td.summary a").click()
        expect(page.locator("#detail-what")).to_have_text(HELD, timeout=WAIT_MS)
        expect(page.locator("#detail-activity li.refused").first).to_be_visible(
            timeout=WAIT_MS)
        camera.take(page, APPROVER[1])
        camera.take(page, APPROVER[2], page.locator("#detail-activity"))

        page.locator("#detail-actions button.approve").click()
        expect(page.locator("dialog#confirm")).to_be_visible(timeout=WAIT_MS)
        page.fill("#confirm-reason", "ticket 4711: the nightly cleanup")
        camera.take(page, APPROVER[3])
        page.click("#confirm-yes")
        decided = page.locator("#decided")
        expect(decided).to_contain_text("Then it ran:", timeout=WAIT_MS)
        assert held.result().status == 200
        camera.take(page, APPROVER[4], decided)

        page.goto(gw.admin_url + "/approvals/ui#pending")
        page.click("#tab-history")
        decided_row = page.locator(f'table#history tr[data-id="{approval["id"]}"]')
        expect(decided_row).to_contain_text("dana", timeout=WAIT_MS)
        camera.take(page, APPROVER[5], decided_row)


# -- the security engineer ------------------------------------------------------------------

def security_engineer(gw: Gateway, browser: Browser, camera: Camera, work: Path) -> None:
    """sam, from the landing page to the sessions page, watches an agent's SSH shell live
    (its `cat .env` refused), ends it with the default lock and sees the lock."""
    client = ssh_tty(gw, SHELL_AGENT, work)
    try:
        client.send("echo ready-$((40+2))\r")
        client.out.wait(lambda line: "ready-42" in line, "the agent's shell")
        (session,) = listed(gw, SHELL_AGENT)
        session_id = str(session["session_id"])
        with tab(browser, viewport=WIDTHS[1280]) as page:
            sign_in(page, gw.admin_url + "/", SAM)
            sessions = page.locator("#may-sessions")
            expect(sessions.locator("a")).to_be_visible(timeout=WAIT_MS)
            camera.take(page, SECURITY[0])

            sessions.locator("a").click()
            row = page.locator(f'#sessions tr[data-session="{session_id}"]')
            expect(row).to_contain_text(SHELL_AGENT, timeout=WAIT_MS)
            camera.take(page, SECURITY[1], row)

            row.get_by_role("link", name=f"Watch session {session_id} of {SHELL_AGENT} live"
                            ).click()
            expect(page.locator("#live-status")).to_contain_text(
                f"Watching ssh of {SHELL_AGENT}", timeout=WAIT_MS)
            typed(client, [("cat .env", "refused: credential")])
            refused = page.locator("#live-records li", has_text="cat .env")
            expect(refused).to_contain_text("refused", timeout=WAIT_MS)
            camera.take(page, SECURITY[2], page.locator("#live-title"))
            camera.take(page, SECURITY[3], page.locator("#live h3"))

            page.goto(gw.admin_url + "/sessions/ui")
            row.get_by_role("button", name=f"End session {session_id}").click()
            expect(page.locator("#end-means")).to_contain_text("locks", timeout=WAIT_MS)
            page.fill("#end-reason", "it tried to read a credential file")
            camera.take(page, SECURITY[4], page.locator("#end-form"))

            page.click("#end-confirm")
            expect(page.locator("#status")).to_contain_text(
                f"{SHELL_AGENT} is locked out until", timeout=WAIT_MS)
            lock = page.locator("#locks tbody tr", has_text=SHELL_AGENT)
            expect(lock).to_be_visible(timeout=WAIT_MS)
            camera.take(page, SECURITY[5], page.locator("#locks-title"))
    finally:
        client.close()


# -- the auditor ----------------------------------------------------------------------------

def auditor(gw: Gateway, browser: Browser, camera: Camera, work: Path) -> None:
    """ada reads the recordings (the agent's run as a timeline) and the compliance report
    the page exports."""
    with tab(browser, viewport=WIDTHS[1280]) as page:
        sign_in(page, gw.admin_url + "/recordings/ui", ADA)
        run = page.locator(f'#session-list tr[data-session="{RUN}"]')
        expect(run).to_be_visible(timeout=WAIT_MS)
        camera.take(page, AUDITOR[0])

        run.locator("a.session").click()
        timeline = page.locator("#timeline li")
        refused = timeline.filter(has_text=REFUSED).first
        expect(refused).to_be_visible(timeout=WAIT_MS)
        expect(timeline.filter(has_text="dana").first).to_be_visible(timeout=WAIT_MS)
        camera.take(page, AUDITOR[1], page.locator("#session-title"))
        camera.take(page, AUDITOR[2], refused)

        page.fill("#report-since", "1d")
        with page.expect_download(timeout=120_000) as downloading:
            page.click("#report button[type=submit]")
        archive = work / "report.zip"
        downloading.value.save_as(archive)
        with zipfile.ZipFile(archive) as files:
            (html,) = [name for name in files.namelist() if name.endswith(".html")]
            files.extract(html, work)
        page.goto((work / html).as_uri())
        expect(page.locator("h2", has_text="Integrity of the record")).to_be_visible()
        camera.take(page, AUDITOR[3])
        for step, title, shows in ((AUDITOR[4], "Privileged and held actions", HELD),
                                   (AUDITOR[5], "Live sessions ended", SHELL_AGENT)):
            heading = page.locator("h2", has_text=title)
            expect(page.locator("section", has=heading)).to_contain_text(shows)
            camera.take(page, step, heading)


# -- the stage --------------------------------------------------------------------------------

@contextmanager
def stage(work: Path) -> Iterator[Gateway]:
    """The gateway the three play on: the default pack, the demo's SQL target and an SSH
    target on Debian's sshd; a hold waits up to 2 minutes (a person decides within it)."""
    (work / "sshd").mkdir()
    (work / "gateways").mkdir()
    with OtlpReceiver() as otlp, start_sshd(work / "sshd") as host:
        factory = GatewayFactory(work / "gateways", otlp)
        try:
            yield factory(targets=[*tollgate_config(POLICIES, "", 0, None)["targets"],
                                   web(host)],
                          ssh={}, settings={"approvals": {"max_hold_seconds": 120}})
        finally:
            factory.stop_all()


def play(out: Path | None, say: Callable[[str], Any] = print) -> Camera:
    """The three walkthroughs, in order (the auditor reads what the others did); the
    camera holds what axe found and, given `out`, the images written."""
    camera = Camera(out)
    with tempfile.TemporaryDirectory(prefix="tollgate-walkthroughs-") as scratch:
        work = Path(scratch)
        with stage(work) as gw, chromium("the walkthroughs") as browser:
            say("the approver (dana)")
            approver(gw, browser, camera)
            say("the security engineer (sam)")
            security_engineer(gw, browser, camera, work)
            say("the auditor (ada)")
            auditor(gw, browser, camera, work)
    return camera


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=IMAGES,
                        help="where the images go (default: docs/walkthroughs/img)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # What tollgate and the tools it starts cache for a user (matplotlib's font list,
    # Chromium's crash reports) goes to a folder of this run's, as in the test suite
    # (tests/conftest.py), never to the user's ~/.cache and ~/.config.
    with tempfile.TemporaryDirectory(prefix="tollgate-walkthroughs-tools-") as tools:
        os.environ.update(TOLLGATE_CACHE=os.path.join(tools, "cache"),
                          XDG_CONFIG_HOME=os.path.join(tools, "config"),
                          XDG_CACHE_HOME=os.path.join(tools, "tools-cache"))
        camera = play(args.out)
    total = sum(path.stat().st_size for path in camera.shot)
    for path in camera.shot:
        print(f"{path.stat().st_size // 1024:5d} KiB  {path}")
    print(f"{len(camera.shot)} images, {total / 1e6:.2f} MB")
    if camera.violations:
        print("axe-core found serious or critical violations:", *camera.violations,
              sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
