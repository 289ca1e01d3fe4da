"""The steps every exchange takes, whatever protocol carried it.

    open ─► admit ─► interpret ─► decide ─► [hold] ─► forward ─► decide the response ─► record

Fronts drive them through an Act (act.py), one per exchange; the pipeline decides,
holds, injects credentials and records, and raises Refusal for anything it will not
pass. It fails closed: a policy engine that cannot answer denies (unless the target
fails open), a mask that cannot be applied denies, an approvals store that cannot
answer refuses the hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any, TypeVar

from extproc import ledger
from extproc.activity.administrative import administrative
from extproc.activity.flow import UNREAD, acts
from extproc.activity.tracker import keys_of
from extproc.approvals.hold import bound_to
from extproc.approvals.model import Approval, denial
from extproc.codecs.refusal import Refusal, Refused, Unavailable
from extproc.config import Config, Target
from extproc.credentials import Injection
from extproc.exchange.act import Act
from extproc.exchange.budgeted import Budgeting
from extproc.exchange.live import LiveSessions
from extproc.exchange.ports import (
    Activity,
    Alerts,
    Credentials,
    Flow,
    Holds,
    Recorder,
    Revisions,
)
from extproc.exchange.state import Exchange, approved
from extproc.identity import Who, identity_of, refusal, span_attributes, subject_of
from extproc.interpret import Interpreter, interpreter_for
from extproc.interpret.mcp import ToolLister, ToolPins
from extproc.masking import Masker
from extproc.masking.fingerprints import DEFAULT_KINDS, Fingerprints, strings
from extproc.masking.policy_mask import MaskError, spec_of
from extproc.policy import Decision, PolicyEngine, PolicyError
from extproc.policy.decision import HOLD_TOO_LATE, POLICY_ERROR, Severity
from extproc.policy.input import InputEncoder
from extproc.recording import Evidence
from extproc.recording.record import CLIENT_LEFT
from extproc.store import StoreError
from extproc.telemetry import Telemetry, span_id_of, trace_id_of
from extproc.token_exchange import TokenUnavailable, verified_subject

log = logging.getLogger("tollgate.exchange")

# Above this, a request's meaning is read on a worker thread: parsing 100 KiB of SQL
# takes tens to hundreds of ms, which must not stall every other exchange's messages.
_INLINE_SIZE = 16 * 1024
_T = TypeVar("_T")


async def off_loop(size: int, read: Callable[..., _T], *args: Any) -> _T:
    """`read(*args)`, on a worker thread when it reads more than _INLINE_SIZE bytes: a
    model's answer of a megabyte of command lines can take over a second to read."""
    if size <= _INLINE_SIZE:
        return read(*args)
    return await asyncio.to_thread(read, *args)


class Pipeline:
    """What one process holds for every exchange: the engine, the stores, and per target
    its interpreter and policy input encoder (built once, at start)."""

    def __init__(
        self, config: Config, engine: PolicyEngine, telemetry: Telemetry,
        credentials: Credentials, masker: Masker, recorder: Recorder, holds: Holds,
        pins: ToolPins | None = None, activity: Activity | None = None,
        alerts: Alerts | None = None, revisions: Revisions | None = None,
        live: LiveSessions | None = None, budgets: Budgeting | None = None,
        lister: ToolLister | None = None, flow: Flow | None = None,
    ) -> None:
        """`revisions`: whether this process serves the newest policy revision of those
        the processes sharing its store serve (None: not asked); `live`: the sessions
        open here and the identities locked (live.py; None: a registry of its own);
        `budgets`: what reserves and settles the budgets (None: none is configured);
        `lister`: what lists an MCP server's tools when a call names one with no pin
        (approvals/self_listing.py; None: nothing does); `flow`: what each identity and
        run received (activity/flow.py; None: input.flow is null)."""
        self.masker, self.recorder = masker, recorder
        self._flow = flow
        kinds = config.flow.fingerprints
        self._fingerprints = Fingerprints(masker, DEFAULT_KINDS if kinds is None else kinds) \
            if flow is not None and kinds != () else None
        self.budgets = budgets
        self.live = live if live is not None else LiveSessions()
        self._activity, self._alerts, self._revisions = activity, alerts, revisions
        self.record_limit = config.recording.max_body_bytes
        self._engine, self.telemetry = engine, telemetry
        self._credentials, self._holds = credentials, holds
        self._identity = config.identity
        self._by_route = {t.match.route: t for t in config.targets if t.match.route}
        self._by_cluster = {t.match.cluster: t for t in config.targets if t.match.cluster}
        self._interpreters: dict[str, Interpreter | None] = {
            t.name: interpreter_for(t, pins, lister) for t in config.targets}
        self._encoders = {
            t.name: InputEncoder(t, getattr(self._interpreters[t.name], "key", None))
            for t in config.targets
        }

    def target_for(self, route: str | None, cluster: str | None) -> Target | None:
        """The target a request is routed to, by Envoy's route name, else its cluster's."""
        return self._by_route.get(route or "") or self._by_cluster.get(cluster or "")

    def act(self, name: str, headers: dict[str, str], attributes: dict[str, Any],
            target: Target | None, claims: dict[str, Any] | None,
            source: str | None = None) -> Act:
        """A front's act (act.py): its exchange's state and span, who acts (from the
        claims the front verified, from `source`, the client's address when the front
        knows it), to which target. Nothing is refused yet: `Act.admit` does that,
        under the span."""
        with ledger.stage(ledger.front_of(target), "open"):
            return self._act(name, headers, attributes, target, claims, source)

    def _act(self, name: str, headers: dict[str, str], attributes: dict[str, Any],
             target: Target | None, claims: dict[str, Any] | None,
             source: str | None) -> Act:
        identity = identity_of(claims, self._identity)
        span = self.telemetry.start_exchange(name, headers,
                                              {**attributes, **span_attributes(identity)})
        trace_id = trace_id_of(span)
        evidence = Evidence("exchange", time.time(), trace_id, span_id_of(span), headers,
                            identity, target)
        exchange = Exchange(span, trace_id, evidence, self.record_limit, identity, target,
                            claims=claims, source=source)
        if target is not None and target.credential is not None \
                and target.credential.type == "token_exchange":
            # Kept for the exchange's trades (its request's, a listing of its target's
            # tools): what it is traded for acts for this agent alone.
            exchange.subject = verified_subject(claims, headers)
        if source is not None:
            exchange.outcome["client.address"] = source
        if target is not None:
            exchange.interpreter = self._interpreters[target.name]
            exchange.encoder = self._encoders[target.name]
            evidence.meaning_key = getattr(exchange.interpreter, "key", None)
        return Act(self, exchange)

    def subject(self, claims: dict[str, Any] | None) -> str:
        """Who acts with these verified claims, as locks and the live sessions name
        them: the token's subject ("anonymous" without one)."""
        return subject_of(identity_of(claims, self._identity))

    def identity(self, claims: dict[str, Any] | None) -> Who:
        """`input.identity` of whoever acts with these verified claims."""
        return identity_of(claims, self._identity)

    async def raise_about(self, identity: Who, target: Target, rule: str, severity: Severity,
                          message: str, key: str) -> None:
        """An alert of tollgate's own about an identity's doing on a target (alerts.py;
        nothing where this process raises none)."""
        if self._alerts is not None:
            await self._alerts.raise_about(identity, target, rule, severity, message, key)

    @staticmethod
    def identified(exchange: Exchange, target: str = "(none)", anonymous: bool = False) -> None:
        """Refusal (401) unless the exchange's claims name an identity (`target`: the
        target named in the refusal; `anonymous`: whether it lets anyone in)."""
        unidentified = refusal(exchange.claims, exchange.identity, target, anonymous)
        if unidentified is not None:
            raise Refused(401, "unauthenticated", unidentified)

    def admit(self, exchange: Exchange, detail: str) -> Target:
        """The exchange's target, when it has one and a verified identity may use it,
        its session not ended and its identity not locked; else Refusal. `detail` says
        how the front looked for the target."""
        target = exchange.target
        if target is None:
            raise Refused(404, "unknown_target", f"no target matches {detail}")
        # No token: Envoy's jwt_authn refuses it first, and reaching here means a route
        # without the filter's requirement: refuse rather than trust it.
        Pipeline.identified(exchange, target.name, target.anonymous)
        if (ended := self.live.refusal(exchange.who, exchange.live)) is not None:
            raise ended
        return target

    async def interpret(self, exchange: Exchange, size: int) -> None:
        """What the request means (`size`: the bytes its interpreter reads)."""
        interpreter = exchange.interpreter
        if interpreter is not None:
            with ledger.stage(exchange.front, "interpret"):
                meaning = await off_loop(size, interpreter.request, exchange.request)
            # What the upstream declared that the meaning depends on (an MCP tool's
            # pinned definition), from a store: asked once the request is read (with the
            # request's headers and evidence, should the upstream have to be asked).
            complete = getattr(interpreter, "complete", None)
            exchange.interpret(meaning if complete is None else await complete(
                meaning, exchange.evidence.headers, exchange.evidence, exchange.subject))
            # What of the request its upstream reads as content rather than as the agent's
            # own words (a model's tool results, however the agent reached its tools):
            # words to the model in it are noted before the model, and the agent, act.
            told = getattr(interpreter, "told", None)
            if told is not None and self._flow is not None \
                    and (kinds := told(exchange.meaning)):
                await self.received(exchange, "instructions", kinds)

    def decides_responses(self, exchange: Exchange) -> bool:
        """Whether the policy decides this exchange's response (else the request's decision
        stands for it, and the response need not be read for the policy)."""
        assert exchange.encoder is not None
        return self._engine.decides_responses(exchange.encoder.target_json)

    async def decide(self, exchange: Exchange, phase: str) -> Decision:
        """Ask the policy; an engine that cannot answer denies, unless the target fails open.
        A response the pack does not decide for this target keeps the request's decision."""
        target = exchange.target
        assert target is not None
        if phase == "response" and not self.decides_responses(exchange):
            return exchange.decision
        if self._revisions is not None and (behind := self._revisions.refusal()) is not None:
            raise Unavailable(503, "policy_behind", behind)
        started = time.perf_counter()
        with ledger.stage(exchange.front, "activity"):
            activity = await self._counted(exchange, phase)
        if phase == "request" and self._flow is not None:
            with ledger.stage(exchange.front, "flow"):
                exchange.flow = await self._received_before(exchange)
        try:
            with ledger.stage(exchange.front, "decide"):
                decision = await self._engine.decide(exchange.policy_input(phase, activity))
            if decision.action == "allow" and decision.masks_anything:
                spec_of([decision.mask])  # a detector or strategy that exists nowhere
        except (PolicyError, MaskError) as exc:
            fail_open = target.fail_mode == "open"
            self._policy_failed(exchange, exc, f"on target {target.name} "
                                f"({'failing open' if fail_open else 'refused'})")
            decision = replace(POLICY_ERROR, action="allow") if fail_open else POLICY_ERROR
            exchange.outcome["tollgate.policy.error"] = str(exc)
            if fail_open:
                exchange.outcome["tollgate.fail_open"] = True
        if (decision.action in ("allow", "hold") and decision.masks_anything
                and exchange.response_mode not in ("body", "text")):
            # Nothing would be masked: letting the data through would leak what the
            # policy asked to hide (a hold too: nobody need be asked to approve it).
            decision = Decision(action="deny", reasons=(_unmaskable(exchange),),
                                rules=(*decision.rules, "tollgate.mask_unavailable"))
        elif decision.action == "hold" and phase != "request":
            decision = _held_again(exchange, decision)
        exchange.decided(phase, decision, self._engine.revision,
                         int((time.perf_counter() - started) * 1e6))
        # Each waits on the store's write lock for at most a read's retries: together,
        # so that the answer waits for the longer, not for the sum.
        waits = [*([self._activity.refused(exchange.identity)]
                   if decision.action == "deny" and self._activity is not None else []),
                 *([self._alerts.raised(exchange, decision.alerts)]
                   if decision.alerts and self._alerts is not None else [])]
        if waits:
            await asyncio.gather(*waits)
        await self._attended(exchange, phase, decision)
        return decision

    @property
    def notes_received(self) -> bool:
        """Whether what agents receive is noted (activity/flow.py): else nothing need be
        read for it."""
        return self._flow is not None

    async def _received_before(self, exchange: Exchange) -> bytes:
        """input.flow: what the identity and run received, read where the request can
        act on it (activity/flow.py), with which of the protected values the request
        carries out they received (`carries`)."""
        assert self._flow is not None and exchange.target is not None
        method = exchange.request["method"] if exchange.request is not None else ""
        if not acts(exchange.target.protocol, exchange.meaning, method):
            return UNREAD
        fingerprints = self._fingerprints

        def carried() -> list[str]:
            """Read only where the identity or run was given values it could carry out."""
            if fingerprints is None:
                return []
            return list(fingerprints.of_text(_SEPARATOR.join(_carried_out(exchange))))

        return await self._flow.read(keys_of(exchange.identity)[0], _run_of(exchange),
                                     carried)

    def fingerprinting(self, exchange: Exchange) -> frozenset[str]:
        """The kinds of protected value an answer of the exchange can carry to the agent
        unmasked (those its mask leaves), whose values are kept as fingerprints (none:
        nothing need be read for them)."""
        if self._fingerprints is None:
            return frozenset()
        return self._fingerprints.unmasked(exchange.mask)

    def fingerprints(self, value: Any, kinds: frozenset[str]) -> dict[str, str]:
        """The fingerprints of values of `kinds` in a text or JSON value, as the agent
        gets it (digest -> kind)."""
        assert self._fingerprints is not None
        if isinstance(value, str):
            return self._fingerprints.of_text(value, kinds)
        return self._fingerprints.of_json(value, kinds)

    async def kept(self, exchange: Exchange, found: dict[str, str]) -> None:
        """Keep, before the answer reaches the agent, the fingerprints of the protected
        values it carries unmasked (`found`). A store that cannot take them refuses the
        answer (503): a value that reached the agent unkept could leave unnoticed."""
        if self._flow is None or not found:
            return
        target = exchange.target
        assert target is not None
        try:
            with ledger.stage(exchange.front, "flow"):
                await self._flow.kept(keys_of(exchange.identity)[0], _run_of(exchange),
                                      target.name, exchange.trace_id, found)
        except StoreError as exc:
            log.error("trace %s: values received not kept: %s", exchange.trace_id, exc)
            raise Unavailable(503, "flow_unavailable", "this answer carries protected "
                              "values, and the store that keeps what each agent received "
                              "cannot keep them") from None
        exchange.outcome["tollgate.flow.kept"] = \
            int(exchange.outcome.get("tollgate.flow.kept", 0)) + len(found)

    async def received(self, exchange: Exchange, cause: str, kinds: tuple[str, ...] = ()
                       ) -> None:
        """Note, before the answer reaches the agent, that it is untrusted content
        (`cause`: `untrusted`, of a target so marked; `instructions`, words to the model
        found in it, of `kinds`); once per exchange and cause. A store that cannot take
        the note refuses the answer (503): it would reach the agent unnoted."""
        if self._flow is None or cause in exchange.received:
            return
        target = exchange.target
        assert target is not None
        try:
            await self._flow.received(keys_of(exchange.identity)[0], _run_of(exchange),
                                      target.name, cause, kinds, exchange.trace_id)
        except StoreError as exc:
            log.error("trace %s: untrusted content not noted: %s", exchange.trace_id, exc)
            raise Unavailable(503, "flow_unavailable", "this answer is untrusted content, "
                              "and the store that notes what each agent received cannot "
                              "take the note") from None
        exchange.received.add(cause)
        exchange.outcome["tollgate.flow.received"] = tuple(sorted(exchange.received))

    async def _counted(self, exchange: Exchange, phase: str) -> str | None:
        """input.activity (JSON text; None: not tracked), and the exchange's budgets
        reserved for its request's decision: taken before it, not checked then counted
        (activity/budgets.py)."""
        if self.budgets is not None and phase == "request":
            await self.budgets.reserve(exchange)
        if self._activity is None:
            return None
        acts = administrative(exchange.evidence.meaning_key, exchange.meaning)
        if acts:
            exchange.outcome["tollgate.activity.administrative"] = True
        # The live counts are read for the request's decision (the response's is on the
        # same exchange).
        return await self._activity.input_json(
            exchange.identity, acts, exchange.target if phase == "request" else None,
            exchange.source)

    async def _attended(self, exchange: Exchange, phase: str, decision: Decision) -> None:
        """A request the policy lets through only while a moderator attends its session
        (`moderated`): on once one does (exchange/presence.py). A login goes on: its
        session's exchanges wait."""
        if decision.moderated and decision.action != "deny" and phase == "request" \
                and not exchange.opening:
            await self.live.attendance.attended(exchange)

    async def probe(self, exchange: Exchange, phase: str, meaning: Any) -> Decision:
        """The policy's decision on `meaning` in this exchange's place (a tool a tools/list
        would show, a request the server sends): not the exchange's own decision, so not
        recorded as one. An engine that cannot answer denies, whatever the target's
        fail mode: what is probed is shown or passed only on an allow."""
        assert exchange.encoder is not None and exchange.request is not None
        try:
            return await self._engine.decide(exchange.encoder.encode(
                phase, exchange.identity, exchange.request, exchange.response, meaning))
        except PolicyError as exc:
            self._policy_failed(exchange, exc, "on a probe")
            return POLICY_ERROR

    def _policy_failed(self, exchange: Exchange, exc: Exception, where: str) -> None:
        """A decision the policy could not give: logged with the trace and the rule (when
        the engine can say which), and alerted (POLICY_ERROR's rule, once per identity
        within the alerts' window): a pack that fails at evaluation must not be silent."""
        rule = exc.rule if isinstance(exc, PolicyError) else None
        in_rule = f" in rule {rule}" if rule else ""
        log.error("trace %s: policy error%s %s: %s", exchange.trace_id, in_rule, where, exc)
        if self._alerts is not None:
            self._alerts.raise_soon(exchange, POLICY_ERROR.rules[0], "critical",
                                    f"policy error{in_rule} {where}: {exc}")

    def hold_seconds(self, held: Decision) -> int:
        """The longest a request `held` waits: what a front asks its peer to wait for
        before the hold begins (Envoy's ext_proc: before anything the hold does can be
        slow, so that its own 2 s message_timeout never cuts a hold short)."""
        return self._holds.seconds(held)

    async def hold(self, exchange: Exchange, held: Decision) -> AsyncIterator[int]:
        """Wait for a human: pass on a grant that covers this request, else wait on its
        approval up to `hold_seconds`, first yielding how long, for the front to tell its
        peer to wait as long. Ends with the settled decision as `exchange.decision`: an
        allow on approval; else a refusal naming the approval (raised as Refusal).

        A hold that ends before its decision reaches it (its client gone, a failure)
        withdraws its approval (Holds.left), unless its front interrupted it having told
        its client. Should an identical request's client leave and so withdraw the
        approval this one still waits on (in another process), this one asks anew, for
        what is left of its wait, yielding that."""
        holds = self._holds
        bound = bound_to(exchange.evidence)
        try:
            approval = await holds.granted(bound, held, exchange.evidence)
            via, passes = "grant", approval is not None
            if approval is None:
                via, seconds = "hold", holds.seconds(held)
                until = time.monotonic() + seconds
                while True:
                    approval = await holds.ask(bound, held, exchange.evidence)
                    try:
                        exchange.approval_event(approval, via, seconds)
                        # Held is recorded as held, durably, before the wait: should this
                        # replica die while it waits, the record still shows the request
                        # and its approval. Not charged to the identity's share of the
                        # queue: its exchange's place is taken already, and the approvals
                        # it may have pending are bounded.
                        await self.recorder.commit(exchange.strict_record())
                        yield seconds
                        approval, passes = await self._waited(exchange, approval, seconds)
                    except BaseException as stopped:  # nobody is told of it: withdrawn
                        if isinstance(stopped, (asyncio.CancelledError, ClientLeft)):
                            exchange.outcome["tollgate.outcome"] = CLIENT_LEFT
                        exchange.approval_event(await holds.left(approval, stopped), via)
                        raise
                    seconds = int(until - time.monotonic())
                    if passes or not holds.withdrawn(approval) or seconds < 1:
                        break
        except StoreError as exc:
            raise Unavailable(503, "approvals_unavailable", "this request needs an approval, "
                           f"and the approvals store cannot answer: {exc}") from None
        exchange.approval_event(approval, via)
        if not passes:
            raise approval_refusal(approval, holds.approve_url(approval))
        exchange.approved(approval)

    async def _waited(self, exchange: Exchange, approval: Approval,
                      seconds: int) -> tuple[Approval, bool]:
        """The wait on `approval` (Holds.settle), ClientLeft when the client's connection
        goes first; counted on the exchange's live session while it lasts."""
        live = exchange.live
        if live is not None:
            live.holds += 1
        try:
            return await _while_here(
                self._holds.settle(approval, seconds, exchange.trace_id), exchange.gone)
        finally:
            if live is not None:
                live.holds -= 1

    async def forward(self, exchange: Exchange, ends_first: bool = False) -> Injection:
        """An allowed request goes upstream: with the target's credential, never the
        client's; a strict target's decision is durable in the record first, any
        other's journaled (provisional: a process killed before the exchange ends
        leaves it), unless `ends_first` (the front ends the act before the request
        leaves: its own record is journaled then).

        A target whose token is asked of an authorization server gets it here, before
        anything says the request went on (token exchange trades the exchange's
        `subject`); none is a 503 naming why."""
        target = exchange.target
        assert target is not None
        if target.untrusted:  # noted before anything of its answer can come back
            await self.received(exchange, "untrusted")
        try:
            injection = await self._credentials.upstream(target.name, exchange.subject)
        except TokenUnavailable as exc:
            raise Unavailable(503, "credential_unavailable", "the upstream's credential "
                              f"cannot be obtained: {exc}") from None
        if target.record == "strict":
            await self.recorder.commit(exchange.strict_record(), exchange.who)
        elif not ends_first:
            self.recorder.provisional(exchange.strict_record())
        exchange.forwarded = True
        if target.credential is not None and target.credential.exchanged:
            exchange.exchanged_token = injection.value.decode("ascii").removeprefix("Bearer ")
        return injection

    def responded(self, exchange: Exchange, status: int, headers: dict[str, str],
                  content_type: str, upstream_ms: float) -> None:
        """The upstream's response headers arrived; a 401 to a token tollgate asked an
        authorization server for drops that token from the cache."""
        exchange.responded(status, headers, content_type, upstream_ms)
        if status == 401 and exchange.exchanged_token is not None:
            assert exchange.target is not None
            self._credentials.rejected(exchange.target.name, exchange.exchanged_token)

    def credential(self, target: Target) -> Injection:
        """The target's credential, what its upstream is reached with."""
        return self._credentials.injection(target.name)



def approval_refusal(approval: Any, approve_url: str | None) -> Refusal:
    """A held request's refusal: which approval, where it stands, where to decide it.
    A retry of the same request passes once it is approved."""
    state = approval.state()
    if state == "denied":
        message = denial(approval.id, approval.decided_by, approval.reason)
    elif state == "pending":
        message = (f"this request needs an approval by {', '.join(approval.approvers)}; "
                   f"approval {approval.id} is pending: retry once it is approved")
    elif state == "used":
        message = (f"approval {approval.id} let another request like this one through, "
                   "once; a retry asks anew")
    elif state == "abandoned":
        message = f"approval {approval.id} was abandoned ({approval.reason})"
    else:
        message = f"approval {approval.id} expired undecided; a retry asks anew"
    details = {"approval_id": approval.id, "status": state, "approve_url": approve_url,
               "reasons": list(approval.reasons), "rules": list(approval.rules)}
    if state == "denied":
        return Refused(403, "approval_denied", message, details=details)
    return Refused(403, "approval_required", message, details=details, action="hold")


def _held_again(exchange: Exchange, held: Decision) -> Decision:
    """A hold after the request went upstream (the policy holds its response too): the
    approval its request got covers the whole exchange; without one there is nothing
    left to hold, the upstream having acted, and the response is refused."""
    if exchange.approval is not None:
        return approved(held, exchange.approval)
    return Decision(action="deny", reasons=("a response cannot be held for approval",
                                            *held.reasons),
                    rules=(*held.rules, HOLD_TOO_LATE), status=held.status)


def _unmaskable(exchange: Exchange) -> str:
    target = exchange.target
    assert target is not None
    upgraded = "upgrade" in exchange.evidence.headers
    if not upgraded and (exchange.response_mode != "none" or target.inspect.response != "body"):
        return (f"masking requested, but target {target.name} does not inspect "
                "response bodies (inspect.response: body)")
    if target.protocol == "k8s":  # SPDY, or a bootstrap without the stream route
        return ("a Kubernetes stream is read only over WebSocket, through tollgate's "
                "Kubernetes front: this one came another way (SPDY, kubectl's fallback "
                "after a WebSocket attempt failed, or a route that skips the front)")
    return "masking requested, but an upgraded connection (WebSocket, SPDY) cannot be masked"


class ClientLeft(Refused):
    """The client's connection went while its request waited: nobody is left to answer
    (499, as proxies log a client that closed its request)."""

    def __init__(self) -> None:
        super().__init__(499, CLIENT_LEFT, "the client went away while its request "
                         "waited for approval")


async def _while_here(work: Coroutine[Any, Any, _T], gone: asyncio.Event | None) -> _T:
    """`work`'s result, unless the client's connection goes first (`gone` set): then
    `work` is cancelled (a wait lets go of its approval) and ClientLeft raised."""
    if gone is None:
        return await work
    task = asyncio.ensure_future(work)
    left = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientLeft
    return task.result()


_SEPARATOR = "\n\n"  # between the parts of a request: no detector reads across it
# What frames a request rather than carries its data (tollgate sets traceparent itself).
# Any other header carries data out as well as a body does: a User-Agent, a tracestate.
_FRAMING = frozenset({":method", ":scheme", "content-length", "transfer-encoding",
                      "traceparent", "connection"})


def _carried_out(exchange: Exchange) -> Iterator[str]:
    """What a request carries out, as its upstream gets it: the URL (path and query),
    the header values but those that frame it, the body (SQL, a command line, a JSON
    value's strings)."""
    request = exchange.request
    if request is None:
        return
    headers = exchange.evidence.headers
    if headers:
        yield from (value for name, value in headers.items() if name not in _FRAMING)
    else:
        yield request["path"]
        yield from request["headers"].values()
    body = request["body"]
    if body is not None:
        yield from strings(body)


def _run_of(exchange: Exchange) -> str | None:
    """The agent run an exchange belongs to: the trace the agent sent (None: it sent
    none, and its identity is the only scope)."""
    return exchange.trace_id if exchange.span.continued else None
