"""The egress CA's leaves as Envoy's secrets (extproc/egress/sds.py), through a real gRPC
server and the SDS stub Envoy's wire is: a leaf per name asked, checked with
`cryptography` against the CA in the folder; ACKs, NACKs and stale nonces; names the CA
refuses; renewal and rotation pushed on an open stream, with time moved by the test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from envoy.service.secret.v3 import sds_pb2_grpc

from extproc.codecs import private_file
from extproc.config import EgressCa
from extproc.egress import sds
from extproc.egress.ca import CA_FILE, EgressCA
from extproc.egress.sds import SECRET_TYPE, CurrentCA, LeafSecrets

HOUR = 3600.0
READ_SECONDS = 10.0  # a response that never comes fails the test rather than hangs it


class Clock:
    """time.time's stand-in, moved by the test: the servicer's waits on it end when it
    passes their moment, and `parked` tells when the servicer waits again after a move
    (it has done what the move woke it for)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self._moved = asyncio.Event()
        self._parked = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep_until(self, moment: float) -> None:
        while self.now < moment:
            moved = self._moved
            self._parked.set()
            await moved.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._parked = asyncio.Event()
        self._moved.set()
        self._moved = asyncio.Event()

    async def parked(self) -> None:
        await asyncio.wait_for(self._parked.wait(), READ_SECONDS)


class Envoy:
    """Envoy's side of one SDS stream."""

    def __init__(self, stub: sds_pb2_grpc.SecretDiscoveryServiceStub) -> None:
        self.call: Any = stub.StreamSecrets()

    async def ask(self, *names: str, nonce: str = "", error: str | None = None) -> None:
        request = DiscoveryRequest(type_url=SECRET_TYPE, resource_names=names,
                                   response_nonce=nonce)
        if error is not None:
            request.error_detail.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            request.error_detail.message = error
        await self.call.write(request)

    async def read(self) -> tuple[DiscoveryResponse, dict[str, Secret]]:
        response = await asyncio.wait_for(self.call.read(), READ_SECONDS)
        assert isinstance(response, DiscoveryResponse)
        assert response.type_url == SECRET_TYPE
        found: dict[str, Secret] = {}
        for packed in response.resources:
            secret = Secret()
            assert packed.Unpack(secret)
            found[secret.name] = secret
        assert len(found) == len(response.resources)
        return response, found


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "egress-ca"


@pytest.fixture
def settings(folder: Path) -> EgressCa:
    return EgressCa(dir=folder)


@pytest.fixture
async def envoy(folder: Path, settings: EgressCa, clock: Clock) -> AsyncIterator[Envoy]:
    server = grpc.aio.server()
    sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(
        LeafSecrets(CurrentCA.open(folder, settings, clock), clock), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Envoy(sds_pb2_grpc.SecretDiscoveryServiceStub(channel))
    finally:
        await server.stop(None)


def ca_now(folder: Path, settings: EgressCa, clock: Clock) -> x509.Certificate:
    """The CA certificate the folder's ca.pem holds."""
    return EgressCA.open(folder, settings, clock).certificate


def leaf_of(secret: Secret, name: str, ca: x509.Certificate) -> x509.Certificate:
    """The secret's certificate, checked: for `name` alone, signed by `ca` (which follows
    it in the chain), and the key sent is its key."""
    tls = secret.tls_certificate
    leaf, issuer = x509.load_pem_x509_certificates(tls.certificate_chain.inline_bytes)
    assert issuer == ca
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [name]
    key = serialization.load_pem_private_key(tls.private_key.inline_bytes, None)
    assert key.public_key() == leaf.public_key()
    return leaf


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "tollgate.egress" and r.levelno == logging.WARNING]


async def test_a_name_asked_gets_its_leaf_signed_by_the_ca(
        envoy: Envoy, folder: Path, settings: EgressCa, clock: Clock) -> None:
    await envoy.ask("api.example.test")
    response, found = await envoy.read()
    assert response.version_info == "1"
    assert list(found) == ["api.example.test"]
    leaf = leaf_of(found["api.example.test"], "api.example.test",
                   ca_now(folder, settings, clock))
    assert leaf.not_valid_after_utc.timestamp() == clock.now + settings.leaf_hours * HOUR
    await envoy.call.done_writing()  # Envoy closes its side: the stream ends
    assert await asyncio.wait_for(envoy.call.read(), READ_SECONDS) is grpc.aio.EOF
    assert await envoy.call.code() == grpc.StatusCode.OK


async def test_an_ack_is_not_answered_and_a_name_added_gets_every_name(
        envoy: Envoy, folder: Path, settings: EgressCa, clock: Clock) -> None:
    await envoy.ask("a.test")
    first, found = await envoy.read()
    await envoy.ask("a.test", nonce=first.nonce)  # the ACK
    await envoy.ask("b.test", "a.test", nonce=first.nonce)  # a handshake for b.test
    # Responses come in order: had the ACK been answered, that answer would come first.
    second, again = await envoy.read()
    assert (second.version_info, second.nonce != first.nonce) == ("2", True)
    assert sorted(again) == ["a.test", "b.test"]
    ca = ca_now(folder, settings, clock)
    assert leaf_of(again["a.test"], "a.test", ca) == leaf_of(found["a.test"], "a.test", ca)
    leaf_of(again["b.test"], "b.test", ca)


async def test_a_nack_is_logged_and_not_answered(
        envoy: Envoy, caplog: pytest.LogCaptureFixture) -> None:
    await envoy.ask("a.test")
    first, _ = await envoy.read()
    await envoy.ask("a.test", nonce=first.nonce, error="certificate chain is bad")
    await envoy.ask("a.test", "b.test", nonce=first.nonce)
    second, found = await envoy.read()
    assert (second.version_info, sorted(found)) == ("2", ["a.test", "b.test"])
    [nack] = warnings_of(caplog)
    assert first.nonce in nack and "a.test" in nack and "certificate chain is bad" in nack


async def test_a_stale_nonce_is_not_answered(envoy: Envoy) -> None:
    """A request answering a response followed since by another needs no answer: the
    ACK of the latest comes next, with the whole list of names."""
    await envoy.ask("a.test")
    first, _ = await envoy.read()
    await envoy.ask("a.test", "b.test", nonce=first.nonce)
    second, _ = await envoy.read()
    await envoy.ask("c.test", nonce=first.nonce)  # stale, names changed even
    await envoy.ask("a.test", "b.test", nonce=second.nonce)  # the ACK
    await envoy.ask("a.test", "b.test", "d.test", nonce=second.nonce)
    third, found = await envoy.read()
    assert (third.version_info, sorted(found)) == ("3", ["a.test", "b.test", "d.test"])


async def test_a_request_with_a_nonce_of_another_stream_is_answered(envoy: Envoy) -> None:
    await envoy.ask("a.test", nonce="1")
    response, found = await envoy.read()
    assert (response.version_info, list(found)) == ("1", ["a.test"])


async def test_a_name_the_ca_refuses_is_left_out_and_logged_once(
        envoy: Envoy, caplog: pytest.LogCaptureFixture) -> None:
    long = ".".join(["a" * 60] * 5)  # labels of a host name, 304 characters in all
    # The last: the inspect listener's name for a client that sent no SNI.
    refused = ("", "not a host!", "*.wild.test", long, "no-server-name.invalid")
    await envoy.ask(*refused, "a.test")
    first, found = await envoy.read()
    assert list(found) == ["a.test"]
    logged = warnings_of(caplog)
    assert len(logged) == len(refused)
    assert "not a host name: 'not a host!'" in logged[1]
    assert "longer than 253 characters" in logged[3] and long not in logged[3]
    assert "the client named no host (no SNI)" in logged[4]
    await envoy.ask(*refused, "a.test", "b.test", nonce=first.nonce)
    second, found = await envoy.read()
    assert (second.version_info, sorted(found)) == ("2", ["a.test", "b.test"])
    assert warnings_of(caplog) == logged


async def test_names_past_the_most_a_stream_holds_are_left_out(
        envoy: Envoy, caplog: pytest.LogCaptureFixture) -> None:
    names = [f"h{i}.test" for i in range(sds.MOST_NAMES + 2)]
    await envoy.ask(*names)
    _, found = await envoy.read()
    assert list(found) == names[:sds.MOST_NAMES]
    assert warnings_of(caplog) == [
        f"Envoy asked for {sds.MOST_NAMES + 2} egress leaves on one SDS stream; the 2 after "
        f"the first {sds.MOST_NAMES} are left out"]


async def test_a_leaf_is_pushed_anew_by_its_renewal_time(
        envoy: Envoy, folder: Path, settings: EgressCa, clock: Clock) -> None:
    """An hour before a leaf expires (ca.py's renewal), the stream sends its next one,
    unasked; a name whose leaf is younger is not sent again."""
    await envoy.ask("a.test")
    first, found = await envoy.read()
    ca = ca_now(folder, settings, clock)
    old = leaf_of(found["a.test"], "a.test", ca)
    renew_at = old.not_valid_after_utc.timestamp() - HOUR
    clock.advance(2 * HOUR)
    await envoy.ask("a.test", "b.test", nonce=first.nonce)
    second, both = await envoy.read()
    assert (second.version_info, sorted(both)) == ("2", ["a.test", "b.test"])
    assert leaf_of(both["a.test"], "a.test", ca) == old

    clock.advance(renew_at - 1 - clock.now)  # past a minute's checks, short of renewal
    await clock.parked()
    clock.advance(1)
    pushed, renewed = await envoy.read()  # were anything pushed early, it would come first
    assert (pushed.version_info, list(renewed)) == ("3", ["a.test"])
    new = leaf_of(renewed["a.test"], "a.test", ca)
    assert new.not_valid_after_utc.timestamp() == clock.now + settings.leaf_hours * HOUR
    await envoy.ask("a.test", "b.test", nonce=pushed.nonce)  # the ACK
    await envoy.ask("a.test", "b.test", "c.test", nonce=pushed.nonce)
    fourth, _ = await envoy.read()
    assert fourth.version_info == "4"


async def test_a_rotation_is_pushed_with_leaves_the_new_ca_signed(
        envoy: Envoy, folder: Path, settings: EgressCa, clock: Clock) -> None:
    await envoy.ask("a.test")
    _, found = await envoy.read()
    old_ca = ca_now(folder, settings, clock)
    leaf_of(found["a.test"], "a.test", old_ca)
    EgressCA.open(folder, settings, clock).rotate()  # `tollgate egress ca --rotate`
    new_ca = ca_now(folder, settings, clock)
    assert new_ca != old_ca

    clock.advance(sds.CHECK_SECONDS)  # the stream's next look at the CA
    pushed, renewed = await envoy.read()
    assert (pushed.version_info, list(renewed)) == ("2", ["a.test"])
    leaf_of(renewed["a.test"], "a.test", new_ca)
    await envoy.ask("a.test", "b.test", nonce=pushed.nonce)
    _, found = await envoy.read()
    leaf_of(found["b.test"], "b.test", new_ca)


async def test_a_ca_file_that_cannot_be_reopened_leaves_the_old_ca_signing(
        envoy: Envoy, folder: Path, settings: EgressCa, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]

    await envoy.ask("a.test")
    first, _ = await envoy.read()
    ca = ca_now(folder, settings, clock)
    (folder / CA_FILE).write_bytes(b"not a CA")
    clock.advance(sds.CHECK_SECONDS)
    await clock.parked()
    [error] = errors()
    assert "the CA loaded before goes on signing" in error
    assert f"{folder / CA_FILE}: holds no PEM private key" in error
    await envoy.ask("a.test", "b.test", nonce=first.nonce)
    second, found = await envoy.read()  # nothing was pushed in between
    assert second.version_info == "2"
    leaf_of(found["b.test"], "b.test", ca)
    clock.advance(sds.CHECK_SECONDS)
    await clock.parked()
    assert errors() == [error]  # that file is logged once, not at every look


def test_the_ca_file_is_looked_at_once_per_few_seconds(
        folder: Path, settings: EgressCa, clock: Clock) -> None:
    current = CurrentCA.open(folder, settings, clock)
    before = current()
    private_file.write(folder / CA_FILE, (folder / CA_FILE).read_bytes())  # a new file
    clock.now += sds.STAT_SECONDS
    assert current() is before  # the same CA: its leaves stay good
    rotated = EgressCA.open(folder, settings, clock).rotate()
    clock.now += sds.STAT_SECONDS - 1
    assert current() is before  # not looked at yet
    clock.now += 1
    after = current()
    assert after.certificate == rotated.certificate
    assert after.leaf("a.test").chain_pem.endswith(
        rotated.certificate.public_bytes(serialization.Encoding.PEM))
    clock.now += sds.STAT_SECONDS
    assert current() is after  # looked at again, unchanged: not reopened
