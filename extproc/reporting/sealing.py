"""A report's page and PDF sealed with the audit key, as the JSON is signed.

The JSON is signed over its data (signing.py). A page or a PDF is signed as the file it
is, byte for byte, so that a figure changed where a person reads it fails as surely as
one changed in the JSON: the file is written with a seal of fixed width left blank, the
SHA-256 of those bytes is signed (a statement of kind `report-file`, domain-separated
from the JSON's `report` and from checkpoints by its kind), and the seal is filled in.
Checking blanks the seal again and hashes what is left: every byte but the seal's own is
covered, the signed JSON each file embeds included.

Where the seal lives: in a page, an HTML comment; in a PDF, a comment line just before
its final `startxref` (PDF comments may stand wherever white space may, and nothing
before it moves, so the cross-reference offsets stay true). Its marker cannot occur
elsewhere: a page escapes every `<` it shows or embeds, and a PDF's content is
compressed.

Each file embeds the signed JSON (a page as a JSON data block, a PDF as an attached
file), so that one file is the whole evidence; checking verifies that JSON's signature
too, and answers with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

from extproc.recording.chain import Checkpoint, Signer, Verifier
from extproc.reporting import signing

_KIND = "report-file"
# A seal's width: a signature statement is about 300 bytes as JSON.
_WIDTH = 512
_BLANK = b" " * _WIDTH
_MARKS = {"html": (b"<!--tollgate-seal:", b"-->"), "pdf": (b"%tollgate-seal:", b"\n")}
_FIELDS = {"writer": str, "seq": int, "kind": str, "hash": str, "signed_us": int,
           "key_id": str, "signature": str}
# The page's data block holding the signed JSON (html.py writes it).
JSON_BLOCK = '<script type="application/json" id="tollgate-signed-report">'
_JSON_BLOCK = re.compile(re.escape(JSON_BLOCK.encode()) + rb"(.*?)</script>", re.DOTALL)
_ATTACHED = re.compile(rb"<</Type /EmbeddedFile(.*?)/Length (\d+)>>\r?\nstream\r?\n",
                       re.DOTALL)
# What a PDF attaches: the signed JSON, under this name.
ATTACHMENT = "tollgate-report.json"


class NotAReport(ValueError):
    """The file is not a report tollgate writes (no seal, or not shaped as one)."""


@dataclass(frozen=True)
class Checked:
    """What checking a report file found: its form, the signed JSON it is or carries,
    when it was signed, and why it is not valid (None: it is)."""

    format: str
    document: dict[str, Any] | None
    signed_us: int
    problem: str | None


def seal_placeholder(format_: str) -> str:
    """The blank seal a page is written with (its place in a PDF is found, not kept)."""
    start, end = _MARKS[format_]
    return (start + _BLANK + end).decode()


def sealed(data: bytes, format_: str, signer: Signer) -> bytes:
    """`data` (a page with its blank seal, or a PDF as WeasyPrint wrote it) sealed."""
    start, end = _MARKS[format_]
    if format_ == "pdf":
        at = data.rindex(b"startxref")
        data = data[:at] + start + _BLANK + end + data[at:]
    statement = signer.sign(_KIND, f"audit-report.{format_}", 0,
                            hashlib.sha256(data).hexdigest(), int(time.time() * 1_000_000))
    seal = json.dumps(statement.as_json(), separators=(",", ":")).encode()
    assert len(seal) <= _WIDTH, len(seal)
    at = data.index(start + _BLANK + end) + len(start)
    return data[:at] + seal.ljust(_WIDTH) + data[at + _WIDTH:]


def form_of(data: bytes) -> str:
    """Which form a report file is, by its content."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "json"


def check(data: bytes, verifier: Verifier) -> Checked:
    """Whether `data` (a report's JSON, page or PDF, told apart by content) is as tollgate
    wrote it, signed with `verifier`'s key. Raises NotAReport for a file that is none."""
    format_ = form_of(data)
    if format_ == "json":
        try:
            document = json.loads(data)
        except ValueError:
            raise NotAReport("not JSON, a page or a PDF (not a report tollgate "
                             "writes)") from None
        return _json(document, verifier, "json", 0)
    cut = _cut_short(data, format_)
    if cut:
        return Checked(format_, None, 0, cut)
    start, end = _MARKS[format_]
    if data.count(start) != 1:
        raise NotAReport(f"no seal in this {format_.upper()} (not a report tollgate "
                         "writes, or one from before reports were sealed)"
                         if start not in data else f"more than one seal in this "
                         f"{format_.upper()}: it was altered")
    at = data.index(start) + len(start)
    field, after = data[at:at + _WIDTH], data[at + _WIDTH:at + _WIDTH + len(end)]
    statement = _statement(field) if after == end else None
    if statement is None:
        return Checked(format_, None, 0, "its seal is damaged (the file was altered)")
    if statement.kind != _KIND or statement.writer != f"audit-report.{format_}":
        return Checked(format_, None, 0, f"its seal is not a {format_.upper()} report's "
                                         f"(it is {statement.writer}'s)")
    if statement.key_id != verifier.key_id:
        return Checked(format_, None, 0,
                       f"sealed with key {statement.key_id}, not {verifier.key_id}")
    if not verifier.valid(statement):
        return Checked(format_, None, 0,
                       "its seal is not the audit key's (the seal was altered)")
    blanked = data[:at] + _BLANK + data[at + _WIDTH:]
    if hashlib.sha256(blanked).hexdigest() != statement.hash:
        return Checked(format_, None, statement.signed_us,
                       "the file was altered after it was sealed (its hash differs)"
                       + _why_altered(data, format_))
    try:
        document = _embedded(data, format_)
    except NotAReport as exc:
        return Checked(format_, None, statement.signed_us, str(exc))
    return _json(document, verifier, format_, statement.signed_us)


def report_hash(document: dict[str, Any]) -> str:
    """The signed JSON's hash: what its signature signs, and what every form shows."""
    return str(document["signature"]["hash"])


def _json(document: Any, verifier: Verifier, format_: str, signed_us: int) -> Checked:
    where = "" if format_ == "json" else "its embedded JSON report: "
    try:
        found = signing.problem(document, verifier)
    except ValueError as exc:
        if format_ == "json":
            raise NotAReport(str(exc)) from None
        return Checked(format_, None, signed_us, where + str(exc))
    return Checked(format_, document, signed_us or document["signature"]["signed_us"],
                   None if found is None else where + found)


def _cut_short(data: bytes, format_: str) -> str | None:
    ending = b"%%EOF" if format_ == "pdf" else b"</html>"
    if data.rstrip().endswith(ending):
        return None
    return f"the file is cut short (it does not end with {ending.decode()})"


def _statement(field: bytes) -> Checkpoint | None:
    try:
        found = json.loads(field)
    except ValueError:
        return None
    if not isinstance(found, dict) or set(found) != set(_FIELDS) or any(
            type(found[name]) is not kind for name, kind in _FIELDS.items()):
        return None
    return Checkpoint(**found)


def _embedded(data: bytes, format_: str) -> Any:
    """The signed JSON the page or PDF carries."""
    if format_ == "html":
        blocks = _JSON_BLOCK.findall(data)
        if len(blocks) != 1:
            raise NotAReport("it does not embed one signed JSON report")
        text = blocks[0]
    else:
        attached = list(_ATTACHED.finditer(data))
        if len(attached) != 1:
            raise NotAReport("it does not attach one signed JSON report")
        found = attached[0]
        text = data[found.end():found.end() + int(found[2])]
        if b"/FlateDecode" in found[1]:
            try:
                text = zlib.decompress(text)
            except zlib.error:
                raise NotAReport("its attached JSON report cannot be read") from None
    try:
        return json.loads(text)
    except ValueError:
        raise NotAReport("its embedded JSON report is not JSON") from None


def _why_altered(data: bytes, format_: str) -> str:
    """For a page, whether the JSON it embeds is the one it names (a swapped JSON) or
    what it shows was changed."""
    if format_ != "html":
        return ""
    try:
        document = _embedded(data, format_)
        named = report_hash(document).encode()
    except (NotAReport, KeyError, TypeError):
        return ": its embedded JSON report is damaged"
    if data.count(named) < 2:  # the block's own signature, and the hash the page shows
        return ": its embedded JSON report is not the one the page names"
    return ": what the page shows differs from what was sealed"
