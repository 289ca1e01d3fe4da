"""email: local part, "@", a domain with a top-level domain of letters."""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("write to john.doe@example.com today", ["john.doe@example.com"]),
        ("a+b@sub.example.co.uk.", ["a+b@sub.example.co.uk"]),
        ("<jane_doe@example.org>", ["jane_doe@example.org"]),
        ("user%x@ex-ample.io", ["user%x@ex-ample.io"]),
        ("mailto:bob@example.com", ["bob@example.com"]),
        ("Email:BOB@EXAMPLE.COM", ["BOB@EXAMPLE.COM"]),
        ('{"to":"x@y.dev"}', ["x@y.dev"]),
        ("one a@b.io, two c@d.io", ["a@b.io", "c@d.io"]),
        # negatives
        ("user@localhost", []),
        ("foo@bar", []),
        ("@example.com", []),
        ("john@.com", []),
        ("a@b.c", []),  # one-letter top-level domain
        ("postgres://user:pw@db.example.com/app", []),  # URL user info, not an address
        ("http://ops@example.com:8080/x", []),  # a link's user and host
        # ... but an address in a link's path or query is one
        ("http://example.com/users/ops@example.com", ["ops@example.com"]),
        ("https://example.com/send?to=ops@example.com&x=1", ["ops@example.com"]),
        ("https://example.com/#ops@example.com", ["ops@example.com"]),
        ("pkg@1.2.3", []),
        ("2026-11-23T05:10:00Z", []),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert found("email", text) == expected
