"""The egress CA's leaves as Envoy's secrets (issue 66): the Secret Discovery Service
Envoy asks while it terminates TLS for a destination tollgate reads inside HTTPS.

Envoy's internal listener picks its certificate with the on-demand secret selector
(`envoy.tls.certificate_selectors.on_demand_secret`, mapping the client's SNI to a
secret's name): during each handshake for a name it holds no secret of, it asks this
service for that name (state-of-the-world SDS, `StreamSecrets`) and pauses the handshake
until the answer. So a name gets its leaf on the first connection to it, minted by the
egress CA (ca.py); a name the CA refuses (the mapper's default for a client that sent no
SNI, anything else that is no host name) is left out: Envoy gets no certificate for it.

Envoy keeps a secret until it is sent another: nothing asks again when a leaf nears its
end (`leaf_hours`), so while a stream is open its leaves are pushed anew by their
renewal time. Nor does Envoy know of `tollgate egress ca --rotate`, which another
process runs: the CA is reopened when its file changes, and leaves the new CA signed are
pushed, since the old CA's key is gone from the folder and the CA leaves the bundle
clients trust once its overlap is over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import grpc
from envoy.config.core.v3.base_pb2 import DataSource
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf.any_pb2 import Any as AnyMessage

from extproc.config import EgressCa
from extproc.egress.ca import CA_FILE, CAError, EgressCA, Leaf
from extproc.exchange.reads import Ended, let_go, read_next

log = logging.getLogger("tollgate.egress")

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
# Names one stream may hold: each is a leaf minted and kept, and Envoy asks for names
# its clients chose (their SNI).
MOST_NAMES = 1000
MOST_NAME_CHARS = 253  # a DNS name's longest written form
# How often an open stream asks whether the CA was rotated, when nothing else wakes it.
CHECK_SECONDS = 60.0
# How often the CA's file is looked at, however many streams ask.
STAT_SECONDS = 5.0


class Clock(Protocol):
    """Wall-clock seconds (as time.time: leaves' validity is counted in them) and a wait
    until a moment of them, so that a test can move time without waiting for it."""

    def __call__(self) -> float: ...

    async def sleep_until(self, moment: float) -> None: ...


class SystemClock:
    """time.time, and asyncio's sleep: a step of the wall clock shifts a wait's end, by
    no more than a stream's next look (CHECK_SECONDS) for the leaves due by then."""

    def __call__(self) -> float:
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.time()))


SYSTEM_CLOCK = SystemClock()

_Stamp = tuple[int, int, int] | None  # ca.pem's (st_ino, st_mtime_ns, st_size); None: gone


def _stamp(path: Path) -> _Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CurrentCA:
    """The egress CA as its folder holds it now: called, it gives the CA, reopened once
    `ca.pem` has changed (a rotation by `tollgate egress ca --rotate`, which writes a new
    file in its place). The file is looked at once per `every` seconds at most. A CA that
    cannot be reopened is logged, and the one loaded before goes on signing."""

    def __init__(self, folder: Path, settings: EgressCa, ca: EgressCA, stamp: _Stamp,
                 clock: Callable[[], float] = time.time, every: float = STAT_SECONDS
                 ) -> None:
        self._folder, self._settings, self._clock, self._every = folder, settings, clock, every
        self._ca, self._stamp = ca, stamp
        self._looked = clock()

    @classmethod
    def open(cls, folder: Path, settings: EgressCa, clock: Callable[[], float] = time.time,
             every: float = STAT_SECONDS) -> CurrentCA:
        """The CA of `folder`, made there on first use (EgressCA.open). Raises CAError."""
        # Looked at before it is read: a rotation in between is seen at the first look.
        # A file missing then was made by the opening (this one's or a racing process's):
        # the one read is the one there now.
        stamp = _stamp(folder / CA_FILE)
        ca = EgressCA.open(folder, settings, clock)
        if stamp is None:
            stamp = _stamp(folder / CA_FILE)
        return cls(folder, settings, ca, stamp, clock, every)

    def __call__(self) -> EgressCA:
        now = self._clock()
        if 0 <= now - self._looked < self._every:
            return self._ca
        self._looked = now
        stamp = _stamp(self._folder / CA_FILE)
        if stamp == self._stamp:
            return self._ca
        # Taken even when the reopening fails: that file is logged once, not at every look.
        self._stamp = stamp
        try:
            ca = EgressCA.open(self._folder, self._settings, self._clock)
        except CAError as exc:
            log.error("egress CA changed but cannot be reopened; the CA loaded before "
                      "goes on signing: %s", exc)
            return self._ca
        # The same CA written again (copied back, touched): its leaves stay good, and
        # none is minted and pushed anew for it.
        if ca.certificate != self._ca.certificate:
            log.info("egress CA reopened: %s holds another CA", self._folder / CA_FILE)
            self._ca = ca
        return self._ca


class LeafSecrets(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    """Envoy's Secret Discovery Service: a leaf of the egress CA for each name asked
    (`ca` gives the CA signing now, e.g. a CurrentCA), kept current while the stream is
    open. `clock` is time.time's, with a wait on it."""

    def __init__(self, ca: Callable[[], EgressCA], clock: Clock = SYSTEM_CLOCK) -> None:
        self._ca, self._clock = ca, clock

    async def StreamSecrets(
        self, request_iterator: AsyncIterator[DiscoveryRequest],
        _context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[DiscoveryResponse]:
        stream = _Stream(self._ca, self._clock)
        requests = aiter(request_iterator)
        reading: asyncio.Task[DiscoveryRequest | Ended] | None = None
        try:
            while True:
                if reading is None:
                    reading = read_next(requests)
                await _first(reading, self._clock, stream.wake_at())
                if reading.done():
                    request, reading = reading.result(), None
                    if isinstance(request, Ended):  # Envoy closed its side
                        return
                    answer = stream.on_request(request)
                else:
                    answer = stream.on_wake()
                if answer is not None:
                    yield answer
        finally:
            if reading is not None:
                let_go(reading)


async def _first(reading: asyncio.Task[DiscoveryRequest | Ended], clock: Clock,
                 moment: float | None) -> None:
    """Until the next request is read, or `moment` comes (None: no moment)."""
    if moment is None:
        await asyncio.wait({reading})
        return
    waking = asyncio.create_task(clock.sleep_until(moment))
    try:
        await asyncio.wait((reading, waking), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waking.cancel()


class _Stream:
    """One SDS stream's state of the world: the names Envoy asked for last, the leaf each
    was sent, and the nonce that a request answering the last response carries."""

    def __init__(self, ca: Callable[[], EgressCA], clock: Clock) -> None:
        self._current, self._clock = ca, clock
        self._asked: frozenset[str] = frozenset()  # the names of the last request answered
        self._names: tuple[str, ...] = ()  # those served (MOST_NAMES at most)
        self._sent: dict[str, Leaf] = {}  # what Envoy holds for each name
        self._refused: dict[str, str] = {}  # names left out, and why (logged once)
        self._signer: EgressCA | None = None  # the CA the leaves sent came from
        self._renew_at = math.inf  # the earliest renewal time of the leaves sent
        self._looked = clock()  # when the CA was last asked for
        self._version = 0
        # Nonces name their stream: one this stream never sent (another stream's, another
        # process's) answers nothing here, and its request is read as a first one.
        self._tag = f"{secrets.token_hex(4)}-"
        self._nonce = ""  # the last one sent

    def wake_at(self) -> float | None:
        """When to look at the leaves and the CA again without a request: the earliest
        renewal to come, and a minute after the last look (None: no leaf to keep)."""
        if not self._sent:
            return None
        check = self._looked + CHECK_SECONDS
        return min(check, self._renew_at) if self._renew_at > self._clock() else check

    def on_request(self, request: DiscoveryRequest) -> DiscoveryResponse | None:
        nonce = request.response_nonce
        if request.HasField("error_detail"):  # a NACK: sent again, it would fail again
            log.warning("Envoy rejected egress leaves (SDS response %s, names %s): %s",
                        nonce, ", ".join(request.resource_names[:10]) or "none",
                        request.error_detail.message)
        ours = nonce.startswith(self._tag)
        if ours and nonce != self._nonce:
            # It answers a response since followed by another, which Envoy answers next
            # with its whole list of names: it needs no answer (the xDS protocol's stale
            # nonce).
            return None
        asked = frozenset(request.resource_names)
        if ours and asked == self._asked:  # an ACK or a NACK of the last response
            return self.on_wake()
        self._asked = asked
        self._subscribe(tuple(dict.fromkeys(request.resource_names)))
        return self._respond(self._ca(), every_name=True)

    def on_wake(self) -> DiscoveryResponse | None:
        """The leaves changed since sent (renewed, or signed by a rotated CA), if any."""
        ca = self._ca()
        if ca is self._signer and self._clock() < self._renew_at:
            return None
        return self._respond(ca, every_name=False)

    def _ca(self) -> EgressCA:
        self._looked = self._clock()
        return self._current()

    def _subscribe(self, names: tuple[str, ...]) -> None:
        if len(names) > MOST_NAMES:
            log.warning("Envoy asked for %d egress leaves on one SDS stream; the %d after "
                        "the first %d are left out", len(names), len(names) - MOST_NAMES,
                        MOST_NAMES)
            names = names[:MOST_NAMES]
        self._names = names
        # A name left out of a request is no longer wanted (state of the world).
        kept = frozenset(names)
        self._sent = {n: leaf for n, leaf in self._sent.items() if n in kept}
        self._refused = {n: why for n, why in self._refused.items() if n in kept}

    def _respond(self, ca: EgressCA, *, every_name: bool) -> DiscoveryResponse | None:
        """A response with the leaf of each name (`every_name`), or of those whose leaf
        changed since sent; None when there is none to send."""
        resources: list[AnyMessage] = []
        for name in self._names:
            leaf = self._leaf(ca, name)
            if leaf is None:
                continue  # what Envoy holds, if anything, stays until it is renewed
            if every_name or self._sent.get(name) is not leaf:
                resources.append(_secret(name, leaf))
            self._sent[name] = leaf
        self._signer = ca
        self._renew_at = min((leaf.renew_at.timestamp() for leaf in self._sent.values()),
                             default=math.inf)
        if not resources and not every_name:
            return None
        self._version += 1
        self._nonce = f"{self._tag}{self._version}"
        return DiscoveryResponse(version_info=str(self._version), nonce=self._nonce,
                                 type_url=SECRET_TYPE, resources=resources)

    def _leaf(self, ca: EgressCA, name: str) -> Leaf | None:
        """`name`'s leaf; None, logged once per name and reason, when it has none."""
        if len(name) > MOST_NAME_CHARS:
            why = f"no certificate for {name[:64]!r}...: longer than {MOST_NAME_CHARS} " \
                  "characters"
        elif name.rstrip(".").lower().endswith(".invalid"):
            # The inspect listener's name for a client that sent none (RFC 2606's
            # reserved domain: never a destination).
            why = f"no certificate for {name!r}: the client named no host (no SNI)"
        else:
            try:
                leaf = ca.leaf(name)
            except CAError as exc:
                why = str(exc)
            else:
                self._refused.pop(name, None)
                return leaf
        if self._refused.get(name) != why:
            log.warning("egress leaf left out of Envoy's secrets: %s", why)
            self._refused[name] = why
        return None


def _secret(name: str, leaf: Leaf) -> AnyMessage:
    packed = AnyMessage()
    packed.Pack(Secret(name=name, tls_certificate=TlsCertificate(
        certificate_chain=DataSource(inline_bytes=leaf.chain_pem),
        private_key=DataSource(inline_bytes=leaf.key_pem))))
    return packed
