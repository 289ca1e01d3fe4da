"""In-memory stand-ins for the pipeline's ports (extproc/exchange/ports.py).

They let a unit test drive the exchange pipeline and the response handlers without a
SQLite store, a signing key, an approvals store or gRPC. They keep what they are given,
so a test can assert on it; what the real classes do is tested against them elsewhere
(tests/recording, tests/approvals).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable
from typing import Any

from extproc.approvals.model import Approval
from extproc.credentials import Injection
from extproc.exchange.state import Answer
from extproc.policy import Decision
from extproc.recording import Evidence, RecordingUnavailable
from extproc.store import StoreError
from extproc.token_exchange import Subject


class MemoryFlow:
    """What agents received (activity/flow.py's port), in memory: notes kept, readings
    counted; `down` makes the store refuse notes."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.notes: list[tuple[str, str | None, str, str, tuple[str, ...], str]] = []
        self.readings: list[tuple[str, str | None]] = []
        # Fingerprints kept: (identity, digest) -> (kind, target, trace id).
        self.values: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.carried: list[list[str]] = []  # the fingerprints each reading was given

    async def received(self, identity: str, run: str | None, target: str, cause: str,
                       kinds: Iterable[str], trace_id: str) -> None:
        if self.down:
            raise StoreError("the store is down")
        self.notes.append((identity, run, target, cause, tuple(kinds), trace_id))

    async def kept(self, identity: str, run: str | None, target: str, trace_id: str,
                   found: dict[str, str]) -> None:
        if self.down:
            raise StoreError("the store is down")
        for digest, kind in found.items():
            self.values[identity, digest] = (kind, target, trace_id)

    async def read(self, identity: str, run: str | None,
                   carried: Callable[[], Collection[str]] = tuple) -> bytes:
        self.readings.append((identity, run))
        # As the store's reading: the request is read only where values were given.
        given = any(who == identity for who, _ in self.values)
        digests = list(carried()) if given else []
        self.carried.append(digests)
        untrusted = [{"at": 1.0, "target": n[2], "cause": n[3], "kinds": list(n[4]),
                      "trace_id": n[5]} for n in reversed(self.notes) if n[0] == identity]
        carries = [{"value": i, "kind": v[0], "from": v[1], "at": 1.0, "trace_id": v[2]}
                   for i, digest in enumerate(digests, 1)
                   if (v := self.values.get((identity, digest))) is not None]
        return json.dumps({"status": "known", "run": run, "identity": {"untrusted": untrusted},
                           "this_run": None, "carries": carries}).encode()


class MemoryRecorder:
    """Admits until `full`, keeps every submitted and committed evidence."""

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.admitted: list[str | None] = []
        self.submitted: list[Evidence] = []
        self.committed: list[Evidence] = []
        self.provisional_records: list[Evidence] = []
        # Told of each submitted evidence, as Recorder.observers are.
        self.observers: list[Callable[[Evidence], None]] = []

    def admit(self, who: str | None = None) -> None:
        if self.full:
            raise RecordingUnavailable("the record's queue is full")
        self.admitted.append(who)

    def submit(self, evidence: Evidence, who: str | None = None) -> None:
        self.submitted.append(evidence)
        for observe in self.observers:
            observe(evidence)

    async def commit(self, evidence: Evidence, who: str | None = None) -> None:
        self.committed.append(evidence)

    def provisional(self, evidence: Evidence) -> None:
        self.provisional_records.append(evidence)


def approval(status: str = "approved", grant: str = "once", **changes: Any) -> Approval:
    """An approval as the store would return it, decided by `dba1` unless told otherwise."""
    return dataclasses.replace(Approval(
        id="ap-1", fingerprint="f", requester="agent", identity={"sub": "agent"},
        target="demo", summary="", request={}, approvers=("group:dba",), rules=(),
        reasons=(), grant_mode=grant, grant_minutes=None, status=status, created_us=1,
        expires_us=2**62, trace_id="0" * 32, span_id="0" * 16, held_by="test",
        decided_by=None if status == "pending" else "dba1",
        decided_us=None if status == "pending" else 1_700_000_000_000_000,
    ), **changes)


class MemoryHolds:
    """Answers holds as scripted: a grant that already covers the request, else the
    approval a wait ends with."""

    def __init__(self, granted: Approval | None = None,
                 settled: Approval | None = None) -> None:
        self._granted, self._settled = granted, settled
        self.asked: list[Decision] = []
        self.left_with: list[Approval] = []  # the approvals waits stopped on undecided

    def seconds(self, decision: Decision) -> int:
        return decision.hold_seconds or 300

    async def granted(self, bound: str, decision: Decision,
                      evidence: Evidence) -> Approval | None:
        return self._granted

    async def ask(self, bound: str, decision: Decision, evidence: Evidence) -> Approval:
        self.asked.append(decision)
        return approval("pending")

    async def settle(self, pending: Approval, seconds: int,
                     trace_id: str) -> tuple[Approval, bool]:
        settled = self._settled or pending
        return settled, settled.state() in ("approved", "used")  # used: taken by this one

    async def left(self, pending: Approval, stopped: BaseException) -> Approval:
        self.left_with.append(pending)
        return pending

    def withdrawn(self, pending: Approval) -> bool:
        return False

    def approve_url(self, pending: Approval) -> str | None:
        return f"http://approvals.test/approvals/{pending.id}"


class StaticCredentials:
    """Every target's requests go upstream with the client's Authorization removed."""

    def __init__(self) -> None:
        self.injected = Injection(remove=("authorization",))

    def injection(self, target: str) -> Injection:
        return self.injected

    async def upstream(self, target: str, subject: Subject | None) -> Injection:
        return self.injected

    def rejected(self, target: str, token: str) -> None:
        raise AssertionError(f"no token of {target!r} was asked of an authorization server")


class ListedResponse:
    """A response as a handler reads it (http/responses.py's ResponseWire), from a list
    of body pieces; each answer is a tuple naming what the handler did."""

    def __init__(self, headers: dict[str, str], pieces: Iterable[bytes] = (),
                 buffered: bytes | None = None) -> None:
        self.headers = headers
        self._pieces = list(pieces)
        self._buffered = buffered
        self.ends = buffered is None and not self._pieces

    async def body(self) -> bytes:
        assert self._buffered is not None, "the handler asked for a body it did not buffer"
        return self._buffered

    async def chunk(self) -> tuple[bytes, bool]:
        return self._pieces.pop(0), not self._pieces

    def proceed(self) -> tuple[str, ...]:
        return ("proceed",)

    def keep_body(self) -> tuple[str, ...]:
        return ("keep_body",)

    def replace_body(self, body: bytes) -> tuple[str, bytes]:
        return ("replace_body", body)

    def pass_unread(self) -> tuple[str, ...]:
        return ("pass_unread",)

    def stream_through(self) -> tuple[str, ...]:
        return ("stream_through",)

    def send_headers(self, length: int | None) -> tuple[str, int | None]:
        return ("send_headers", length)

    def send(self, data: bytes, last: bool) -> tuple[tuple[str, bytes, bool]]:
        return (("send", data, last),)

    def refuse(self, answer: Answer) -> tuple[str, Answer]:
        return ("refuse", answer)

    def more_time(self, seconds: int) -> tuple[str, int]:
        return ("more_time", seconds)


class MemoryPins:
    """Tool pins as scripted (interpret/mcp.py's ToolPins): each tool's pin by name,
    `unknown` for the rest; keeps what each listing showed it."""

    def __init__(self, pins: dict[str, str] | None = None,
                 declared: dict[str, Any] | None = None) -> None:
        self._pins, self._declared = pins or {}, declared or {}
        self.listings: list[list[str]] = []

    def _pin(self, name: str) -> Any:
        status = self._pins.get(name, "unknown")
        return {"status": status, "fingerprint": None if status == "unknown" else "f2",
                "pinned": "f1" if status in ("pinned", "changed") else None,
                "renamed_from": "old_name" if status == "renamed" else None}

    def pinned(self, tools: dict[str, Any]) -> None:
        """Tools (name: what it declares) pinned as a first listing pins them."""
        self._pins.update(dict.fromkeys(tools, "pinned"))
        self._declared.update(tools)

    async def declared(self, target: str, name: str) -> tuple[Any, Any]:
        return self._declared.get(name), self._pin(name)

    async def listed(self, target: str, approvers: tuple[str, ...],
                     tools: list[tuple[str, Any]], asker: Any,
                     continued: bool = False) -> dict[str, Any]:
        self.listings.append([name for name, _ in tools])
        return {name: self._pin(name) for name, _ in tools}
