"""us_ssn: SSA issuing rules; dashed anywhere, spaced or bare 9 digits only after a context word.

A bare 9-digit number is far more often an order id, a routing number or a zip+4 than
an SSN: without "ssn", "social security" or the like within 48 bytes before it (or in
its JSON key), it is not one.
"""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("SSN 123-45-6789", ["123-45-6789"]),
        ("call 219-09-9999 back", ["219-09-9999"]),
        ("078-05-1120", ["078-05-1120"]),
        ("my ssn is 123456789.", ["123456789"]),
        ("SSN#: 536901234", ["536901234"]),
        ("Social Security Number: 536 90 1234", ["536 90 1234"]),
        ("soc. sec. 536901234", ["536901234"]),
        ("customer_ssn\x01536901234", ["536901234"]),  # a JSON key as context
        # negatives
        ("000-12-3456", []),  # area 000
        ("666-12-3456", []),  # area 666
        ("900-12-3456", []),  # area 900-999
        ("123-00-4567", []),  # group 00
        ("123-45-0000", []),  # serial 0000
        ("order 123456789", []),  # 9 digits, no context
        ("123456789", []),
        ("536 90 1234", []),  # spaced, no context
        ("ssn: 1234567890", []),  # 10 digits
        ("ORD-123-45-6789", []),
        ("v123-45-6789", []),
        ("123-45-6789-1", []),
        ("1123-45-6789", []),
        ("123-45-67890", []),
        ("415-555-2671", []),
        ("2026-11-23T05:10:00Z", []),
        ("lessn 536901234", []),  # "ssn" inside a word is no context
        ("ssn 536-90.1234", []),  # mixed separators
    ],
)
def test_us_ssn(text: str, expected: list[str]) -> None:
    assert found("us_ssn", text) == expected


def test_context_is_only_the_value_and_its_key() -> None:
    """In a JSON document's joined text, another value's "ssn" is no context."""
    assert found("us_ssn", "note\x01ssn\x00id\x01536901234\x00") == []
