"""Tunnels tollgate reads, end to end: real clients (curl, requests, httpx, pip) trusting
the gateway's egress CA, through a real Envoy (its inspect listener ends their TLS with a
certificate tollgate mints as the handshake waits) and tollgate, to local HTTPS
destinations whose certificates come from the test's own CA, trusted by tollgate alone
(`egress.trusted_ca`); the default pack with the lists below.

What each test checks is what the destination received or the client got, against what
the record says was allowed: a request read inside a tunnel is its own exchange, with the
CONNECT's identity and pinned address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
from urllib.parse import unquote

import aiohttp
import httpx
import pytest
import requests
import websockets.sync.server

from extproc import config
from extproc.quickstart import stack
from tests.egress.test_egress_e2e import client_env, proxy_headers
from tests.support import tokens
from tests.support.dns import DnsServer
from tests.support.gateway import Gateway, egress_gateway
from tests.support.git_server import bare_repository, git_server
from tests.support.http_server import LocalServer, Streamed
from tests.support.https_server import https_server
from tests.support.package_index import package_index, probe_wheel
from tests.support.tls import TlsFiles, write_faulty_server_files, write_server_files

pytestmark = pytest.mark.e2e

AGENT = tokens.token("ada", ["agents"])
TIMEOUT = 30
SSN = "123-45-6789"
CARD = "4111 1111 1111 1111"


def _answer(method: str, path: str, body: bytes) -> tuple[int, bytes | Streamed, str]:
    """What the read destination answers: what it received, and an SSN of its own; an
    event stream carrying a card number at /events."""
    if path.startswith("/tail"):
        # Text whose length is not announced, an SSN cut between two chunks.
        return 200, Streamed(None, iter([b"line 1: ok\nline 2: ssn 123-4", b"5-6789\n",
                                         b"line 3: done\n"])), "text/plain"
    if path.startswith("/events"):
        events = b"".join(b"id: %d\ndata: {\"card\": \"%s\"}\n\n" % (n, CARD.encode())
                          for n in range(3))
        return 200, events, "text/event-stream"
    reply = {"method": method, "path": path, "got": body.decode(errors="replace"),
             "customer": {"name": "Ann", "ssn": SSN}}
    return 200, json.dumps(reply).encode(), "application/json"


def _echo(socket: websockets.sync.server.ServerConnection) -> None:
    for message in socket:
        socket.send(f"echo: {message}")


def _server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return context


class Destinations:
    """The HTTPS servers agents reach, and the names the test's DNS gives them."""

    def __init__(self, tmp: Path) -> None:
        self.tls: TlsFiles = write_server_files(
            tmp / "tls", ["read.test", "plain.test", "pypi.test", "blocked.test", "git.test",
                          "gitread.test"])
        # Servers whose certificates tollgate refuses though they name the host.
        self.faulty = {fault: LocalServer(_answer, tls=write_faulty_server_files(
            tmp / fault, f"{fault.replace('_', '')}.test", fault))
            for fault in ("expired", "self_signed")}
        self.read = https_server(self.tls, _answer)
        self.plain_http = LocalServer(_answer)
        self.plain = https_server(self.tls, _answer)
        self.pypi = package_index(self.tls, [probe_wheel()])
        (tmp / "repos").mkdir()
        bare_repository(tmp / "repos", "tools.git", {"README": "tools\n"})
        self.git = git_server(self.tls, tmp / "repos")
        self.socket_handshakes = 0

        def counted(socket: websockets.sync.server.ServerConnection) -> None:
            self.socket_handshakes += 1
            _echo(socket)

        self.socket = websockets.sync.server.serve(
            counted, "127.0.0.1", 0, ssl=_server_context(self.tls))
        self.socket_port = self.socket.socket.getsockname()[1]
        threading.Thread(target=self.socket.serve_forever, daemon=True).start()
        self.dns = DnsServer({name: ["127.0.0.1"] for name in (
            "read.test", "plain.test", "pypi.test", "wrong.test", "expired.test",
            "selfsigned.test", "blocked.test", "git.test", "gitread.test")}, ttl=0).start()

    def close(self) -> None:
        for server in (self.read, self.plain, self.pypi, self.git, self.plain_http,
                       *self.faulty.values()):
            server.stop()
        self.socket.shutdown()
        self.dns.stop()


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Destinations]:
    with contextlib.closing(Destinations(tmp_path_factory.mktemp("destinations"))) as found:
        yield found


# The pack's egress lists: what the agents read, tunnel and may not reach.
LISTS = {
    "groups": {
        "agents": {
            "allow": ["plain.test", "git.test", "*.test"],
            "inspect": ["read.test", "pypi.test", "wrong.test", "expired.test",
                        "selfsigned.test", "gitread.test"],
            "deny": ["blocked.test"],
            "hold": [],
            "first_seen": "alert",
        },
    },
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, places: Destinations  # type: ignore[no-untyped-def]
       ) -> Iterator[Gateway]:
    egress = {"nameservers": [places.dns.address],
              "ca": {"dir": str(tmp_path_factory.mktemp("egress-ca"))},
              "trusted_ca": str(places.tls.ca)}
    with egress_gateway(tmp_path_factory, otlp, "inspect", LISTS, egress=egress) as running:
        yield running


@pytest.fixture(scope="module")
def bundle(gw: Gateway) -> Path:
    """What the agents' clients trust: the gateway's egress CA bundle (`tollgate egress
    ca` prints it), made as tollgate started."""
    return Path(config.load(gw.config_path).targets[-1].egress.ca.dir) / "ca-bundle.pem"


def curl(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-v", "--max-time", "20", *args],
                          capture_output=True, text=True, env=client_env(gw, AGENT),
                          timeout=TIMEOUT, check=False)


def records_on(gw: Gateway, trace_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The exchange records of a trace, once `count` are written."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["trace_id"] == trace_id]
        return len(found) >= count

    stack.wait_until(written, 15, f"{count} exchange records of trace {trace_id}")
    return found


def inside(gw: Gateway, connect_trace: str) -> list[dict[str, Any]]:
    """The records of the requests read inside the tunnel a CONNECT's trace opened."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records("exchange")
                    if str((r.get("destination") or {}).get("tunnel", "")
                           ).startswith(f"{connect_trace}/")]
        return bool(found)

    stack.wait_until(written, 15, f"the requests inside tunnel {connect_trace}")
    return found


# -- read: the answer masked, the request decided, the record true ----------------------


def test_curl_gets_the_answer_masked_and_the_destination_gets_the_request_masked(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    url = f"https://read.test:{places.read.port}/orders?x=1"
    result = curl(gw, "--cacert", str(bundle), "-d", f'{{"note": "my ssn is {SSN}"}}',
                  "-H", "content-type: application/json", url)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer.get("path") == "/orders?x=1", result.stdout
    assert SSN not in result.stdout  # its own, and what it echoed back
    received = places.read.received[-1]
    assert SSN not in received.body.decode()  # masked on its way out
    assert "x-tollgate-inspect" not in received.headers  # the ticket stays inside
    assert "proxy-authorization" not in received.headers
    # The certificate curl accepted was tollgate's, for the name it asked for.
    assert "issuer: O=tollgate" in result.stderr
    assert 'host "read.test" matched' in result.stderr


def test_what_the_url_and_headers_carry_leaves_masked(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    """Data leaves in a query string, a path, a custom header, a cookie or a header a
    client usually sets (User-Agent, If-None-Match, tracestate) as well as in a body: each
    is masked on its way out; the request still goes where it was sent."""
    carriers = {"X-Note": f"my ssn is {SSN}", "Cookie": f"card={CARD.replace(' ', '')}",
                "User-Agent": f"agent/1.0 (ssn {SSN})", "If-None-Match": f'"{SSN}"',
                "Accept-Language": f"en, {SSN}", "tracestate": f"vendor={SSN}"}
    result = curl(gw, "--cacert", str(bundle),
                  *(arg for name, value in carriers.items() for arg in ("-H", f"{name}: {value}")),
                  f"https://read.test:{places.read.port}/paste/4111%201111%201111%201111"
                  f"?ssn={SSN}")
    assert result.returncode == 0, result.stderr
    received = places.read.received[-1]
    assert received.path.startswith("/paste/")
    leaked = unquote(received.path) + json.dumps(received.headers)
    assert SSN not in leaked and CARD not in leaked  # percent-encoded, read decoded
    assert CARD.replace(" ", "") not in leaked
    for name in carriers:
        assert "[REDACTED" in received.headers[name.lower()], (name, received.headers)
    assert received.headers["user-agent"].startswith("agent/1.0")  # masked, not dropped


def test_a_header_tollgate_may_not_change_is_refused_rather_than_left_unmasked(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    """Envoy lets no ext_proc change an x-envoy- header: one that carries what the policy
    masks is refused with the reason, and nothing reaches the destination."""
    before = len(places.read.received)
    result = curl(gw, "--cacert", str(bundle), "-H", f"X-Envoy-Note: my ssn is {SSN}",
                  f"https://read.test:{places.read.port}/note")
    assert result.returncode == 0, result.stderr
    assert "< HTTP/2 403" in result.stderr
    assert "x-envoy-note carries what the policy masks" in result.stdout
    assert len(places.read.received) == before
    # A plain one passes: only a value to be masked is refused.
    assert curl(gw, "--cacert", str(bundle), "-H", "X-Envoy-Note: plain",
                f"https://read.test:{places.read.port}/note").returncode == 0
    assert places.read.received[-1].headers.get("x-envoy-note") == "plain"


def test_what_cannot_be_masked_in_place_is_refused_and_the_record_keeps_what_left(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    """A header's name cannot be masked: one that carries an SSN is refused, nothing
    sent. A masked URL is recorded as it left, and a `%3F` in its path stays one."""
    before = len(places.read.received)
    refused = curl(gw, "--cacert", str(bundle), "-H", f"X-{SSN}: 1",
                   f"https://read.test:{places.read.port}/named")
    assert "unmaskable_header" in refused.stdout, refused.stdout + refused.stderr[-400:]
    assert len(places.read.received) == before
    result = curl(gw, "--cacert", str(bundle),
                  f"https://read.test:{places.read.port}/files/{SSN}%3Fx?q=a+{SSN}")
    assert result.returncode == 0, result.stderr
    sent = places.read.received[-1].path
    assert SSN not in unquote(sent) and sent.startswith("/files/") and "%3F" in sent
    stack.wait_until(lambda: any(sent in json.dumps(r) for r in gw.records("exchange")),
                     15, f"the record of {sent}")
    assert not any(f"/files/{SSN}" in json.dumps(r) for r in gw.records("exchange"))


def test_plain_http_to_a_destination_on_an_inspect_list_is_not_passed_unmasked(
        gw: Gateway, places: Destinations) -> None:
    """Dropping TLS does not drop the reading: the pack masks it as it would the tunnel's
    requests, and where the egress target does not read answers (inspect.response:
    none, as here and in the quickstart) the request is refused, never passed unread."""
    before = len(places.plain_http.received)
    result = curl(gw, "-d", f'{{"note": "my ssn is {SSN}"}}', "-H",
                  "content-type: application/json",
                  f"http://read.test:{places.plain_http.port}/plain?ssn={SSN}")
    assert result.returncode == 0, result.stderr
    assert "< HTTP/1.1 403" in result.stderr
    assert "does not inspect response bodies" in result.stdout
    assert len(places.plain_http.received) == before


def test_a_body_in_another_charset_is_read_in_it_and_masked(
        gw: Gateway, places: Destinations, bundle: Path, tmp_path: Path) -> None:
    body = tmp_path / "utf16.txt"
    body.write_bytes(f"my ssn is {SSN}".encode("utf-16le"))
    result = curl(gw, "--cacert", str(bundle), "-H", "content-type: text/plain; charset=utf-16le",
                  "--data-binary", f"@{body}", f"https://read.test:{places.read.port}/utf16")
    assert result.returncode == 0, result.stderr
    received = places.read.received[-1]
    assert received.path == "/utf16"
    assert SSN not in received.body.decode("utf-16le")
    assert received.body.decode("utf-16le").startswith("my ssn is ")


def test_the_record_of_a_request_inside_names_its_tunnel_identity_and_address(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    result = curl(gw, "--cacert", str(bundle), f"https://read.test:{places.read.port}/who")
    assert result.returncode == 0, result.stderr
    connect = proxy_headers(result)["x-tollgate-trace-id"]
    (opened,) = records_on(gw, connect)
    assert opened["request"]["method"] == "CONNECT"
    assert opened["outcome"]["action"] == "allow"
    (request,) = inside(gw, connect)
    assert request["request"]["method"] == "GET"
    assert request["request"]["path"] == "/who"
    assert request["identity"]["sub"] == "ada"
    assert request["destination"]["scheme"] == "https"
    assert request["destination"]["destination"] == f"read.test:{places.read.port}"
    assert request["destination"]["address"] == "127.0.0.1"
    assert request["outcome"]["action"] == "allow"
    assert opened["destination"]["inspected"] is True
    # What the destination's own certificate showed, as Envoy verified it.
    certificate = request["destination"]["certificate"]
    assert "read.test" in certificate["dns_names"]
    assert len(certificate["sha256"]) == 64


def open_tunnel(gw: Gateway, token: str, bundle: Path, port: int) -> tuple[ssl.SSLSocket, str]:
    """A tunnel to read.test, its TLS with the gateway's certificate, left open; and the
    trace id of its CONNECT."""
    sock = socket.create_connection(("127.0.0.1", gw.ports.egress or 0), timeout=TIMEOUT)
    credentials = base64.b64encode(f"agent:{token}".encode()).decode()
    sock.sendall(f"CONNECT read.test:{port} HTTP/1.1\r\nhost: read.test:{port}\r\n"
                 f"proxy-authorization: Basic {credentials}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    trace = next(line.split(b": ", 1)[1].decode() for line in head.split(b"\r\n")
                 if line.lower().startswith(b"x-tollgate-trace-id"))
    context = ssl.create_default_context(cafile=str(bundle))
    return context.wrap_socket(sock, server_hostname="read.test"), trace


def ask(tunnel: ssl.SSLSocket, port: int, path: str) -> bytes:
    tunnel.sendall(f"GET {path} HTTP/1.1\r\nhost: read.test:{port}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += tunnel.recv(65536)
    return answer


def test_each_tunnel_is_read_with_its_own_identity(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    """Tunnels open at once, by two identities: each request is read with its own
    tunnel's ticket (Envoy keys its connections to the inspect listener by it), never
    with the one of a tunnel opened before."""
    port = places.read.port
    first, first_trace = open_tunnel(gw, AGENT, bundle, port)
    second, second_trace = open_tunnel(gw, tokens.token("bea", ["agents"]), bundle, port)
    with first, second:
        assert ask(second, port, "/whoami-bea").startswith(b"HTTP/1.1 200")
        assert ask(first, port, "/whoami-ada").startswith(b"HTTP/1.1 200")
    for who, trace in (("ada", first_trace), ("bea", second_trace)):
        (request,) = inside(gw, trace)
        assert request["request"]["path"] == f"/whoami-{who}"
        assert request["identity"]["sub"] == who
        assert "x-tollgate-inspect" not in request["request"]["headers"]


def test_requests_and_httpx_read_through_the_gateway_ca(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    url = f"https://read.test:{places.read.port}/lib"
    proxy = gw.proxy_url(AGENT)
    with requests.Session() as session:
        session.trust_env = False
        reply = session.get(url, proxies={"https": proxy}, verify=str(bundle),
                            timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    assert reply.json()["customer"]["ssn"] != SSN
    context = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(proxy=proxy, verify=context, trust_env=False) as client:
        answer = client.get(url, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "/lib"
    assert answer.json()["customer"]["ssn"] != SSN


def test_http2_inside_the_tunnel(gw: Gateway, places: Destinations, bundle: Path) -> None:
    result = curl(gw, "--http2", "--cacert", str(bundle),
                  f"https://read.test:{places.read.port}/two")
    assert result.returncode == 0, result.stderr
    assert "ALPN: server accepted h2" in result.stderr
    assert "< HTTP/2 200" in result.stderr
    assert json.loads(result.stdout)["path"] == "/two"
    assert SSN not in result.stdout


@pytest.mark.parametrize(("path", "secret", "whole"), [
    # An event stream: every SSE field passes, each event masked as it comes.
    ("/events", CARD, 'id: 0\ndata: {"card":"[REDACTED:CREDIT_CARD]"}\n\nid: 1\n'),
    # Text whose length is not announced, the SSN cut between two chunks.
    ("/tail", SSN, "line 1: ok\nline 2: ssn [REDACTED:US_SSN]\nline 3: done\n"),
])
def test_a_stream_inside_is_masked_as_it_flows(
        gw: Gateway, places: Destinations, bundle: Path, path: str, secret: str,
        whole: str) -> None:
    result = curl(gw, "--cacert", str(bundle), "-N",
                  f"https://read.test:{places.read.port}{path}")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout
    assert result.stdout.startswith(whole), result.stdout


def test_pip_installs_from_an_index_it_reaches_through_a_read_tunnel(
        gw: Gateway, places: Destinations, bundle: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir",
         "--disable-pip-version-check", "--target", str(tmp_path / "site"),
         "--index-url", f"https://pypi.test:{places.pypi.port}/simple/",
         "--cert", str(bundle), "tollgate-egress-probe"],
        capture_output=True, text=True, env=client_env(gw), timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.path for r in places.pypi.received][-1].startswith("/files/")


# -- not read: tunnelled untouched, refused with the reason -------------------------------


def test_a_destination_only_allowed_is_tunnelled_untouched(
        gw: Gateway, places: Destinations) -> None:
    # Its own certificate, not the gateway's: the client trusts only the test CA here.
    result = curl(gw, "--cacert", str(places.tls.ca),
                  f"https://plain.test:{places.plain.port}/raw")
    assert result.returncode == 0, result.stderr
    assert SSN in result.stdout  # unread, so unmasked
    assert "issuer: O=tollgate" not in result.stderr


def test_a_denied_destination_is_refused_with_the_reason(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    result = curl(gw, "--cacert", str(bundle), f"https://blocked.test:{places.read.port}/")
    assert result.returncode != 0
    headers = proxy_headers(result)
    assert "egress.denied" in json.dumps(records_on(gw, headers["x-tollgate-trace-id"]))
    assert "deny list" in headers["x-tollgate-reason"]


def test_a_destination_whose_certificate_names_another_host_is_refused(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    # wrong.test is served by read.test's server: its certificate does not name wrong.test.
    result = curl(gw, "--cacert", str(bundle), f"https://wrong.test:{places.read.port}/")
    assert result.returncode == 0, result.stderr  # the client's TLS is the gateway's
    assert "< HTTP/2 503" in result.stderr
    assert "over verified TLS" in result.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout
    connect = proxy_headers(result)["x-tollgate-trace-id"]
    (request,) = inside(gw, connect)
    assert "CERTIFICATE_VERIFY_FAILED" in request["destination"]["tls_failure"]


@pytest.mark.parametrize("fault", ["expired", "self_signed"])
def test_a_destination_whose_certificate_fails_is_refused_never_reached_unverified(
        gw: Gateway, places: Destinations, bundle: Path, fault: str) -> None:
    server = places.faulty[fault]
    before = len(server.received)
    result = curl(gw, "--cacert", str(bundle),
                  f"https://{fault.replace('_', '')}.test:{server.port}/secret")
    assert result.returncode == 0, result.stderr  # the client's TLS is the gateway's
    assert "< HTTP/2 503" in result.stderr
    assert "over verified TLS" in result.stdout and "CERTIFICATE_VERIFY_FAILED" in result.stdout
    assert len(server.received) == before  # nothing reached it


def test_a_request_for_another_host_inside_a_tunnel_is_refused(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    # A tunnel to read.test carrying a request for plain.test (domain fronting).
    result = curl(gw, "--cacert", str(bundle), "-H", f"Host: plain.test:{places.read.port}",
                  f"https://read.test:{places.read.port}/fronted")
    assert result.returncode == 0, result.stderr
    assert "inside a tunnel to" in result.stdout
    assert all(r.path != "/fronted" for r in places.read.received)


def test_a_client_that_refuses_the_gateway_certificate_is_reported_per_destination(
        gw: Gateway, places: Destinations) -> None:
    # As a client that pins its certificates: it trusts the destination's CA alone.
    result = curl(gw, "--cacert", str(places.tls.ca),
                  f"https://read.test:{places.read.port}/pinned")
    assert result.returncode == 60, result.stderr  # curl: peer certificate not trusted
    assert all(r.path != "/pinned" for r in places.read.received)
    destination = f"read.test:{places.read.port}"
    found: list[dict[str, Any]] = []

    def alerted() -> bool:
        found[:] = [r for r in gw.records("alert")
                    if r["meaning"]["alert"]["rule"] == "tollgate.egress_certificate_refused"]
        return bool(found)

    stack.wait_until(alerted, 15, "the alert of the refused certificate")
    message = found[0]["meaning"]["alert"]["message"]
    assert f"ada opened a tunnel to {destination}" in message
    assert f"Put {destination} on an allow list to tunnel it unread" in message


def test_egress_ca_prints_the_bundle_clients_trust(gw: Gateway, bundle: Path) -> None:
    config = gw.config_path
    shown = subprocess.run([sys.executable, "-m", "extproc", "egress", "ca", "--config",
                            str(config)], capture_output=True, text=True, timeout=TIMEOUT,
                           check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert shown.stdout.strip() == bundle.read_text().strip()


# -- git: tunnelled untouched; inside a read tunnel, what cannot be read does not leave ----


def git(gw: Gateway, bundle: Path, where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**client_env(gw), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(where),
           "GIT_SSL_CAINFO": str(bundle), "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_git_clones_through_a_tunnel_untouched(
        gw: Gateway, places: Destinations, tmp_path: Path) -> None:
    # Tunnelled: the client sees the destination's own certificate (the test CA).
    done = git(gw, places.tls.ca, tmp_path, "clone", "-q",
               f"https://git.test:{places.git.port}/tools.git", "tools")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tools" / "README").read_text() == "tools\n"


def test_git_inside_a_read_tunnel_sends_nothing_tollgate_cannot_read(
        gw: Gateway, places: Destinations, bundle: Path, tmp_path: Path) -> None:
    """A fetch's negotiation and a push's packfile are no text tollgate can mask: neither
    leaves (a push of a secret no longer passes unseen); the refusal says why."""
    url = f"https://gitread.test:{places.git.port}/tools.git"
    before = len(places.git.received)
    done = git(gw, bundle, tmp_path, "clone", "-q", url, "tools")
    assert done.returncode != 0
    assert "502" in done.stderr
    posts = [r for r in places.git.received[before:] if r.method == "POST"]
    assert posts == []  # the refs were listed (a GET), nothing was sent


# -- WebSocket: the upgrade decided as any request is ----------------------------------------


def test_a_websocket_inside_a_read_tunnel_is_decided_and_refused_when_it_cannot_be_masked(
        gw: Gateway, places: Destinations, bundle: Path) -> None:
    """The upgrade is a request like any other, decided on the lists; what the pack masks
    cannot pass as a WebSocket, whose messages tollgate does not read: refused, saying so,
    before the destination hears of it."""
    url = f"wss://read.test:{places.socket_port}/feed"

    async def talk() -> int:
        context = ssl.create_default_context(cafile=str(bundle))
        async with aiohttp.ClientSession(trust_env=False) as session:
            try:
                async with session.ws_connect(url, proxy=gw.proxy_url(AGENT), ssl=context):
                    return 101
            except aiohttp.WSServerHandshakeError as refused:
                return refused.status

    assert asyncio.run(talk()) == 403
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["request"]["path"] == "/feed"]
        return bool(found)

    stack.wait_until(recorded, 15, "the record of the upgrade")
    assert found[0]["destination"]["scheme"] == "https"
    assert found[0]["outcome"]["action"] == "deny"
    assert "an upgraded connection (WebSocket, SPDY) cannot be masked" in json.dumps(
        found[0]["decisions"])
    assert places.socket_handshakes == 0
