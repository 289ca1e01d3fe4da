"""The egress proxy's side of an exchange, with real parts: proxy tokens signed with the test
keys and checked by a real Verifier, names resolved by a DNS server on 127.0.0.1, first-seen
pairs in a SQLite store, and exchanges opened by a real Pipeline."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config, envoy_bootstrap
from extproc.activity.seen import Seen
from extproc.approvals.auth import Verifier
from extproc.codecs.refusal import Refusal
from extproc.codecs.ticket import Ticket
from extproc.config import EgressCa, Target
from extproc.egress.proxy import TICKET_HEADER, EgressProxy, Outbound
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Exchange
from extproc.http import wire
from extproc.masking import Masker
from extproc.policy.decision import Decision
from extproc.policy.embedded import EmbeddedEngine
from extproc.recording.tunnels import TunnelLog
from extproc.store.aio import open_store
from extproc.telemetry import Telemetry
from tests.egress.test_tunnels import access_log_entry
from tests.support import tokens
from tests.support.dns import DnsServer
from tests.support.fakes import MemoryHolds, MemoryRecorder, StaticCredentials

SHOP = "shop.internal.test:8080"
NAMES = {"pypi.test": ["10.1.2.3", "2001:db8::1", "10.1.2.4"],
         "six.test": ["2001:db8::6"],
         "shop.internal.test": ["10.0.0.9"],
         "metadata.test": ["169.254.169.254"]}
ALLOW = 'package tollgate\ndecision := {"action": "allow"}\n'


class CountingVerifier(Verifier):
    """The real Verifier, counting the tokens it is asked to verify (so a test can see
    which the proxy kept)."""

    verified = 0

    async def claims(self, token: str) -> dict[str, Any]:
        self.verified += 1
        return await super().claims(token)


class Setup:
    def __init__(self, proxy: EgressProxy, pipeline: Pipeline, verifier: CountingVerifier,
                 seen: Seen, dns: DnsServer, targets: tuple[Target, ...]) -> None:
        self.proxy, self.pipeline, self.verifier = proxy, pipeline, verifier
        self.seen, self.dns = seen, dns
        self.egress = pipeline.target_for("egress", None)
        self.targets = targets

    async def read(self, authority: str, token: str | None = None, method: str = "CONNECT",
                   **headers: str) -> Outbound:
        found = {":method": method, ":authority": authority, **headers}
        if method != "CONNECT":
            found.setdefault(":scheme", "http")
            found.setdefault(":path", "/")
        if token is not None:
            found["proxy-authorization"] = f"Bearer {token}"
        assert self.egress is not None
        return await self.proxy.read(self.egress, found)

    async def opened(self, authority: str, method: str = "CONNECT", sub: str = "agent-1",
                     **headers: str) -> tuple[Exchange, Outbound]:
        """An exchange through the proxy, its destination read and (a name) resolved, as
        the front does when the decision on the name alone does not refuse it."""
        outbound = await self.read(authority, tokens.token(sub=sub), method, **headers)
        exchange = self.pipeline.act(f"tollgate {method} egress",
                                      {":method": method, ":authority": authority, **headers},
                                      {}, outbound.target, outbound.claims).exchange
        if await self.proxy.read_destination(exchange, outbound):
            await self.proxy.resolve(exchange, outbound)
        return exchange, outbound


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(NAMES, ttl=30) as server:
        yield server


@pytest.fixture
async def setup(tmp_path: Path, dns: DnsServer) -> AsyncIterator[Setup]:
    cfg = config.parse({"targets": [
        {"name": "egress", "protocol": "egress", "match": {"route": "egress"},
         "inspect": {"response": "none"},
         "egress": {"nameservers": [dns.address], "dns_timeout_seconds": 2}},
        {"name": "shop", "protocol": "http", "match": {"destination": SHOP}},
    ]})
    bootstrap = envoy_bootstrap.with_jwt_issuer(envoy_bootstrap.load(), tokens.ISSUER,
                                                [tokens.AUDIENCE], tokens.jwks())
    verifier = CountingVerifier.from_bootstrap(
        envoy_bootstrap.write(bootstrap, tmp_path / "envoy.yaml"), cfg.identity)
    assert isinstance(verifier, CountingVerifier)
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    seen = Seen(store)
    pipeline = Pipeline(
        cfg, EmbeddedEngine([("p.rego", ALLOW)], "data.tollgate.decision"),
        Telemetry(cfg.telemetry, InMemorySpanExporter()), StaticCredentials(),
        Masker(b"k" * 32), MemoryRecorder(), MemoryHolds())
    yield Setup(EgressProxy(verifier, cfg.targets, seen), pipeline, verifier, seen, dns,
                cfg.targets)
    await seen.close()
    await store.close()


def basic(user_pass: bytes) -> str:
    return "Basic " + base64.b64encode(user_pass).decode()


def refused(outbound: Outbound) -> Refusal:
    with pytest.raises(Refusal) as error:
        EgressProxy.admit(outbound)
    return error.value


# -- the proxy token -----------------------------------------------------------------------


async def test_a_bearer_token_is_verified(setup: Setup) -> None:
    outbound = await setup.read("pypi.test:443", tokens.token(sub="agent-1", kid="test-ec"))
    assert outbound.claims is not None and outbound.claims["sub"] == "agent-1"
    assert outbound.refused_token is None
    assert (outbound.tunnel, outbound.unreadable) == (True, None)
    assert outbound.target is outbound.proxy is setup.egress
    assert EgressProxy.admit(outbound).authority == "pypi.test:443"


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"])
async def test_basic_carries_the_token_as_the_password(setup: Setup, scheme: str) -> None:
    token = tokens.token(sub="agent-2")
    # What HTTPS_PROXY=http://agent:TOKEN@gateway:3128 makes a client send.
    header = f"{scheme} {base64.b64encode(f'agent:{token}'.encode()).decode()}"
    outbound = await setup.read("pypi.test:443", **{"proxy-authorization": header})
    assert outbound.claims is not None and outbound.claims["sub"] == "agent-2"


async def test_a_verified_token_is_kept_until_it_expires(setup: Setup) -> None:
    token = tokens.token(sub="agent-1")
    for _ in range(3):
        assert (await setup.read("pypi.test:443", token)).claims is not None
    assert setup.verifier.verified == 1
    # One that expires in a second (still within the issuer's 30 s clock skew, so it
    # keeps verifying): verified again once its exp has passed, not before.
    short = tokens.token(sub="agent-1", ttl=1)
    exp = json.loads(base64.urlsafe_b64decode(short.split(".")[1] + "=="))["exp"]
    await setup.read("pypi.test:443", short)
    verified = setup.verifier.verified
    deadline = time.monotonic() + 10
    while setup.verifier.verified == verified:
        assert time.monotonic() < deadline, "the token was never verified again"
        assert (await setup.read("pypi.test:443", short)).claims is not None
        if setup.verifier.verified == verified:
            assert time.time() < exp + 0.5  # kept: only while it has not expired
            await asyncio.sleep(0.02)
    assert time.time() >= exp


@pytest.mark.parametrize(("header", "why"), [
    ("Bearer not-a-token",
     "the proxy token was refused: the token does not verify: it is not a JWT"),
    (f"Bearer {tokens.token(ttl=-120)}",
     "the proxy token was refused: the token does not verify: it expired at "),
    (f"Bearer {tokens.token(iss='https://evil.test')}",
     "the token's issuer 'https://evil.test' is not trusted"),
    (f"Bearer {tokens.token(aud='someone-else')}",
     "the token does not verify: it is for another audience: its aud is 'someone-else'"),
    ("Bearer", "Proxy-Authorization carries no token"),
    ("Bearer    ", "Proxy-Authorization carries no token"),
    (basic(b"agent:"), "Proxy-Authorization carries no token"),
    (basic(tokens.token().encode()), "Proxy-Authorization carries no token"),  # no password
    ("Basic !!not base64!!", "Proxy-Authorization: Basic credentials that are not base64"),
    (basic(b"agent:\xff\xfe"), "Proxy-Authorization: Basic credentials that are not base64"),
    ("Digest username=\"agent\", response=\"6629fae4\"",
     "an unknown scheme: use Bearer, or Basic"),
    (tokens.token(), "an unknown scheme: use Bearer, or Basic"),  # no scheme
])
async def test_a_token_that_does_not_verify_asks_for_credentials(
        setup: Setup, header: str, why: str) -> None:
    outbound = await setup.read("pypi.test:443", **{"proxy-authorization": header})
    assert outbound.claims is None
    assert outbound.refused_token is not None and why in outbound.refused_token
    bad = refused(outbound)
    assert (bad.status, bad.error, bad.message) == (
        407, "proxy_authentication_required", outbound.refused_token)
    assert bad.headers == (("proxy-authenticate", 'Basic realm="tollgate", charset="UTF-8"'),)


async def test_a_token_signed_by_an_untrusted_key_is_refused(setup: Setup) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    payload = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "agent-1",
               "exp": int(time.time()) + 300}
    token = jwt.encode(payload, impostor, algorithm="RS256", headers={"kid": "test-rsa"})
    outbound = await setup.read("pypi.test:443", token)
    assert outbound.claims is None and "its signature is not the issuer's" in str(
        outbound.refused_token)
    assert refused(outbound).status == 407


async def test_a_token_sent_without_a_scheme_is_not_repeated_in_the_refusal(
        setup: Setup) -> None:
    token = tokens.token()
    outbound = await setup.read("pypi.test:443", **{"proxy-authorization": token})
    assert outbound.claims is None
    assert token not in refused(outbound).message


@pytest.mark.parametrize("headers", [{}, {"proxy-authorization": ""},
                                     {"authorization": f"Bearer {tokens.token()}"}])
async def test_no_proxy_token_asks_for_one(setup: Setup, headers: dict[str, str]) -> None:
    # The Authorization header is the destination's, not the proxy's.
    outbound = await setup.read("pypi.test:443", **headers)
    assert (outbound.claims, outbound.refused_token) == (None, None)
    bad = refused(outbound)
    assert (bad.status, bad.error) == (407, "proxy_authentication_required")
    assert "Proxy-Authorization: Bearer <token>" in bad.message
    assert bad.headers[0][0] == "proxy-authenticate"


async def test_the_token_is_asked_for_before_the_destination_is_judged(setup: Setup) -> None:
    assert refused(await setup.read("pypi.test")).status == 407  # no port, and no token


# -- the destination -----------------------------------------------------------------------


@pytest.mark.parametrize(("authority", "method", "scheme", "why"), [
    ("pypi.test", "CONNECT", None, "CONNECT needs host:port"),
    ("::1:443", "CONNECT", None, "must be in brackets"),
    ("127.1:443", "CONNECT", None, "dotted-quad"),
    ("", "CONNECT", None, "CONNECT needs host:port"),
    (":443", "CONNECT", None, "not a host name"),
    ("pypi.test:0", "GET", "http", "not a port"),
    ("pypi.test", "GET", "https", "as a CONNECT tunnel"),
])
async def test_an_unreadable_destination_is_a_bad_request(
        setup: Setup, authority: str, method: str, scheme: str | None, why: str) -> None:
    extra = {":scheme": scheme} if scheme else {}
    outbound = await setup.read(authority, tokens.token(), method, **extra)
    assert outbound.destination is None and why in str(outbound.unreadable)
    bad = refused(outbound)
    assert (bad.status, bad.error) == (400, "bad_destination")
    assert why in bad.message


async def test_plain_http_to_a_configured_destination_is_read_as_its_target(
        setup: Setup) -> None:
    token = tokens.token()
    plain = await setup.read("Shop.Internal.Test.:8080", token, "GET")
    assert plain.target.name == "shop" and plain.proxy is setup.egress
    assert plain.destination is not None and plain.destination.authority == SHOP
    # A tunnel cannot be read: it stays on the proxy's target (the policy refuses it).
    assert (await setup.read(SHOP, token)).target is setup.egress
    # Elsewhere, or another port of the same host: the proxy's target.
    assert (await setup.read("shop.internal.test", token, "GET")).target is setup.egress
    assert (await setup.read("pypi.test", token, "GET")).target is setup.egress


async def test_plain_http_without_a_port_goes_to_80(setup: Setup) -> None:
    outbound = await setup.read("pypi.test", tokens.token(), "GET")
    assert outbound.destination is not None and outbound.destination.authority == "pypi.test:80"


# -- input.egress --------------------------------------------------------------------------


async def test_a_name_is_read_without_being_looked_up(setup: Setup) -> None:
    # A name is decided on before any DNS server hears it (it may carry data to its
    # domain's nameserver): it waits for `resolve`.
    outbound = await setup.read("PYPI.test:443", tokens.token(sub="agent-1"))
    exchange = setup.pipeline.act("t", {":method": "CONNECT"}, {}, outbound.target,
                                   outbound.claims).exchange
    assert await setup.proxy.read_destination(exchange, outbound) is True
    pending = {
        "scheme": "tunnel", "inspected": False, "host": "pypi.test", "port": 443,
        "destination": "pypi.test:443",
        "literal": False, "addresses": [], "resolution": {"status": "pending", "error": None},
        "target": None, "seen": {"identity": False, "anyone": False, "status": "known"},
    }
    assert exchange.context == pending
    assert setup.dns.queries == []
    assert exchange.evidence.destination == "pypi.test:443"
    # On the proxy's own target it is also what the exchange means, for the record.
    assert exchange.meaning is exchange.context
    assert exchange.evidence.meaning is exchange.context
    assert exchange.evidence.meaning_key == "egress"
    assert {k: v for k, v in exchange.outcome.items() if k.startswith("tollgate.egress.")} == {
        "tollgate.egress.destination": "pypi.test:443",
        "tollgate.egress.scheme": "tunnel",
        "tollgate.egress.first_seen": True,
    }
    with pytest.raises(Refusal) as error:  # nothing to pin yet
        setup.proxy.pin(exchange)
    assert error.value.status == 502


async def test_a_name_resolved_shows_each_address_and_its_range(setup: Setup) -> None:
    exchange, _ = await setup.opened("PYPI.test:443")
    expected = {
        "scheme": "tunnel", "inspected": False, "host": "pypi.test", "port": 443,
        "destination": "pypi.test:443",
        "literal": False,
        "addresses": [{"address": "10.1.2.3", "range": "private"},
                      {"address": "10.1.2.4", "range": "private"},
                      {"address": "2001:db8::1", "range": "reserved"}],
        "resolution": {"status": "resolved", "error": None},
        "target": None,
        "seen": {"identity": False, "anyone": False, "status": "known"},
    }
    assert exchange.context == expected
    assert exchange.evidence.meaning == expected  # the record's meaning follows
    assert sorted(setup.dns.queries) == [("pypi.test", "A"), ("pypi.test", "AAAA")]
    assert {k: v for k, v in exchange.outcome.items() if k.startswith("tollgate.egress.")} == {
        "tollgate.egress.destination": "pypi.test:443",
        "tollgate.egress.scheme": "tunnel",
        "tollgate.egress.addresses": ("10.1.2.3", "10.1.2.4", "2001:db8::1"),
        "tollgate.egress.ranges": ("private", "private", "reserved"),
        "tollgate.egress.first_seen": True,
    }


async def test_an_address_literal_is_not_looked_up(setup: Setup) -> None:
    outbound = await setup.read("[2001:DB8::99]:443", tokens.token())
    exchange = setup.pipeline.act("t", {":method": "CONNECT"}, {}, outbound.target,
                                   outbound.claims).exchange
    assert await setup.proxy.read_destination(exchange, outbound) is False  # nothing to wait
    assert exchange.context["host"] == "2001:db8::99"
    assert exchange.context["destination"] == "[2001:db8::99]:443"
    assert exchange.context["literal"] is True
    assert exchange.context["addresses"] == [{"address": "2001:db8::99", "range": "reserved"}]
    assert exchange.context["resolution"] == {"status": "literal", "error": None}
    literal, _ = await setup.opened("169.254.169.254:80", "GET")
    assert literal.context["addresses"] == [{"address": "169.254.169.254", "range": "metadata"}]
    assert setup.dns.queries == []


async def test_a_name_pointing_at_an_internal_address_shows_that_address(setup: Setup) -> None:
    exchange, _ = await setup.opened("metadata.test:80", "GET")
    assert exchange.context["addresses"] == [{"address": "169.254.169.254",
                                              "range": "metadata"}]
    assert exchange.context["literal"] is False


async def test_a_name_that_does_not_resolve_has_no_address(setup: Setup) -> None:
    exchange, _ = await setup.opened("nowhere.test:443")
    assert exchange.context["addresses"] == []
    assert exchange.context["resolution"] == {"status": "failed",
                                              "error": "does not resolve (NXDOMAIN)"}
    assert exchange.outcome["tollgate.egress.addresses"] == ()


async def test_plain_http_to_a_configured_destination_keeps_its_own_meaning(
        setup: Setup) -> None:
    exchange, _ = await setup.opened(SHOP, "GET", **{"x-session-id": "s-1"})
    assert exchange.target is not None and exchange.target.name == "shop"
    assert exchange.context["scheme"] == "http" and exchange.context["target"] == "shop"
    assert exchange.context["addresses"] == [{"address": "10.0.0.9", "range": "private"}]
    assert exchange.meaning is None  # the shop target's interpreter gives its meaning
    assert exchange.evidence.meaning_key != "egress"


async def test_a_tunnel_to_a_configured_destination_names_that_target(setup: Setup) -> None:
    exchange, _ = await setup.opened(SHOP)
    assert exchange.target is setup.egress
    assert (exchange.context["scheme"], exchange.context["target"]) == ("tunnel", "shop")


async def test_reading_the_destination_of_a_refused_token_refuses(setup: Setup) -> None:
    outbound = await setup.read("pypi.test:443", "not-a-token")
    exchange = setup.pipeline.act("t", {":method": "CONNECT"}, {}, outbound.target, None).exchange
    with pytest.raises(Refusal) as error:
        await setup.proxy.read_destination(exchange, outbound)
    assert error.value.status == 407
    assert exchange.context is None and setup.dns.queries == []


# -- the pin -------------------------------------------------------------------------------


async def test_a_tunnel_is_pinned_to_the_first_address_and_carries_its_exchange(
        setup: Setup) -> None:
    exchange, _ = await setup.opened("pypi.test:443", **{"x-session-id": "run-7"})
    pin = setup.proxy.pin(exchange)
    assert pin == {
        "pin_host": "10.1.2.3", "pin_port": "443",
        "span_id": exchange.evidence.span_id, "target": "egress",
        "destination": "pypi.test:443", "identity": pin["identity"], "session": "run-7",
    }
    assert json.loads(pin["identity"]) == exchange.identity
    assert json.loads(pin["identity"])["sub"] == "agent-1"
    assert exchange.outcome["tollgate.egress.address"] == "10.1.2.3"


async def test_a_tunnel_without_a_session_has_an_empty_one(setup: Setup) -> None:
    exchange, _ = await setup.opened("pypi.test:443")
    assert setup.proxy.pin(exchange)["session"] == ""


async def test_an_ipv6_address_is_pinned_in_brackets(setup: Setup) -> None:
    named, _ = await setup.opened("six.test:443")
    assert setup.proxy.pin(named)["pin_host"] == "[2001:db8::6]"
    literal, _ = await setup.opened("[2001:db8::99]:8443", "GET")
    assert setup.proxy.pin(literal) == {"pin_host": "[2001:db8::99]", "pin_port": "8443"}


async def test_plain_http_is_pinned_without_the_tunnels_fields(setup: Setup) -> None:
    exchange, _ = await setup.opened(SHOP, "GET")
    assert setup.proxy.pin(exchange) == {"pin_host": "10.0.0.9", "pin_port": "8080"}


async def test_a_pin_remembers_the_destination_as_reached(setup: Setup) -> None:
    first, _ = await setup.opened("pypi.test:443")
    setup.proxy.pin(first)
    again, _ = await setup.opened("pypi.test:443")
    assert again.context["seen"] == {"identity": True, "anyone": True, "status": "known"}
    assert again.outcome["tollgate.egress.first_seen"] is False
    other, _ = await setup.opened("pypi.test:443", sub="agent-2")
    assert other.context["seen"] == {"identity": False, "anyone": True, "status": "known"}


async def test_nothing_to_pin_when_the_name_does_not_resolve(setup: Setup) -> None:
    exchange, _ = await setup.opened("nowhere.test:443")
    with pytest.raises(Refusal) as error:
        setup.proxy.pin(exchange)
    assert (error.value.status, error.value.error) == (502, "destination_unresolved")
    assert "nowhere.test:443 does not resolve" in error.value.message
    # Not let through, so not reached.
    assert (await setup.seen.lookup("agent-1", "nowhere.test:443"))["identity"] is False


async def test_the_tunnels_access_log_entry_is_recorded_on_the_connects_trace(
        setup: Setup) -> None:
    exchange, _ = await setup.opened("pypi.test:443", **{"x-session-id": "run-7"})
    # What Envoy gets in ext_proc's answer, and copies into the tunnel's access log entry.
    answer = wire.continue_request_headers(exchange.trace_id, None,
                                           metadata=setup.proxy.pin(exchange))
    entry = access_log_entry(trace_id=None)
    entry.common_properties.metadata.filter_metadata["tollgate"].CopyFrom(
        answer.dynamic_metadata.fields["tollgate"].struct_value)
    recorder = MemoryRecorder()
    TunnelLog(recorder, setup.targets).record(entry)
    [tunnel] = recorder.submitted
    assert (tunnel.kind, tunnel.trace_id, tunnel.span_id) == (
        "tunnel", exchange.trace_id, exchange.evidence.span_id)
    assert tunnel.identity == exchange.identity
    assert tunnel.target is exchange.target is setup.egress
    assert tunnel.headers == {"x-session-id": "run-7"}
    assert tunnel.meaning["destination"] == "pypi.test:443"


# -- requests inside a tunnel tollgate reads: the CONNECT's ticket ---------------------------


def ticket(destination: str = "pypi.test:443", **claims: Any) -> Ticket:
    return Ticket({"sub": "agent-1", "exp": time.time() + 600, **claims}, destination,
                  "10.1.2.3", "a" * 32, "b" * 16, "192.0.2.10")


async def inside(setup: Setup, authority: str, value: str) -> Outbound:
    """A request Envoy's inspect listener matched, with this ticket header."""
    assert setup.egress is not None
    return await setup.proxy.read(setup.egress, {
        ":method": "GET", ":scheme": "https", ":authority": authority, ":path": "/x",
        TICKET_HEADER: value}, inspected=True)


async def test_a_request_inside_is_the_tunnels_identity_and_destination(setup: Setup) -> None:
    outbound = await inside(setup, "pypi.test", ticket().header())
    assert outbound.inspected and not outbound.tunnel
    assert outbound.claims is not None and outbound.claims["sub"] == "agent-1"
    assert outbound.destination is not None
    assert outbound.destination.authority == "pypi.test:443"
    # A proxy token it carries is not read: who opened the tunnel is who asks.
    assert EgressProxy.admit(outbound).authority == "pypi.test:443"


@pytest.mark.parametrize("value", ["", "-", "not base64!", base64.urlsafe_b64encode(
    b'{"claims": {}}').decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "A" * 20_000])
async def test_a_request_inside_without_a_readable_ticket_is_refused(
        setup: Setup, value: str) -> None:
    outbound = await inside(setup, "pypi.test", value)
    assert outbound.claims is None
    with pytest.raises(Refusal) as refused:
        EgressProxy.admit(outbound)
    assert refused.value.status == 407
    assert "ticket" in str(refused.value)  # why: not a token the client could send


@pytest.mark.parametrize("authority", ["other.test", "pypi.test:8443", "PYPI.test.evil:443"])
async def test_a_request_for_another_host_inside_a_tunnel_is_refused(
        setup: Setup, authority: str) -> None:
    outbound = await inside(setup, authority, ticket().header())
    with pytest.raises(Refusal) as refused:
        EgressProxy.admit(outbound)
    assert refused.value.status == 400
    assert "inside a tunnel to pypi.test:443" in str(refused.value)


async def test_the_host_may_be_named_in_any_case_or_with_its_port(setup: Setup) -> None:
    for authority in ("PyPI.test", "pypi.test:443"):
        outbound = await inside(setup, authority, ticket().header())
        assert EgressProxy.admit(outbound).authority == "pypi.test:443"


async def test_a_request_inside_a_tunnel_whose_token_expired_is_refused(setup: Setup) -> None:
    outbound = await inside(setup, "pypi.test", ticket(exp=time.time() - 1).header())
    with pytest.raises(Refusal) as refused:
        EgressProxy.admit(outbound)
    assert "has expired" in str(refused.value)


async def test_a_ticket_is_read_only_where_envoy_s_inspect_listener_matched(
        setup: Setup) -> None:
    # The same header on the egress listener itself is the client's: never read.
    outbound = await setup.read("pypi.test:443", None, **{TICKET_HEADER: ticket().header()})
    assert not outbound.inspected and outbound.claims is None


async def test_a_tunnel_the_policy_reads_carries_its_ticket_in_the_pin(
        setup: Setup, tmp_path: Path) -> None:
    """Who, where to and from where, as decided: what the requests inside are read with."""
    proxy = EgressProxy(setup.verifier, tuple(
        dataclasses.replace(t, egress=dataclasses.replace(t.egress, ca=EgressCa(tmp_path)))
        if t.egress is not None else t for t in setup.targets), setup.seen)
    exchange, _ = await setup.opened("pypi.test:443")
    exchange.decisions.append(Decision(action="allow", inspect=True))
    pin = proxy.pin(exchange)
    assert pin["inspect"] == "1"
    ticket = Ticket.read(pin["ticket"])
    assert (ticket.destination, ticket.address, ticket.claims["sub"]) == (
        "pypi.test:443", "10.1.2.3", "agent-1")
    assert (ticket.trace_id, ticket.span_id) == (exchange.trace_id, exchange.evidence.span_id)
    assert exchange.outcome["tollgate.egress.inspected"] is True


async def test_a_tunnel_the_policy_reads_is_refused_without_a_ca(setup: Setup) -> None:
    """Never passed unread: a tunnel the policy wants read needs certificates to show."""
    exchange, _ = await setup.opened("pypi.test:443")
    exchange.decisions.append(Decision(action="allow", inspect=True))
    with pytest.raises(Refusal) as refused:
        setup.proxy.pin(exchange)
    assert refused.value.status == 403
    assert "no CA to show certificates with" in str(refused.value)


async def test_a_host_without_its_port_inside_a_tunnel_on_another_port_is_refused(
        setup: Setup) -> None:
    """`Host: pypi.test` is port 443 to the destination: not the tunnel's 8443."""
    outbound = await inside(setup, "pypi.test", ticket("pypi.test:8443").header())
    with pytest.raises(Refusal):
        EgressProxy.admit(outbound)
