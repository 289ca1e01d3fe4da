"""The database fronts' TLS (extproc/exchange/tls.py): the context clients see, and the
one the gateway reaches a target's server with, as libpq's sslmode says, handshaking on
loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from extproc.exchange.tls import VERIFIED, client_context, server_context
from tests.support.tls import TlsFiles, write_client_files, write_stranger_ca, write_tls_files


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    return write_tls_files(tmp_path / "tls")


@pytest.fixture
def stranger(tmp_path: Path) -> Path:
    """A CA of its own, which signed nothing the server here presents."""
    return write_stranger_ca(tmp_path / "stranger.pem")


@asynccontextmanager
async def serving(context: ssl.SSLContext) -> AsyncIterator[tuple[int, list[object]]]:
    """A TLS server on loopback: its port, and the client certificates it was shown."""
    shown: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shown.append(writer.get_extra_info("peercert"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], shown
    finally:
        server.close()
        await server.wait_closed()


async def handshake(port: int, context: ssl.SSLContext, name: str = "127.0.0.1") -> None:
    """A TLS handshake to the server as `name`; raises what the client refused."""
    _, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=name), 10)
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):  # the server closed first
        await writer.wait_closed()


async def test_verify_full_checks_the_chain_and_the_name(files: TlsFiles,
                                                          stranger: Path) -> None:
    async with serving(server_context(files.cert, files.key)) as (port, _):
        await handshake(port, client_context("verify-full", files.ca))
        await handshake(port, client_context("verify-full", files.ca), "localhost")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await handshake(port, client_context("verify-full", files.ca), "db.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(port, client_context("verify-full", stranger))


async def test_verify_ca_checks_the_chain_only(files: TlsFiles, stranger: Path) -> None:
    async with serving(server_context(files.cert, files.key)) as (port, _):
        await handshake(port, client_context("verify-ca", files.ca), "db.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(port, client_context("verify-ca", stranger))


@pytest.mark.parametrize("mode", ["prefer", "require", "allow"])
async def test_the_other_modes_take_any_certificate(files: TlsFiles, stranger: Path,
                                                    mode: str) -> None:
    context = client_context(mode, stranger)
    assert mode not in VERIFIED and context.verify_mode == ssl.CERT_NONE
    assert not context.get_ca_certs()  # ca_file is for the verified modes only
    async with serving(server_context(files.cert, files.key)) as (port, _):
        await handshake(port, context, "db.example")


def test_the_ca_file_is_trusted_alone(files: TlsFiles) -> None:
    """Both fronts, every verified mode: a target's ca_file is the only CA trusted (a
    public CA's certificate beside it would pass verify-ca, which checks no name); the
    system's CAs only where the target names none."""
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert system > 0  # else the test could not tell the two apart
    for mode in ("verify-ca", "verify-full"):
        alone = client_context(mode, files.ca)
        assert [c["subject"] for c in alone.get_ca_certs()] == [
            ((("commonName", "tollgate test CA"),),)]
        assert client_context(mode).cert_store_stats()["x509_ca"] == system


async def test_a_client_certificate_is_shown_to_a_server_that_asks(
        files: TlsFiles, tmp_path: Path) -> None:
    cert, key = write_client_files(tmp_path / "client", "gateway")
    asking = server_context(files.cert, files.key)
    asking.verify_mode = ssl.CERT_REQUIRED
    asking.load_verify_locations(files.ca)
    async with serving(asking) as (port, shown):
        await handshake(port, client_context("require", cert_file=cert, key_file=key))
    assert shown and "gateway" in str(shown[0])


def test_clients_are_served_tls_1_2_and_up(files: TlsFiles) -> None:
    context = server_context(files.cert, files.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        server_context(files.cert, files.ca)  # not the certificate's key
