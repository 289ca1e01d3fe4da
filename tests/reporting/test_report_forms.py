"""`tollgate audit report --format json,html,pdf` writes the three forms in one run, and
`verify-report` checks each of them, told apart by content: valid as written, and NOT
VALID, saying why, for each kind of tampering: a figure changed on the page, one byte of
the PDF changed, the page's embedded JSON swapped for another signed report, a file
sealed with another key, a file cut short. poppler reads the PDF back: every page names
the period and its number of the pages, landscape pages too, and the JSON is attached."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from extproc.recording.chain import Signer
from extproc.reporting import sealing
from tests.cli.test_audit_cli import audit, one_line

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process


@pytest.fixture
def forms(config: Path, signer: Signer, tmp_path: Path) -> dict[str, Path]:
    """The three forms of one run, and the public key beside them."""
    (tmp_path / "evidence").mkdir()
    made = audit(config, "report", "--since", "2h", "--format", "json,html,pdf", "--out",
                 str(tmp_path / "evidence" / "report.pdf"), "--until", "1m")
    assert made.returncode == 0, made
    out = {name: tmp_path / "evidence" / f"report.{name}" for name in ("json", "html", "pdf")}
    assert made.stdout.startswith(f"wrote {out['json']}, {out['html']}, {out['pdf']}: ")
    (tmp_path / "audit.pub").write_bytes(signer.public.public_pem())
    return out


def verify(config: Path, file: Path) -> subprocess.CompletedProcess[str]:
    return audit(config, "verify-report", str(file), "--public-key",
                 str(config.parent / "audit.pub"))


def pdf_text(pdf: Path, *flags: str) -> str:
    return subprocess.run(["pdftotext", *flags, str(pdf), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_one_run_writes_three_forms_of_one_report(config: Path,
                                                  forms: dict[str, Path]) -> None:
    """The same signed JSON in each: the file itself, the page's data block, the PDF's
    attachment; its hash shown on the page and on every page of the PDF."""
    document = json.loads(forms["json"].read_bytes())
    digest = document["signature"]["hash"]
    page = forms["html"].read_text()
    (block,) = re.findall(re.escape(sealing.JSON_BLOCK) + r"(.*?)</script>", page, re.DOTALL)
    assert json.loads(block) == document
    assert f"Report SHA-256 {digest}" in page
    attached = forms["pdf"].parent / "attached.json"
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(attached), str(forms["pdf"])],
                   check=True, timeout=60)
    assert attached.read_bytes() == forms["json"].read_bytes()
    for file in forms.values():
        valid = verify(config, file)
        assert valid.returncode == 0, valid
        assert valid.stdout.startswith(f"valid: {file} ({file.suffix[1:]}) was signed ")
        assert f"report SHA-256 {digest}, on " in valid.stdout


def test_every_pdf_page_names_the_period_the_hash_and_its_number(
        forms: dict[str, Path]) -> None:
    document = json.loads(forms["json"].read_bytes())
    period = document["report"]["period"]
    pages = pdf_text(forms["pdf"]).split("\f")[:-1]
    sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", "99", str(forms["pdf"])],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    shapes = re.findall(r"Page +\d+ size: +([\d.]+) x ([\d.]+)", sizes)
    assert len(pages) == len(shapes) >= 3
    assert any(float(w) > float(h) for w, h in shapes), "no landscape page"
    since = re.escape(_utc(period["since_us"]))
    for number, text in enumerate(pages, 1):
        flat = " ".join(text.split())
        assert f"Page {number} of {len(pages)}" in flat, (number, flat[-200:])
        assert re.search(f"Records started {since} to .* UTC, all targets", flat), number
        assert document["signature"]["hash"] in flat.replace(" ", ""), number


def test_each_kind_of_tampering_fails_saying_what(config: Path,
                                                  forms: dict[str, Path], signer: Signer,
                                                  tmp_path: Path) -> None:
    page, pdf = forms["html"].read_bytes(), forms["pdf"].read_bytes()

    def fails(name: str, data: bytes, reason: str) -> None:
        file = tmp_path / name
        file.write_bytes(data)
        found = verify(config, file)
        assert found.returncode == 1, found
        assert found.stdout.startswith(f"NOT VALID: {file} ("), found.stdout
        assert reason in found.stdout, found.stdout

    # A figure changed where a person reads it.
    shown = b'records in the period</td><td class="n">17<'
    assert shown in page
    fails("digit.html", page.replace(shown, shown.replace(b"17", b"16")),
          "the file was altered after it was sealed (its hash differs): what the page "
          "shows differs from what was sealed")
    # One byte of the PDF (in its compressed page content, near its middle).
    middle = len(pdf) // 2
    fails("byte.pdf", pdf[:middle] + bytes([pdf[middle] ^ 1]) + pdf[middle + 1:],
          "the file was altered after it was sealed (its hash differs)")
    # The page's embedded JSON swapped for another report, signed with the same key.
    other = audit(config, "report", "--since", "1h", "--format", "json", "--out",
                  str(tmp_path / "other.json"))
    assert other.returncode == 0, other
    block = re.compile(re.escape(sealing.JSON_BLOCK.encode()) + rb".*?</script>", re.DOTALL)
    swapped = block.sub(lambda _: sealing.JSON_BLOCK.encode()
                        + (tmp_path / "other.json").read_bytes().replace(b"<", b"\\u003c")
                        + b"</script>", page)
    fails("swapped.html", swapped, "its embedded JSON report is not the one the page names")
    # Sealed with another key: a run made with it, checked against the audit key.
    (tmp_path / "audit.key").rename(tmp_path / "kept.key")
    stranger = Signer.from_file(tmp_path / "audit.key", create=True)
    made = audit(config, "report", "--since", "2h", "--format", "html,pdf", "--out",
                 str(tmp_path / "stranger"))
    assert made.returncode == 1, made  # written; the record's checkpoints are not its
    for form in ("html", "pdf"):
        fails(f"stranger.{form}", (tmp_path / f"stranger.{form}").read_bytes(),
              f"sealed with key {stranger.public.key_id}, not {signer.public.key_id}")
    # Cut short.
    fails("short.pdf", pdf[:len(pdf) * 3 // 4], "the file is cut short (it does not end "
          "with %%EOF)")
    fails("short.html", page[:len(page) - 100], "the file is cut short")


def test_what_is_no_report_exits_2(config: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.html"
    plain.write_text("<!doctype html><html><body>17</body></html>\n")
    assert "no seal in this HTML" in one_line(audit(config, "verify-report", str(plain)))
    assert "several formats need --out NAME" in one_line(
        audit(config, "report", "--format", "json,pdf"))
    assert "--format xml: expected one or more of json, html, pdf" in one_line(
        audit(config, "report", "--format", "xml"))


def _utc(us: int) -> str:
    from extproc.codecs.text import utc
    return utc(us)
