"""private_key: a PEM private key block, BEGIN line to END line.

A block with no END line within PEM_MAX bytes (truncated, or longer than any real key)
is masked through the end of its base64 body, in pieces of at most PEM_MAX bytes.
"""

from __future__ import annotations

import pytest

from extproc.masking import PEM_MAX
from tests.masking.conftest import found

BODY = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIK\n"
RSA = f"-----BEGIN RSA PRIVATE KEY-----\n{BODY}-----END RSA PRIVATE KEY-----"
PKCS8 = f"-----BEGIN PRIVATE KEY-----\n{BODY}-----END PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        (f"key:\n{RSA}\nbye", [RSA]),
        (PKCS8, [PKCS8]),
        (RSA.replace("RSA", "EC"), [RSA.replace("RSA", "EC")]),
        (RSA.replace("RSA", "OPENSSH"), [RSA.replace("RSA", "OPENSSH")]),
        (RSA.replace("RSA", "ENCRYPTED"), [RSA.replace("RSA", "ENCRYPTED")]),
        (RSA.replace("RSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"),
         [RSA.replace("RSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK")]),
        # a key as an escaped JSON string or an environment variable: "\n" as two characters
        (PKCS8.replace("\n", "\\n") + '"', [PKCS8.replace("\n", "\\n")]),
        # truncated: no END line; the body is masked to its last line
        (f"-----BEGIN PRIVATE KEY-----\n{BODY}\"}}",
         [f"-----BEGIN PRIVATE KEY-----\n{BODY.rstrip()}"]),
        # negatives
        (RSA.replace("PRIVATE", "PUBLIC"), []),
        (f"-----BEGIN CERTIFICATE-----\n{BODY}-----END CERTIFICATE-----", []),
        ("BEGIN PRIVATE KEY and more", []),
    ],
)
def test_private_key(text: str, expected: list[str]) -> None:
    assert found("private_key", text) == expected


def test_an_over_long_block_is_masked_in_pieces() -> None:
    """Nothing of a block longer than PEM_MAX passes in clear: pieces follow one another."""
    body = ("A" * 64 + "\n") * (PEM_MAX * 5 // 2 // 65)  # 2.5 times PEM_MAX
    text = f"x -----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY----- y"
    pieces = found("private_key", text)
    assert len(pieces) == 3
    assert all(len(p) <= PEM_MAX + 64 for p in pieces)
    assert "".join(pieces) == text[2 : text.index(" y")]
