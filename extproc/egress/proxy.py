"""The egress proxy's side of an exchange: who asks (the proxy token), where to (the
destination, resolved), and where Envoy may connect (the pinned address).

The HTTP front drives it for requests that came through Envoy's egress listener: a
`CONNECT host:port` (a tunnel: decided on its destination, its bytes unread) or a plain
request in absolute form (read whole, as on any target: a destination configured as a
target of its own is read as that target). Everything it finds goes to the policy as
`input.egress`; the address decided on goes back to Envoy as dynamic metadata, which
the listener's routes require, so nothing leaves unpinned.

A CONNECT the policy decides to `inspect` gets a ticket with its pin: what was decided
(the verified claims, the destination, the address). Envoy sends that tunnel to its
internal inspect listener, which ends the TLS with a certificate of the egress CA
(egress/sds.py) and sets the ticket as a header on every request inside; those requests
come back here as exchanges of their own (`Outbound.inspected`), read as plain HTTP is,
with the tunnel's identity and address: the gateway keeps no second picture of who
opened the tunnel or where it leads.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.codecs import jsonenc
from extproc.codecs.destination import Destination, parse_authority, range_of
from extproc.codecs.refusal import Refused, Unavailable
from extproc.codecs.ticket import Ticket
from extproc.config import Target
from extproc.egress.resolver import Resolution, Resolver
from extproc.exchange.state import Exchange

if TYPE_CHECKING:
    from extproc.activity.seen import Seen
    from extproc.approvals.auth import Verifier

# Verified proxy tokens kept per process (a client sends its token with every request
# of a connection, and opens many): until they expire, at most this many.
_MOST_TOKENS = 10_000
PROXY_AUTHENTICATE = ("proxy-authenticate", 'Basic realm="tollgate", charset="UTF-8"')
# The header Envoy's inspect listener sets on each request inside an inspected tunnel,
# from the CONNECT's ticket (its filter state), over whatever the client sent; the
# listener's routes remove it before the request goes on.
TICKET_HEADER = "x-tollgate-inspect"
# What Envoy's inspect listener answers with when a destination's TLS did not verify:
# TLS's reason (its local_reply_config).
TLS_FAILURE_HEADER = "x-tollgate-upstream-failure"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One request through the proxy, as its headers show it."""

    proxy: Target  # the egress target it came through
    target: Target  # the target it is read as: a destination's own, else `proxy`
    tunnel: bool  # CONNECT
    destination: Destination | None  # None: `unreadable` says why
    unreadable: str | None
    claims: dict[str, Any] | None  # the verified proxy token's (None: none, or refused)
    refused_token: str | None  # why the token sent was refused
    # A request inside an inspected tunnel: the tunnel's CONNECT's ticket (None: not one).
    ticket: Ticket | None = None

    @property
    def inspected(self) -> bool:
        return self.ticket is not None


class EgressProxy:
    def __init__(self, verifier: Verifier, targets: tuple[Target, ...], seen: Seen) -> None:
        self._verifier, self._seen = verifier, seen
        self._resolvers = {t.name: Resolver(t.egress) for t in targets if t.egress}
        self._by_destination = {t.match.destination: t for t in targets
                                if t.match.destination}
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}
        # Whether an egress target has a CA, so that a tunnel can be read.
        self._inspects = any(t.egress.ca is not None for t in targets if t.egress)

    async def read(self, proxy: Target, headers: dict[str, str],
                   inspected: bool = False) -> Outbound:
        """What the request headers say; nothing is refused yet (`admit` does that, once
        the exchange is open and can answer with its trace id). `inspected`: Envoy's
        inspect listener matched it (a request inside an inspected tunnel)."""
        if inspected:
            return self._inside(proxy, headers)
        tunnel = headers.get(":method") == "CONNECT"
        destination, unreadable = None, None
        try:
            if not tunnel and headers.get(":scheme", "http") != "http":
                raise ValueError("an https URL goes through the proxy as a CONNECT tunnel, "
                                 "not as a request in absolute form")
            destination = parse_authority(headers.get(":authority", ""),
                                          None if tunnel else 80)
        except ValueError as exc:
            unreadable = str(exc)
        target = proxy
        if destination is not None and not tunnel:
            target = self._by_destination.get(destination.authority, proxy)
        claims, refused = await self._claims(headers.get("proxy-authorization"))
        return Outbound(proxy, target, tunnel, destination, unreadable, claims, refused)

    def _inside(self, proxy: Target, headers: dict[str, str]) -> Outbound:
        """A request inside an inspected tunnel: who and where are the CONNECT's. The
        name it asks for must be the tunnel's: a tunnel to one name carrying requests for
        another (domain fronting) would reach a host nobody decided on."""
        try:
            ticket = Ticket.read(headers.get(TICKET_HEADER, ""))
        except ValueError as exc:
            return Outbound(proxy, proxy, False, None, str(exc), None, str(exc))
        destination, unreadable, refused = None, None, None
        try:
            destination = parse_authority(ticket.destination, None)
            # A host named without its port is at HTTPS's, as the destination reads it.
            asked = parse_authority(headers.get(":authority", ""), 443)
            if asked.authority != destination.authority:
                raise ValueError(f"a request for {asked.authority} inside a tunnel to "
                                 f"{destination.authority}: a tunnel carries requests for "
                                 "its own destination only")
        except ValueError as exc:
            destination, unreadable = None, str(exc)
        if float(ticket.claims.get("exp", 0)) <= time.time():
            refused = ("the proxy token this tunnel was opened with has expired: open a new "
                       "connection")
        target = proxy
        if destination is not None:
            target = self._by_destination.get(destination.authority, proxy)
        return Outbound(proxy, target, False, destination, unreadable,
                        None if refused else ticket.claims, refused, ticket)

    @staticmethod
    def admit(outbound: Outbound) -> Destination:
        """The destination of a request whose proxy token verified; else Refusal (407
        asks the client for its credentials, as proxies do)."""
        if outbound.claims is None:
            message = outbound.refused_token or (
                "the proxy needs the agent's token: Proxy-Authorization: Bearer <token>, "
                "or the token as the password (http://agent:<token>@gateway:port)")
            raise Refused(407, "proxy_authentication_required", message,
                           headers=(PROXY_AUTHENTICATE,))
        if outbound.destination is None:
            raise Refused(400, "bad_destination", str(outbound.unreadable))
        return outbound.destination

    async def read_destination(self, exchange: Exchange, outbound: Outbound) -> bool:
        """input.egress for the exchange (its context; also its meaning on the proxy's
        own target): the destination, whether it was reached before, and for an address
        literal its range. A name is not looked up yet: `resolve` does that once the
        policy has not refused the name itself, so a name made to carry data to its
        domain's nameserver (`<secret>.evil.example`) reaches no DNS server unless the
        lists let it. Whether a name waits for `resolve`."""
        destination = self.admit(outbound)
        seen = await self._seen.lookup(exchange.who, destination.authority)
        linked = self._by_destination.get(destination.authority)
        egress: dict[str, Any] = {
            "scheme": "tunnel" if outbound.tunnel else "https" if outbound.inspected
            else "http",
            "inspected": outbound.inspected,
            "host": destination.host,
            "port": destination.port,
            "destination": destination.authority,
            "literal": destination.literal,
            "addresses": [],
            "resolution": {"status": "pending", "error": None},
            "target": linked.name if linked is not None else None,
            "seen": seen,
        }
        exchange.context = egress
        exchange.evidence.destination = destination.authority
        if exchange.target is outbound.proxy:
            exchange.evidence.meaning_key = "egress"
            exchange.meaning = exchange.evidence.meaning = egress
        exchange.outcome.update({
            "tollgate.egress.destination": destination.authority,
            "tollgate.egress.scheme": egress["scheme"],
            "tollgate.egress.first_seen": not seen["identity"],
        })
        if outbound.ticket is not None:
            exchange.outcome["tollgate.egress.tunnel"] = \
                f"{outbound.ticket.trace_id}/{outbound.ticket.span_id}"
            self._resolved(exchange, Resolution((outbound.ticket.address,)), "tunnel")
            return False
        if destination.literal:
            self._resolved(exchange, Resolution((destination.host,)), "literal")
            return False
        return True

    async def resolve(self, exchange: Exchange, outbound: Outbound) -> None:
        """The name's addresses, each with its range, into input.egress."""
        host = exchange.context["host"]
        resolution = await self._resolvers[outbound.proxy.name].resolve(host)
        self._resolved(exchange, resolution, "failed" if resolution.error else "resolved")

    @staticmethod
    def _resolved(exchange: Exchange, resolution: Resolution, status: str) -> None:
        ranges = tuple(range_of(a) for a in resolution.addresses)
        egress = exchange.context
        egress["addresses"] = [{"address": a, "range": r}
                               for a, r in zip(resolution.addresses, ranges, strict=True)]
        egress["resolution"] = {"status": status, "error": resolution.error}
        exchange.outcome.update({"tollgate.egress.addresses": resolution.addresses,
                                 "tollgate.egress.ranges": ranges})

    def pin(self, exchange: Exchange) -> dict[str, str]:
        """The dynamic metadata that sends an allowed request to the address decided on
        (the first the destination resolved to; the policy judged them all), and tells
        the tunnel's access log who and what it was (recording/tunnels.py). Remembers the
        destination as reached."""
        egress = exchange.context
        addresses = egress["addresses"] if isinstance(egress, dict) else []
        if not addresses:
            # Only a policy that allows what does not resolve gets here: nothing to pin.
            raise Unavailable(502, "destination_unresolved",
                           f"{egress['destination'] if egress else 'the destination'} does "
                           "not resolve: there is no address to connect to")
        address = addresses[0]["address"]
        self._seen.reached(exchange.who, egress["destination"])
        exchange.outcome["tollgate.egress.address"] = address
        pin = {"pin_host": f"[{address}]" if ":" in address else address,
               "pin_port": str(egress["port"])}
        if egress["scheme"] == "tunnel" and exchange.target is not None:
            pin.update(span_id=exchange.evidence.span_id, target=exchange.target.name,
                       destination=egress["destination"],
                       identity=jsonenc.dumps(exchange.identity),
                       session=exchange.evidence.headers.get("x-session-id", ""))
            if exchange.decisions and exchange.decision.inspect:
                pin.update(inspect="1", ticket=self._ticket(exchange, address).header())
                exchange.outcome["tollgate.egress.inspected"] = True
        return pin

    def _ticket(self, exchange: Exchange, address: str) -> Ticket:
        """An inspected tunnel's ticket; refused when there is no CA to show certificates
        of (a tunnel the policy wants read never passes unread)."""
        if not self._inspects:
            raise Refused(403, "inspection_unavailable",
                          f"the policy reads inside tunnels to {exchange.context['destination']}"
                          ", but the egress target has no CA to show certificates with "
                          "(egress.ca in its config): configure one, or list the destination "
                          "on an allow list to tunnel it unread")
        source = exchange.outcome.get("client.address")
        return Ticket(exchange.claims or {}, exchange.context["destination"], address,
                      exchange.trace_id, exchange.evidence.span_id,
                      source if isinstance(source, str) else None)

    async def _claims(self, header: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """The proxy token's verified claims, or why there are none."""
        if not header:
            return None, None
        scheme, _, credentials = header.strip().partition(" ")
        token = credentials.strip()
        if scheme.lower() == "basic":
            try:
                user_pass = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None, "Proxy-Authorization: Basic credentials that are not base64"
            token = user_pass.partition(":")[2]
        elif scheme.lower() != "bearer":
            # The scheme is not echoed: a token sent without one would be it.
            return None, "Proxy-Authorization: an unknown scheme: use Bearer, or Basic " \
                         "with the token as the password"
        if not token:
            return None, ("Proxy-Authorization carries no token (with Basic, the token is the "
                          "password: http://agent:TOKEN@gateway:port)")
        now = time.time()
        kept = self._tokens.get(token)
        if kept is not None and kept[0] > now:
            return kept[1], None
        claims, problem = await self._verifier.verdict(token)
        if claims is None:
            return None, f"the proxy token was refused: {problem}"
        if len(self._tokens) >= _MOST_TOKENS:
            self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            if len(self._tokens) >= _MOST_TOKENS:
                self._tokens.clear()
        self._tokens[token] = (float(claims["exp"]), claims)
        return claims, None
