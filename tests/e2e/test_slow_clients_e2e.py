"""Hostile clients cannot hold the gateway open (issue 47): every phase of every front
(headers, body, idle connection, TLS handshake, login, tunnel) has a bound, and a client
that holds a connection open the slow way is closed within it.

The gateway here has short bounds (BOUND seconds: Envoy's own where Envoy sees the phase,
tollgate's where it speaks the protocol), so that each attack is seen closed in seconds;
the last tests check that the shipped configs carry the documented defaults instead.
Each attack polls its socket for the close, by a deadline: no fixed sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from extproc import config, envoy_bootstrap
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.dns import DnsServer
from tests.support.gateway import Gateway, module_gateway
from tests.support.http_server import LocalServer
from tests.support.packs import pack_with_egress
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.e2e

BOUND = 1.5  # every bound of the test's gateway, in seconds
SLACK = 3.0  # how much later than its bound a close may be seen on a busy machine
AGENT = tokens.token("ada", ["agents"])
ENVOY_DIR = Path(__file__).resolve().parents[2] / "envoy"
SSL_REQUEST = struct.pack("!II", 8, 80877103)


def short_bounds(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """Envoy's bounds cut to BOUND: headers, idle connections, TLS handshakes, idle
    tunnels (request_timeout stays: a body's bound is tollgate's)."""
    bound = f"{BOUND:g}s"
    for manager in envoy_bootstrap.connection_managers(bootstrap):
        manager["request_headers_timeout"] = bound
        manager["common_http_protocol_options"]["idle_timeout"] = bound
        manager["drain_timeout"] = bound
    for route in envoy_bootstrap.routes(bootstrap):
        if "idle_timeout" in route.get("route", {}):
            route["route"]["idle_timeout"] = bound
    for listener in envoy_bootstrap.listeners(bootstrap):
        for chain in listener["filter_chains"]:
            if "transport_socket_connect_timeout" in chain:
                chain["transport_socket_connect_timeout"] = bound
    return bootstrap


@pytest.fixture(scope="module")
def destination() -> Iterator[tuple[DnsServer, LocalServer]]:
    """A server agents tunnel to (it waits for a request that never comes), named
    app.test by a DNS server of the test's own."""
    server = LocalServer(lambda *_: (200, b"{}"))
    dns = DnsServer({"app.test": ["127.0.0.1"]}).start()
    try:
        yield dns, server
    finally:
        dns.stop()
        server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, tls: TlsFiles,
       destination: tuple[DnsServer, LocalServer]) -> Iterator[Gateway]:
    """Every front (HTTP, HTTPS, egress, PostgreSQL, SSH), each bound BOUND seconds."""
    pack = pack_with_egress(tmp_path_factory.mktemp("pack") / "policies", {
        "groups": {"agents": {"allow": ["app.test"], "hold": [], "first_seen": "alert"}},
        "approvers": ["group:security"], "hold_seconds": 30})
    demo = {"name": "demo", "match": {"route": "demo"}, "protocol": "http",
            "inspect": {"body_seconds": BOUND}}
    # A database and a host no client ever logs in to: the fronts serve only with targets.
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path_factory.mktemp("ssh-target") / "gateway-key"
    key.write_private_key(key_file)
    nowhere = "127.0.0.1:9"
    shop = {"name": "shop", "protocol": "postgres", "match": {"database": "shop"},
            "postgres": {"upstream": nowhere, "user": "postgres", "sslmode": "disable"}}
    web = {"name": "web", "protocol": "ssh", "match": {"login": "web"},
           "ssh": {"upstream": nowhere, "user": "agent", "key_file": str(key_file),
                   "host_key": key.export_public_key().decode().strip()}}
    with module_gateway(
        tmp_path_factory, otlp, "slow", policy_dir=pack, targets=[demo, shop, web],
        tls=(tls.cert, tls.key), egress={"nameservers": [destination[0].address]},
        postgres={"login_seconds": BOUND}, ssh={"login_seconds": BOUND},
        envoy=short_bounds,
    ) as running:
        yield running


@dataclass
class Slow:
    """One hostile client: what it sent at once, what it trickles (a byte every `pace`
    seconds), what it received, and when the gateway closed it."""

    sock: socket.socket
    trickle: bytes = b""
    pace: float = 0.5
    received: bytes = b""
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None

    @classmethod
    def to(cls, port: int | None, first: bytes = b"", trickle: bytes = b"") -> Slow:
        assert port is not None, "the gateway serves this front"
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first:
            sock.sendall(first)
        sock.setblocking(False)
        return cls(sock, trickle)

    @property
    def lived(self) -> float:
        """How long the connection stayed open (from `opened`, which a test may move)."""
        assert self.closed is not None, "still open"
        return self.closed - self.opened

    def read_until(self, marker: bytes, seconds: float = 10) -> bytes:
        """What the gateway sent up to `marker` (a TLS 'S', a CONNECT's answer)."""
        deadline = time.monotonic() + seconds
        while marker not in self.received:
            assert time.monotonic() < deadline, f"no {marker!r} within {seconds} s"
            select.select([self.sock], [], [], 0.1)
            self._read()
            assert self.closed is None, f"closed before {marker!r}: {self.received!r}"
        return self.received

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
            self.closed = time.monotonic()
        except BlockingIOError:
            pass
        except ConnectionResetError:  # a close with bytes unread, after any reply
            self.closed = time.monotonic()

    def _send_next(self) -> None:
        try:
            self.sock.send(self.trickle[:1])
            self.trickle = self.trickle[1:]
        except (BrokenPipeError, ConnectionResetError):
            self.closed = time.monotonic()


def held(*clients: Slow, within: float = BOUND + SLACK + 10) -> list[Slow]:
    """The clients, each trickling at its pace until the gateway closes it; the test
    fails naming the ones still open after `within` seconds."""
    deadline = time.monotonic() + within
    due = {id(c): time.monotonic() + c.pace for c in clients}
    while (open_ := [c for c in clients if c.closed is None]) and time.monotonic() < deadline:
        nearest = min([due[id(c)] for c in open_ if c.trickle] + [deadline])
        select.select([c.sock for c in open_], [], [], max(0.0, min(nearest, deadline)
                                                           - time.monotonic()))
        for client in open_:
            client._read()
            if client.closed is None and client.trickle and time.monotonic() >= due[id(client)]:
                client._send_next()
                due[id(client)] += client.pace
    for client in clients:
        client.sock.close()
    still = [c for c in clients if c.closed is None]
    assert not still, f"{len(still)} slow clients still open after {within} s"
    return list(clients)


def within_bound(client: Slow, bound: float = BOUND) -> None:
    """Closed by the bound: not before it (another cause), not long after."""
    assert bound - 0.3 <= client.lived <= bound + SLACK, (client.lived, client.received)


def http_head(method: str, length: int | None = None) -> bytes:
    lines = [f"{method} /echo HTTP/1.1", "host: gateway.test", f"authorization: Bearer {AGENT}"]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def half_client_hello() -> bytes:
    """The first half of a real TLS ClientHello."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    return hello[:len(hello) // 2]


# -- HTTP: Envoy's bounds, and tollgate's for the body it reads -------------------------

def test_a_connection_that_never_sends_a_byte_is_closed_by_the_idle_timeout(
        gw: Gateway) -> None:
    (client,) = held(Slow.to(gw.ports.listener))
    within_bound(client)
    assert client.received == b""


def test_headers_trickled_a_byte_at_a_time_are_answered_408_and_closed(gw: Gateway) -> None:
    (client,) = held(Slow.to(gw.ports.listener, b"GET /echo HTTP/1.1\r\n",
                             trickle=b"x-slow: " + b"a" * 200))
    within_bound(client)
    assert client.received.startswith(b"HTTP/1.1 408"), client.received


def test_a_body_trickled_a_byte_at_a_time_is_answered_408_by_tollgate_and_closed(
        gw: Gateway) -> None:
    """Envoy's request_timeout outlasts holds (16 minutes): tollgate's body_seconds is the
    bound, its refusal recorded and named with the trace id; the upstream never sees it."""
    # What reached the upstream before (the module's other tests' requests may have).
    before = gw.upstream_paths().count("/echo")
    (client,) = held(Slow.to(gw.ports.listener, http_head("POST", 100), trickle=b"a" * 100))
    within_bound(client)
    head, _, body = client.received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), client.received
    answer = json.loads(body)
    assert answer["error"] == "request_timeout"
    assert "did not arrive within 1.5 s of its headers (inspect.body_seconds)" in answer["message"]
    assert f"x-tollgate-trace-id: {answer['trace_id']}".encode() in head
    assert gw.upstream_paths().count("/echo") == before


def test_twenty_bodies_trickled_at_once_are_all_closed_within_the_bound(
        gw: Gateway) -> None:
    """The issue's attack: many connections, each a byte of body every few seconds."""
    clients = held(*(Slow.to(gw.ports.listener, http_head("PUT", 50), trickle=b"b" * 50)
                     for _ in range(20)))
    for client in clients:
        within_bound(client)
        assert client.received.startswith(b"HTTP/1.1 408"), client.received


def test_a_chunked_body_trickled_is_answered_408_too(gw: Gateway) -> None:
    head = http_head("POST").replace(b"\r\n\r\n", b"\r\ntransfer-encoding: chunked\r\n\r\n")
    (client,) = held(Slow.to(gw.ports.listener, head, trickle=b"1\r\na\r\n" * 40))
    within_bound(client)
    assert client.received.startswith(b"HTTP/1.1 408"), client.received


def test_a_keep_alive_connection_left_idle_after_its_answer_is_closed(gw: Gateway) -> None:
    """Closed after idle_timeout and then drain_timeout (both BOUND here): a connection
    that served requests is drained, not cut."""
    client = Slow.to(gw.ports.listener, http_head("GET"))
    assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200"), client.received
    client.opened = time.monotonic()  # the bound counts from the answer
    held(client)
    within_bound(client, 2 * BOUND)


def test_a_tls_handshake_left_half_done_is_closed(gw: Gateway) -> None:
    """Envoy's HTTPS listener: the headers' timer starts only once TLS is up, so the
    handshake has a bound of its own (transport_socket_connect_timeout)."""
    (client,) = held(Slow.to(gw.tls_port, half_client_hello()))
    within_bound(client)


# -- PostgreSQL: tollgate's login deadline, the TLS handshake included -----------------

def test_postgres_a_client_that_sends_nothing_is_closed_by_the_login_deadline(
        gw: Gateway) -> None:
    (client,) = held(Slow.to(gw.ports.postgres))
    within_bound(client)


def test_postgres_an_sslrequest_then_nothing_is_closed_by_the_login_deadline(
        gw: Gateway) -> None:
    client = Slow.to(gw.ports.postgres, SSL_REQUEST)
    assert client.read_until(b"S") == b"S"
    held(client)
    within_bound(client)


def test_postgres_half_a_client_hello_is_closed_by_the_login_deadline(gw: Gateway) -> None:
    client = Slow.to(gw.ports.postgres, SSL_REQUEST)
    client.read_until(b"S")
    client.sock.sendall(half_client_hello())
    held(client)
    within_bound(client)


def test_postgres_a_startup_trickled_a_byte_at_a_time_is_closed_by_the_deadline(
        gw: Gateway) -> None:
    startup = b"\x00\x03\x00\x00user\x00agent\x00database\x00shop\x00\x00"
    (client,) = held(Slow.to(gw.ports.postgres, struct.pack("!I", len(startup) + 4),
                             trickle=startup))
    within_bound(client)


# -- SSH: tollgate's login deadline counts from the connection -------------------------

def test_ssh_a_client_that_never_sends_its_banner_is_closed_by_the_login_deadline(
        gw: Gateway) -> None:
    (client,) = held(Slow.to(gw.ports.ssh))
    within_bound(client)
    assert client.received.startswith(b"SSH-2.0-Tollgate"), client.received


def test_ssh_a_key_exchange_that_stalls_is_closed_by_the_login_deadline(gw: Gateway) -> None:
    """The banner, then half a KEXINIT a byte at a time."""
    (client,) = held(Slow.to(gw.ports.ssh, b"SSH-2.0-slow\r\n",
                             trickle=struct.pack("!IB", 200, 10) + b"\x14" + b"k" * 50))
    within_bound(client)


# -- Egress: an idle tunnel -------------------------------------------------------------

def test_an_egress_tunnel_nothing_crosses_is_closed_by_its_idle_timeout(
        gw: Gateway, destination: tuple[DnsServer, LocalServer]) -> None:
    target = f"app.test:{destination[1].port}"
    credentials = base64.b64encode(f"agent:{AGENT}".encode()).decode()
    client = Slow.to(gw.ports.egress, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                     f"Proxy-Authorization: Basic {credentials}\r\n\r\n".encode())
    assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200"), client.received
    client.opened = time.monotonic()  # the tunnel's idle time starts with it
    held(client)
    within_bound(client)


# -- The shipped defaults ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["quickstart.yaml", "deploy.yaml"])
def test_the_shipped_envoy_configs_carry_the_documented_bounds(name: str) -> None:
    """Headers 10 s, idle connections 60 s, whole requests 960 s (above the longest hold),
    idle tunnels 300 s, idle PostgreSQL and SSH sessions an hour."""
    loaded = envoy_bootstrap.load(ENVOY_DIR / name)
    for manager in envoy_bootstrap.connection_managers(loaded):
        assert manager["request_headers_timeout"] == "10s"
        assert manager["request_timeout"] == "960s"
        assert manager["common_http_protocol_options"]["idle_timeout"] == "60s"
        assert manager["drain_timeout"] == "5s"
    tunnels = [r["route"] for r in envoy_bootstrap.routes(loaded)
               if "connect_matcher" in r["match"] and "route" in r]
    assert tunnels and all(r["idle_timeout"] == "300s" for r in tunnels)
    proxies = [f["typed_config"] for x in envoy_bootstrap.listeners(loaded)
               for chain in x["filter_chains"] for f in chain["filters"]
               if f["name"] == "envoy.filters.network.tcp_proxy"]
    assert len(proxies) == 2 and all(p["idle_timeout"] == "3600s" for p in proxies)
    tls = envoy_bootstrap.with_tls(loaded, Path("c.pem"), Path("k.pem"), 10443)
    (twin,) = [x for x in envoy_bootstrap.listeners(tls) if x["name"].endswith("_tls")]
    assert all(c["transport_socket_connect_timeout"] == "10s" for c in twin["filter_chains"])


def test_tollgate_s_own_bounds_default_to_the_documented_values() -> None:
    assert config.Inspect().body_seconds == 60
    assert config.PostgresFront().login_seconds == 30
    assert config.SshFront().login_seconds == 30
    with pytest.raises(config.Invalid, match="must be > 0") as refused:
        config.Inspect(body_seconds=0)
    assert refused.value.field == "body_seconds"
