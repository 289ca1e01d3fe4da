"""A period of the record, exported for a SIEM, that still verifies away from the gateway.

One line per record, chain by chain in order, each with its place in its chain (writer,
seq, prev_hash, hash) and its content exactly as hashed; then one line per signed
statement (checkpoint, prune, cut) of the chains the records belong to. `jsonl` lines
carry the content as its text; `ocsf` lines are OCSF 1.1 API Activity events (class
6003) with the content text in `raw_data` and the place in `unmapped.tollgate`, and
statement lines as in jsonl (they are no OCSF event; a SIEM may drop them).

`verify` reads such a file with only the audit key's public half: each record's hash
is recomputed, each record names the hash of the one before it where both are in the
file, an OCSF event's fields are those its `raw_data` gives, the statements' signatures
are the key's, and a checkpoint vouches for the run of linked records ending at the
record it names. What is not in the file (another target's records, the period's
edges) breaks a run, and only a checkpoint says which runs are whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from extproc.recording import store
from extproc.recording.chain import Checkpoint, Verifier, record_hash
from extproc.store import Connection

_PLACE = ("writer", "seq", "prev_hash", "hash", "content")
OCSF_VERSION = "1.1.0"
_API_ACTIVITY, _APPLICATION_ACTIVITY = 6003, 6
# API Activity's activity_id per HTTP method: Create, Read, Update, Delete.
_ACTIVITIES = {"POST": (1, "Create"), "GET": (2, "Read"), "HEAD": (2, "Read"),
               "PUT": (3, "Update"), "PATCH": (3, "Update"), "DELETE": (4, "Delete")}
# Outcomes that let the exchange through (status_id 1, Success); a refusal is 2, Failure.
_PASSED, _REFUSED = ("allow", "approve", "alert"), ("deny",)


class ExportError(Exception):
    """The file cannot be read as an export at all (the message says why)."""


@dataclass
class Exported:
    records: int = 0
    writers: list[str] = field(default_factory=list)
    statements: int = 0


def export(connection: Connection, out: IO[bytes], form: str, since_us: int,
           until_us: int, target: str | None = None) -> Exported:
    """Write the records started in [since_us, until_us) (of one target), then the signed
    statements of their chains, to `out`, streaming: memory does not grow with them."""
    # The statements before the records: each checkpoint read then names a record
    # already written, so a record the export covers is in it (unless pruned since).
    statements = store.checkpoints(connection)
    done = Exported()
    line = _FORMS[form]
    for row in store.period(connection, since_us, until_us, target):
        if not done.writers or done.writers[-1] != row.writer:
            done.writers.append(row.writer)
        out.write(orjson.dumps(line(row)) + b"\n")
        done.records += 1
    covered = set(done.writers)
    for statement in (s for s in statements if s.writer in covered):
        out.write(orjson.dumps({"type": "statement", **statement.as_json()}) + b"\n")
        done.statements += 1
    return done


def _jsonl(row: store.Row) -> dict[str, Any]:
    return {"type": "record", "id": row.id, "writer": row.writer, "seq": row.seq,
            "prev_hash": row.prev_hash, "hash": row.hash, "started_us": row.started_us,
            "content": row.content}


def _ocsf(row: store.Row) -> dict[str, Any]:
    """An OCSF API Activity event: the fields a SIEM searches, and the record whole."""
    # orjson: fast, and what it reads loosely (integers beyond 64 bits become floats) is
    # never in the fields taken here; the content itself goes as its text, raw_data.
    content = orjson.loads(row.content)
    request = content.get("request") or {}
    method, path = request.get("method") or "", request.get("path") or ""
    activity, activity_name = _ACTIVITIES.get(method, (99, "Other") if method else (0, "Unknown"))
    outcome = content.get("outcome") or {}
    action, status = outcome.get("action"), outcome.get("status")
    status_id, status_name = ((1, "Success") if action in _PASSED
                              else (2, "Failure") if action in _REFUSED else (0, "Unknown"))
    target = (content.get("target") or {}).get("name")
    identity = content.get("identity") or {}
    event: dict[str, Any] = {
        "class_uid": _API_ACTIVITY, "class_name": "API Activity",
        "category_uid": _APPLICATION_ACTIVITY, "category_name": "Application Activity",
        "activity_id": activity, "activity_name": activity_name,
        "type_uid": _API_ACTIVITY * 100 + activity,
        "time": row.started_us // 1000, "severity_id": 1, "severity": "Informational",
        "status_id": status_id, "status": status_name,
        "api": {"operation": f"{method} {path}".strip(), "request": {"uid": row.id},
                "service": {"name": target or ""}},
        "http_request": {"http_method": method, "url": {"path": path}},
        "dst_endpoint": {"svc_name": target or ""},
        "metadata": {"version": OCSF_VERSION, "uid": row.id,
                     "correlation_uid": content.get("trace_id"),
                     "product": {"name": "Tollgate", "vendor_name": "Tollgate"}},
        "raw_data": row.content,
        "unmapped": {"tollgate": {
            "writer": row.writer, "seq": row.seq, "prev_hash": row.prev_hash,
            "hash": row.hash, "started_us": row.started_us, "kind": content.get("kind"),
            "action": action, "session_id": content.get("session_id")}},
    }
    if identity.get("sub"):
        event["actor"] = {"user": {"uid": identity["sub"], "name": identity["sub"],
                                   "email_addr": identity.get("email")}}
    if isinstance(status, int):
        event["http_response"] = {"code": status}
    source = (content.get("source") or {}).get("address")
    if source:
        event["src_endpoint"] = {"ip": source}
    return event


_FORMS: dict[str, Callable[[store.Row], dict[str, Any]]] = {"jsonl": _jsonl, "ocsf": _ocsf}


# -- verifying an export ------------------------------------------------------------------


@dataclass
class Run:
    """Records of one chain, each linked to the one before it in the file."""

    first: int
    last: int
    vouched_to: int = 0  # the newest record of the run a valid checkpoint names


@dataclass
class ExportReport:
    records: int = 0
    statements: int = 0
    formats: set[str] = field(default_factory=set)
    runs: dict[str, list[Run]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(path: Path, verifier: Verifier) -> ExportReport:
    """Check an export (the module's docstring says what); reads it twice, the
    statements first, so memory does not grow with the records."""
    report = ExportReport()
    named: dict[tuple[str, int], Checkpoint] = {}
    for number, found in _lines(path):
        if isinstance(found, Checkpoint):
            report.statements += 1
            if not verifier.valid(found):
                report.problems.append(f"line {number}: its {found.kind} statement's "
                                       "signature is not the audit key's (forged, or "
                                       "signed with another key)")
            elif found.kind == "checkpoint":
                named[(found.writer, found.seq)] = found
    last: tuple[str, int, str] | None = None
    for number, found in _lines(path):
        if isinstance(found, str):
            report.problems.append(f"line {number}: {found}")
        elif isinstance(found, _Record):
            _check(report, number, found, last, named.get((found.writer, found.seq)))
            last = (found.writer, found.seq, found.hash)
    if not report.records and not report.statements:
        raise ExportError(f"{path}: no record or statement line: not a tollgate export")
    return report


@dataclass(frozen=True)
class _Record:
    writer: str
    seq: int
    prev_hash: str
    hash: str
    content: str
    form: str
    mismatch: bool  # the line's other fields are not those its content and place give


def _check(report: ExportReport, number: int, record: _Record,
           last: tuple[str, int, str] | None, checkpoint: Checkpoint | None) -> None:
    report.records += 1
    report.formats.add(record.form)
    where = f"line {number} ({store.record_id(record.writer, record.seq)})"
    runs = report.runs.setdefault(record.writer, [])
    follows = last is not None and last[:2] == (record.writer, record.seq - 1)
    if runs and (last is None or last[0] != record.writer or record.seq <= last[1]):
        report.problems.append(f"{where}: out of chain order (moved, or repeated)")
    if record_hash(record.prev_hash, record.writer, record.seq, record.content) != record.hash:
        report.problems.append(f"{where}: its content does not match its hash (edited)")
    elif follows and last is not None and record.prev_hash != last[2]:
        report.problems.append(f"{where}: does not link to the record before it (inserted, "
                               "or its predecessor replaced)")
    if record.mismatch:
        report.problems.append(f"{where}: its fields differ from what its content and place "
                               "give (edited)")
    if follows and runs:
        runs[-1].last = record.seq
    else:
        runs.append(Run(record.seq, record.seq))
    if checkpoint is not None:
        if checkpoint.hash != record.hash:
            report.problems.append(f"{where}: differs from what a signed checkpoint says it "
                                   "was (replaced)")
        else:
            runs[-1].vouched_to = record.seq


def _lines(path: Path) -> Iterator[tuple[int, _Record | Checkpoint | str]]:
    """Each line read: a record, a statement, or what is wrong with it."""
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield number, _parsed(line)
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror}") from None


def _parsed(line: bytes) -> _Record | Checkpoint | str:
    try:
        found = orjson.loads(line)
        if found.get("type") == "statement":
            return Checkpoint(**{k: v for k, v in found.items() if k != "type"})
        if found.get("type") == "record":
            return _record(found, found, "jsonl", _jsonl)
        if found.get("class_uid") == _API_ACTIVITY:
            place = {**found["unmapped"]["tollgate"], "content": found["raw_data"]}
            return _record(found, place, "ocsf", _ocsf)
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    return "not a record or statement of an export (malformed)"


def _record(line: dict[str, Any], place: dict[str, Any], form: str,
            rebuild: Callable[[store.Row], dict[str, Any]]) -> _Record:
    """A record line read; its other fields are compared with those it rebuilds to."""
    writer, seq, prev, hash_, content = (place[k] for k in _PLACE)
    if not isinstance(seq, int) or not all(
            isinstance(v, str) for v in (writer, prev, hash_, content)):
        raise TypeError("a record's place is a writer, a seq and hashes")
    return _Record(writer, seq, prev, hash_, content, form, line != rebuild(_row(place)))


def _row(found: dict[str, Any]) -> store.Row:
    """A record line's row again, to rebuild the line from (the columns the lines do
    not carry are not used)."""
    writer, seq = found["writer"], found["seq"]
    return store.Row(writer, seq, store.record_id(writer, seq), "", found["started_us"], "",
                     "", None, None, "", None, found["content"], found["prev_hash"],
                     found["hash"])
