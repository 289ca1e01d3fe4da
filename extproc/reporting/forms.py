"""A report's forms, JSON, HTML and PDF, written in one run from one gathered `Report`.

The JSON is signed once; the page embeds that very document and the PDF attaches its
bytes, so the three forms carry the same figures, the same period and the same hash,
and each is sealed with the audit key (sealing.py). A report asked for in one form alone
is made the same way: its page or PDF still carries the signed JSON.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable

from extproc.recording.chain import Signer
from extproc.reporting import html, sealing, signing
from extproc.reporting.evidence import Report

FORMATS = ("json", "html", "pdf")


def written(report: Report, signer: Signer, formats: Iterable[str]) -> dict[str, bytes]:
    """Each of `formats` (of FORMATS) as its file's bytes, in the order asked."""
    asked = list(dict.fromkeys(formats))
    unknown = set(asked) - set(FORMATS)
    if unknown:
        raise ValueError(f"no report format {', '.join(sorted(unknown))}: "
                         f"one or more of {', '.join(FORMATS)}")
    document = signing.signed(report.data, signer)
    as_json = json.dumps(document, ensure_ascii=False, indent=1).encode() + b"\n"
    page = html.render(report, document) if {"html", "pdf"} & set(asked) else ""
    made = {"json": lambda: as_json,
            "html": lambda: sealing.sealed(page.encode(), "html", signer),
            "pdf": lambda: sealing.sealed(html.pdf(page, as_json), "pdf", signer)}
    return {format_: made[format_]() for format_ in asked}


def zipped(files: dict[str, bytes], name: str) -> bytes:
    """The forms in one zip archive, as `name`.json, .html, .pdf."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for format_, data in files.items():
            archive.writestr(f"{name}.{format_}", data)
    return out.getvalue()
