"""The egress tests' destinations, each driven by the real client the egress tests will send
through tollgate's forward proxy, here connecting directly: what the egress tests then see
is the proxy's doing, not the test server's."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import httpx
import pytest
import requests
from cryptography import x509
from dnslib import QTYPE, RCODE, DNSRecord

from tests.support.dns import DnsServer
from tests.support.https_server import https_server, pattern_bytes
from tests.support.package_index import PROBE, index_answer, package_index, probe_wheel
from tests.support.tls import TlsFiles, write_server_files, write_tls_files

TIMEOUT = 30


def _direct_env() -> dict[str, str]:
    """This environment without proxies, pip settings (this machine configures pip with its
    own indexes, find-links and constraints) or CA bundles (requests, so pip, prefers
    REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE to `--cert`), so clients connect directly, pip
    uses only the index it is given and trusts the test CA."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("PIP_") and not k.lower().endswith("_proxy")
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, env=_direct_env(),
                          timeout=TIMEOUT, check=False)


def _ask(server: DnsServer, name: str, qtype: str) -> DNSRecord:
    packet = DNSRecord.question(name, qtype).send("127.0.0.1", server.port, timeout=5)
    return DNSRecord.parse(packet)


def _addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


# --- DNS -------------------------------------------------------------------------------


def test_dns_answers_a_and_aaaa_by_address_syntax() -> None:
    with DnsServer({"pypi.test": ["127.0.0.1", "::1", "10.1.2.3"]}) as dns:
        a, aaaa = _ask(dns, "pypi.test", "A"), _ask(dns, "pypi.test", "AAAA")
    assert a.header.rcode == RCODE.NOERROR and a.header.aa == 1
    assert _addresses(a) == ["127.0.0.1", "10.1.2.3"]
    assert [QTYPE[rr.rtype] for rr in a.rr] == ["A", "A"]
    assert _addresses(aaaa) == ["::1"]
    assert [rr.ttl for rr in a.rr + aaaa.rr] == [1, 1, 1]  # the default TTL
    assert dns.address == f"127.0.0.1:{dns.port}"


def test_dns_refuses_unknown_names_and_keeps_every_question() -> None:
    with DnsServer({"pypi.test": ["127.0.0.1"]}) as dns:
        unknown = _ask(dns, "nowhere.test", "A")
        nodata = _ask(dns, "pypi.test", "MX")
        known = _ask(dns, "PyPI.Test.", "A")  # names are matched as DNS does: any case
    assert unknown.header.rcode == RCODE.NXDOMAIN and unknown.rr == []
    assert nodata.header.rcode == RCODE.NOERROR and nodata.rr == []
    assert _addresses(known) == ["127.0.0.1"]
    assert dns.queries == [("nowhere.test", "A"), ("pypi.test", "MX"), ("pypi.test", "A")]
    assert dns.asked("nowhere.test") and dns.asked("pypi.test", "MX")
    assert not dns.asked("pypi.test", "AAAA") and not dns.asked("other.test")


def test_dns_callable_answers_change_between_questions() -> None:
    """A name that resolves to a public-looking address, then to another (DNS rebinding)."""
    answers = itertools.chain([["127.0.0.1"]], itertools.repeat(["192.0.2.1"]))
    with DnsServer({"rebind.test": lambda: next(answers)}, ttl=0) as dns:
        first, second, third = (_ask(dns, "rebind.test", "A") for _ in range(3))
    assert [_addresses(r) for r in (first, second, third)] == [
        ["127.0.0.1"], ["192.0.2.1"], ["192.0.2.1"]]
    assert {rr.ttl for rr in first.rr + second.rr} == {0}


def test_dns_answers_dnslibs_command_line_client() -> None:
    with DnsServer({"files.pypi.test": ["127.0.0.1"]}, ttl=30) as dns:
        done = subprocess.run(
            [sys.executable, "-m", "dnslib.client", "--server", dns.address, "--noretry",
             "files.pypi.test", "A"],
            capture_output=True, text=True, timeout=TIMEOUT, check=True)
    answers = [line.split() for line in done.stdout.splitlines() if not line.startswith(";")]
    assert ["files.pypi.test.", "30", "IN", "A", "127.0.0.1"] in answers
    assert "status: NOERROR" in done.stdout and "flags: qr aa" in done.stdout
    assert dns.queries == [("files.pypi.test", "A")]


# --- TLS -------------------------------------------------------------------------------


def _alt_names(cert: Path) -> list[str]:
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return [str(n.value) for n in names]


def test_server_files_name_the_given_hosts_and_share_the_ca(tmp_path: Path) -> None:
    named = write_server_files(tmp_path / "named", ["pypi.test", "*.pypi.test", "127.0.0.1"])
    plain = write_tls_files(tmp_path / "plain")
    assert _alt_names(named.cert) == ["pypi.test", "*.pypi.test", "127.0.0.1"]
    assert named.cert.name == "pypi.test.pem" and named.key.name == "pypi.test-key.pem"
    assert _alt_names(plain.cert) == ["localhost", "127.0.0.1"]  # unchanged
    assert named.ca.read_bytes() == plain.ca.read_bytes()


# --- HTTPS -----------------------------------------------------------------------------


def _hello(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    return 200, b'{"hello": "%s %s"}' % (method.encode(), path.encode())


def test_https_server_answers_curl_by_name(tmp_path: Path) -> None:
    files = write_server_files(tmp_path, ["pypi.test"])
    with https_server(files, _hello) as server:
        by_name = _curl("--cacert", str(files.ca), "--resolve",
                        f"pypi.test:{server.port}:127.0.0.1",
                        "-d", "ping", f"https://pypi.test:{server.port}/post")
        by_address = _curl("--cacert", str(files.ca), f"https://127.0.0.1:{server.port}/")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == b'{"hello": "POST /post"}'
    assert by_address.returncode == 60  # the certificate names pypi.test only
    [received] = server.received
    assert received.headers["host"] == f"pypi.test:{server.port}" and received.body == b"ping"


def test_https_server_answers_requests_and_httpx(tls: TlsFiles) -> None:
    verified = ssl.create_default_context(cafile=str(tls.ca))
    with https_server(tls, _hello, "/api") as server:
        assert server.url == f"https://127.0.0.1:{server.port}/api"
        with requests.Session() as session:
            session.trust_env = False
            by_requests = session.get(server.url, verify=str(tls.ca), timeout=TIMEOUT)
        by_httpx = httpx.get(server.url, verify=verified, trust_env=False, timeout=TIMEOUT)
    assert by_requests.json() == {"hello": "GET /api"}
    assert by_httpx.json() == {"hello": "GET /api"}
    assert [r.path for r in server.received] == ["/api", "/api"]


def test_https_server_is_not_held_up_by_a_client_that_never_handshakes(tls: TlsFiles) -> None:
    verified = ssl.create_default_context(cafile=str(tls.ca))
    with https_server(tls, _hello) as server, socket.create_connection(
            ("127.0.0.1", server.port), timeout=TIMEOUT):  # connected, silent
        answered = httpx.get(server.url, verify=verified, trust_env=False, timeout=5)
    assert answered.json() == {"hello": "GET /"}


async def test_https_server_answers_aiohttp(tls: TlsFiles) -> None:
    verified = ssl.create_default_context(cafile=str(tls.ca))
    with https_server(tls, _hello) as server:
        async with aiohttp.ClientSession() as session, session.get(
                f"{server.url}x", ssl=verified) as response:
            assert await response.json() == {"hello": "GET /x"}


def test_https_server_streams_large_bodies(tls: TlsFiles, tmp_path: Path) -> None:
    size = 24 * 1024 * 1024 + 7  # not a whole number of chunks
    with https_server(tls) as server:
        done = _curl("--cacert", str(tls.ca), "-o", str(tmp_path / "body"),
                     "-w", "%{http_code} %{size_download}", f"{server.url}bytes/{size}")
        missing = _curl("--cacert", str(tls.ca), "-o", os.devnull, "-w", "%{http_code}",
                        f"{server.url}other")
    assert done.stdout == f"200 {size}".encode(), done.stderr
    assert (hashlib.sha256((tmp_path / "body").read_bytes()).digest()
            == hashlib.sha256(pattern_bytes(size)).digest())
    assert missing.stdout == b"404"


def test_https_server_can_end_a_body_by_closing(tls: TlsFiles, tmp_path: Path) -> None:
    """`?until-close`: no length announced, the body whole all the same."""
    with https_server(tls) as server:
        done = _curl("--cacert", str(tls.ca), "-o", str(tmp_path / "body"), "-D", "-",
                     f"{server.url}bytes/70000?until-close")
    assert b"content-length" not in done.stdout.lower(), done.stdout
    assert (tmp_path / "body").read_bytes() == pattern_bytes(70000)


# --- package index ---------------------------------------------------------------------


@pytest.mark.e2e  # `pip install` run as a process
def test_pip_installs_the_probe_from_the_index(tls: TlsFiles, tmp_path: Path) -> None:
    target = tmp_path / "target"
    with package_index(tls, [probe_wheel()]) as index:
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--index-url", index.url,
             "--cert", str(tls.ca), "--target", str(target), "--no-cache-dir",
             "--disable-pip-version-check", "--retries", "0", "--timeout", "10", PROBE],
            capture_output=True, text=True, env=_direct_env(), timeout=120, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    paths = [r.path for r in index.received]
    assert paths[:2] == ["/simple/tollgate-egress-probe/",
                         f"/files/{probe_wheel().filename}"]
    probe = subprocess.run(
        [sys.executable, "-c", "import tollgate_egress_probe as p; print(p.__file__, p.VALUE)"],
        capture_output=True, text=True, env={**_direct_env(), "PYTHONPATH": str(target)},
        timeout=TIMEOUT, check=True)
    module, value = probe.stdout.split()
    assert Path(module).is_relative_to(target) and value == "42"


def test_index_links_are_relative_so_any_host_works(tmp_path: Path) -> None:
    files = write_server_files(tmp_path, ["pypi.test"])
    wheel = probe_wheel()
    with https_server(files, index_answer([wheel])) as server:
        base = f"https://pypi.test:{server.port}/simple/"
        reach = ("--cacert", str(files.ca), "--resolve", f"pypi.test:{server.port}:127.0.0.1")
        root = _curl(*reach, base).stdout.decode()
        assert '<a href="tollgate-egress-probe/">' in root
        page_url = urljoin(base, "tollgate-egress-probe/")
        page = _curl(*reach, page_url).stdout.decode()
        href = page.split('<a href="', 1)[1].split('"', 1)[0]
        file_url, fragment = urljoin(page_url, href).split("#", 1)
        downloaded = _curl(*reach, file_url).stdout
    assert "127.0.0.1" not in root + page
    assert file_url == f"https://pypi.test:{server.port}/files/{wheel.filename}"
    assert fragment == f"sha256={hashlib.sha256(downloaded).hexdigest()}"
    assert downloaded == wheel.content
