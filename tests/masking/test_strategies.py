"""Strategies: redact, partial (last 4 of identifiers, none of secrets), keyed hash."""

from __future__ import annotations

import re

import pytest

from extproc.masking import Masker, MaskSpec
from tests.masking.conftest import KEY

GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.mark.parametrize(
    ("strategy", "text", "expected"),
    [
        ("redact", "ssn 123-45-6789", "ssn [REDACTED:US_SSN]"),
        ("redact", "card 4111-1111-1111-1111", "card [REDACTED:CREDIT_CARD]"),
        ("partial", "card 4111-1111-1111-1111", "card ****-****-****-1111"),
        ("partial", "card 4111 1111 1111 1111", "card **** **** **** 1111"),
        ("partial", "ssn 123-45-6789", "ssn ***-**-6789"),
        ("partial", "iban DE89 3704 0044 0532 0130 00", "iban **** **** **** **** **30 00"),
        ("partial", "mail a@b.io", "mail *@*.**"),  # fewer than 8 letters and digits: all
        ("partial", f"token {GHP}", "token ***_" + "*" * 36),  # a secret shows nothing
        ("partial", "db://u:hunter2@h.io", "db://u:*******@h.io"),
    ],
)
def test_rewrites(masker: Masker, strategy: str, text: str, expected: str) -> None:
    masked, _ = masker.mask_text(text, MaskSpec(strategy=strategy))  # type: ignore[arg-type]
    assert masked == expected


def test_hash_is_keyed_stable_and_canonical(masker: Masker) -> None:
    spec = MaskSpec(strategy="hash")
    dashed, _ = masker.mask_text("4111-1111-1111-1111", spec)
    spaced, _ = masker.mask_text("4111 1111 1111 1111", spec)
    other, _ = masker.mask_text("5500 0000 0000 0004", spec)
    rekeyed, _ = Masker(KEY[::-1]).mask_text("4111-1111-1111-1111", spec)
    assert re.fullmatch(r"\[HASH:CREDIT_CARD:[0-9a-f]{16}\]", dashed)
    assert dashed == spaced  # one card, two spellings: one hash, joins still work
    assert other != dashed
    assert rekeyed != dashed  # without the key nobody can test a guess


def test_per_detector_overrides(masker: Masker) -> None:
    spec = MaskSpec(strategy="redact", overrides={"us_ssn": "partial"})
    masked, counts = masker.mask_text("ssn 123-45-6789 mail jo@example.com", spec)
    assert masked == "ssn ***-**-6789 mail [REDACTED:EMAIL_ADDRESS]"
    assert counts == {"us_ssn": 1, "email": 1}


def test_overlapping_findings_are_masked_together(masker: Masker) -> None:
    """An IBAN holds a Luhn-valid 16-digit run: one finding, the longer one's label."""
    masked, counts = masker.mask_text("DE89 3704 0044 0532 0130 00", MaskSpec())
    assert masked == "[REDACTED:IBAN_CODE]"
    assert counts == {"iban": 1}


def test_hmac_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Masker(b"short")
