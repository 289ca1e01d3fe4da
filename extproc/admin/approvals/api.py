"""The approvers' HTTP API on the admin port, and the page that drives it.

    GET  /approvals?status=pending&requester=SUB&limit=100
                                               approvals the caller may see, newest first
                                               (status `decided`: every one but pending)
    GET  /approvals/{id}                       one approval, with how its request waits
    POST /approvals/{id}/approve  {"reason": "..."}   (reason optional)
    POST /approvals/{id}/deny     {"reason": "..."}   (reason required)
    GET  /approvals/ui                         the page: pending and decided approvals,
                                               each in its own view (/approvals/ui#ID)

Every call but the page carries the caller's own token (Authorization: Bearer), verified
by tollgate (auth.py); a call without one that verifies is answered 401 and logged, as
Envoy answers agents' (neither reaches the record: nobody is known to have acted). A caller
sees the approvals they asked for and those they may decide; they may decide those whose
approvers name them or a group of theirs, never their own (each approval shown says
whether the caller may: `may_decide`, so the page offers no buttons on the others).
Whether a held request still waits is read from the record of its exchange (its trace's
`exchange` record is written once it is answered), a fact about the approval and nothing
more of the record, which the recordings API serves to its readers. Every decision, and every
refused attempt at one, is a span under the held request's trace and a record in the audit
chain; a decision that cannot be recorded is not made.
Errors are JSON: {"error": code, "message": ..., "trace_id": ...}.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web
from opentelemetry.trace import Span

from extproc import admin
from extproc.admin.caller import caller_of
from extproc.admin.recordings.readers import NotAReader, Readers
from extproc.approvals.answered import answered
from extproc.approvals.auth import AuthError, Verifier
from extproc.approvals.model import Approval, ApprovalError, approve_url
from extproc.approvals.notify import page_url
from extproc.approvals.store import ApprovalStore
from extproc.codecs.message import parse_json, request_view
from extproc.config import Target
from extproc.exchange.recorded import recorded
from extproc.identity import Authenticated
from extproc.recording import BodyCapture, Evidence, Recorder, RecordingUnavailable
from extproc.store import StoreError
from extproc.telemetry import Telemetry, span_id_of, trace_id_of

log = logging.getLogger("tollgate.approvals")

_STATUSES = ("pending", "approved", "denied", "used", "expired", "abandoned", "decided",
             "all")
_MOST_LISTED = 500
_REASON_CHARS = 1000
_SUBJECT_CHARS = 1000


class ApprovalsApi:
    def __init__(
        self, store: ApprovalStore, verifier: Verifier, recorder: Recorder,
        telemetry: Telemetry, targets: dict[str, Target], approvals_url: str,
        sensitive: tuple[str, ...], record_limit: int, trace_url: str | None = None,
        readers: Readers | None = None,
    ) -> None:
        """`trace_url`: the trace UI's URL with "{trace_id}" in it (`recordings.trace_url`);
        `readers`: who reads which records (None: nobody), for `reads_record`."""
        self._store, self._verifier = store, verifier
        self._recorder, self._telemetry = recorder, telemetry
        self._targets, self._url, self._sensitive = targets, approvals_url, sensitive
        self._record_limit = record_limit
        self._trace_url = trace_url
        self._readers = readers

    def routes(self) -> list[web.RouteDef]:
        return [
            *admin.page_routes("/approvals/ui", "extproc.admin.approvals"),
            web.get("/approvals", self._list),
            web.get("/approvals/{id}", self._show),
            web.post("/approvals/{id}/approve", self._approve),
            web.post("/approvals/{id}/deny", self._deny),
        ]

    # -- reading -------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        try:
            caller = await self._caller(request)
            status = request.query.get("status", "all")
            if status not in _STATUSES:
                raise ApprovalError(
                    "bad_request", f"status must be one of {', '.join(_STATUSES)}, got "
                    f"{status!r}", 400)
            limit = _limit(request.query.get("limit", "100"))
            requester = request.query.get("requester")
            if requester is not None and not 1 <= len(requester) <= _SUBJECT_CHARS:
                raise ApprovalError("bad_request", f"requester must be 1-{_SUBJECT_CHARS} "
                                    "characters", 400)
            visible = await self._visible(caller, None if status == "all" else status, limit,
                                          requester)
        except ApprovalError as refused:
            return _error(refused)
        except StoreError as exc:
            return _error(_unavailable(exc))
        return _json(200, {"approvals": [self._shown(a, caller) for a in visible],
                           "caller": {"sub": caller["sub"], "groups": caller["groups"]}})

    async def _visible(self, caller: Authenticated, status: str | None, limit: int,
                       requester: str | None = None) -> list[Approval]:
        """Up to `limit` approvals the caller may see (of `requester` only, when given),
        newest first: pages of the store read until enough are found (whom an approval
        names is in its JSON). `status` None: all; `decided`: every one no longer
        pending (expired ones too)."""
        found: list[Approval] = []
        before: int | None = None
        stored = None if status == "decided" else status
        while len(found) < limit:
            page = await self._store.list(stored, _MOST_LISTED, before)
            found += [a for a in page if a.visible_to(caller["sub"], caller["groups"])
                      and (requester is None or a.requester == requester)
                      and (status != "decided" or a.state() != "pending")]
            if len(page) < _MOST_LISTED:
                break
            before = page[-1].created_us
        return found[:limit]

    async def _show(self, request: web.Request) -> web.Response:
        try:
            caller = await self._caller(request)
            approval = await self._store.get(request.match_info["id"])
            if not approval.visible_to(caller["sub"], caller["groups"]):
                raise ApprovalError("not_found", f"no approval {approval.id}", 404)
            wait = await self._wait(approval)
        except ApprovalError as refused:
            return _error(refused)
        except StoreError as exc:
            return _error(_unavailable(exc))
        return _json(200, {**self._shown(approval, caller), "wait": wait})

    async def _wait(self, approval: Approval) -> dict[str, Any]:
        """How the held request waits: since when, until when at most (its policy's hold,
        capped, and never past the approval's expiry; none where nothing waits, as for a
        changed MCP tool definition), whether a request still waits on it now (its
        waiter's lease: none once its client left or its replica died, even before
        `until`) and on which replica, and how it was answered once it was (answered.py:
        what every surface says of it)."""
        until = (None if approval.hold_until_us is None
                 else min(approval.hold_until_us, approval.expires_us))
        found = await answered(self._store.store, approval)
        return {"since_us": approval.created_us, "until_us": until,
                "answered": found.as_json() if found else None,
                "waiting": approval.waiting(), "held_by": approval.held_by}

    # -- deciding ------------------------------------------------------------------------

    async def _approve(self, request: web.Request) -> web.Response:
        return await self._decide(request, approve=True)

    async def _deny(self, request: web.Request) -> web.Response:
        return await self._decide(request, approve=False)

    async def _decide(self, request: web.Request, approve: bool) -> web.Response:
        """Decide, as the caller."""
        try:
            caller = await self._caller(request)
        except ApprovalError as refused:
            return _error(refused)
        return await self.decide(request, caller, request.match_info["id"], approve,
                                 await request.read())

    async def decide(self, request: web.Request, caller: Authenticated, approval_id: str,
                     approve: bool, raw: bytes,
                     slack: dict[str, str] | None = None) -> web.Response:
        """Decide `approval_id` as `caller`, as `raw` (the JSON body) asks; the attempt is
        traced and recorded whatever its end. Every way of deciding comes here: the API
        and its page, and a click in Slack (`slack`: the Slack user who clicked, as the
        identity they linked), whose record says so and names both."""
        verb = "approve" if approve else "deny"
        started = time.time()
        try:
            found: Approval | None = await self._store.get(approval_id)
        except (ApprovalError, StoreError):
            found = None  # answered below, once the attempt is traced
        attributes = {"enduser.id": caller["sub"] or "", "tollgate.approval.id": approval_id,
                      "tollgate.approval.action": verb,
                      **({"tollgate.approval.via": "slack",
                          "tollgate.slack.user_id": slack["user_id"]} if slack else {})}
        name = f"tollgate approval {verb}"
        span = (self._telemetry.start_in_trace(name, found.trace_id, found.span_id, attributes)
                if found else self._telemetry.start_span(name, attributes))
        trace_id = trace_id_of(span)
        outcome: dict[str, Any] = {"tollgate.decision.action": verb}
        decided: Approval | None = None
        response = web.Response(status=500)  # replaced below, whatever happens

        def finish() -> Evidence:
            approval = decided or found
            if approval is not None:
                span.set_attributes({
                    "tollgate.approval.status": approval.state(),
                    "tollgate.approval.requested_by": approval.requester,
                    **({"tollgate.approval.reason": approval.reason} if approval.reason
                       else {}),
                })
            span.set_attributes(outcome)
            span.end()
            return self._evidence(request, raw, caller, started, span, approval, outcome,
                                  response, slack)

        with recorded(self._recorder, None, finish) as admit:
            refusal: ApprovalError | None = None
            try:
                admit()
                reason, minutes = _asked(raw, approve)
                decided = await self._store.decide(approval_id, caller["sub"],
                                                   caller["groups"], approve, reason, minutes)
                log.info("approval %s %s by %s%s", approval_id, decided.status, caller["sub"],
                         f" (in Slack, as Slack user {slack['user_id']})" if slack else "")
            except RecordingUnavailable as exc:
                refusal = ApprovalError("recording_unavailable", str(exc), 503)
            except ApprovalError as exc:
                refusal = exc
            except StoreError as exc:
                refusal = _unavailable(exc)
            except Exception:  # a bug: answered and recorded all the same (its place is taken)
                log.exception("approval %s: deciding failed", approval_id)
                refusal = ApprovalError("internal_error",
                                        "tollgate could not process this request", 500)
            if refusal is None and decided is not None:
                response = _json(200, {**self._shown(decided, caller),
                                       "effect": effect(decided), "trace_id": trace_id})
            else:
                assert refusal is not None
                outcome["tollgate.refusal"] = refusal.code
                response = _error(refusal, trace_id)
            outcome["http.response.status_code"] = response.status
        return response

    def _evidence(
        self, request: web.Request, raw: bytes, caller: Authenticated, started: float,
        span: Span, approval: Approval | None, outcome: dict[str, Any],
        response: web.Response, slack: dict[str, str] | None = None,
    ) -> Evidence:
        """The attempt as the audit record keeps it: the approver's request and identity,
        the approval as it stands after it (`via` slack and the Slack user, for a click
        there), the answer."""
        held = None
        if approval is not None:
            held = (approval.for_record("api") if slack is None
                    else {**approval.for_record("slack"), "slack": slack})
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers.update({":method": request.method, ":path": request.path_qs})
        view = request_view(headers, self._sensitive)
        evidence = Evidence(
            "approval", started, trace_id_of(span), span_id_of(span), headers, caller,
            self._targets.get(approval.target) if approval else None, view,
            BodyCapture.of(raw, self._record_limit),
            approval=held,
            response={"status": response.status, "headers": {
                "content-type": response.content_type}, "body": None},
            response_type=response.content_type, outcome=outcome,
            duration_ms=(time.time() - started) * 1000,
        )
        # The API's answers are built from text or bytes, so their body is bytes; aiohttp
        # types it as any payload it could send.
        evidence.response_body = BodyCapture.of(response.body, self._record_limit)  # type: ignore[arg-type]
        evidence.response_read = True
        return evidence

    # -- helpers -------------------------------------------------------------------------

    async def _caller(self, request: web.Request) -> Authenticated:
        try:
            return await caller_of(self._verifier, request)
        except AuthError as exc:
            log.warning("approvals API: %s %s refused: %s", request.method, request.path, exc)
            raise ApprovalError("unauthenticated", str(exc), 401) from None

    def _shown(self, approval: Approval, caller: Authenticated) -> dict[str, Any]:
        """The approval as the API answers it: its fields, where it is decided (the API's
        URL, the page's view of it), where its trace and record are read, and whether the
        caller may decide it (the requester never may)."""
        api_url = approve_url(self._url, approval.id)
        return {
            **approval.as_json(), "approve_url": api_url,
            "page_url": page_url(api_url, approval.id),
            "record_url": (f"{self._url}/recordings/ui#record={approval.trace_id}"
                           if self._url else None),
            "trace_url": (self._trace_url.replace("{trace_id}", approval.trace_id)
                          if self._trace_url else None),
            "may_decide": approval.may_decide(caller["sub"], caller["groups"]) is None,
            "reads_record": self._reads_record(caller),
            # An approver who is no reader still reads the requester's records on its
            # target (recordings/api.py: search by approval), to decide knowing them.
            "reads_requester": approval.is_approver(caller["sub"], caller["groups"]),
        }

    def _reads_record(self, caller: Authenticated) -> bool:
        """Whether the caller is one of the record's readers (recordings/readers.py): the
        page asks the record for the requester's activity only then, so a viewer who is
        none is not counted as a refused read of the record."""
        if self._readers is None:
            return False
        try:
            self._readers.scope(caller)
        except NotAReader:
            return False
        return True


def _asked(raw: bytes, approve: bool) -> tuple[str | None, int | None]:
    """The decision's reason and, approving a window grant, its length, from a JSON body
    {"reason": "...", "grant_minutes": N} (an empty body: neither)."""
    body: Any = {}
    if raw.strip():
        try:
            body = parse_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApprovalError("bad_json", f"the body is not JSON: {exc}", 400) from None
    fields = {"reason", "grant_minutes"} if approve else {"reason"}
    if not isinstance(body, dict) or set(body) - fields:
        shape = ('{"reason": "...", "grant_minutes": N}' if approve
                 else '{"reason": "..."}')
        raise ApprovalError("bad_request", f"expected a JSON object {shape}", 400)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApprovalError("bad_request", "reason must be a string", 400)
    reason = (reason or "").strip() or None
    if not approve and reason is None:
        raise ApprovalError("reason_required", 'a denial needs a reason: {"reason": "..."}',
                            400)
    if reason is not None and len(reason) > _REASON_CHARS:
        raise ApprovalError("bad_request", f"reason is longer than {_REASON_CHARS} characters",
                            400)
    minutes = body.get("grant_minutes")
    if minutes is not None and (type(minutes) is not int or minutes < 1):
        raise ApprovalError("bad_request", f"grant_minutes must be a whole number of "
                            f"minutes, got {minutes!r}", 400)
    return reason, minutes


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MOST_LISTED:
        raise ApprovalError("bad_request", f"limit must be 1-{_MOST_LISTED}, got {text!r}", 400)
    return int(text)


def _unavailable(exc: StoreError) -> ApprovalError:
    return ApprovalError("approvals_unavailable", f"the approvals store cannot answer: {exc}",
                         503)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(refused: ApprovalError, trace_id: str | None = None) -> web.Response:
    body = {"error": refused.code, "message": str(refused)}
    if trace_id is not None:
        body["trace_id"] = trace_id
    return _json(refused.status, body)


def effect(approval: Approval) -> str:
    """What a decision does now, for whoever made it: a waiting request passes (or is
    refused) at once; with nobody waiting (its client left, or its replica died), only a
    retry of exactly that request is let through, once, while the approval lasts; one
    approval of several needed does nothing yet."""
    if approval.status == "pending":
        more = approval.approvals_needed - len(approval.approved_by)
        return (f"approved by {', '.join(approval.approved_by)}: it needs {more} more "
                f"approver{'s' if more > 1 else ''} before the request passes")
    if approval.status == "denied":
        return ("the waiting request is refused now" if approval.waiting()
                else "no request waits on it now: a retry of it is refused")
    if approval.waiting():
        return f"the request waiting on it (on {approval.held_by}) passes now"
    grant = ("a retry of exactly this request passes, once" if approval.grant_mode == "once"
             else "the requester's requests on its target pass for the window")
    return (f"no request waits on it now (its client left, or {approval.held_by}, which "
            f"held it, stopped): {grant}")
