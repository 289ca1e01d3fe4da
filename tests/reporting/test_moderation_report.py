"""Moderators' acts on live sessions in the compliance report, in each of its forms: a
session ended (with a lock), an identity locked and unlocked, and an end the sessions
API refused, recorded as the sessions API records them (kind `moderation`), are listed
in the JSON with who, what, whose and why, in the page's section, and in the PDF's text;
and they are no agent's acting (the identities table leaves the moderator out)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from extproc.recording import Evidence
from extproc.recording.chain import Signer
from tests.cli.test_audit_cli import audit, write_config
from tests.recording.conftest import evidence, record

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process

NOW = time.time()
LOCK_US = int((NOW + 1800) * 1e6)


def moderation(n: int, action: str, meaning: dict[str, Any], refusal: str | None = None,
               by: str = "sec-sam") -> Evidence:
    """A moderator's act as the sessions API records it (admin/live/api.py)."""
    found = evidence(n, sub=by, method="POST", path=f"/sessions/act/{n}",
                     started=NOW - 600 + n)
    found.kind, found.decisions, found.target = "moderation", [], None
    found.meaning_key, found.meaning = "moderation", {"action": action, **meaning}
    status = 200 if refusal is None else 403
    found.response = {"status": status, "headers": {"content-type": "application/json"},
                      "body": None}
    found.outcome = {"tollgate.decision.action": "allow" if refusal is None else "deny",
                     "http.response.status_code": status,
                     **({"tollgate.refusal": refusal} if refusal else {})}
    return found


@pytest.fixture
async def config(sqlite_url: str, signer: Signer, tmp_path: Path) -> Path:
    ended = {"session": "run-42", "reason": "prompt injection", "identity": "svc-etl",
             "front": "mcp", "target": "tools", "replica": "replica-1",
             "lock_until_us": LOCK_US}
    await record(sqlite_url, signer, [
        evidence(1, sub="svc-etl", started=NOW - 700),  # an agent acting
        moderation(2, "end", ended),
        moderation(3, "lock", {"identity": "svc-web", "reason": "leaked token",
                               "lock_until_us": None}),
        moderation(4, "unlock", {"identity": "svc-web", "reason": "rotated"}),
        moderation(5, "end", {"session": "run-43", "reason": "curious"},
                   refusal="forbidden", by="svc-nosy"),
    ])
    return write_config(tmp_path, sqlite_url)


def test_each_form_lists_the_moderators_acts(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    made = audit(config, "report", "--since", "2h", "--format", "json,html,pdf",
                 "--out", str(out))
    assert made.returncode == 0, made
    data = json.loads((tmp_path / "report.json").read_bytes())["report"]
    listed = data["moderation"]
    assert listed["count"] == 4
    first = listed["listed"][0]
    assert {k: first[k] for k in ("moderator", "action", "session", "identity", "front",
                                  "target", "reason", "lock_until_us", "refusal")} == {
        "moderator": "sec-sam", "action": "end", "session": "run-42",
        "identity": "svc-etl", "front": "mcp", "target": "tools",
        "reason": "prompt injection", "lock_until_us": LOCK_US, "refusal": None}
    assert [(m["action"], m["refusal"]) for m in listed["listed"]] == [
        ("end", None), ("lock", None), ("unlock", None), ("end", "forbidden")]
    # Moderators are not agents acting through the gateway.
    assert [i["identity"] for i in data["identities"]] == ["svc-etl"]
    assert "4 moderators' acts on live sessions" in json.dumps(data["controls"])

    page = (tmp_path / "report.html").read_text()
    section = page[page.index("Live sessions ended and identities locked"):]
    section = section[:section.index("</section>")]
    assert "attempts the sessions API refused): 4" in section
    for cell in ("<td>run-42</td>", "<td>prompt injection</td>", "<td>lock, until unlocked</td>",
                 "<td>unlock</td>", "<td>refused (forbidden)</td>", "<td>svc-nosy</td>"):
        assert cell in section, cell
    assert "<td>end, locked until " in section

    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    flat = " ".join(text.split())
    assert "Live sessions ended and identities locked" in flat
    assert "prompt injection" in flat and "leaked token" in flat
