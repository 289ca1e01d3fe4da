"""`tollgate audit whatif`: what candidate policies would have decided on recorded traffic.

Each recorded decision's policy input is rebuilt from its record (phase, identity,
target, request, response, what the interpreter read) with the encoder `tollgate serve`
uses, and evaluated with the candidate policies on the embedded engine. Comparing the
answers with the recorded ones shows what a policy change would do before it ships.

The rebuilt input is not always what the policy saw: the record keeps bodies, query
values, headers and the interpreter's reading masked, and bodies past
`recording.max_body_bytes` cut; a refused response's body is kept as `upstream_body`
(not at all by a tollgate from before that). A decision that depends on such a value
may come out differently. Decisions whose input lacks part of a body are counted as
approximate, so a reader can weigh the changes.

The interpreter's reading is replayed as recorded, with what the gateway learned beyond
the request: a PostgreSQL write's estimate (extproc/postgres/estimate.py), so candidate
limits in policies/blast.rego show which recorded writes they would have held (records
from before estimates carry none, and those rules cannot fire on them). Each example
names the candidate's reasons: for such a hold, the rows the write was estimated to touch.

What is compared is the policy's own answer, so replaying the policies that made the
record changes nothing: the gateway's rewrites of an answer are undone first (a hold
at the response phase is recorded as the allow its approval made it, or as a deny; a
tollgate from before approvals recorded holds as denies; a mask the target cannot
apply is recorded as a deny; an engine that cannot answer is recorded as `policy
error`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extproc.codecs.message import Request, Response
from extproc.config import Match, PostgresTarget, SshTarget, Target
from extproc.policy import PolicyError
from extproc.policy.decision import APPROVED, HOLD_TOO_LATE
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.input import InputEncoder
from extproc.recording.chain import canonical
from extproc.recording.store import Row

POLICY_ERROR = "policy error"
"""The 'action' of an answer the engine could not give (an error, undefined, malformed)."""

# Rules the gateway adds to a policy's answer (exchange/pipeline.py): not the policy's own.
_GATEWAY_RULES = {"tollgate.policy_error": POLICY_ERROR, "tollgate.mask_unavailable": "allow",
                  APPROVED: "hold", HOLD_TOO_LATE: "hold"}
# The first reason of a hold refused by a tollgate before approvals existed.
_HOLD_REFUSED = "approval required"


@dataclass(frozen=True)
class Example:
    """One changed decision, enough to find it again (`tollgate audit replay ID`)."""

    id: str
    phase: str
    method: str
    path: str
    identity: str
    # The candidate's reasons for its answer ("DELETE touches about 4 of 4 rows of ...").
    reasons: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.id}  {self.phase:<8}  {self.method} {self.path}  {self.identity}"


@dataclass
class Tally:
    """How many decisions changed one way, with the first few as examples."""

    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def add(self, example: Example, most: int) -> None:
        self.count += 1
        if len(self.examples) < most:
            self.examples.append(example)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count,
                "examples": [{**vars(e), "reasons": list(e.reasons)} for e in self.examples]}


@dataclass
class WhatIf:
    """The candidate policies' answers against the recorded ones."""

    revision: str  # the candidate policies' revision (as decisions name it)
    examples: int  # the most examples kept per change
    records: int = 0  # records with at least one decision re-evaluated
    decisions: int = 0
    unchanged: int = 0
    changed: int = 0
    approximate: int = 0  # decisions whose rebuilt input lacks part of a body
    approximate_changed: int = 0
    policy_errors: int = 0  # decisions the candidate policies could not answer
    duplicates: int = 0  # strict targets' decision records, their exchange's record kept
    actions: dict[tuple[str, str], Tally] = field(default_factory=dict)
    fired: dict[str, Tally] = field(default_factory=dict)  # rules that newly fire
    quiet: dict[str, Tally] = field(default_factory=dict)  # rules that no longer fire

    def as_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision, "records": self.records, "decisions": self.decisions,
            "unchanged": self.unchanged, "changed": self.changed,
            "approximate": self.approximate, "approximate_changed": self.approximate_changed,
            "policy_errors": self.policy_errors, "duplicates_skipped": self.duplicates,
            "actions": [{"recorded": old, "new": new, **tally.as_json()}
                        for (old, new), tally in _by_count(self.actions)],
            "rules_newly_firing": {rule: t.as_json() for rule, t in _by_count(self.fired)},
            "rules_no_longer_firing": {rule: t.as_json() for rule, t in _by_count(self.quiet)},
        }


def whatif(rows: Iterable[Row], engine: EmbeddedEngine, examples: int = 3) -> WhatIf:
    """Re-evaluate every decision of `rows` (oldest first, as `store.since` gives them)."""
    report = WhatIf(engine.revision, examples)
    encoders: dict[tuple[str, str | None], InputEncoder] = {}
    for row in _without_duplicates(rows, report):
        content = json.loads(row.content)  # not orjson: a body's big integers stay exact
        decisions = content.get("decisions") or []
        if not decisions or content.get("target") is None:
            continue
        report.records += 1
        meaning = content.get("meaning") or {}
        meaning_key = next(iter(meaning), None)
        encoder = _encoder(encoders, content["target"], meaning_key)
        for recorded in decisions:
            phase = recorded["phase"]
            # A decision read anew (an LLM's answer) keeps its own reading.
            seen = recorded.get("meaning") or meaning
            answer = _decide(engine, encoder.encode(
                phase, content["identity"], _request(content),
                _response(content, recorded) if phase == "response" else None,
                seen.get(meaning_key) if meaning_key else None,
                context=_login(content)))
            _compare(report, row, content, recorded, answer,
                     _approximate(content, recorded))
    return report


def recorded_answer(decision: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """The policy's own answer in a recorded decision: its action and rules, before the
    gateway rewrote them (see the module's docstring)."""
    rules = decision["rules"]
    action = decision["action"]
    for rule, answered in _GATEWAY_RULES.items():
        if rule in rules:
            action = answered
    reasons = decision.get("reasons") or []
    if (action == "deny" and reasons[:1] == [_HOLD_REFUSED]
            and (decision.get("approvers") or decision.get("hold_seconds"))):
        action = "hold"
    return action, frozenset(r for r in rules if r not in _GATEWAY_RULES)


def _without_duplicates(rows: Iterable[Row], report: WhatIf) -> Iterator[Row]:
    """Rows without a strict target's `decision` record when its exchange's record is
    there too (it repeats the same request decision). Both have the same start time, so
    they are neighbours in rows ordered by it."""
    for _, group in itertools.groupby(rows, key=lambda row: row.started_us):
        same_start = list(group)
        if all(r.kind != "decision" for r in same_start):
            yield from same_start
            continue
        exchanges = {(r.trace_id, r.document()["span_id"])
                     for r in same_start if r.kind == "exchange"}
        for row in same_start:
            if row.kind == "decision" and (row.trace_id, row.document()["span_id"]) in exchanges:
                report.duplicates += 1
            else:
                yield row


def _encoder(cache: dict[tuple[str, str | None], InputEncoder], target: dict[str, Any],
             meaning_key: str | None) -> InputEncoder:
    """The encoder `serve` would use for the recorded target snapshot. InputEncoder reads
    a configured Target's name, protocol, environment and labels; its match is unused."""
    key = (canonical(target), meaning_key)
    if key not in cache:
        snapshot = Target(name=target["name"], protocol=target["protocol"],
                          environment=target["environment"], labels=target["labels"],
                          **_reached(target["protocol"], target["name"]))
        cache[key] = InputEncoder(snapshot, meaning_key)
    return cache[key]


def _reached(protocol: str, name: str) -> dict[str, Any]:
    """A match and the settings a target of `protocol` cannot be configured without (a
    postgres target's database, an ssh target's host): stand-ins the encoder never
    reads, the record keeping none of them."""
    if protocol == "postgres":
        return {"match": Match(database=name),
                "postgres": PostgresTarget(upstream="replay.invalid:5432", user="replay")}
    if protocol == "ssh":
        return {"match": Match(login="replay"),
                "ssh": SshTarget(upstream="replay.invalid:22", user="replay",
                                 key_file=Path("replay"), host_key="ssh-ed25519 replay")}
    return {"match": Match(route=name)}


def _request(content: dict[str, Any]) -> Request:
    request = content["request"]
    return {"method": request["method"], "path": request["path"], "query": request["query"],
            "headers": request["headers"], "body": _body_value(request["body"])}


def _response(content: dict[str, Any], decision: dict[str, Any]) -> Response | None:
    response = content.get("response")
    if response is None:
        return None
    body = _answer(response, decision)
    # A stream (an LLM's completion) is decided on its headers: its policy saw no body.
    streamed = body is not None and body.get("media_type") == "text/event-stream"
    return {"status": response["status"], "headers": response["headers"],
            "body": None if streamed else _body_value(body)}


def _answer(response: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded body a response decision saw: the upstream's; when the decision
    refused it, the client got tollgate's refusal instead (`body`), and the upstream's is
    `upstream_body` (absent from records of a tollgate that did not keep it)."""
    if decision["action"] != "allow" and "upstream_body" in response:
        return response["upstream_body"]
    return response["body"]


def _body_value(body: dict[str, Any] | None) -> Any:
    """What the policy sees of a recorded body: its value when the record kept one (JSON
    or text), else nothing (binary bodies reach policies as null too)."""
    if body is None or body.get("encoding") not in ("json", "text"):
        return None
    return body.get("value")


def _login(content: dict[str, Any]) -> dict[str, Any] | None:
    """A database session's login, as much of input.postgres or input.mysql as the
    record keeps (its method): the pack decides a login apart from a statement."""
    protocol = content["target"].get("protocol")
    method = (content.get("request") or {}).get("method")
    if protocol == "postgres" and method == "CONNECT":
        return {"message": "connect"}
    if protocol == "mysql" and method in ("CONNECT", "CHANGE_USER"):
        return {"command": method.lower()}
    return None


def _approximate(content: dict[str, Any], decision: dict[str, Any]) -> bool:
    """The record lacks part of a body this decision saw: cut, or (a refused response,
    recorded by a tollgate that did not keep it) not kept."""
    request_body = content["request"]["body"]
    if request_body is not None and request_body.get("truncated"):
        return True
    if decision["phase"] != "response":
        return False
    response = content.get("response") or {}
    body = _answer(response, decision) if response else None
    if body is None:
        return ("upstream_body" not in response and not response.get("body_read", True)
                and content["outcome"]["action"] != "allow")
    return bool(body.get("truncated"))


@dataclass(frozen=True)
class _Answer:
    """The candidate's answer: what it did, by which rules, why."""

    action: str
    rules: frozenset[str]
    reasons: tuple[str, ...] = ()


def _decide(engine: EmbeddedEngine, input_json: str) -> _Answer:
    try:
        decision = engine.decide_now(input_json)
    except PolicyError:
        return _Answer(POLICY_ERROR, frozenset())
    return _Answer(decision.action, frozenset(decision.rules), tuple(decision.reasons))


def _compare(report: WhatIf, row: Row, content: dict[str, Any], recorded: dict[str, Any],
             answer: _Answer, approximate: bool) -> None:
    old_action, old_rules = recorded_answer(recorded)
    new_action, new_rules = answer.action, answer.rules
    report.decisions += 1
    report.approximate += approximate
    report.policy_errors += new_action == POLICY_ERROR
    # An answer that is an error names no rules: its rules did not "stop firing".
    compare_rules = POLICY_ERROR not in (old_action, new_action)
    if old_action == new_action and (old_rules == new_rules or not compare_rules):
        report.unchanged += 1
        return
    report.changed += 1
    report.approximate_changed += approximate
    example = _example(row, content, recorded["phase"], answer.reasons)
    if old_action != new_action:
        report.actions.setdefault((old_action, new_action), Tally()).add(
            example, report.examples)
    if compare_rules:
        for rule in sorted(new_rules - old_rules):
            report.fired.setdefault(rule, Tally()).add(example, report.examples)
        for rule in sorted(old_rules - new_rules):
            report.quiet.setdefault(rule, Tally()).add(example, report.examples)


def _example(row: Row, content: dict[str, Any], phase: str,
             reasons: tuple[str, ...]) -> Example:
    identity = content.get("identity") or {}
    who = identity.get("sub") if identity.get("authenticated") else "(anonymous)"
    return Example(row.id, phase, content["request"]["method"], content["request"]["path"],
                   who or "(no subject)", reasons)


def _by_count(tallies: dict[Any, Tally]) -> list[tuple[Any, Tally]]:
    """Most frequent first; ties in a stable order."""
    return sorted(tallies.items(), key=lambda item: (-item[1].count, str(item[0])))
