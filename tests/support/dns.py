"""A small authoritative DNS server on a free UDP port of 127.0.0.1, in a thread of its own.

The egress tests must not depend on this machine's resolver or on the internet: tollgate is
pointed at this server (`egress.nameservers`) and the tests decide what each name resolves to,
including answers that change between questions (DNS rebinding), and can check afterwards who
asked for what (that Envoy asked nothing, that a refused name was looked up once...).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer

Addresses = list[str] | Callable[[], list[str]]


def _normal(name: str) -> str:
    return name.lower().rstrip(".")


class DnsServer:
    """Answers A and AAAA questions for `names` (IPv4 addresses in A, IPv6 in AAAA), NOERROR
    with no answer for a known name's other types, NXDOMAIN for unknown names.

    A callable's addresses are asked anew for every question (so once for A and once for
    AAAA when a client asks both), which is how a test makes a name change its answer.
    """

    def __init__(self, names: Mapping[str, Addresses], ttl: int = 1) -> None:
        self.names: dict[str, Addresses] = {_normal(k): v for k, v in names.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []  # (name without the trailing dot, "A"...)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", logf=lambda _: None)
        self._server = DNSServer(_Resolver(self), address="127.0.0.1", port=0, logger=quiet)
        self.port: int = self._server.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """"127.0.0.1:PORT", as tollgate's `egress.nameservers` takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        self._thread = threading.Thread(target=self._server.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server.server_close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def asked(self, name: str, qtype: str | None = None) -> bool:
        """Whether anyone asked for `name` (of type `qtype`, if given)."""
        name = _normal(name)
        return any(n == name and (qtype is None or t == qtype) for n, t in self.queries)

    def answer(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()  # authoritative (aa) and recursion available, like dnslib's
        for question in request.questions:
            name, qtype = _normal(str(question.qname)), QTYPE[question.qtype]
            self.queries.append((name, qtype))
            addresses = self.names.get(name)
            if addresses is None:
                reply.header.rcode = RCODE.NXDOMAIN
                continue
            for address in addresses() if callable(addresses) else addresses:
                version = ipaddress.ip_address(address).version
                if (qtype, version) in (("A", 4), ("AAAA", 6)):
                    rdata = A(address) if version == 4 else AAAA(address)
                    reply.add_answer(RR(question.qname, question.qtype, rdata=rdata,
                                        ttl=self.ttl))
        return reply


class _Resolver:
    """dnslib's resolver interface, handing each request to the server's `answer`."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        return self._server.answer(request)
