"""The egress resolver against real DNS servers on 127.0.0.1: what it asks, what it keeps
and for how long, and what it says when a name does not resolve or a server fails."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from dnslib import RCODE, DNSRecord

from extproc.config import Egress
from extproc.egress.resolver import Resolution, Resolver
from tests.support.dns import DnsServer

TIMEOUT = 0.3  # dns_timeout_seconds where a server is meant not to answer


def resolver(*servers: str, timeout: float = 2.0, cache: float = 30.0) -> Resolver:
    return Resolver(Egress(nameservers=servers, dns_timeout_seconds=timeout,
                           dns_cache_seconds=cache))


@contextmanager
def silent_server() -> Iterator[str]:
    """A UDP port that is bound (so nothing refuses the question) and never read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def answering(reply: Callable[[bytes], bytes]) -> Iterator[str]:
    """A UDP server that answers each datagram with `reply(datagram)`."""
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, client = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                sock.sendto(reply(data), client)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{sock.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()


async def until_asked_again(found: Resolver, dns: DnsServer, name: str,
                            seconds: float = 10) -> None:
    """Resolve `name` until the resolver asks `dns` again (its answer has expired)."""
    asked = len(dns.queries)
    deadline = time.monotonic() + seconds
    while len(dns.queries) == asked:
        assert time.monotonic() < deadline, f"{name} was never asked again"
        await found.resolve(name)
        await asyncio.sleep(0.02)


# -- answers -------------------------------------------------------------------------------


async def test_ipv4_addresses_come_first_then_ipv6_each_once() -> None:
    names = {"pypi.test": ["2001:db8::1", "10.1.2.3", "2001:db8::2", "10.1.2.4", "10.1.2.3"]}
    with DnsServer(names) as dns:
        found = await resolver(dns.address).resolve("pypi.test")
    assert found == Resolution(("10.1.2.3", "10.1.2.4", "2001:db8::1", "2001:db8::2"))
    assert sorted(dns.queries) == [("pypi.test", "A"), ("pypi.test", "AAAA")]


async def test_a_name_with_ipv6_addresses_only_resolves_to_them() -> None:
    with DnsServer({"six.test": ["2001:db8::6"]}) as dns:
        assert await resolver(dns.address).resolve("six.test") == Resolution(("2001:db8::6",))


async def test_nxdomain_is_said_and_kept_a_while() -> None:
    with DnsServer({"pypi.test": ["10.1.2.3"]}) as dns:
        found = resolver(dns.address)
        first = await found.resolve("nowhere.test")
        again = await found.resolve("nowhere.test")
    assert first == again == Resolution((), "does not resolve (NXDOMAIN)")
    assert len(dns.queries) == 2  # A and AAAA, once: the negative answer was kept


async def test_a_name_without_addresses_says_so() -> None:
    with DnsServer({"mail-only.test": []}) as dns:
        found = await resolver(dns.address).resolve("mail-only.test")
    assert found == Resolution((), "does not resolve (no address (NOERROR, NOERROR))")


# -- what is kept, and for how long --------------------------------------------------------


async def test_an_answer_is_kept_for_its_ttl() -> None:
    with DnsServer({"pypi.test": ["10.1.2.3"]}, ttl=1) as dns:
        found = resolver(dns.address, cache=30)
        started = time.monotonic()
        assert (await found.resolve("pypi.test")).addresses == ("10.1.2.3",)
        asked = list(dns.queries)
        dns.names["pypi.test"] = ["10.9.9.9"]  # the name moves; the kept answer does not
        assert (await found.resolve("pypi.test")).addresses == ("10.1.2.3",)
        assert dns.queries == asked  # within the TTL: nothing asked
        await until_asked_again(found, dns, "pypi.test")
        waited = time.monotonic() - started
        assert (await found.resolve("pypi.test")).addresses == ("10.9.9.9",)
    # Asked again once the TTL (1 s) was over: not before, nor after dns_cache_seconds (30).
    assert 0.9 <= waited < 10


async def test_a_long_ttl_is_cut_to_dns_cache_seconds() -> None:
    with DnsServer({"pypi.test": ["10.1.2.3"]}, ttl=3600) as dns:
        found = resolver(dns.address, cache=0.5)
        started = time.monotonic()
        await found.resolve("pypi.test")
        await until_asked_again(found, dns, "pypi.test")
    assert 0.45 <= time.monotonic() - started < 10


async def test_no_answer_is_kept_when_dns_cache_seconds_is_0() -> None:
    with DnsServer({"pypi.test": ["10.1.2.3"]}, ttl=3600) as dns:
        found = resolver(dns.address, cache=0)
        for _ in range(3):
            assert (await found.resolve("pypi.test")).addresses == ("10.1.2.3",)
    assert len(dns.queries) == 6


async def test_concurrent_lookups_of_one_name_ask_once() -> None:
    with DnsServer({"pypi.test": ["10.1.2.3", "2001:db8::1"]}) as dns:
        found = resolver(dns.address)
        answers = await asyncio.gather(*(found.resolve("pypi.test") for _ in range(20)),
                                       found.resolve("other.test"))
    assert set(answers[:20]) == {Resolution(("10.1.2.3", "2001:db8::1"))}
    assert answers[20].error == "does not resolve (NXDOMAIN)"
    assert sorted(dns.queries) == [("other.test", "A"), ("other.test", "AAAA"),
                                   ("pypi.test", "A"), ("pypi.test", "AAAA")]


async def test_a_lookup_given_up_leaves_the_shared_one_to_the_others() -> None:
    with silent_server() as dead, DnsServer({"pypi.test": ["10.1.2.3"]}) as dns:
        found = resolver(dead, dns.address, timeout=TIMEOUT)
        first = asyncio.ensure_future(found.resolve("pypi.test"))
        second = asyncio.ensure_future(found.resolve("pypi.test"))
        await asyncio.sleep(0)  # one turn of the loop: both wait on the one query now
        first.cancel()
        assert (await second).addresses == ("10.1.2.3",)
    assert first.cancelled()
    assert len(dns.queries) == 2


# -- failing nameservers -------------------------------------------------------------------


async def test_a_silent_nameserver_falls_over_to_the_next() -> None:
    with silent_server() as dead, DnsServer({"pypi.test": ["10.1.2.3"]}) as dns:
        started = time.monotonic()
        found = await resolver(dead, dns.address, timeout=TIMEOUT).resolve("pypi.test")
    assert found == Resolution(("10.1.2.3",))
    assert time.monotonic() - started >= TIMEOUT * 0.9  # the first had its dns_timeout_seconds
    assert dns.asked("pypi.test", "A")


async def test_when_no_nameserver_answers_each_is_named() -> None:
    with silent_server() as one, silent_server() as two:
        found = await resolver(one, two, timeout=TIMEOUT).resolve("pypi.test")
    assert found.addresses == ()
    assert found.error is not None and found.error.startswith("no nameserver answered (")
    assert f"{one}: " in found.error and f"{two}: " in found.error


async def test_a_silent_nameserver_is_said_to_have_timed_out() -> None:
    with silent_server() as dead:
        found = await resolver(dead, timeout=TIMEOUT).resolve("pypi.test")
    assert found.error is not None and "time" in found.error.lower().split(f"{dead}:")[1]


def servfail(data: bytes) -> bytes:
    reply = DNSRecord.parse(data).reply()
    reply.header.rcode = RCODE.SERVFAIL
    return bytes(reply.pack())


def another_id(data: bytes) -> bytes:
    reply = DNSRecord.parse(data).reply()
    reply.header.id ^= 0xFFFF
    return bytes(reply.pack())


@pytest.mark.parametrize(("reply", "why"), [
    (servfail, "answered SERVFAIL"),
    (another_id, "an answer to another question"),
])
async def test_a_nameserver_that_answers_wrongly_falls_over_to_the_next(
        reply: Callable[[bytes], bytes], why: str) -> None:
    with answering(reply) as bad, DnsServer({"pypi.test": ["10.1.2.3"]}) as dns:
        assert await resolver(bad, dns.address).resolve("pypi.test") == Resolution(("10.1.2.3",))
        alone = await resolver(bad).resolve("pypi.test")
    assert alone.addresses == () and f"{bad}: {why}" in str(alone.error)


async def test_a_nameserver_that_answers_garbage_falls_over_to_the_next() -> None:
    with answering(lambda data: data[:2] + b"\x81\x80 not dns") as bad, \
            DnsServer({"pypi.test": ["10.1.2.3"]}) as dns:
        found = await resolver(bad, dns.address).resolve("pypi.test")
    assert found == Resolution(("10.1.2.3",))


# -- the system resolver -------------------------------------------------------------------


async def test_the_system_resolver_resolves_localhost() -> None:
    found = await resolver().resolve("localhost")
    assert found.error is None
    assert "127.0.0.1" in found.addresses
    assert list(found.addresses) == sorted(found.addresses, key=lambda a: ":" in a)
    assert len(set(found.addresses)) == len(found.addresses)


async def test_the_system_resolver_says_when_a_name_does_not_resolve() -> None:
    found = await resolver().resolve("nowhere.invalid")  # RFC 6761: never resolves
    assert found.addresses == ()
    assert found.error is not None and found.error.startswith("does not resolve (")
