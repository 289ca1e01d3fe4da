"""Who the report counts as readers of the record, and how it lists policy loads.

Readers are the people who read something: a refused read a page made on its own (the
approvals page asking for a requester's activity, `background=1`) is nobody's attempt,
and whoever was only refused is listed apart. Policy loads in a row of the same revision
and files (a gateway reloading unchanged files, several gateways starting) are one line,
with how many and the first and last."""

from __future__ import annotations

from pathlib import Path

from extproc.recording.chain import Signer
from extproc.recording.policy_loads import policy_evidence
from tests.recording.conftest import record
from tests.reporting.conftest import NOW, access_record
from tests.reporting.test_evidence import page_of, report_of


async def test_readers_are_who_read_and_a_pages_own_reads_are_no_ones(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    """Two people read; three approvers' pages were refused on their own, one person
    asked and was refused: two readers of the record, not six."""
    reads = [access_record(1, "auditor-ann", 4), access_record(2, "auditor-ann", 2),
             access_record(3, "auditor-bo", 1),
             access_record(4, "auditor-bo", 0, "forbidden"),
             *(access_record(5 + n, approver, 0, "forbidden", background=True)
               for n, approver in enumerate(("alice", "bob", "carol"))),
             access_record(8, "alice", 0, "forbidden", background=True),
             access_record(9, "svc-nosy", 0, "forbidden")]
    for n, read in enumerate(reads):
        read.started = NOW - 600 + n
    await record(sqlite_url, signer, reads, checkpoint_file=tmp_path / "anchors.jsonl")
    report = report_of(sqlite_url, signer, tmp_path)
    data = report.data
    assert data["readers"] == [
        {"reader": "auditor-ann", "reads": 2, "refused": 0, "records_returned": 6},
        {"reader": "auditor-bo", "reads": 1, "refused": 1, "records_returned": 1}]
    assert data["refused_readers"] == [{"identity": "svc-nosy", "refused": 1}]
    assert data["background_refused"] == {"alice": 2, "bob": 1, "carol": 1}
    assert data["records"]["by_kind"] == {"access": 9}  # every read stays a record
    page = page_of(report, signer)
    assert 'readers of the record (reading, not acting)</td><td class="n">2' in page
    assert "Refused reads an admin page made on its own, nobody asking: 4" in page
    (mapped,) = [c for c in data["controls"] if c["control"] == "10.3"]
    assert "3 by 2 readers in the period, and 2 refused" in mapped["shows"]


async def test_identical_policy_loads_in_a_row_are_one_line(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    directory.mkdir()
    first = ("policy.rego", "package tollgate\n")
    changed = ("policy.rego", "package tollgate\ndefault allow := false\n")

    def load(revision: str, module: tuple[str, str], why: str, ago: float):
        found = policy_evidence(revision, "embedded", directory,
                                [(str(directory / module[0]), module[1])], why)
        found.started = NOW - ago
        return found

    await record(sqlite_url, signer, [
        load("rev-1", first, "start", 3000),  # before the period: in force as it began
        load("rev-1", first, "start", 2000), load("rev-1", first, "SIGHUP", 1900),
        load("rev-1", first, "files changed", 1800), load("rev-2", changed, "SIGHUP", 1700),
        load("rev-1", first, "SIGHUP", 1600)], checkpoint_file=tmp_path / "anchors.jsonl")
    report = report_of(sqlite_url, signer, tmp_path, since_us=int((NOW - 2500) * 1e6))
    runs = report.data["policies"]["loads"]
    assert [(r["revision"], r["count"], r["why"]) for r in runs] == [
        ("rev-1", 4, ["start", "SIGHUP", "files changed"]), ("rev-2", 1, ["SIGHUP"]),
        ("rev-1", 1, ["SIGHUP"])]
    assert (runs[0]["first_us"], runs[0]["last_us"]) == (
        int((NOW - 3000) * 1e6), int((NOW - 1800) * 1e6))
    assert report.data["policy_loads"]["count"] == 5  # each load still listed in the JSON
    page = page_of(report, signer)
    loads = page[page.index("<h3>Loads (5)"):]
    loads = loads[:loads.index("</table>")]
    assert loads.count("<tr>") == 4  # the heading's row and three runs
    assert '<td class="n">4</td>' in loads and "start, SIGHUP, files changed" in loads
