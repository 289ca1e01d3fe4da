"""credit_card: 12-19 digits in a card grouping, Luhn-valid, from a card network's range."""

from __future__ import annotations

import pytest

from extproc.masking import checks
from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("card 4111 1111 1111 1111 exp 12/27", ["4111 1111 1111 1111"]),
        ("4111 1111 1111 1111 12/27", ["4111 1111 1111 1111"]),  # the expiry falls off
        ("paid with 4111111111111111.", ["4111111111111111"]),
        ("card 5500-0000-0000-0004.", ["5500-0000-0000-0004"]),
        ("amex 3782 822463 10005", ["3782 822463 10005"]),
        ("amex 378282246310005", ["378282246310005"]),
        ("diners 30569309025904", ["30569309025904"]),
        ("visa13 4222222222222", ["4222222222222"]),
        ("jcb 3566002020360505", ["3566002020360505"]),
        ("maestro 501800000009", ["501800000009"]),
        ('{"card":"4012888888881881"}', ["4012888888881881"]),
        ("a: 4111111111111111, b: 5105105105105100", ["4111111111111111", "5105105105105100"]),
        # negatives
        ("4111111111111112", []),  # fails Luhn
        ("1234567812345678", []),  # fails Luhn
        ("7111111111111114", []),  # Luhn-valid, but no card network starts with 7
        ("order 1234 5678 9012 3456 7890", []),  # 20 digits
        ("id 4111111111111111111111", []),  # 22 digits
        ("ratio 0.4111111111111111", []),  # a decimal fraction
        # letters glued to a card do not hide it (issue 39); digits glued make an id
        ("x4111111111111111", ["4111111111111111"]),
        ("4111111111111111abc", ["4111111111111111"]),
        ("0x4111111111111111", []),
        ("9x4111111111111111", []),
        ("2026-11-23T05:10:00Z", []),
        ("550e8400-e29b-41d4-a716-446655440000", []),
        ("commit 4111111111111111c0ffee4111111111111111", []),
        ("111111111111", []),  # 12 digits outside Maestro
        # a dash joining digits to it makes a name a tool made up (Ansible's temp folder)
        ("ansible-tmp-1795839697.4662185-3151-378282246310005", []),
        ("378282246310005-3151.log", []),
    ],
)
def test_credit_card(text: str, expected: list[str]) -> None:
    assert found("credit_card", text) == expected


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True),
     ("0", True), ("18", True), ("17", False)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert checks.luhn(digits) is valid
