"""phone: forms that read as phone numbers and not as dates, versions, amounts or ids.

International (+CC ...), North American with separators, a parenthesised area code,
national numbers with a trunk 0 and a separator, and a bare 10-15 digit run only after
a phone word (or under a phone key in JSON). Each country's own forms, checked against
libphonenumber: test_phone_national.py.
"""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("call +1 415-555-2671", ["+1 415-555-2671"]),
        ("+44 20 7946 0958", ["+44 20 7946 0958"]),
        ("+49 (0) 30 1234567", ["+49 (0) 30 1234567"]),
        ("+33 1 23 45 67 89", ["+33 1 23 45 67 89"]),
        ("+1-780-563-6083x7783", ["+1-780-563-6083x7783"]),
        ("(415) 555-2671", ["(415) 555-2671"]),
        ("415-555-2671", ["415-555-2671"]),
        ("206.269.0743x9150", ["206.269.0743x9150"]),
        ("1-800-555-2671", ["1-800-555-2671"]),
        ("001-652-305-9972x83792", ["001-652-305-9972x83792"]),
        ("020 7946 0958", ["020 7946 0958"]),
        ("Tel. 030 1234567", ["030 1234567"]),
        ("06 12 34 56 78", ["06 12 34 56 78"]),
        ("(0406)-812415", ["(0406)-812415"]),
        ("tel: 4155552671", ["4155552671"]),
        ("phones\x010612345678", ["0612345678"]),  # a JSON key as context
        ("030 123 456 78", ["030 123 456 78"]),  # was cut short at "030 123 456"
        # negatives
        ("2026-11-23T05:10:00Z", []),
        ("2026-11-23 14:05:33", []),
        ("01.02.2026 10:30", []),
        ("version 1.2.3.4", []),
        ("10.0.19045.2965", []),
        ("ORD-2026-000123", []),
        ("order 4155552671", []),  # a bare run without a phone word
        ("+1", []),
        ("+2026", []),
        ("123-456-7890", []),  # no North American area code starts with 1
        ("555-1234", []),
        ("12:30:45", []),
        ("$1,234,567.89", []),
        ("550e8400-e29b-41d4-a716-446655440000", []),
        ("ISBN 978-3-16-148410-0", []),
        ("at 2026-11-23T05:10:00+01:00", []),
    ],
)
def test_phone(text: str, expected: list[str]) -> None:
    assert found("phone", text) == expected
