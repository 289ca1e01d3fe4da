"""The streaming masker: a secret cut across chunks, anywhere, is still caught.

Every test compares with `mask_text` of the whole: the concatenated output of `feed`s
and `finish` must equal it exactly, and no secret may appear in it.
"""

from __future__ import annotations

import base64
import json

import pytest

from extproc.masking import PEM_MAX, Masker, MaskSpec

SPEC = MaskSpec()
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5\n"
    "-----END EC PRIVATE KEY-----"
)
SECRETS = {
    "card": "4111 1111 1111 1111", "ssn": "123-45-6789", "iban": "DE89 3704 0044 0532 0130 00",
    "email": "jo.doe@example.com", "phone": "+44 20 7946 0958", "ip": "192.168.10.20",
    "aws": "AKIAIOSFODNN7EXAMPLE", "aws_secret": AWS_SECRET, "github": GHP, "jwt": JWT,
    "pem": PEM, "password": "hunter2hunter2", "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
}
TEXT = (
    f"Hello, here is the card {SECRETS['card']} and SSN {SECRETS['ssn']}; wire to "
    f"{SECRETS['iban']}, mail {SECRETS['email']} or call {SECRETS['phone']}. Server "
    f"{SECRETS['ip']}, aws_access_key_id={SECRETS['aws']} aws_secret_access_key={AWS_SECRET} "
    f"token {GHP} Bearer {JWT}\n{PEM}\npostgres://app:{SECRETS['password']}@db.example.com/x "
    f"and {SECRETS['stripe']} - that is all, thanks! " + "Nothing more to see here. " * 4
)
UNICODE = "Grüße — naïve café 😀 " * 5 + f"karte {SECRETS['card']} 😀 mail {SECRETS['email']} é"


def stream_out(masker: Masker, chunks: list[str], spec: MaskSpec = SPEC) -> str:
    stream = masker.stream(spec)
    return "".join(stream.feed(c) for c in chunks) + stream.finish()


@pytest.mark.slow
@pytest.mark.parametrize("text", [TEXT, UNICODE], ids=["secrets", "unicode"])
def test_cut_in_two_at_every_position(masker: Masker, text: str) -> None:
    expected, _ = masker.mask_text(text, SPEC)
    for cut in range(len(text) + 1):
        assert stream_out(masker, [text[:cut], text[cut:]]) == expected, cut


@pytest.mark.parametrize("text", [TEXT, UNICODE], ids=["secrets", "unicode"])
def test_one_character_chunks(masker: Masker, text: str) -> None:
    expected, counts = masker.mask_text(text, SPEC)
    stream = masker.stream(SPEC)
    out = "".join(stream.feed(c) for c in text) + stream.finish()
    assert out == expected
    assert stream.counts == counts
    for secret in SECRETS.values():
        assert secret not in out


def test_no_secret_survives(masker: Masker) -> None:
    expected, counts = masker.mask_text(TEXT, SPEC)
    assert counts == dict.fromkeys(
        ["credit_card", "us_ssn", "iban", "email", "phone", "ip_address", "aws_access_key_id",
         "aws_secret_key", "github_token", "jwt", "private_key", "connection_password",
         "stripe_key"], 1)
    for name, secret in SECRETS.items():
        assert secret not in expected, name


def test_a_long_jwt_is_held_only_while_open(masker: Masker) -> None:
    """A JWT longer than the hold is kept back whole, then released masked."""
    claims = base64.urlsafe_b64encode(json.dumps({"pad": "x" * 3000}).encode()).rstrip(b"=")
    token = f"{JWT.split('.')[0]}.{claims.decode()}.c2lnbmF0dXJl"
    text = "start " * 100 + token + " end" * 100
    expected, _ = masker.mask_text(text, SPEC)
    assert token not in expected
    for size in (1, 50, 1000):
        assert stream_out(masker, [text[i : i + size] for i in range(0, len(text), size)]) == (
            expected
        )


def test_an_over_long_private_key_never_passes_in_clear(masker: Masker) -> None:
    body = ("QUJD" * 16 + "\n") * (PEM_MAX * 5 // 2 // 65)
    text = f"a -----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY----- z"
    expected, counts = masker.mask_text(text, SPEC)
    assert "QUJD" not in expected and counts == {"private_key": 3}
    for size in (1, 333, 20_000):
        assert stream_out(masker, [text[i : i + size] for i in range(0, len(text), size)]) == (
            expected
        )
    for cut in range(0, len(text), 4099):
        assert stream_out(masker, [text[:cut], text[cut:]]) == expected


def test_plain_text_is_released_after_at_most_the_hold(masker: Masker) -> None:
    """Latency: what is held back is bounded by the hold plus one re-scan step."""
    stream = masker.stream(SPEC)
    fed = released = 0
    for _ in range(200):
        released += len(stream.feed("lorem ipsum dolor sit amet, "))
        fed += 28
        assert fed - released <= stream.hold + 64 + 28
    assert released + len(stream.finish()) == fed


def test_the_hold_follows_the_spec(masker: Masker) -> None:
    assert masker.stream(MaskSpec(detectors={"us_ssn"}, fields=frozenset())).hold < 32
    # Key-name rules read `"key": "value"` in text: up to a 64-byte key and 512-byte value.
    assert 600 <= masker.stream(MaskSpec(detectors={"us_ssn"})).hold < 640
    assert masker.stream(SPEC).hold < 640


def test_empty_stream(masker: Masker) -> None:
    stream = masker.stream(SPEC)
    assert stream.feed("") == "" and stream.finish() == "" and stream.counts == {}
