"""The Kubernetes stream front: where Envoy sends a k8s target's WebSocket upgrades.

    kubectl ─TLS─► Envoy (its k8s route's stream route: an `Upgrade` header) ─► this
      worker's port (a WebSocket server: websockets, asyncio)
        Authorization  → the agent's token, verified here (Envoy's jwt_authn is off on
                         this route so that the token reaches tollgate, as a PostgreSQL or
                         SSH password does; tollgate verifies it as Envoy would)
        x-tollgate-route → the target (Envoy's route sets it, replacing any the client sent)
        the URL        → the exec, attach or port-forward, read as the API server reads it
                         (interpret/k8s.py) and decided before anything reaches the cluster;
                         a refusal is the HTTP answer, a Kubernetes Status kubectl prints
        allowed        → tollgate opens the same stream to the API server (k8s.upstream)
                         with the target's credential, answers the client's upgrade with
                         the subprotocol the server chose, and relays (streams.py)

Why a front of its own and not ext_proc on the upgraded bytes: ext_proc would hand tollgate
the WebSocket's raw bytes cut anywhere, in a gRPC round trip per chunk, and must rewrite
frames whose lengths masking changes; a line held for approval would stall Envoy's
stream under its message timeout; and Envoy's upgrade handling under ext_proc's body modes
has regressed before (envoyproxy/envoy#47048, #47081). Owning the WebSocket, tollgate owns
the state a decision depends on — which channel, which line, which file — as it does for
PostgreSQL and SSH (docs/architecture.md).

SPDY (kubectl's older transport, still its fallback) is refused with a Status saying so:
kubectl 1.31+ speaks WebSocket for exec, attach, cp and port-forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from extproc.codecs import k8s_channels as ch
from extproc.codecs.refusal import Refusal, Refused, Unavailable
from extproc.config import KubeFront, Target
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Answer
from extproc.interpret import Kubernetes
from extproc.kube.copy import ArchiveRefused, archive_mode
from extproc.kube.streams import StreamSettings, relay
from extproc.terminal.gate import Door, Gate, Verdict

if TYPE_CHECKING:
    from extproc.approvals.auth import Verifier
    from extproc.recording.terminal import TerminalRecordings

log = logging.getLogger("tollgate.kube")

# The header Envoy's stream route sets to the k8s route's name (config: match.route).
ROUTE_HEADER = "x-tollgate-route"
# The largest WebSocket message either side may send (kube's own limit is 32 MiB).
MAX_MESSAGE = 32 * 1024 * 1024
# Port-forward over WebSocket: kubectl 1.31+ tunnels SPDY in this subprotocol.
PORT_FORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
# What the record never keeps of the client's request headers.
_UNRECORDED = frozenset({"authorization", "cookie", "proxy-authorization",
                         "sec-websocket-key"})
# How long the API server may take to answer the upgrade.
_UPSTREAM_OPEN_SECONDS = 30.0


@dataclass
class _Failed:
    """A stream the pack allowed that cannot go on (the API server's own refusal, a pod
    not found, what tollgate cannot relay): the upgrade is accepted and the reason sent
    as the Status on the error channel, which kubectl prints. Refused before the upgrade
    (a 4xx), kubectl would retry over SPDY and print that attempt's answer instead."""

    status: dict[str, Any]
    protocol: ch.Subprotocol | None


# The streams that are sessions (their paths' last part): exec and attach.
_SESSIONS = ("/exec", "/attach")


@dataclass
class _Allowed:
    """A stream decided and opened upstream, waiting for its client's handshake."""

    gate: Gate
    verdict: Verdict
    upstream: ClientConnection
    protocol: ch.Subprotocol | None  # None: port-forward, relayed unread
    verb: str
    meaning: dict[str, Any]


class Front:
    """One worker's stream listener and the streams it relays."""

    def __init__(self, settings: KubeFront, worker: int, pipeline: Pipeline,
                 verifier: Verifier, targets: Sequence[Target],
                 recordings: TerminalRecordings, resolve: Any) -> None:
        self._settings, self._worker = settings, worker
        self.pipeline, self.verifier = pipeline, verifier
        self._recordings = recordings
        self.targets = {t.match.route: t for t in targets
                        if t.protocol == "k8s" and t.match.route}
        self._tls = {t.name: _upstream_tls(t, resolve) for t in self.targets.values()}
        self._allowed: dict[ServerConnection, _Allowed | _Failed] = {}
        self._server: Server | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._watchers: set[asyncio.Future[None]] = set()  # each connection's, until it ends
        self.stream_settings = StreamSettings(
            idle=settings.idle_release_ms / 1000, masked_max=settings.copy_masked_max_bytes,
            resizes_per_second=settings.resizes_per_second,
            client_read_seconds=settings.client_read_seconds)

    async def start(self) -> None:
        host, port = self._settings.address_of(self._worker)
        try:
            self._server = await serve(
                self._relay, host, port, process_request=self._admit,
                select_subprotocol=self._subprotocol, open_timeout=None,
                ping_interval=None, max_size=MAX_MESSAGE, compression=None,
                server_header=None)
        except OSError as exc:
            raise OSError(f"cannot listen for Kubernetes streams on {host}:{port}: "
                          f"{exc.strerror}") from None
        log.info("serving Kubernetes streams on %s:%d (%d targets)", host, port,
                 len(self.targets))

    async def stop(self, grace: float) -> None:
        """No new streams; those open get `grace` seconds, then are closed."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), grace)
        self._server.close()
        await self._server.wait_closed()
        for watcher in list(self._watchers):  # a handshake's, cut short with its server
            watcher.cancel()

    # -- the handshake: who, which target, what, decided, opened upstream ---------------

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """The upgrade decided and, allowed, opened upstream; else the answer to send."""
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        url = urlsplit(request.path)
        route = headers.get(ROUTE_HEADER, "")
        target = self.targets.get(route)
        door = Door("k8s", url.path, parse_qs(url.query, keep_blank_values=True),
                    {k: v for k, v in headers.items() if k not in _UNRECORDED},
                    f"route {route!r}",
                    {"http.request.method": "GET", "url.path": url.path})
        client = headers.get("user-agent", "")
        if target is None:
            gate = Gate(self.pipeline, None, None, str(uuid.uuid4()), client, door)
            return self._refused(gate, Refused(404, "unknown_target",
                                                f"no k8s target serves route {route!r}"))
        claims, problem = await self.verifier.verdict(_bearer(headers),
                                                      "no bearer token in Authorization")
        if problem is not None:
            gate = Gate(self.pipeline, target, None, str(uuid.uuid4()), client, door)
            return self._refused(gate, Refused(401, "unauthenticated", problem))
        gate = Gate(self.pipeline, target, claims, str(uuid.uuid4()), client, door,
                    self._gone(connection))
        if url.path.rstrip("/").endswith(_SESSIONS):
            # An exec or attach is a live session from its opening: listed (and endable)
            # while it is decided, so that on a moderated target a moderator can attend
            # it for its opening to go on; a port-forward is not one (its bytes pass
            # unread). The session closes with the stream, or with its refusal.
            gate.open.listed("kubernetes")
        verdict = await gate.decide("GET", {})
        if verdict.refusal is not None:
            gate.end(verdict)
            self._unlisted(gate)
            assert verdict.answer is not None
            return _status_response(verdict.answer)
        meaning = verdict.exchange.meaning or {}
        refused = _unrelayable(target, meaning, headers)
        if refused is not None:
            self._refuse_decided(connection, request, gate, verdict, refused)
            return None
        return await self._open_upstream(connection, request, gate, verdict, target, meaning)

    async def _open_upstream(self, connection: ServerConnection, request: Request,
                             gate: Gate, verdict: Verdict, target: Target,
                             meaning: dict[str, Any]) -> Response | None:
        assert target.k8s is not None and target.k8s.upstream is not None
        verb = str(meaning.get("verb"))
        offer = ch.offered(request.headers.get("sec-websocket-protocol", ""))
        known = (ch.PORT_FORWARD_PROTOCOLS if verb == "portforward" else ch.EXEC_PROTOCOLS)
        offered = [p for p in offer if p in known or (verb == "portforward"
                                                       and p == PORT_FORWARD_TUNNEL)]
        injection = verdict.act.credential()
        extra = {injection.header: injection.value.decode()} if injection.header else {}
        uri = target.k8s.upstream.rstrip("/").replace("http", "ws", 1) + request.path
        try:
            upstream = await connect(
                uri, additional_headers=extra,
                subprotocols=[Subprotocol(p) for p in offered] or None,
                ssl=self._tls[target.name], open_timeout=_UPSTREAM_OPEN_SECONDS,
                ping_interval=None, max_size=MAX_MESSAGE, compression=None,
                user_agent_header=request.headers.get("user-agent"))
        except InvalidStatus as exc:  # the API server's own answer: a Status, passed on
            answer = exc.response
            text = answer.body.decode("utf-8", "replace")
            masked = verdict.act.mask_text(text, body=None)
            gate.end(verdict, status=answer.status_code,
                     outcome={"tollgate.outcome": f"the API server answered "
                                                  f"{answer.status_code}"})
            self._unlisted(gate)
            self._fail(connection, request, verb, _server_status(masked, answer.status_code))
            return None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self._refuse_decided(connection, request, gate, verdict, Unavailable(
                502, "upstream_unavailable",
                f"the API server could not be reached: {exc or type(exc).__name__}"))
            return None
        chosen = upstream.subprotocol or ""
        if verb == "portforward":
            protocol = None
        elif chosen in ch.EXEC_PROTOCOLS:
            protocol = ch.EXEC_PROTOCOLS[chosen]
        else:
            await upstream.close()
            self._refuse_decided(connection, request, gate, verdict, Unavailable(
                502, "unreadable_stream", f"the API server chose subprotocol {chosen!r}, "
                "which tollgate cannot read"))
            return None
        self._allowed[connection] = _Allowed(gate, verdict, upstream, protocol, verb, meaning)
        return None

    def _unlisted(self, gate: Gate) -> None:
        """A stream refused after its session was listed: no longer listed."""
        if gate.open.live is not None:
            self.pipeline.live.close(gate.open.live)

    def _gone(self, connection: ServerConnection) -> asyncio.Event:
        """Set once the agent's connection is gone (kubectl killed, its network cut): a
        hold, of the stream's opening or of a line typed in its session, then stops
        waiting for it, as on every front."""
        gone = asyncio.Event()

        async def watch() -> None:
            await connection.wait_closed()
            gone.set()

        watcher = asyncio.ensure_future(watch())
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return gone

    def _subprotocol(self, connection: ServerConnection,
                     offered: Sequence[Subprotocol]) -> Subprotocol | None:
        """The client gets what the API server chose (it was among the client's offer),
        or, for a stream that failed, what kube would have chosen."""
        allowed = self._allowed.get(connection)
        if isinstance(allowed, _Failed):
            return Subprotocol(allowed.protocol.name) \
                if allowed.protocol is not None and allowed.protocol.name else None
        chosen = allowed.upstream.subprotocol if allowed is not None else None
        return chosen if chosen in offered else None

    def _refused(self, gate: Gate, bad: Refusal) -> Response:
        """A stream refused before any decision (no target, no identity): recorded."""
        return _status_response(gate.refuse("GET", bad))

    def _refuse_decided(self, connection: ServerConnection, request: Request, gate: Gate,
                        verdict: Verdict, bad: Refusal) -> None:
        """A stream allowed by the pack that tollgate still cannot relay: refused, in
        the stream (_Failed says why)."""
        exchange = verdict.exchange
        verdict.answer = answer = exchange.refuse(bad)
        verdict.refusal = f"tollgate: {bad.message} [trace {exchange.trace_id}]"
        exchange.outcome["tollgate.outcome"] = "refused"
        gate.end(verdict)
        self._unlisted(gate)
        _, status = _as_status(answer)
        self._fail(connection, request, str((exchange.meaning or {}).get("verb")), status)

    def _fail(self, connection: ServerConnection, request: Request, verb: str,
              status: dict[str, Any]) -> None:
        offer = ch.offered(request.headers.get("sec-websocket-protocol", ""))
        known = ch.PORT_FORWARD_PROTOCOLS if verb == "portforward" else ch.EXEC_PROTOCOLS
        self._allowed[connection] = _Failed(status, ch.negotiate(offer, known))

    # -- the stream ---------------------------------------------------------------------

    async def _relay(self, connection: ServerConnection) -> None:
        allowed = self._allowed.pop(connection, None)
        if allowed is None:  # cannot happen: the handshake answered otherwise
            await connection.close(1011, "tollgate: no decision for this stream")
            return
        if isinstance(allowed, _Failed):
            await _say_failed(connection, allowed)
            return
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        live = allowed.gate.open.live  # an exec's or attach's, listed as it was decided
        try:
            await relay(connection, allowed.upstream, allowed.gate, allowed.verdict,
                        allowed.protocol, allowed.meaning, self._recordings,
                        self.stream_settings, live)
        except Exception:
            log.exception("Kubernetes stream of %s failed", allowed.gate.session_id)
        finally:
            if live is not None:
                self.pipeline.live.close(live)
            self._streams.discard(task)
            await allowed.upstream.close()


async def _say_failed(connection: ServerConnection, failed: _Failed) -> None:
    """The failure as kube ends a stream: its Status on the error channel (its message
    alone before v4), then the close."""
    protocol = failed.protocol
    if protocol is not None:
        status = failed.status
        payload = (json.dumps(status) if protocol.status_json else str(status.get("message")))
        with contextlib.suppress(ConnectionClosed):
            await connection.send(ch.encode(protocol, ch.ERROR, payload.encode()))
    await connection.close(1000 if protocol is not None else 1011,
                           "" if protocol is not None else str(failed.status.get("message")))


def _server_status(body: str, code: int) -> dict[str, Any]:
    """The API server's refusal of the upgrade, as a Status (its body, when it is one)."""
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    if isinstance(found, dict) and found.get("kind") == "Status":
        return found
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"the API server answered {code}: {body[:500]}", "code": code}


def _bearer(headers: dict[str, str]) -> str | None:
    """The bearer token of the stream's Authorization header (None: none)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _unrelayable(target: Target, meaning: dict[str, Any],
                 headers: dict[str, str]) -> Refusal | None:
    """What the pack allowed but this front cannot relay faithfully, or None."""
    streams = meaning.get("exec") or {}
    if meaning.get("verb") not in ("exec", "attach", "portforward"):
        return Refused(400, "not_a_stream", "only exec, attach and port-forward are "
                        "streamed through tollgate's Kubernetes front")
    if streams.get("transport") == "spdy" or headers.get("upgrade", "").lower() != "websocket":
        return Refused(400, "spdy_refused", "SPDY streams are not relayed: kubectl speaks "
                        "WebSocket unless told otherwise (unset "
                        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS and KUBECTL_PORT_FORWARD_WEBSOCKETS)")
    try:
        archive_mode([str(a) for a in streams.get("command") or []])
    except ArchiveRefused as exc:
        return Refused(403, "unreadable_archive", str(exc))
    if target.k8s is None or target.k8s.upstream is None:
        return Unavailable(502, "no_upstream", f"target {target.name!r} names no API server "
                        "for streams (k8s.upstream)")
    return None


def _status_response(answer: Answer) -> Response:
    """A refusal as the API server words one, as the HTTP front answers k8s targets: a
    Status kubectl prints ("unable to upgrade connection: tollgate refused: ..."). The
    exchange shaped it already (the k8s interpreter's refusal)."""
    status, body = _as_status(answer)
    return Response(status, http.HTTPStatus(status).phrase,
                    Headers([("Content-Type", "application/json")]), json.dumps(body).encode())


def _as_status(answer: Answer) -> tuple[int, dict[str, Any]]:
    if answer.body.get("kind") == "Status":
        return answer.status, answer.body
    return Kubernetes.refusal(answer.body, answer.status, None)


def _upstream_tls(target: Target, resolve: Any) -> ssl.SSLContext | None:
    """TLS to the API server (verified: the system's CAs, or k8s.ca_file)."""
    settings = target.k8s
    if settings is None or settings.upstream is None \
            or not settings.upstream.startswith("https"):
        return None
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(resolve(Path(settings.ca_file))))
    return context
