"""What a compliance report says, gathered from the audit record itself.

Nothing here is typed in by a person: the chain is verified (`recording/verify.py`,
against the anchor logs), and every figure comes from the records of the period, read
once, oldest first, without holding them: a store may keep millions. Lists of single
events (holds, approvals, alerts, policy loads) are kept whole up to `_MOST_LISTED`
each, and counted beyond it; the report says so.

A strict target's `decision` record repeats its exchange's request decision, so
decisions, refusals and holds are counted from `exchange` records only.

Who appears is counted by what they did: identities that acted through the gateway
(exchanges, decision records, tunnels, the alerts about them), approvers (`approval`
records: decisions, and attempts the approvals API refused, such as approving one's own
request or denying without a reason) and readers of the record (`access` records: reads
through the recordings API, and looks from `tollgate audit`'s commands), each apart. A
reader is someone who read something: whoever was only refused is listed apart, and a
refused read a page made on its own (`background`: the approvals page asking for a
requester's activity) is counted, never taken for a person's attempt.
Held exchanges and approvals are listed with what they did (the record's `what`, the
approval's summary): the line a person decided on. Moderators' acts on live sessions
(`moderation` records: a session ended, an identity locked or unlocked, and attempts
the sessions API refused) are listed with who, whose session or identity, and why.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.recording import retention
from extproc.recording.anchors import AnchorLog
from extproc.recording.chain import Verifier
from extproc.recording.retention import Rules
from extproc.recording.verify import Report as Verification
from extproc.recording.verify import verify
from extproc.reporting import stories
from extproc.reporting.controls import controls
from extproc.store import Connection, StoreError

FORMAT = "tollgate-audit-report/1"
# Single events listed per kind; more are counted, not listed.
_MOST_LISTED = 1000
# Activity is charted per hour over periods up to this long, else per day.
_HOURLY_UP_TO_US = 3 * 86_400_000_000
_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
ANONYMOUS = "(anonymous)"
NO_TARGET = "(no target)"
# Records of people looking at or deciding about what agents did, not of agents acting.
_NOT_ACTING = frozenset({"policy", "approval", "access", "moderation"})


@dataclass(frozen=True)
class Report:
    """A report's data: JSON values only, so that it signs, renders and reloads alike."""

    data: dict[str, Any]

    @property
    def intact(self) -> bool:
        return bool(self.data["integrity"]["intact"])


def gather(connection: Connection, since_us: int, until_us: int, target: str | None = None,
           *, verifier: Verifier, logs: list[AnchorLog] | None = None,
           retention: Rules | None = None) -> Report:
    """The report on records started in [since_us, until_us), of one target or all;
    `verifier` checks the checkpoints, `logs` are the anchor logs kept outside the store
    (None: none, and the report says what that leaves unvouched). Synchronous: run it in
    a thread from an event loop."""
    generated_us = int(time.time() * 1_000_000)
    tally = _Tally(since_us, until_us)
    sql = ("SELECT writer, seq, kind, started_us, identity, target, action, content "
           "FROM records WHERE started_us >= ? AND started_us < ?")
    params: list[Any] = [since_us, until_us]
    if target is not None:
        sql += " AND (target = ? OR kind = 'policy')"
        params.append(target)
    for values in connection.stream(f"{sql} ORDER BY started_us, writer, seq", params):
        tally.add(*values)
    in_force = _in_force_before(connection, since_us)
    data: dict[str, Any] = {
        "format": FORMAT, "generated_us": generated_us, "store": connection.where,
        "period": {"since_us": since_us, "until_us": until_us}, "target": target,
        "integrity": _integrity(verify(connection, verifier, logs), verifier, logs),
        **tally.as_json(in_force),
        "retention": _retention(connection, retention or Rules(), target),
    }
    data["controls"] = controls(data)
    return Report(data)


class _Tally:
    """Every figure of the period, added one record at a time."""

    def __init__(self, since_us: int, until_us: int) -> None:
        self.bucket_us = _HOUR_US if until_us - since_us <= _HOURLY_UP_TO_US else _DAY_US
        self.kinds: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.exchange_actions: Counter[str] = Counter()
        self.identities: dict[str, Counter[str]] = defaultdict(Counter)
        self.approvers: dict[str, Counter[str]] = defaultdict(Counter)
        self.readers: dict[str, Counter[str]] = defaultdict(Counter)
        self.targets: dict[str, Counter[str]] = defaultdict(Counter)
        self.activity: dict[int, Counter[str]] = defaultdict(Counter)
        self.refusals: Counter[str] = Counter()
        self.masked: Counter[str] = Counter()
        self.revisions: dict[str, Counter[str]] = defaultdict(Counter)
        self.listed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.counted: Counter[str] = Counter()
        # Per approval id: the held exchanges that met it, and the decisions on it, in
        # the order they started (stories.py joins them).
        self.met: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.decided: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, writer: str, seq: int, kind: str, started_us: int, identity: str | None,
            target: str | None, action: str, content: str) -> None:
        document = _parse(content)
        record = {"id": f"{writer}:{seq}", "started_us": started_us}
        self.kinds[kind] += 1
        if kind == "policy":
            self._list("policy_loads", {**record, **(document.get("meaning") or {})["policy"]})
            return
        self.actions[action] += 1
        who, where = identity or ANONYMOUS, target or NO_TARGET
        bucket = self.activity[started_us - started_us % self.bucket_us]
        bucket["records"] += 1
        record |= {"identity": who, "target": where}
        if kind == "approval":
            self._approval(record, who, document)
            return
        if kind == "access":
            self._access(who, document)
            return
        if kind == "moderation":
            self._moderation(record, document)
            return
        self.identities[who]["records"] += 1
        self.targets[where]["records"] += 1
        if kind == "alert":
            self._list("alerts", {**record, **(document.get("meaning") or {}).get("alert", {})})
        if kind == "exchange":
            self._exchange(record, who, where, action, bucket, document)

    def _exchange(self, record: dict[str, Any], who: str, where: str, action: str,
                  bucket: Counter[str], document: dict[str, Any]) -> None:
        self.exchange_actions[action] += 1
        for name, count in (document.get("masked") or {}).items():
            self.masked[name] += count
        decisions = document.get("decisions") or []
        for decision in decisions:
            self.revisions[decision["policy_revision"]][decision["action"]] += 1
        if action == "deny":
            for counts in (self.identities[who], self.targets[where], bucket):
                counts["refused"] += 1
            rules = {rule for d in decisions if d["action"] != "allow" for rule in d["rules"]}
            refusal = (document.get("outcome") or {}).get("refusal")
            for rule in rules or {f"tollgate: {refusal or 'refused'}"}:
                self.refusals[rule] += 1
        held = [d for d in decisions if d["action"] == "hold"]
        if held:
            for counts in (self.identities[who], self.targets[where]):
                counts["held"] += 1
            approval = document.get("approval")
            event = {**record, "what": _what(document),
                     "rules": sorted({r for d in held for r in d["rules"]}),
                     "approvers": sorted({a for d in held for a in d["approvers"]}),
                     "approval": approval, "outcome": action,
                     "ended": _ended(document, decisions),
                     "ended_us": record["started_us"]
                     + int((document.get("duration_ms") or 0) * 1000)}
            self._list("held", event)
            if approval and approval.get("id"):
                self.met[str(approval["id"])].append(event)

    def _approval(self, record: dict[str, Any], who: str, document: dict[str, Any]) -> None:
        """An approver's attempt at deciding: a decision made, or an attempt the approvals
        API refused (its code says why: `self_approval`, `reason_required`, ...)."""
        outcome = document.get("outcome") or {}
        answered = (document.get("response") or {}).get("status")
        approval = document.get("approval")
        refusal = outcome.get("refusal")
        if refusal is None and (approval is None or answered not in (None, 200)):
            refusal = f"answered {answered}"  # a record from before refusals were coded
        event = {**record, "approval": approval, "answered": answered,
                 "tried": outcome.get("action")}
        if refusal is None:
            self.approvers[who]["decisions"] += 1
            event |= _decided(who, approval, document)
            self._list("approvals", event)
            if approval and approval.get("id"):
                self.decided[str(approval["id"])].append(event)
        else:
            self.approvers[who]["refused"] += 1
            self._list("refused_attempts", {**event, "refusal": refusal})

    def _moderation(self, record: dict[str, Any], document: dict[str, Any]) -> None:
        """A moderator's act on live sessions: an end, a lock, an unlock, done or refused
        (its code says why: not a moderator, no reason, no such session)."""
        acted = (document.get("meaning") or {}).get("moderation") or {}
        refusal = (document.get("outcome") or {}).get("refusal")
        self._list("moderation", {
            "id": record["id"], "started_us": record["started_us"],
            "moderator": record["identity"], "action": acted.get("action"),
            "session": acted.get("session"), "identity": acted.get("identity"),
            "front": acted.get("front"), "target": acted.get("target"),
            "reason": acted.get("reason"), "lock_until_us": acted.get("lock_until_us"),
            "refusal": refusal})

    def _access(self, who: str, document: dict[str, Any]) -> None:
        """A read of the record (the recordings API's, or a `tollgate audit` command's),
        answered or refused; a refused one a page made on its own is no person's."""
        access = (document.get("meaning") or {}).get("access") or {}
        reader = self.readers[who]
        if (document.get("outcome") or {}).get("action") != "deny":
            reader["reads"] += 1
            reader["returned"] += int(access.get("count") or 0)
        elif access.get("background"):
            reader["background"] += 1
        else:
            reader["refused"] += 1

    def _list(self, name: str, event: dict[str, Any]) -> None:
        self.counted[name] += 1
        if len(self.listed[name]) < _MOST_LISTED:
            self.listed[name].append(event)

    def _told(self) -> None:
        """Each listed held exchange and decision with what became of it, in words
        (`happened`, `decision`, `then`), from what the period holds of its approval."""
        for event in self.listed["held"]:
            key = str((event["approval"] or {}).get("id"))
            later = [e for e in self.met.get(key, ()) if e["started_us"] > event["started_us"]]
            after = [d for d in self.decided.get(key, ())
                     if d["started_us"] > event["started_us"]]
            event["happened"] = stories.held(event, after, later[-1] if later else None)
        for event in self.listed["approvals"]:
            key = str(event["approval"]["id"])
            used = [e for e in self.met.get(key, ()) if e["ended_us"] > event["started_us"]]
            others = [d for d in self.decided.get(key, ())
                      if d["started_us"] > event["started_us"]]
            event["decision"] = stories.decision_words(event)
            event["then"] = stories.then(event, others, used[-1] if used else None)

    def as_json(self, in_force: list[dict[str, Any]]) -> dict[str, Any]:
        self._told()
        names = ("held", "approvals", "refused_attempts", "moderation", "alerts",
                 "policy_loads")
        return {
            "records": {"total": sum(self.kinds.values()), "by_kind": _sorted(self.kinds),
                        "by_action": _sorted(self.actions),
                        "exchanges_by_action": _sorted(self.exchange_actions)},
            "identities": _rows(self.identities, "identity"),
            "approvers": [{"approver": name, "decisions": c["decisions"],
                           "refused_attempts": c["refused"]}
                          for name, c in _busiest(self.approvers)],
            **_readers(self.readers),
            "targets": _rows(self.targets, "target"),
            "activity": {"bucket": "hour" if self.bucket_us == _HOUR_US else "day",
                         "buckets": [{"start_us": start, "records": c["records"],
                                      "refused": c["refused"]}
                                     for start, c in sorted(self.activity.items())]},
            "refusals_by_rule": _sorted(self.refusals),
            "masked_by_detector": _sorted(self.masked),
            **{name: {"count": self.counted[name], "listed": self.listed[name]}
               for name in names},
            "policies": _policies(in_force, self.listed["policy_loads"], self.revisions),
            "listed_at_most": _MOST_LISTED,
        }


def _parse(content: str) -> dict[str, Any]:
    """A record's content; the standard library's parser for integers beyond 64 bits."""
    try:
        found = orjson.loads(content)
    except orjson.JSONDecodeError:
        found = json.loads(content)
    return found if isinstance(found, dict) else {}


def _sorted(counts: Counter[str]) -> dict[str, int]:
    """Counts, largest first (ties by name), as an ordered object."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _what(document: dict[str, Any]) -> str:
    """What the exchange did, in one line (the record's `what`; for a record from before
    it, its request line)."""
    what = document.get("what")
    if isinstance(what, str) and what:
        return what
    request = document.get("request") or {}
    return f"{request.get('method') or ''} {request.get('path') or ''}".strip()


def _ended(document: dict[str, Any], decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """How an exchange ended, beside its action: tollgate's refusal code, what its front
    said it did (`DELETE 3`, the database's error), the status its client got, and the
    policy's denial (its reasons and rules) where the policy refused it."""
    outcome = document.get("outcome") or {}
    denied = [d for d in decisions if d["action"] == "deny"]
    return {"refusal": outcome.get("refusal"), "detail": outcome.get("detail"),
            "status": outcome.get("status"),
            "denied_by": {"reasons": [r for d in denied for r in d.get("reasons") or []],
                          "rules": sorted({r for d in denied for r in d["rules"]})}
            if denied else None}


def _decided(who: str, approval: dict[str, Any] | None,
             document: dict[str, Any]) -> dict[str, Any]:
    """One approver's decision as they made it, whatever the approval's status after it
    (a first approval of two leaves it pending): who, how many approvals it needed and
    which one this was, and their own reason (the approval keeps only the last
    approver's; theirs is in their request's body)."""
    approval = approval or {}
    needed = int(approval.get("approvals_needed") or 1)
    approved_by = list(approval.get("approved_by") or [])
    body = ((document.get("request") or {}).get("body") or {}).get("value")
    own = body.get("reason") if isinstance(body, dict) else None
    return {"by": who, "needed": needed,
            "place": approved_by.index(who) + 1 if who in approved_by else None,
            "reason": own if isinstance(own, str) and own.strip()
            else approval.get("reason") if approval.get("decided_by") == who else None}


def _busiest(counts: dict[str, Counter[str]]) -> list[tuple[str, Counter[str]]]:
    return sorted(counts.items(), key=lambda item: (-item[1].total(), item[0]))


def _rows(counts: dict[str, Counter[str]], key: str) -> list[dict[str, Any]]:
    return [{key: name, "records": c["records"], "refused": c["refused"], "held": c["held"]}
            for name, c in sorted(counts.items(), key=lambda item: (-item[1]["records"],
                                                                     item[0]))]


def _readers(counts: dict[str, Counter[str]]) -> dict[str, Any]:
    """Who read the record (answered at least once), who was only refused, and the
    refused reads pages made on their own, by whose page."""
    busiest = _busiest(counts)
    return {
        "readers": [{"reader": name, "reads": c["reads"], "refused": c["refused"],
                     "records_returned": c["returned"]} for name, c in busiest if c["reads"]],
        "refused_readers": [{"identity": name, "refused": c["refused"]}
                            for name, c in busiest if not c["reads"] and c["refused"]],
        "background_refused": _sorted(Counter(
            {name: c["background"] for name, c in counts.items() if c["background"]})),
    }


def _in_force_before(connection: Connection, since_us: int) -> list[dict[str, Any]]:
    """Each writer's last policy load before the period: what it served as it began."""
    last: dict[str, dict[str, Any]] = {}
    for writer, seq, started_us, content in connection.stream(
            "SELECT writer, seq, started_us, content FROM records "
            "WHERE kind = 'policy' AND started_us < ? ORDER BY started_us, seq", (since_us,)):
        last[writer] = {"id": f"{writer}:{seq}", "started_us": started_us,
                        **(_parse(content).get("meaning") or {})["policy"]}
    return sorted(last.values(), key=lambda load: load["started_us"])


def _policies(in_force: list[dict[str, Any]], loads: list[dict[str, Any]],
              revisions: dict[str, Counter[str]]) -> dict[str, Any]:
    """The revisions that served in the period, each with when it loaded and the decisions
    it made; a revision that decided with no load record says so (loaded before loads
    were recorded, or its record pruned)."""
    loaded: dict[str, list[int]] = defaultdict(list)
    for load in (*in_force, *loads):
        loaded[load["revision"]].append(load["started_us"])
    served = sorted(set(loaded) | set(revisions))
    return {
        "in_force_at_start": in_force,
        "loads": _folded((*in_force, *loads)),
        "revisions": [{"revision": revision, "loaded_us": sorted(loaded.get(revision, [])),
                       "decisions": sum(revisions[revision].values()),
                       "by_action": _sorted(revisions[revision])}
                      for revision in served],
        "unrecorded": sorted(set(revisions) - set(loaded)),
    }


# What makes two loads the same policy: a reload of unchanged files is folded.
_SAME_POLICY = ("revision", "engine", "directory", "modules", "data_files")


def _folded(loads: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The loads with each run of consecutive identical ones (same revision, modules and
    data files) as one: how many, the first and the last, and why they loaded."""
    runs: list[dict[str, Any]] = []
    for load in loads:
        same = {key: load.get(key) for key in _SAME_POLICY}
        last = runs[-1] if runs else None
        if last is not None and all(last[key] == same[key] for key in _SAME_POLICY):
            last.update(count=last["count"] + 1, last_us=load["started_us"],
                        last_id=load["id"])
            if load.get("why") not in last["why"]:
                last["why"].append(load.get("why"))
            continue
        runs.append({**same, "count": 1, "first_us": load["started_us"],
                     "last_us": load["started_us"], "first_id": load["id"],
                     "last_id": load["id"], "why": [load.get("why")]})
    return runs


def _integrity(report: Verification, verifier: Verifier,
               logs: list[AnchorLog] | None) -> dict[str, Any]:
    """What `tollgate audit verify` found, over the whole store (not only the period: a
    chain is verified from its start), with the plain statement of it."""
    unvouched = report.unvouched()
    chains = [{
        "writer": c.writer, "records": c.records,
        "first": c.first if c.records else None, "last": c.last if c.records else None,
        "pruned_to": c.pruned_to, "checkpointed_to": c.checkpointed_to,
        "anchored_to": c.anchored_to if c.anchored_to >= 0 else None,
        "anchored_us": c.anchored_us or None, "unvouched": unvouched.get(c.writer),
    } for c in sorted(report.chains.values(), key=lambda c: c.writer)]
    problems = [str(p) for p in report.problems]
    if not report.intact:
        statement = (f"BROKEN: {report.problem_count} problem(s) found; the record is not "
                     "whole. The first broken link of each chain: "
                     + "; ".join(str(p) for p in report.first_broken().values()))
    elif unvouched:
        statement = ("Nothing is missing that the store can show: every record matches its "
                     "hash and links to the one before it, and every checkpoint is signed "
                     "with the audit key. But no anchor log outside the store vouches for "
                     f"{', '.join(sorted(unvouched))}: records cut from the end of those "
                     "chains, or whole chains deleted, would not show.")
    else:
        statement = ("Nothing is missing: every record matches its hash and links to the one "
                     "before it, every checkpoint is signed with the audit key, and the "
                     "anchor logs kept outside the store vouch for every chain up to its "
                     "last anchor.")
    return {
        "intact": report.intact, "vouched": report.intact and not unvouched,
        "statement": statement, "key_id": verifier.key_id,
        "checkpoints": report.checkpoints, "anchors": report.anchors,
        "anchor_logs": [{"path": str(log.path), "identity": log.identity,
                         "exists": log.exists, "statements": len(log.statements)}
                        for log in logs or ()],
        "chains": chains, "problem_count": report.problem_count, "problems": problems,
    }


def _retention(connection: Connection, rules: Rules, target: str | None) -> dict[str, Any]:
    """How long records are kept (days; 0: for ever), and the legal holds that keep some
    longer (a store from before holds has none)."""
    targets = {name: days for name, days in sorted(rules.target_days.items())
               if target is None or name == target}
    try:
        found: list[dict[str, Any]] | None = [
            dataclasses.asdict(each) for each in retention.holds(connection)]
    except StoreError:
        found = None
    return {"store_days": rules.store_days, "targets": targets,
            "legal_holds": found or [], "legal_holds_table": found is not None}
