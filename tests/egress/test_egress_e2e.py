"""The egress proxy end to end: real clients (curl, requests, httpx, aiohttp, pip) with
HTTP(S)_PROXY set, through a real Envoy and tollgate, to local destinations named by a DNS
server of the test's own, HTTPS ones verified against a test CA; the default pack with
the lists below (policies/egress_lists.rego edited as a user edits it).

Envoy itself cannot resolve the test's names (they exist only in the test's DNS server,
which tollgate asks): every destination reached proves Envoy connected to the address
tollgate pinned.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.dns import DnsServer
from tests.support.gateway import Gateway, egress_gateway
from tests.support.http_server import LocalServer
from tests.support.https_server import https_server, with_bytes
from tests.support.package_index import package_index, probe_wheel
from tests.support.tls import TlsFiles, write_server_files

pytestmark = pytest.mark.e2e

AGENT = tokens.token("ada", ["agents"])
CAUTIOUS = tokens.token("cato", ["cautious"])
SECURITY = tokens.token("sam", ["security"])
TIMEOUT = 30


class Destinations:
    """The servers agents reach, and the names the test's DNS gives them."""

    def __init__(self, tmp: Path) -> None:
        self.tls: TlsFiles = write_server_files(tmp / "tls", ["secure.test", "pypi.test"])
        self.http = LocalServer(lambda _m, path, _b: (200, b'{"path": "%s"}' % path.encode()))
        self.https = https_server(self.tls, with_bytes(
            lambda _m, path, _b: (200, b'{"secure": "%s"}' % path.encode())))
        self.pypi = package_index(self.tls, [probe_wheel()])
        self.shop = LocalServer(lambda _m, _p, _b: (
            200, b'{"rows": [{"name": "Ann", "ssn": "123-45-6789"}]}'))
        # The first lookup asks A and AAAA (in either order: each question takes one).
        self.flips = iter(["127.0.0.1", "127.0.0.1"])
        self.dns = DnsServer({
            "app.test": ["127.0.0.1"], "secure.test": ["127.0.0.1"],
            "pypi.test": ["127.0.0.1"], "shop.test": ["127.0.0.1"],
            "held.test": ["127.0.0.1"], "sub.wild.test": ["127.0.0.1"],
            "meta.test": ["169.254.169.254"], "nowhere.test": ["192.0.2.1"],
            "public.test": ["93.184.216.34"],
            # Rebinding: a listed name first answers an address that passes, then one
            # that does not (TTL 0: tollgate asks again for each decision).
            "flip.test": lambda: [next(self.flips, "192.0.2.1")],
        }, ttl=0).start()

    def stop(self) -> None:
        for server in (self.http, self.https, self.pypi, self.shop):
            server.stop()
        self.dns.stop()


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Destinations]:
    found = Destinations(tmp_path_factory.mktemp("destinations"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, places: Destinations  # type: ignore[no-untyped-def]
       ) -> Iterator[Gateway]:
    lists = {
        "groups": {
            "agents": {
                "allow": ["app.test", "secure.test", "pypi.test", "shop.test", "flip.test",
                          "*.wild.test", "public.test", "meta.test", "nowhere.test"],
                "hold": ["held.test"],
                "first_seen": "alert",
            },
            "cautious": {"allow": ["app.test"], "hold": [], "first_seen": "deny"},
        },
        "approvers": ["group:security"],
        "hold_seconds": 30,
    }
    shop = {"name": "shop", "protocol": "sql-http", "sql": {"dialect": "sqlite"},
            "match": {"destination": f"shop.test:{places.shop.port}"}}
    with egress_gateway(tmp_path_factory, otlp, "egress", lists,
                        targets=[shop], egress={"nameservers": [places.dns.address]},
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


def client_env(gw: Gateway, token: str = AGENT) -> dict[str, str]:
    """A client's environment with the proxy as its way out, and nothing of this machine's
    that would send it elsewhere (its pip indexes, CA bundles, another proxy)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("PIP_") and not k.lower().endswith("_proxy")
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    proxy = gw.proxy_url(token)
    env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy,
               PIP_CONFIG_FILE=os.devnull)
    return env


def curl(gw: Gateway, *args: str, token: str = AGENT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-v", "--max-time", "20", *args],
                          capture_output=True, text=True, env=client_env(gw, token),
                          timeout=TIMEOUT, check=False)


def proxy_headers(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The headers of the proxy's own answer (curl -v prints them with `< `)."""
    found: dict[str, str] = {}
    for line in result.stderr.splitlines():
        if line.startswith("< ") and ":" in line:
            name, _, value = line[2:].partition(":")
            found.setdefault(name.strip().lower(), value.strip())
    return found


def record_of(gw: Gateway, trace_id: str, kind: str = "exchange") -> dict[str, Any]:
    """The record of a kind on a trace (an exchange's, its tunnel's, its alert's), once
    written (off the request path)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records(kind) if r["trace_id"] == trace_id]
        return bool(found)

    stack.wait_until(written, 15, f"the {kind} record of trace {trace_id}")
    return found[0]


def kinds_of(gw: Gateway, trace_id: str) -> list[str]:
    """The kinds of the records on a trace so far."""
    return sorted(r["kind"] for kind in ("exchange", "tunnel", "alert")
                  for r in gw.records(kind) if r["trace_id"] == trace_id)


# -- allowed: plain HTTP and tunnels, each client as it is used --------------------------


def test_a_plain_request_goes_to_the_pinned_address_without_the_proxy_token(
        gw: Gateway, places: Destinations) -> None:
    result = curl(gw, f"http://app.test:{places.http.port}/hello?x=1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"path": "/hello?x=1"}'
    seen = places.http.received[-1]
    assert seen.headers["host"] == f"app.test:{places.http.port}"
    assert "proxy-authorization" not in seen.headers
    record = record_of(gw, proxy_headers(result)["x-tollgate-trace-id"])
    assert record["outcome"]["action"] == "allow"
    assert record["target"]["name"] == "egress"
    assert record["destination"]["destination"] == f"app.test:{places.http.port}"
    assert record["destination"]["address"] == "127.0.0.1"
    assert record["destination"]["addresses"] == [{"address": "127.0.0.1",
                                                   "range": "loopback"}]
    assert AGENT not in str(record)
    assert places.dns.asked("app.test")


def test_a_tunnel_is_decided_then_recorded_with_its_bytes_and_ending(
        gw: Gateway, places: Destinations) -> None:
    result = curl(gw, "--cacert", str(places.tls.ca),
                  f"https://secure.test:{places.https.port}/bytes/200000?until-close",
                  "-o", os.devnull)
    assert result.returncode == 0, result.stderr
    trace = proxy_headers(result)["x-tollgate-trace-id"]
    exchange, tunnel = record_of(gw, trace), record_of(gw, trace, "tunnel")
    assert exchange["request"]["method"] == "CONNECT"
    assert exchange["destination"]["scheme"] == "tunnel"
    moved = tunnel["meaning"]["tunnel"]
    assert moved["destination"] == f"secure.test:{places.https.port}"
    assert tunnel["destination"]["address"] == "127.0.0.1"
    assert tunnel["started_at"] >= exchange["started_at"]  # its end, after its decision
    assert moved["bytes_down"] > 200_000 > moved["bytes_up"] > 0
    # The server answers one request a connection and closes it; the body's length is not
    # announced, so curl learns its end only from that close, and closes after it.
    assert moved["ended"] == "destination_closed"
    assert moved["duration_ms"] > 0
    # One run: the tunnel is in the CONNECT's session, as the agent's other exchanges.
    assert tunnel["session_id"] == exchange["session_id"]
    assert tunnel["identity"]["sub"] == "ada"


def test_a_tunnel_the_client_closes_is_recorded_so(gw: Gateway, places: Destinations) -> None:
    target = f"app.test:{places.http.port}"
    with socket.create_connection(("127.0.0.1", gw.ports.egress or 0), timeout=TIMEOUT) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                     f"Proxy-Authorization: Basic {basic(AGENT)}\r\n\r\n".encode())
        head = sock.recv(4096).decode()
        assert head.startswith("HTTP/1.1 200"), head
        sock.sendall(b"hello")  # half a request: the client then goes away
    trace = next(line.split(": ", 1)[1] for line in head.splitlines()
                 if line.lower().startswith("x-tollgate-trace-id"))
    moved = record_of(gw, trace, "tunnel")["meaning"]["tunnel"]
    assert (moved["ended"], moved["bytes_up"], moved["bytes_down"]) == ("client_closed", 5, 0)
    metrics = requests.get(f"{gw.admin_url}/metrics", timeout=TIMEOUT).text
    assert 'tollgate_egress_tunnels_total{ended="client_closed"}' in metrics
    assert 'tollgate_egress_tunnel_bytes_total{direction="up"}' in metrics


def test_requests_httpx_and_aiohttp_reach_an_https_destination_through_the_proxy(
        gw: Gateway, places: Destinations) -> None:
    url = f"https://secure.test:{places.https.port}/lib"
    proxy = gw.proxy_url(AGENT)
    context = ssl.create_default_context(cafile=str(places.tls.ca))

    with requests.Session() as session:
        session.trust_env = False
        reply = session.get(url, proxies={"https": proxy}, verify=str(places.tls.ca),
                            timeout=TIMEOUT)
    assert reply.json() == {"secure": "/lib"}

    with httpx.Client(proxy=proxy, verify=context, trust_env=False) as client:
        assert client.get(url, timeout=TIMEOUT).json() == {"secure": "/lib"}

    async def fetch() -> Any:
        async with aiohttp.ClientSession(trust_env=False) as session, session.get(
                url, proxy=proxy, ssl=context) as answer:
            return await answer.json()

    assert asyncio.run(fetch()) == {"secure": "/lib"}


def test_pip_installs_from_an_index_reached_only_through_the_proxy(
        gw: Gateway, places: Destinations, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir",
         "--disable-pip-version-check", "--target", str(tmp_path / "site"),
         "--index-url", f"https://pypi.test:{places.pypi.port}/simple/",
         "--cert", str(places.tls.ca), "tollgate-egress-probe"],
        capture_output=True, text=True, env=client_env(gw), timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import tollgate_egress_probe as p; print(p.VALUE)"],
        capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path / "site")},
        timeout=30, check=True)
    assert imported.stdout.strip() == "42"
    assert [r.path for r in places.pypi.received][-1].startswith("/files/")


def test_a_bearer_proxy_token_is_taken_too(gw: Gateway, places: Destinations) -> None:
    reply = socket_request(gw, f"GET http://app.test:{places.http.port}/bearer HTTP/1.1\r\n"
                           f"Host: app.test:{places.http.port}\r\n"
                           f"Proxy-Authorization: Bearer {AGENT}\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


# -- refused -------------------------------------------------------------------------


@pytest.mark.parametrize(("destination", "rule", "words"), [
    ("169.254.169.254:80", "egress.internal_address", "metadata"),
    ("meta.test:80", "egress.internal_address", "169.254.169.254 (metadata)"),
    ("sub.wild.test:443", "egress.internal_address", "loopback"),
    ("nowhere.test:443", "egress.forbidden_range", "192.0.2.1"),
    ("unlisted.test:443", "egress.not_allowed", "unlisted.test"),
    ("public.test:25", "egress.allowed", None),
])
def test_a_refused_tunnel_gets_403_with_its_reason_and_trace_id_and_never_connects(
        gw: Gateway, places: Destinations, destination: str, rule: str,
        words: str | None) -> None:
    reply = socket_request(gw, f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n"
                           f"Proxy-Authorization: Basic {basic(AGENT)}\r\n\r\n")
    head = reply.partition(b"\r\n\r\n")[0].decode()
    headers = dict(line.lower().split(": ", 1) for line in head.splitlines()[1:])
    if words is None:  # public.test is listed at any port: allowed (whether its address
        # answers depends on this machine's network)
        assert not head.startswith("HTTP/1.1 403"), head
        assert record_of(gw, headers["x-tollgate-trace-id"])["outcome"]["action"] == "allow"
        return
    assert head.startswith("HTTP/1.1 403"), head
    assert words.lower() in headers["x-tollgate-reason"]
    record = record_of(gw, headers["x-tollgate-trace-id"])
    assert record["outcome"]["action"] == "deny"
    assert rule in record["decisions"][-1]["rules"]
    # A name no list allows is refused before it is looked up: the name reaches no
    # nameserver (a name can carry data to its domain's).
    host = destination.rpartition(":")[0]
    if not host[0].isdigit():  # an address literal is never looked up
        assert places.dns.asked(host) is (rule != "egress.not_allowed")


def test_curl_shows_the_reason_of_a_refused_tunnel(gw: Gateway) -> None:
    """curl prints a failed CONNECT's status and headers (with -v), never its body."""
    result = curl(gw, "https://meta.test/latest/meta-data/")
    assert result.returncode == 56
    headers = proxy_headers(result)
    assert "403" in result.stderr
    assert "metadata" in headers["x-tollgate-reason"]
    assert len(headers["x-tollgate-trace-id"]) == 32


def test_a_name_that_rebinds_is_refused_once_its_address_is_forbidden(
        gw: Gateway, places: Destinations) -> None:
    """flip.test answers 127.0.0.1, then 192.0.2.1: the first request reaches the first
    (Envoy cannot resolve the name itself: the pin is what it connects to), the next is
    decided on the new address and refused."""
    first = curl(gw, f"http://flip.test:{places.http.port}/first")
    assert first.returncode == 0 and first.stdout == '{"path": "/first"}', first.stderr
    second = curl(gw, f"http://flip.test:{places.http.port}/second")
    assert "403" in second.stderr
    assert "192.0.2.1" in proxy_headers(second)["x-tollgate-reason"]
    assert "/second" not in [r.path for r in places.http.received]


def test_without_a_valid_proxy_token_the_proxy_asks_for_one(
        gw: Gateway, places: Destinations) -> None:
    target = f"app.test:{places.http.port}"
    for credentials in ("", f"Proxy-Authorization: Basic {basic('not-a-token')}\r\n",
                        f"Proxy-Authorization: Basic {basic(tokens.token(ttl=-120))}\r\n"):
        reply = socket_request(gw, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                               f"{credentials}\r\n")
        head = reply.partition(b"\r\n\r\n")[0].decode().lower()
        assert head.startswith("http/1.1 407"), head
        assert 'proxy-authenticate: basic realm="tollgate"' in head
    assert not [r for r in places.http.received if r.path == "/never"]


def test_a_tunnel_to_a_destination_configured_as_a_target_is_refused(
        gw: Gateway, places: Destinations) -> None:
    """Its plain requests are read as the target's; a tunnel would carry them unread."""
    result = curl(gw, "-p", f"http://shop.test:{places.shop.port}/sql")
    assert "403" in result.stderr
    assert "plain" in proxy_headers(result)["x-tollgate-reason"].lower()


# -- read as a target, first seen, held -----------------------------------------------


def test_plain_http_to_a_destination_target_is_read_decided_and_masked_as_that_target(
        gw: Gateway, places: Destinations) -> None:
    url = f"http://shop.test:{places.shop.port}/sql"
    allowed = curl(gw, "-H", "content-type: application/json", "-d",
                   '{"sql": "SELECT name, ssn FROM customers"}', url)
    assert allowed.returncode == 0, allowed.stderr
    assert "123-45-6789" not in allowed.stdout and "Ann" in allowed.stdout
    refused = curl(gw, "-H", "content-type: application/json", "-d",
                   '{"sql": "SELECT 1; DrOp/**/TABLE customers"}', url)
    assert "403" in refused.stderr and "DrOp" not in str(places.shop.received[-1].body)
    record = record_of(gw, proxy_headers(refused)["x-tollgate-trace-id"])
    assert record["target"]["name"] == "shop"
    assert record["destination"]["destination"] == f"shop.test:{places.shop.port}"


def test_a_destination_first_seen_alerts_once_per_destination_or_is_refused(
        gw: Gateway, places: Destinations) -> None:
    newcomer = tokens.token("nell", ["agents"], ttl=900)
    result = curl(gw, f"http://app.test:{places.http.port}/first-time", token=newcomer)
    assert result.returncode == 0, result.stderr
    trace = proxy_headers(result)["x-tollgate-trace-id"]
    alert = record_of(gw, trace, "alert")
    assert alert["meaning"]["alert"]["rule"] == "egress.first_seen"
    assert "app.test" in alert["meaning"]["alert"]["message"]
    again = curl(gw, f"http://app.test:{places.http.port}/again", token=newcomer)
    later = proxy_headers(again)["x-tollgate-trace-id"]
    assert record_of(gw, later)["destination"]["first_seen"] is False
    assert kinds_of(gw, later) == ["exchange"]
    # A second new destination alerts too (alerts are deduplicated per destination).
    other = curl(gw, "--cacert", str(places.tls.ca),
                 f"https://secure.test:{places.https.port}/x", token=newcomer)
    assert "secure.test" in record_of(gw, proxy_headers(other)["x-tollgate-trace-id"],
                                      "alert")["meaning"]["alert"]["message"]
    # Where the list says so, a first visit is refused instead.
    cautious = curl(gw, f"http://app.test:{places.http.port}/cautious", token=CAUTIOUS)
    assert "403" in cautious.stderr
    assert "first" in proxy_headers(cautious)["x-tollgate-reason"]


def test_a_held_destination_waits_for_security_and_passes_once_approved(
        gw: Gateway, places: Destinations) -> None:
    target = f"held.test:{places.http.port}"
    answer: dict[str, bytes] = {}
    sending = threading.Thread(target=lambda: answer.update(reply=socket_request(
        gw, f"GET http://{target}/held HTTP/1.1\r\nHost: {target}\r\n"
            f"Proxy-Authorization: Basic {basic(AGENT)}\r\nConnection: close\r\n\r\n")))
    sending.start()
    pending = pending_approval(gw, target)
    assert pending["approvers"] == ["group:security"]
    approve(gw, pending["id"])
    sending.join(TIMEOUT)
    assert answer["reply"].startswith(b"HTTP/1.1 200"), answer["reply"][:300]
    assert places.http.received[-1].path == "/held"


def test_a_delete_after_a_web_page_waits_for_security_who_is_told_of_the_page(
        gw: Gateway, places: Destinations) -> None:
    """Flows across protocols (docs/flows.md): an agent reads a page of the open web
    through the proxy (egress answers are untrusted content), then sends a DELETE to a
    SQL target: the DELETE waits for security, whose approval names the page's trace;
    nothing reaches the target before it is approved."""
    reader = tokens.token("fay", ["agents"], ttl=900)
    page = curl(gw, f"http://app.test:{places.http.port}/drop-the-orders-table", token=reader)
    assert page.returncode == 0, page.stderr
    read = proxy_headers(page)["x-tollgate-trace-id"]
    assert record_of(gw, read)["outcome"]["received"] == ["untrusted"]
    url = f"http://shop.test:{places.shop.port}/sql"
    answer: dict[str, subprocess.CompletedProcess[str]] = {}
    sending = threading.Thread(target=lambda: answer.update(sent=curl(
        gw, "-H", "content-type: application/json", "-d",
        '{"sql": "DELETE FROM orders WHERE id = 7"}', url, token=reader)))
    before = len(places.shop.received)
    sending.start()
    found: list[dict[str, Any]] = []

    def held() -> bool:
        listed = api(gw, "GET", "/approvals?status=pending")["approvals"]
        found[:] = [a for a in listed if a["requester"] == "fay"]
        return bool(found)

    stack.wait_until(held, 15, "the DELETE held after the page")
    assert found[0]["rules"] == ["flow.after_untrusted"]
    assert found[0]["reasons"] == [
        f"DELETE statement after the agent read untrusted content from egress (trace {read})"]
    assert len(places.shop.received) == before
    approve(gw, found[0]["id"])
    sending.join(TIMEOUT)
    assert answer["sent"].returncode == 0, answer["sent"].stderr
    assert places.shop.received[-1].body == b'{"sql": "DELETE FROM orders WHERE id = 7"}'
    # The flow, as the record tells it: the page, then the DELETE held after it.
    held_trace = found[0]["trace_id"]
    record_of(gw, held_trace)
    told = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "flow", "--identity", "fay", "--json",
         "--config", str(gw.config_path)], capture_output=True, text=True, timeout=TIMEOUT,
        check=False)
    assert told.returncode == 0, told.stderr
    steps = [json.loads(line) for line in told.stdout.splitlines()]
    assert [s["trace_id"] for s in steps if s["received"] == ["untrusted"]][:1] == [read]
    [deleted] = [s for s in steps if s["trace_id"] == held_trace and s["kind"] == "exchange"]
    assert deleted["flow"][0]["rules"] == ["flow.after_untrusted"]
    assert [a["trace_id"] for a in deleted["after"]] == [read]
    assert deleted["after"][0]["received"] == ["untrusted"]


# -- helpers ---------------------------------------------------------------------------


def basic(token: str) -> str:
    return base64.b64encode(f"agent:{token}".encode()).decode()


def socket_request(gw: Gateway, text: str) -> bytes:
    """Raw bytes to the proxy (for what clients hide: the proxy's own CONNECT answer)."""
    assert gw.ports.egress is not None
    with socket.create_connection(("127.0.0.1", gw.ports.egress), timeout=TIMEOUT) as sock:
        sock.sendall(text.encode())
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _complete(received: bytes) -> bool:
    """Whether an answer's headers and the body they announce have arrived."""
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return head.startswith(b"HTTP/1.1 200") and b"CONNECT" not in head


def api(gw: Gateway, method: str, path: str) -> Any:
    reply = requests.request(method, f"{gw.admin_url}{path}", timeout=TIMEOUT,
                             headers={"authorization": f"Bearer {SECURITY}"})
    reply.raise_for_status()
    return reply.json()


def pending_approval(gw: Gateway, authority: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def exists() -> bool:
        listed = api(gw, "GET", "/approvals?status=pending")["approvals"]
        found[:] = [a for a in listed if a["summary"] == f"GET {authority}/held"]
        return bool(found)

    stack.wait_until(exists, 15, f"a pending approval for {authority}")
    return found[0]


def approve(gw: Gateway, approval_id: str) -> None:
    reply = requests.post(f"{gw.admin_url}/approvals/{approval_id}/approve", timeout=TIMEOUT,
                          headers={"authorization": f"Bearer {SECURITY}"},
                          json={"reason": "egress ticket 7"})
    assert reply.status_code == 200, reply.text
