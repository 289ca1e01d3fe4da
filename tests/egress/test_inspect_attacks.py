"""Attacks on the egress proxy's reading of tunnels: ways an agent might get an SSN or a
card number out through a read (`inspect`) tunnel unmasked, or make the record of what
left say something else than what the destination got. Each probe goes through the real
gateway (Envoy, tollgate) to a local destination and asserts the secure outcome: the
destination never gets the secret in cleartext (as sent, or once percent- or
form-decoded), or the request is refused and the destination gets nothing.

Classes covered:
- headers: repeated names, odd-case names, very long values, `host` with more in it,
  `content-length`/`transfer-encoding` carrying data, `traceparent` carrying data,
  `proxy-authorization` and `x-tollgate-inspect` sent inside the tunnel, HTTP/1.1 and
  HTTP/2, repeated `cookie` fields over HTTP/2, an `Upgrade` asked for;
- the URL: percent-encoding (single, double), matrix parameters, `..` segments,
  fragments and absolute-form targets sent raw inside the tunnel;
- bodies: no content type, multipart, UTF-7 and UTF-16 charsets, JSON with `\\u`
  escapes, compressed bodies (any spelling of gzip), Expect: 100-continue;
- records: a masked request's record against what the destination got; refusals reach
  nothing.

The destination here is a raw HTTPS server (HTTP/1.1) keeping every byte of each request
it gets, so that repeated headers, trailers and bodies are seen as they arrived.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, unquote_plus

import pytest

from tests.egress.test_inspect_e2e import (  # noqa: F401
    AGENT,
    CARD,
    SSN,
    Destinations,
    bundle,
    curl,
    gw,
    open_tunnel,
    places,
    records_on,
)
from tests.support.gateway import Gateway
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.e2e

CARDS = (CARD, CARD.replace(" ", ""), CARD.replace(" ", "-"))
SECRETS = (SSN, *CARDS)


class RawDestination:
    """An HTTPS server (HTTP/1.1 only) that keeps each request's bytes as they came and
    answers `ok`."""

    def __init__(self, tls: TlsFiles) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(tls.cert, tls.key)
        self._context.set_alpn_protocols(["http/1.1"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with self._context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(10)
                buffer = b""
                while True:
                    request, buffer = _one_request(tls, buffer)
                    if request is None:
                        return
                    with self._lock:
                        self.requests.append(request)
                    tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                                b"content-length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError):
            return

    def since(self, count: int) -> bytes:
        with self._lock:
            return b"\n".join(self.requests[count:])

    def close(self) -> None:
        self._listener.close()


def _read_more(tls: ssl.SSLSocket, buffer: bytes) -> bytes:
    data = tls.recv(65536)
    if not data:
        raise EOFError
    return buffer + data


def _one_request(tls: ssl.SSLSocket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """One whole request's bytes (head, body, chunked trailers), and what follows it."""
    try:
        while b"\r\n\r\n" not in buffer:
            buffer = _read_more(tls, buffer)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")[1:]
        fields = dict(line.split(b":", 1) for line in lines if b":" in line)
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            body = b""
            while True:
                while b"\r\n" not in rest:
                    rest = _read_more(tls, rest)
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while not (rest.startswith(b"\r\n") or b"\r\n\r\n" in rest):
                        rest = _read_more(tls, rest)
                    end = 2 if rest.startswith(b"\r\n") else rest.index(b"\r\n\r\n") + 4
                    body += b"0\r\n" + rest[:end]
                    return head + b"\r\n\r\n" + body, rest[end:]
                while len(rest) < size + 2:
                    rest = _read_more(tls, rest)
                body += size_line + b"\r\n" + rest[:size + 2]
                rest = rest[size + 2:]
        length = int(fields.get(b"content-length", b"0").strip() or 0)
        while len(rest) < length:
            rest = _read_more(tls, rest)
        return head + b"\r\n\r\n" + rest[:length], rest[length:]
    except (EOFError, TimeoutError, OSError, ValueError):
        return None, b""


@pytest.fixture(scope="module")
def raw(places: Destinations) -> Iterator[RawDestination]:  # noqa: F811
    """read.test (the test DNS answers 127.0.0.1 for it, whatever the port) served raw."""
    with contextlib.closing(RawDestination(places.tls)) as server:
        yield server


def leaked(data: bytes) -> list[str]:
    """The secrets `data` carries in cleartext, read as sent, percent-decoded, or
    form-decoded (`+` a space)."""
    text = data.decode("latin-1")
    views = (text, unquote(text), unquote_plus(text),
             unquote(text, "latin-1"), unquote_plus(text, "latin-1"))
    return [secret for secret in SECRETS if any(secret in view for view in views)]


def send(gw: Gateway, bundle: Path, raw: RawDestination, path: str,  # noqa: F811
         *args: str) -> tuple[str, str, bytes]:
    """curl through the tunnel to the raw destination: its stdout and stderr, and the
    bytes the destination got."""
    before = len(raw.requests)
    result = curl(gw, "--cacert", str(bundle), *args,
                  f"https://read.test:{raw.port}{path}")
    assert "issuer: O=tollgate" in result.stderr, result.stderr  # read, not tunnelled
    return result.stdout, result.stderr, raw.since(before)


def status(stderr: str) -> int:
    """The status the client got, from curl's -v."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("< HTTP/"):
            return int(line.split()[2])
    return 0


# -- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("http", ["--http1.1", "--http2"])
def test_a_header_repeated_leaves_masked_every_time(
        gw: Gateway, bundle: Path, raw: RawDestination, http: str) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/repeat", http,
                       "-H", "X-Note: plain", "-H", f"X-Note: ssn {SSN}",
                       "-H", f"X-Note: card {CARD}", "-H", f"X-Other: {SSN}")
    assert status(err) == 200, err
    assert got and leaked(got) == [], got


def test_a_header_name_in_odd_case_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/case", "--http1.1",
                       "-H", f"x-NoTe-CaSe: {SSN}", "-H", f"USER-AGENT: {CARD}")
    assert status(err) == 200, err
    assert got and leaked(got) == [], got


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_very_long_header_value_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, where: str) -> None:  # noqa: F811
    filler = "a " * 15000
    value = f"{SSN} {filler}" if where == "start" else f"{filler} {SSN}"
    _, err, got = send(gw, bundle, raw, "/long", "-H", f"X-Long: {value}")
    assert status(err) in (200, 400, 403, 413, 431, 502), err
    assert leaked(got) == [], got[:300]


@pytest.mark.parametrize("host", [
    "read.test:{port}@{ssn}.evil.test", "read.test:{port}, {ssn}",
    "{ssn}.read.test:{port}", "read.test:{port}#{ssn}",
])
def test_a_host_carrying_more_is_refused_or_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, host: str) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, "/host", "--http1.1",
                     "-H", f"Host: {host.format(port=raw.port, ssn=SSN)}")
    assert leaked(got) == [], got


@pytest.mark.parametrize("header", [
    f"Content-Length: {SSN}", f"Transfer-Encoding: {SSN}, chunked",
    f"Transfer-Encoding: chunked, {SSN}",
])
def test_framing_headers_carrying_data_are_refused(
        gw: Gateway, bundle: Path, raw: RawDestination, header: str) -> None:  # noqa: F811
    before = len(raw.requests)
    curl(gw, "--cacert", str(bundle), "--http1.1", "-H", header, "--data-binary", "x",
         "-H", "content-type: text/plain", f"https://read.test:{raw.port}/framing")
    assert leaked(raw.since(before)) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("value", [f"x {SSN}", f"00-{SSN}-{CARD}-01"])
def test_traceparent_is_tollgates_own_when_it_leaves(
        gw: Gateway, bundle: Path, raw: RawDestination, method: str, value: str) -> None:  # noqa: F811
    body = ("-d", "plain", "-H", "content-type: text/plain") if method == "POST" else ()
    _, err, got = send(gw, bundle, raw, "/trace", "-H", f"traceparent: {value}", *body)
    assert status(err) == 200, err
    assert value.encode() not in got, got
    assert SSN.replace("-", "").encode() not in got
    assert leaked(got) == [], got


def test_proxy_authorization_sent_inside_the_tunnel_does_not_reach_the_destination(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, "/proxyauth",
                     "-H", f"Proxy-Authorization: Bearer {SSN}")
    assert b"proxy-authorization" not in got.lower(), got
    assert leaked(got) == [], got


def test_a_ticket_header_sent_by_the_client_is_neither_trusted_nor_passed(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/ticket", "-H", f"X-Tollgate-Inspect: {SSN}")
    assert status(err) == 200, err
    assert b"x-tollgate-inspect" not in got.lower()
    assert leaked(got) == [], got


def test_cookies_in_separate_http2_fields_leave_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/cookies", "--http2",
                       "-H", "cookie: a=1", "-H", f"cookie: ssn={SSN}",
                       "-H", f"cookie: card={CARD.replace(' ', '')}")
    assert status(err) == 200, err
    assert got and leaked(got) == [], got


@pytest.mark.parametrize("http", ["--http1.1", "--http2"])
def test_a_request_asking_to_upgrade_does_not_carry_data_out_unmasked(
        gw: Gateway, bundle: Path, raw: RawDestination, http: str) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, f"/up?ssn={SSN}", http,
                     "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                     "-H", "Sec-WebSocket-Version: 13",
                     "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                     "-H", f"X-Note: {SSN}")
    assert leaked(got) == [], got


# -- the URL ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    f"/q?note={SSN}", "/q?note=123%2D45%2D6789", "/q%3Fnote%3D123%2d45%2d6789",
    f"/m;note={SSN}/x", f"/a/../q?note={SSN}", f"/a/%2e%2e/q?note={SSN}",
    "/q?note=%31%32%33-45-6789", "/q?note=123%252D45%252D6789", f"/q?n=1&note={SSN}#x",
    "/q?card=4111%201111%201111%201111", "/q?card=4111%2D1111%2D1111%2D1111",
])
def test_the_url_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, path: str) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, path, "--path-as-is")
    assert leaked(got) == [], got


def _tunnel_raw(gw: Gateway, bundle: Path, port: int, request: bytes) -> bytes:  # noqa: F811
    tunnel, _ = open_tunnel(gw, AGENT, bundle, port)
    with tunnel:
        tunnel.sendall(request)
        answer = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer:
                data = tunnel.recv(65536)
                if not data:
                    break
                answer += data
        return answer


def _raw_leaks(gw: Gateway, bundle: Path, raw: RawDestination, request: bytes  # noqa: F811
               ) -> list[str]:
    """What `request`, sent as is inside a read tunnel, got to the destination in clear."""
    before = len(raw.requests)
    _tunnel_raw(gw, bundle, raw.port, request)
    return leaked(raw.since(before))


@pytest.mark.parametrize("target", [
    f"/frag#{SSN}", "https://read.test:{port}/abs?ssn=" + SSN,
    "http://read.test:{port}/abs?ssn=" + SSN, f"/sp ssn {SSN}",
])
def test_raw_request_targets_inside_the_tunnel_leave_masked_or_are_refused(
        gw: Gateway, bundle: Path, raw: RawDestination, target: str) -> None:  # noqa: F811
    line = target.format(port=raw.port)
    assert _raw_leaks(gw, bundle, raw, f"GET {line} HTTP/1.1\r\nhost: read.test:{raw.port}"
                      "\r\nconnection: close\r\n\r\n".encode()) == []


# -- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [
    None, "application/octet-stream", "multipart/form-data; boundary=x",
    "text/plain; charset=x-unknown-charset", "text/plain; charset=rot13",
])
def test_a_body_that_cannot_be_read_as_text_is_refused(
        gw: Gateway, bundle: Path, raw: RawDestination, content_type: str | None) -> None:  # noqa: F811
    args = ("-H", f"content-type: {content_type}") if content_type else (
        "-H", "content-type:")
    body = f'--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n{SSN}\r\n--x--\r\n'
    _, err, got = send(gw, bundle, raw, "/body", *args, "--data-binary", body)
    assert status(err) >= 400, err
    assert got == b""


def test_a_body_in_utf7_is_read_in_it_and_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    body = "my ssn is +ADEAMgAzAC0ANAA1AC0ANgA3ADgAOQ-"
    assert SSN in body.encode().decode("utf-7")
    _, err, got = send(gw, bundle, raw, "/utf7", "-H", "content-type: text/plain; charset=utf-7",
                       "--data-binary", body)
    assert status(err) == 200, err
    received = got.partition(b"\r\n\r\n")[2]
    assert SSN not in received.decode("utf-7", "replace")


def test_json_with_unicode_escapes_is_read_and_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    body = '{"note": "\\u0031\\u0032\\u0033\\u002d45-6789"}'
    assert json.loads(body)["note"] == SSN
    _, err, got = send(gw, bundle, raw, "/json", "-H", "content-type: application/json",
                       "--data-binary", body)
    assert status(err) == 200, err
    received = got.partition(b"\r\n\r\n")[2]
    assert SSN not in json.dumps(json.loads(received), ensure_ascii=False)


@pytest.mark.parametrize("encoding", [
    ["gzip"], ["GZIP"], ["x-gzip"], [" gzip "], ["identity, gzip"], ["identity", "gzip"],
    ["deflate"], ["br"],
])
def test_a_compressed_body_is_refused(
        gw: Gateway, bundle: Path, raw: RawDestination, encoding: list[str],  # noqa: F811
        tmp_path: Path) -> None:
    data = tmp_path / "body.gz"
    data.write_bytes(gzip.compress(f"my ssn is {SSN}".encode()))
    headers = [arg for value in encoding for arg in ("-H", f"content-encoding: {value}")]
    _, err, got = send(gw, bundle, raw, "/gz", *headers, "-H", "content-type: text/plain",
                       "--data-binary", f"@{data}")
    assert status(err) >= 400, err
    assert got == b""


def test_a_body_sent_after_100_continue_is_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/expect", "--http1.1", "-H", "Expect: 100-continue",
                       "-H", "content-type: text/plain", "--data-binary", f"ssn {SSN}")
    assert status(err) == 200, err
    assert got and leaked(got) == [], got


@pytest.mark.parametrize("http", ["--http1.1", "--http2"])
def test_a_chunked_body_is_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, http: str) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/chunked", http, "-H", "Transfer-Encoding: chunked",
                       "-H", "content-type: text/plain", "--data-binary", f"ssn {SSN}")
    assert status(err) == 200, err
    assert got and leaked(got) == [], got



@pytest.mark.parametrize("body", ["ssn=123%2D45%2D6789", "ssn=%31%32%33-45-6789",
                                  f"note={SSN}", f"n=1&card={CARD.replace(' ', '-')}"])
def test_a_form_body_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, body: str) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, "/form",
                       "-H", "content-type: application/x-www-form-urlencoded",
                       "--data-binary", body)
    assert status(err) == 200, err
    assert got and leaked(got) == [], got


def test_a_secret_as_a_json_key_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, "/jsonkey", "-H", "content-type: application/json",
                     "--data-binary", f'{{"{SSN}": 1}}')
    assert leaked(got) == [], got


def test_an_http11_method_does_not_carry_data_out(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, "/method", "--http1.1", "-X", SSN)
    assert leaked(got) == [], got


def test_a_header_value_with_bytes_not_utf8_leaves_masked(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    request = (f"GET /bytes HTTP/1.1\r\nhost: read.test:{raw.port}\r\nconnection: close\r\n"
               .encode() + b"x-note: \xff\xfe " + SSN.encode() + b" \xc3(\r\n\r\n")
    assert _raw_leaks(gw, bundle, raw, request) == []


@pytest.mark.parametrize("header", ["X-Request-Id", "X-Forwarded-For", "Accept-Encoding",
                                    "Forwarded", "Via"])
def test_headers_envoy_or_tollgate_set_leave_masked(
        gw: Gateway, bundle: Path, raw: RawDestination, header: str) -> None:  # noqa: F811
    _, _, got = send(gw, bundle, raw, "/set", "-H", f"{header}: {SSN}")
    assert leaked(got) == [], got


def test_a_connect_inside_the_tunnel_carries_nothing_out(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    request = (f"CONNECT read.test:{raw.port} HTTP/1.1\r\nhost: read.test:{raw.port}\r\n"
               f"x-note: {SSN}\r\n\r\nGET /in?ssn={SSN} HTTP/1.1\r\n"
               f"host: read.test:{raw.port}\r\n\r\n").encode()
    assert _raw_leaks(gw, bundle, raw, request) == []


def test_a_refused_request_reaches_nothing_and_its_record_says_refused(
        gw: Gateway, bundle: Path, raw: RawDestination, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "body.gz"
    data.write_bytes(gzip.compress(f"my ssn is {SSN}".encode()))
    _, err, got = send(gw, bundle, raw, "/refused-gz", "-H", "content-encoding: gzip",
                       "-H", "content-type: text/plain", "--data-binary", f"@{data}")
    assert status(err) == 415, err
    assert got == b""
    trace = [line.split(": ", 1)[1].strip() for line in err.splitlines()
             if line.lower().startswith("< x-tollgate-trace-id")][-1]
    (record,) = records_on(gw, trace)
    assert record["outcome"]["action"] != "allow" or record["outcome"]["refusal"], record
    assert record["outcome"]["status"] == 415
    assert SSN not in json.dumps(record)


def test_the_record_of_a_masked_request_has_the_url_and_body_the_destination_got(
        gw: Gateway, bundle: Path, raw: RawDestination) -> None:  # noqa: F811
    _, err, got = send(gw, bundle, raw, f"/rec/x?ssn={SSN}&n=1",
                       "-H", "content-type: text/plain", "--data-binary", f"body {SSN}")
    assert status(err) == 200, err
    trace = [line.split(": ", 1)[1].strip() for line in err.splitlines()
             if line.lower().startswith("< x-tollgate-trace-id")][-1]
    (record,) = records_on(gw, trace)
    line, _, rest = got.partition(b"\r\n")
    path = line.split()[1].decode()
    body = rest.partition(b"\r\n\r\n")[2].decode()
    assert record["request"]["path"] == path.partition("?")[0]
    assert record["request"]["query"] == parse_qs(unquote(path.partition("?")[2]))
    assert record["request"]["body"]["value"] == body
    assert record["outcome"]["action"] == "allow"
    assert record["masked"].get("us_ssn", 0) >= 2
    assert SSN not in json.dumps(record)


@pytest.mark.parametrize("head", [
    # Both framings at once (smuggling a second request past the reading).
    "POST /smuggle HTTP/1.1\r\nhost: {host}\r\ncontent-type: text/plain\r\n"
    "content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    "GET /second?note={ssn} HTTP/1.1\r\nhost: {host}\r\n\r\n",
    # The host twice, the second for elsewhere.
    "GET /twice?note={ssn} HTTP/1.1\r\nhost: {host}\r\nhost: {ssn}.evil.test\r\n\r\n",
    # A value folded onto a second line (obs-fold).
    "GET /fold HTTP/1.1\r\nhost: {host}\r\nx-note: a\r\n {ssn}\r\n\r\n",
    # Userinfo in an absolute-form target.
    "GET https://{ssn}@{host}/userinfo HTTP/1.1\r\nhost: {host}\r\n\r\n",
    # Chunked trailers to an HTTP/1.1 destination.
    "POST /trailer HTTP/1.1\r\nhost: {host}\r\ncontent-type: text/plain\r\n"
    "transfer-encoding: chunked\r\ntrailer: x-trail\r\n\r\n5\r\nplain\r\n0\r\n"
    "x-trail: {ssn}\r\n\r\n",
])
def test_malformed_http11_inside_the_tunnel_carries_nothing_out(
        gw: Gateway, bundle: Path, raw: RawDestination, head: str) -> None:  # noqa: F811
    request = head.format(host=f"read.test:{raw.port}", ssn=SSN).encode()
    assert _raw_leaks(gw, bundle, raw, request) == []


def test_a_body_over_the_buffer_is_refused_whole(
        gw: Gateway, bundle: Path, raw: RawDestination, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "big"
    data.write_bytes(b"a " * 1_200_000 + f"ssn {SSN}".encode())
    for framing in (("-H", "Transfer-Encoding: chunked"), ()):
        _, err, got = send(gw, bundle, raw, "/big", "--http1.1", *framing,
                           "-H", "content-type: text/plain", "--data-binary", f"@{data}")
        assert status(err) in (413, 500), err[-2000:]  # Envoy's, or tollgate's refusal
        assert got == b""
