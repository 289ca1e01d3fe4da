"""An export verifies away from the store with the public key alone, in both forms; an
edited line, a line dropped from a run or a forged statement in it is named.

The chain is written through a real Recorder (checkpointed two by two), exported from
the store, and the file is then checked, or edited as someone handling it could."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from extproc.recording import export, retention
from extproc.recording.chain import Signer, record_hash
from extproc.recording.export import ExportError, verify
from extproc.store import Connection, connect
from tests.recording.conftest import BILLING, TARGET, evidence, record

NOW = time.time()
FOREVER = (0, int((NOW + 3600) * 1e6))


@pytest.fixture
async def connection(store_url: str, signer: Signer) -> AsyncIterator[Connection]:
    """Five records of writer-a, checkpointed two by two (and the last at close)."""
    await record(store_url, signer, [evidence(n, session="s-1") for n in range(5)],
                 checkpoint_every=2, batch_size=2)
    opened = connect(store_url)
    yield opened
    opened.close()


def exported(connection: Connection, path: Path, form: str, target: str | None = None,
             ) -> list[dict[str, Any]]:
    with path.open("wb") as out:
        export.export(connection, out, form, *FOREVER, target)
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("form", ["jsonl", "ocsf"])
def test_an_export_verifies_with_the_public_key_and_says_what_is_vouched_for(
    connection: Connection, signer: Signer, tmp_path: Path, form: str,
) -> None:
    lines = exported(connection, tmp_path / "out", form)
    assert len(lines) == 5 + 3  # the records, then the checkpoints at 2, 4 and 5
    assert [line.get("type") for line in lines[5:]] == ["statement"] * 3
    report = verify(tmp_path / "out", signer.public)
    assert report.intact, report.problems
    assert (report.records, report.statements, report.formats) == (5, 3, {form})
    ((first, last, vouched),) = [(r.first, r.last, r.vouched_to)
                                 for r in report.runs["writer-a"]]
    assert (first, last, vouched) == (1, 5, 5)


def test_an_ocsf_line_is_an_api_activity_event_carrying_the_record_whole(
    connection: Connection, tmp_path: Path,
) -> None:
    line = exported(connection, tmp_path / "out", "ocsf")[0]
    assert (line["class_uid"], line["category_uid"], line["activity_id"], line["type_uid"]) == (
        6003, 6, 2, 600302)  # GET: Read
    assert line["actor"] == {"user": {"uid": "svc-autogen", "name": "svc-autogen",
                                      "email_addr": None}}
    assert line["api"]["operation"] == "GET /api/orders"
    assert line["http_request"] == {"http_method": "GET", "url": {"path": "/api/orders"}}
    assert (line["status_id"], line["http_response"]) == (1, {"code": 200})
    place = line["unmapped"]["tollgate"]
    assert (place["writer"], place["seq"], place["session_id"]) == ("writer-a", 1, "s-1")
    assert place["hash"] == record_hash(place["prev_hash"], "writer-a", 1, line["raw_data"])


@pytest.mark.parametrize(("form", "edit"), [
    ("jsonl", lambda line: line.update(content=line["content"].replace("orders", "refund"))),
    ("ocsf", lambda line: line.update(raw_data=line["raw_data"].replace("orders", "refund"))),
    # A field a SIEM searches, edited while the record it came from is left alone.
    ("ocsf", lambda line: line["actor"]["user"].update(uid="someone-else")),
])
def test_an_edited_line_is_named(connection: Connection, signer: Signer, tmp_path: Path,
                                 form: str, edit: object) -> None:
    lines = exported(connection, tmp_path / "out", form)
    edit(lines[2])  # type: ignore[operator]
    write(tmp_path / "out", lines)
    report = verify(tmp_path / "out", signer.public)
    assert report.problems[0].startswith("line 3 (writer-a:3): ")
    assert report.problems[0].endswith("(edited)")


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link_and_the_checkpoint(
    connection: Connection, signer: Signer, tmp_path: Path,
) -> None:
    lines = exported(connection, tmp_path / "out", "jsonl")
    forged = str(lines[3]["content"]).replace("orders", "refund")
    lines[3].update(content=forged, hash=record_hash(str(lines[3]["prev_hash"]), "writer-a",
                                                     4, forged))
    write(tmp_path / "out", lines)
    assert verify(tmp_path / "out", signer.public).problems == [
        "line 4 (writer-a:4): differs from what a signed checkpoint says it was (replaced)",
        "line 5 (writer-a:5): does not link to the record before it (inserted, or its "
        "predecessor replaced)"]


def test_a_dropped_line_splits_the_run_and_its_part_is_vouched_for_by_no_checkpoint(
    connection: Connection, signer: Signer, tmp_path: Path,
) -> None:
    """Another target's records are not in a target's export: a missing line is not an
    error, but only a checkpoint says which runs are whole."""
    lines = exported(connection, tmp_path / "out", "jsonl")
    write(tmp_path / "out", lines[:1] + lines[2:])  # record 2, the one checkpointed, gone
    report = verify(tmp_path / "out", signer.public)
    assert report.intact
    assert [(r.first, r.last, r.vouched_to) for r in report.runs["writer-a"]] == [
        (1, 1, 0), (3, 5, 5)]


def test_a_forged_statement_is_named(connection: Connection, signer: Signer,
                                     tmp_path: Path) -> None:
    lines = exported(connection, tmp_path / "out", "jsonl")
    lines[-1].update(seq=4)
    write(tmp_path / "out", lines)
    assert verify(tmp_path / "out", signer.public).problems == [
        "line 8: its checkpoint statement's signature is not the audit key's (forged, or "
        "signed with another key)"]


async def test_a_period_and_a_target_choose_the_records_and_cut_statements_travel(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """writer-a: 1 (billing, old, kept for ever), 2..3 (old: cut), 4..6 (recent; 5 is
    billing's). Orders' last day: 4 and 6, with the chain's statements, the cut's too."""
    old = NOW - 40 * 86400
    await record(sqlite_url, signer, [
        evidence(n, started=old if n < 3 else NOW,
                 target=BILLING if n in (0, 4) else TARGET) for n in range(6)])
    connection = connect(sqlite_url)
    try:
        retention.prune(connection, signer, retention.Rules(30, {"billing": 0}))
        with (tmp_path / "out").open("wb") as out:
            done = export.export(connection, out, "jsonl", int((NOW - 86400) * 1e6),
                                 FOREVER[1], "orders")
    finally:
        connection.close()
    assert (done.records, done.writers, done.statements) == (2, ["writer-a"], 2)
    lines = [json.loads(line) for line in (tmp_path / "out").read_text().splitlines()]
    assert [line["seq"] for line in lines] == [4, 6, 3, 6]
    assert (lines[2]["kind"], lines[2]["from_seq"]) == ("cut", 2)
    report = verify(tmp_path / "out", signer.public)
    assert report.intact, report.problems
    assert [(r.first, r.last, r.vouched_to) for r in report.runs["writer-a"]] == [
        (4, 4, 0), (6, 6, 6)]


def test_a_file_that_is_no_export_is_refused(signer: Signer, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ExportError, match="no record or statement line: not a tollgate"):
        verify(tmp_path / "empty", signer.public)
    with pytest.raises(ExportError, match="cannot read"):
        verify(tmp_path / "none", signer.public)
    (tmp_path / "junk").write_text("{}\n")
    with pytest.raises(ExportError):
        verify(tmp_path / "junk", signer.public)
