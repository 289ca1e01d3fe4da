"""Delimited text (CSV, TSV, `|` and `;` separated) masks like JSON: a value between
delimiters is found as it is in a JSON string.

A comma next to a run of digits used to be read as a thousands separator, so a card in
a CSV row passed; a thousands group has exactly 3 digits, and no card, SSN or phone
number does, while `1,234,567` and decimal fractions still are no findings.
"""

from __future__ import annotations

import pytest

from extproc.masking import Masker, MaskSpec

SPEC = MaskSpec()
VALUES = {
    "credit_card": "4111111111111111", "us_ssn": "123-45-6789", "phone": "+44 20 7946 0958",
    "iban": "DE89370400440532013000", "email": "ann@example.com",
}
GROUPED_CARD = "4111 1111 1111 1111"


def row(sep: str, value: str, quote: str = "") -> str:
    return sep.join(["7", f"{quote}{value}{quote}", f"{quote}Alice{quote}", "2026-01-02"])


@pytest.mark.parametrize("sep", [",", "\t", "|", ";"], ids=["csv", "tsv", "pipe", "semicolon"])
@pytest.mark.parametrize("quote", ["", '"'], ids=["bare", "quoted"])
@pytest.mark.parametrize("detector", list(VALUES))
def test_a_value_between_delimiters_is_masked(masker: Masker, sep: str, quote: str,
                                              detector: str) -> None:
    masked, counts = masker.mask_text(row(sep, VALUES[detector], quote), SPEC)
    assert VALUES[detector] not in masked
    assert counts == {detector: 1}


@pytest.mark.parametrize("sep", [",", "\t", "|", ";"])
def test_a_grouped_card_and_a_card_at_either_end_of_a_row(masker: Masker, sep: str) -> None:
    text = f"{GROUPED_CARD}{sep}x{sep}4111111111111111\n4111111111111111{sep}1{sep}2"
    masked, counts = masker.mask_text(text, SPEC)
    assert counts == {"credit_card": 3} and "1111" not in masked


def test_what_a_datasette_csv_export_looks_like(masker: Masker) -> None:
    text = "id,card,name\r\n1,4111111111111111,Alice\r\n2,5500000000000004,Bob\r\n"
    masked, _ = masker.mask_text(text, SPEC)
    assert masked == ("id,card,name\r\n1,[REDACTED:CREDIT_CARD],Alice\r\n"
                      "2,[REDACTED:CREDIT_CARD],Bob\r\n")


@pytest.mark.parametrize(
    "text",
    [
        "total 1,234,567,890",  # thousands groups
        "1,234,567,890,123,456",
        "ratio 0.4111111111111111",  # decimal fractions, either side
        "4111111111111111.5",
        "1,4111111111111112,x",  # fails Luhn
        "1,7111111111111114,x",  # no card network starts with 7
        "1,12345678901234567890123,x",  # too long for a card
        "1,123456789,x",  # nine bare digits, no SSN word near
    ],
)
def test_lookalikes_in_delimited_text_stay(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, SPEC) == (text, {})


def test_a_row_cut_at_every_byte_in_a_stream(masker: Masker) -> None:
    text = ("id,card,ssn,iban\n7,4111111111111111,123-45-6789,DE89370400440532013000\n"
            '8;"5500 0000 0000 0004";"+44 20 7946 0958"\n')
    expected, counts = masker.mask_text(text, SPEC)
    assert counts == {"credit_card": 2, "us_ssn": 1, "iban": 1, "phone": 1}
    for cut in range(1, len(text)):
        stream = masker.stream(SPEC)
        assert stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish() == (
            expected), cut
