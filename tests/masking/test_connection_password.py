"""connection_password: scheme://user:PASSWORD@host: the password alone is the finding.

It runs to the last "@" before the host, because unescaped "@" in passwords is common.
Without "scheme://" (user:pass@host alone) it is not recognised.
"""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("postgres://admin:s3cret@db.example.com:5432/app", ["s3cret"]),
        ("mysql://u:p@ss@w0rd@host/db", ["p@ss@w0rd"]),
        ("redis://:hunter2@cache:6379", ["hunter2"]),
        ("https://user:tok_123@github.com/org/repo.git", ["tok_123"]),
        ('DATABASE_URL="amqp://guest:guest@localhost"', ["guest"]),
        ("mongodb+srv://app:p%40ss@cluster0.example.net/db", ["p%40ss"]),
        # negatives
        ("https://example.com/path?x=1", []),
        ("postgres://db.example.com:5432/app", []),
        ("https://user@host.example.com", []),  # no password
        ("http://user:@host.example.com", []),  # empty password
        ("user:pass@host", []),  # no scheme
        ("see ://x:y@ z", []),
    ],
)
def test_connection_password(text: str, expected: list[str]) -> None:
    assert found("connection_password", text) == expected
