"""Cards in every shape a text gives them (issue 39, item 5): other separators (dots,
slashes, underscores, tabs, runs of spaces, a mix, none) and letters glued to either
end, each next to the look-alikes of that shape that must stay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.masking.conftest import found

VISA, AMEX, MASTERCARD = "4111111111111111", "378282246310005", "5500000000000004"


def grouped(card: str, sep: str) -> str:
    sizes = (4, 6, 5) if len(card) == 15 else (4,) * (len(card) // 4)
    out, pos = [], 0
    for size in sizes:
        out.append(card[pos : pos + size])
        pos += size
    return sep.join(out)


@pytest.mark.parametrize("sep", [" ", "-", ".", "/", "_", "\t", "  ", " - ", "\t\t", "__"])
@pytest.mark.parametrize("card", [VISA, AMEX, MASTERCARD])
def test_a_separator_between_groups_does_not_hide_a_card(card: str, sep: str) -> None:
    text = grouped(card, sep)
    assert found("credit_card", f"card {text} exp 12/27") == [text]


@pytest.mark.parametrize(("text", "card"), [
    ("card4111111111111111", "4111111111111111"),
    ("4111111111111111exp", "4111111111111111"),
    ("cc4111111111111111x", "4111111111111111"),
    ("card_4111111111111111", "4111111111111111"),
    ("CARD:x4111 1111 1111 1111y", "4111 1111 1111 1111"),
    ("pan=a4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("4111-1111 1111.1111", "4111-1111 1111.1111"),  # a mix of separators
])
def test_letters_glued_to_a_card_do_not_hide_it(text: str, card: str) -> None:
    assert found("credit_card", text) == [card]


@pytest.mark.parametrize("text", [
    "commit 4111111111111111c0ffee",  # a hex id: other digits in the same word
    "0x4111111111111111",
    "1Z4111111111111111",  # UPS: 1Z, then digits
    "ab12cd4111111111111111",
    "4111 1111 1111",  # 12 digits printed in groups: no card is
    "5612\t3456\t7890\t1234\t5678",  # a row of a table of numbers
    "5612  3456  7890  1234  9999",
    "2024 1023 1748 4612",  # starts 20: no network's range for 16 digits
    "20241023174846",  # a Luhn-valid timestamp
    "1729705726123456",  # an epoch in microseconds
    "9781402894626",  # an ISBN-13
])
def test_look_alikes_of_those_shapes_stay(text: str) -> None:
    assert found("credit_card", text) == []


CARDS = st.sampled_from([VISA, AMEX, MASTERCARD, "6011111111111117", "3530111333300000",
                         "30569309025904", "4222222222222"])
SEPARATORS = st.sampled_from([" ", "-", ".", "/", "_", "\t", "  ", " - "])
LETTERS = st.text(alphabet="abcxyzXYZ_", max_size=4)


@given(CARDS, SEPARATORS, LETTERS, LETTERS)
def test_any_card_any_separator_any_glue_is_found(card: str, sep: str, head: str,
                                                  tail: str) -> None:
    text = grouped(card, sep) if len(card) in (15, 16) else card
    assert found("credit_card", f"x {head}{text}{tail} y") == [text]


HEX = st.text(alphabet="0123456789abcdef", max_size=6)
HEX_LETTER = st.sampled_from("abcdef")


@given(HEX, HEX_LETTER, CARDS, HEX_LETTER, HEX)
def test_a_card_inside_a_hex_id_with_other_digits_is_no_card(
        head: str, before: str, card: str, after: str, tail: str) -> None:
    if not any(c.isdigit() for c in head + tail):
        head = "0" + head
    assert found("credit_card", f"id {head}{before}{card}{after}{tail}") == []
