"""SCRAM-SHA-256 as the gateway's client: RFC 7677's own example, and a server that
does not prove it knows the password refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from extproc.postgres.scram import ScramClient, ScramError, end_point_binding
from tests.support.tls import write_tls_files

NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_rfc_7677_example() -> None:
    # RFC 7677, section 3 (user "user", password "pencil"). PostgreSQL ignores the
    # SCRAM user name and libpq sends it empty, as this client does; the proof covers
    # the name, so the RFC's messages are rebuilt with "n=user".
    client = ScramClient("pencil", nonce=NONCE)
    client._first_bare = f"n=user,r={NONCE}"
    assert client.final(SERVER_FIRST) == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_a_wrong_server_signature_is_refused() -> None:
    client = ScramClient("pencil", nonce=NONCE)
    client.final(SERVER_FIRST)
    with pytest.raises(ScramError, match="signature is wrong"):
        client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_a_server_nonce_that_does_not_extend_ours_is_refused() -> None:
    client = ScramClient("pencil", nonce="other")
    with pytest.raises(ScramError, match="nonce"):
        client.final(SERVER_FIRST)


def test_channel_binding_is_in_the_header_and_the_proof(tmp_path: Path) -> None:
    files = write_tls_files(tmp_path)
    der = x509.load_pem_x509_certificate(files.cert.read_bytes()).public_bytes(Encoding.DER)
    binding = end_point_binding(der)
    assert len(binding) == 32  # the test certificate is signed with SHA-256
    bound = ScramClient("pencil", binding, nonce=NONCE)
    assert bound.mechanism == "SCRAM-SHA-256-PLUS"
    assert bound.first().startswith(b"p=tls-server-end-point,,")
    final = bound.final(SERVER_FIRST)
    assert final != ScramClient("pencil", nonce=NONCE).final(SERVER_FIRST)
    assert ScramClient("pencil", binding_supported=True).first().startswith(b"y,,")
