"""`tollgate audit report` and `verify-report`, run as the commands they are, on a SQLite
store of real records: the signed JSON checks out and stops checking out when one byte
changes; the PDF renders to pages that are not blank and carry the sections."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from extproc.recording.chain import Signer
from tests.cli.test_audit_cli import audit, one_line, write_config
from tests.reporting.conftest import write_period
from tests.support import png

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process

HEADINGS = ("Integrity of the record", "Activity", "Privileged and held actions",
            "Refusals by rule", "Masked values by detector", "Alerts",
            "Policy revisions in force", "Retention", "Controls")


@pytest.fixture
async def config(sqlite_url: str, signer: Signer, tmp_path: Path) -> Path:
    await write_period(sqlite_url, signer, tmp_path)
    return write_config(tmp_path, sqlite_url, checkpoint_file=tmp_path / "anchors.jsonl")


def test_a_json_report_verifies_and_one_changed_byte_does_not(
        config: Path, signer: Signer, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    made = audit(config, "report", "--since", "2h", "--format", "json", "--out", str(out))
    assert made.returncode == 0, made
    assert json.loads(out.read_text())["report"]["refusals_by_rule"]["sql.write"] == 2

    public = tmp_path / "audit.pub"
    public.write_bytes(signer.public.public_pem())
    valid = audit(config, "verify-report", str(out), "--public-key", str(public))
    assert valid.returncode == 0, valid
    assert valid.stdout.startswith(f"valid: {out} was signed")

    text = out.read_bytes()
    at = text.index(b'"sql.write": 2') + len(b'"sql.write": ')
    out.write_bytes(text[:at] + b"3" + text[at + 1:])  # still JSON, one figure changed
    altered = audit(config, "verify-report", str(out))
    assert altered.returncode == 1, altered
    assert "the report was altered after it was signed" in altered.stdout

    out.write_bytes(text[:-3])
    assert "not JSON" in one_line(audit(config, "verify-report", str(out)))


def test_misuse_exits_2_with_one_line(config: Path) -> None:
    assert "--since 1h is not before --until 2h" in one_line(
        audit(config, "report", "--since", "1h", "--until", "2h", "--format", "json"))
    assert "--until: expected a duration" in one_line(
        audit(config, "report", "--until", "yesterday", "--format", "json"))
    assert "no target 'nope'" in one_line(
        audit(config, "report", "--target", "nope", "--format", "json"))


def test_the_pdf_renders_pages_with_every_section(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    made = audit(config, "report", "--since", "2026-01-01", "--format", "pdf", "--out",
                 str(out))
    assert made.returncode == 0, made
    assert out.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(out), str(tmp_path / "page")],
                   check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    for page in pages:
        image = png.decode(page.read_bytes())
        inked = len(image.pixels) - image.near((255, 255, 255), 8)
        assert inked > len(image.pixels) // 200, f"{page.name} is blank"
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    for heading in HEADINGS:
        assert heading in text
    assert "CC6.1" in text and "A.8.15" in text and "10.5" in text
