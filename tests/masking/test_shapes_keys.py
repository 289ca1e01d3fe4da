"""Private keys in every spelling (issue 39, item 5): each PEM label, PGP armour with its
headers, JSON-escaped and twice escaped line breaks, CRLF, YAML indentation, quoted
lines, a missing END line; SSH2 and PuTTY key files; a PEM file encoded in base64."""

from __future__ import annotations

import base64

import pytest

from extproc.masking import Masker, MaskSpec
from tests.masking.conftest import found

LINES = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
         "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
         "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ"]
BODY = "\n".join(LINES) + "\n"


def pem(label: str, body: str = BODY, headers: str = "") -> str:
    return f"-----BEGIN {label}-----\n{headers}{body}-----END {label}-----"


RSA = pem("RSA PRIVATE KEY")
PUTTY = ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ed25519-key-20241023\n"
         "Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIHn5pB9lK0yPS2C6Y5X\nkxZl9kz4i3hRLvAAAA\n"
         "Private-Lines: 1\nAAAAIA4rUvmB0+E1Jj2KqmS2z8vPbgV9tFm3aWj1Ws0dVd5k\n"
         "Private-MAC: 8f0c2f0b9e6b1c5a3d7e0f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e")


@pytest.mark.parametrize("block", [
    RSA, pem("EC PRIVATE KEY"), pem("DSA PRIVATE KEY"), pem("OPENSSH PRIVATE KEY"),
    pem("ENCRYPTED PRIVATE KEY"), pem("PRIVATE KEY"),
    pem("RSA PRIVATE KEY",
        headers="Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n"),
    pem("PGP PRIVATE KEY BLOCK",
        headers="Version: GnuPG v2\nComment: Ann <ann@example.com> (work)\n\n"),
    RSA.replace("\n", "\r\n"), RSA.replace("\n", "\\n"), RSA.replace("\n", "\\r\\n"),
    RSA.replace("\n", "\\\\n"), RSA.replace("\n", "\n    "), RSA.replace("\n", "\n\t"),
    RSA.replace("\n", " "), RSA.replace("\n", "<br>"), RSA.replace("\n", '\\n"\n  "'),
    "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: \"rsa-key\"\n" + BODY
    + "---- END SSH2 ENCRYPTED PRIVATE KEY ----",
    PUTTY, PUTTY.replace("-3:", "-2:"),
])
def test_every_spelling_is_masked_whole(block: str) -> None:
    assert found("private_key", f"here:\n{block}\nbye") == [block]


def test_a_yaml_block_scalar_keeps_the_yaml_around_it(masker: Masker) -> None:
    text = "tls:\n  key: |\n    " + RSA.replace("\n", "\n    ") + "\n  port: 443\n"
    masked, counts = masker.mask_text(text, MaskSpec())
    assert masked == "tls:\n  key: |\n    [REDACTED:PRIVATE_KEY]\n  port: 443\n"
    assert counts == {"private_key": 1}


@pytest.mark.parametrize("after", ["\n\nthat was it, thanks!", "\nThe key above is truncated.",
                                   '"}', " and more text"])
def test_without_an_end_line_the_key_ends_at_its_last_key_line(after: str) -> None:
    head = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + BODY.rstrip()
    assert found("private_key", head + after) == [head]


def test_a_truncated_last_line_glued_to_prose_is_masked() -> None:
    head = "-----BEGIN PRIVATE KEY-----\n" + LINES[0] + "\n" + LINES[1][:20]
    assert found("private_key", head + " (cut)") == [head]


@pytest.mark.parametrize("wrap", [None, 76, 64])
def test_a_pem_file_in_base64_is_masked_whole(wrap: int | None) -> None:
    encoded = base64.b64encode(RSA.encode()).decode()
    if wrap:
        encoded = "\n".join(encoded[i : i + wrap] for i in range(0, len(encoded), wrap))
    assert encoded.startswith("LS0tLS1CRUdJTi")
    assert found("private_key", f'data:\n  tls.key: {encoded}\nkind: Secret') == [encoded]


@pytest.mark.parametrize("text", [
    RSA.replace("PRIVATE", "PUBLIC"),
    pem("CERTIFICATE"),
    base64.b64encode(pem("CERTIFICATE").encode()).decode(),  # LS0tLS1CRUdJTi too
    "BEGIN TRANSACTION; COMMIT;",
    "PuTTY-User-Key-Files are described in the manual",
])
def test_look_alikes_stay(text: str) -> None:
    assert found("private_key", text) == []
