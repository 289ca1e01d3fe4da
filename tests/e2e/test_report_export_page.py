"""The recordings page's export, in a real browser over a real Envoy and tollgate.

A reader signs in to `/recordings/ui`, names a period and downloads the compliance
report: one zip holding its JSON, HTML and PDF, made in one run (one report, one hash),
each of which `tollgate audit verify-report` finds valid with the audit key's public
half. The download is a read of the record, recorded as an `access` of the reader's.
A refusal (a period that is no duration) is said on the page, nothing downloaded; the
page with its export form has no serious axe-core violation.

Playwright never downloads a browser here: without Debian's Chromium
(tests/support/browser.py) these tests fail.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from extproc import config
from extproc.quickstart import stack
from extproc.recording.chain import Signer
from tests.e2e.test_approvals_page import WAIT_MS
from tests.support import tokens
from tests.support.axe import serious_violations
from tests.support.cli import tollgate
from tests.support.gateway import Gateway, module_gateway

pytestmark = pytest.mark.e2e

READER = tokens.token("ada", ["auditors"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "report_export") as running:
        for _ in range(3):
            running.request("GET", "/echo")
        running.wait_for_records(3)
        yield running


def sign_in(page: Page, gw: Gateway) -> None:
    page.goto(gw.admin_url + "/recordings/ui")
    page.fill("#token", READER)
    page.click("#login button[type=submit]")
    expect(page.locator("#recordings")).to_be_visible(timeout=WAIT_MS)


def test_the_export_downloads_three_signed_forms_of_one_run(
        gw: Gateway, page: Page, tmp_path: Path) -> None:
    sign_in(page, gw)
    page.fill("#report-since", "1h")
    with page.expect_download(timeout=60_000) as downloading:
        page.click("#report button[type=submit]")
    download = downloading.value
    assert download.suggested_filename.startswith("tollgate-report-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    expect(page.locator("#report-status")).to_contain_text("each signed", timeout=WAIT_MS)

    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "report")
    files = sorted((tmp_path / "report").iterdir())
    assert [f.suffix for f in files] == [".html", ".json", ".pdf"]
    loaded = config.load(gw.config_path)
    public = tmp_path / "audit.pub"
    key = loaded.resolve(loaded.recording.signing_key_file)
    public.write_bytes(Signer.from_file(key).public.public_pem())
    digest = json.loads(files[1].read_bytes())["signature"]["hash"]
    for file in files:
        checked = tollgate("audit", "verify-report", file, "--public-key", public,
                           "--config", gw.config_path)
        assert checked.returncode == 0, checked
        assert f"report SHA-256 {digest}, on " in checked.stdout

    def exported() -> list[dict]:
        return [r for r in gw.records("access")
                if r["meaning"]["access"]["endpoint"] == "report"]

    stack.wait_until(lambda: len(exported()) == 1, 10, "the download's access record")
    (read,) = exported()
    assert read["identity"]["sub"] == "ada"
    assert read["meaning"]["access"]["query"] == {"format": "zip", "since": "1h"}
    assert (read["outcome"]["action"], read["outcome"]["status"]) == ("allow", 200)


def test_a_refused_export_says_why_and_downloads_nothing(gw: Gateway, page: Page) -> None:
    sign_in(page, gw)
    downloads: list[object] = []
    page.on("download", lambda download: downloads.append(download))
    page.fill("#report-since", "a while")
    page.click("#report button[type=submit]")
    expect(page.locator("#report-status")).to_contain_text("bad_request: since", timeout=WAIT_MS)
    expect(page.locator("#report-status")).to_have_class("error")
    assert downloads == []
    assert serious_violations(page) == []
