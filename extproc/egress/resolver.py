"""Where a destination's name points, as tollgate sees it: the addresses it decides on
and pins, so what Envoy connects to is what the policy judged.

Two ways to ask: the nameservers the egress target lists (UDP, A and AAAA, each answer's
TTL kept, at most `dns_cache_seconds`), or the system's resolver (getaddrinfo, whose
answers carry no TTL: kept `dns_cache_seconds`). Concurrent lookups of one name share one
query. Answers are kept per process; a rebinding name cannot move a pinned connection,
only the next decision, which judges the new addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from extproc.config import Egress

# A name that does not resolve is asked again after at most this many seconds.
_NEGATIVE_SECONDS = 5.0
_MOST_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Resolution:
    addresses: tuple[str, ...]  # IPv4 first, each once, in the answer's order
    error: str | None = None  # why there are none


class Resolver:
    def __init__(self, settings: Egress) -> None:
        self._servers = [_address(s) for s in settings.nameservers]
        self._timeout = settings.dns_timeout_seconds
        self._most = settings.dns_cache_seconds
        self._kept: dict[str, tuple[float, Resolution]] = {}
        self._asking: dict[str, asyncio.Future[tuple[Resolution, float]]] = {}

    async def resolve(self, host: str) -> Resolution:
        """The addresses `host` (a normalised DNS name) resolves to; never raises."""
        now = time.monotonic()
        kept = self._kept.get(host)
        if kept is not None and kept[0] > now:
            return kept[1]
        asking = self._asking.get(host)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(host))
            self._asking[host] = asking
            asking.add_done_callback(lambda _: self._asking.pop(host, None))
        resolution, ttl = await asyncio.shield(asking)
        if len(self._kept) >= _MOST_KEPT:
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
        self._kept[host] = (time.monotonic() + ttl, resolution)
        return resolution

    async def _ask(self, host: str) -> tuple[Resolution, float]:
        """The answer and how long to keep it."""
        if not self._servers:
            return await self._system(host)
        errors = []
        for server in self._servers:
            try:
                return await self._nameserver(server, host)
            except (OSError, TimeoutError, ValueError, DNSError) as exc:
                errors.append(f"{server[0]}:{server[1]}: {str(exc) or type(exc).__name__}")
        return Resolution((), "no nameserver answered (" + "; ".join(errors) + ")"), 0.0

    async def _system(self, host: str) -> tuple[Resolution, float]:
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(
                loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), self._timeout)
        except (OSError, TimeoutError) as exc:
            return Resolution((), f"does not resolve ({str(exc) or 'timed out'})"), \
                min(_NEGATIVE_SECONDS, self._most)
        return Resolution(_ordered(str(info[4][0]) for info in found)), self._most

    async def _nameserver(self, server: tuple[str, int], host: str
                          ) -> tuple[Resolution, float]:
        """A and AAAA from one nameserver (OSError, TimeoutError, ValueError or DNSError
        when it gives no usable answer; NXDOMAIN and no data are answers)."""
        answers = await asyncio.gather(*(self._query(server, host, kind)
                                         for kind in ("A", "AAAA")))
        addresses: list[str] = []
        ttls: list[int] = []
        codes = []
        for reply in answers:
            codes.append(RCODE.get(reply.header.rcode))
            for record in reply.rr:
                if record.rtype in (QTYPE.A, QTYPE.AAAA):
                    addresses.append(str(ipaddress.ip_address(str(record.rdata))))
                    ttls.append(record.ttl)
        if not addresses:
            why = "NXDOMAIN" if "NXDOMAIN" in codes else f"no address ({', '.join(codes)})"
            return Resolution((), f"does not resolve ({why})"), min(_NEGATIVE_SECONDS,
                                                                       self._most)
        return Resolution(_ordered(addresses)), float(min(min(ttls), self._most))

    async def _query(self, server: tuple[str, int], host: str, kind: str) -> DNSRecord:
        question = DNSRecord.question(host, kind)
        question.header.id = secrets.randbits(16)
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
                if not got.done():
                    got.set_result(data)

            def error_received(self, exc: Exception) -> None:
                if not got.done():
                    got.set_exception(exc)

        transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=server)
        try:
            transport.sendto(question.pack())
            reply = DNSRecord.parse(await asyncio.wait_for(got, self._timeout))
        finally:
            transport.close()
        if reply.header.id != question.header.id or reply.q.qname != question.q.qname:
            raise ValueError("an answer to another question")
        rcode = RCODE.get(reply.header.rcode)
        if rcode not in ("NOERROR", "NXDOMAIN"):
            raise ValueError(f"answered {rcode}")
        return reply


def _ordered(addresses: object) -> tuple[str, ...]:
    """Each address once, IPv4 before IPv6, otherwise in the order given."""
    unique = list(dict.fromkeys(str(a) for a in addresses))  # type: ignore[attr-defined]
    return tuple(sorted(unique, key=lambda a: ":" in a))


def _address(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)
