"""jwt: three base64url parts, the first decoding to a JSON object that names `alg`."""

from __future__ import annotations

import pytest

from tests.masking.conftest import found

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
UNSIGNED = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        (f"Authorization: Bearer {JWT}", [JWT]),
        (f'{{"id_token":"{JWT}"}}', [JWT]),
        (f"token={JWT}.", [JWT]),
        (f"unsigned {UNSIGNED} ok", [UNSIGNED]),
        # negatives
        ("eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxIn0.c2ln", []),  # header without "alg"
        ("eyJhbGciOiJIUzI1Ni.eyJzdWIiOiIxIn0.abc", []),  # header is not JSON
        ("eyJhbGciOiJIUzI1NiJ9", []),  # one part
        # glued to a word (`Bearer` without its space): the header tells the token
        ("xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"]),
        ("c29tZSBiYXNlNjQgYmxvYg.c29tZQ.YmxvYg", []),  # base64, not a JWT
    ],
)
def test_jwt(text: str, expected: list[str]) -> None:
    assert found("jwt", text) == expected
