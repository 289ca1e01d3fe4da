"""`tollgate audit report` and `verify-report`, run as the commands they are, on a SQLite
store of real records: the signed JSON checks out and stops checking out when one byte
changes; the PDF renders to pages that are not blank and carry the sections, and no
column is cut off at a page's edge (poppler reads the PDF back: every word's box is
inside its page, and a long identity and statement are there whole)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from extproc.recording.chain import Signer
from tests.cli.test_audit_cli import audit, one_line
from tests.reporting.conftest import LONG_IDENTITY, LONG_WHAT
from tests.support import png

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process

HEADINGS = ("Integrity of the record", "Activity", "Privileged and held actions",
            "Refusals by rule", "Masked values by detector", "Alerts",
            "Policy revisions in force", "Retention", "Controls")


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
    assert valid.stdout.startswith(f"valid: {out} (json) was signed")

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


def words_outside(pdf: Path) -> list[str]:
    """The words poppler finds beyond the printed area of their page (its margins are
    12 mm and more: a word within 8 pt of an edge, or past it, was cut off)."""
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    outside = []
    for width, height, words in re.findall(
            r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', boxes, re.DOTALL):
        for x0, y0, x1, y1, word in re.findall(
                r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                r"([^<]*)<", words):
            left, top, right, bottom = (float(v) for v in (x0, y0, x1, y1))
            if min(left, top) < 8 or right > float(width) - 8 or bottom > float(height) - 8:
                outside.append(word)
    assert boxes.count("<word") > 500, "poppler read (nearly) no words"
    return outside


def test_no_column_of_the_pdf_is_cut_off(config: Path, tmp_path: Path) -> None:
    """A long identity and a long statement, neither with a place to break a line, in
    tables of many columns: every word is inside its page, and each is there whole
    (read in the order it was drawn); held actions and approvals are on landscape pages;
    a held action nobody decided is "still undecided", refused attempts at deciding are
    listed, approvers and readers counted apart."""
    out = tmp_path / "report.pdf"
    made = audit(config, "report", "--since", "2h", "--format", "pdf", "--out", str(out))
    assert made.returncode == 0, made
    assert words_outside(out) == []
    drawn = subprocess.run(["pdftotext", "-raw", str(out), "-"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    flat = "".join(drawn.split())
    assert flat.count(LONG_IDENTITY) >= 3  # acting identities, held, asked by
    assert flat.count("".join(LONG_WHAT.split())) == 2  # held, refused attempt
    assert "held;stillundecidedwhenitswaitended" in flat and "None" not in flat
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "Refused attempts at deciding" in text and "reason_required" in text
    for heading in ("Approvers", "Readers of the record"):
        assert heading in text
    sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", "99", str(out)], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    shapes = re.findall(r"Page +\d+ size: +([\d.]+) x ([\d.]+)", sizes)
    assert any(float(w) > float(h) for w, h in shapes), "no landscape page"
    assert any(float(w) < float(h) for w, h in shapes), "no portrait page"
