"""iban: a known country code, that country's length, and the mod-97 check."""

from __future__ import annotations

import pytest

from extproc.masking import checks
from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("DE89 3704 0044 0532 0130 00", ["DE89 3704 0044 0532 0130 00"]),
        ("iban DE89370400440532013000.", ["DE89370400440532013000"]),
        ("GB82 WEST 1234 5698 7654 32 EUR", ["GB82 WEST 1234 5698 7654 32"]),
        ("GB82WEST12345698765432", ["GB82WEST12345698765432"]),
        ("FR14 2004 1010 0505 0001 3M02 606", ["FR14 2004 1010 0505 0001 3M02 606"]),
        ("to NL91ABNA0417164300 please", ["NL91ABNA0417164300"]),
        ("IBAN: CH9300762011623852957", ["CH9300762011623852957"]),
        ('{"iban":"NO9386011117947"}', ["NO9386011117947"]),
        # negatives
        ("DE89 3704 0044 0532 0130 01", []),  # mod-97 fails
        ("XX89370400440532013000", []),  # no such country
        ("DE8937040044053201300", []),  # one short
        ("DE89370400440532013000123", []),  # digits go on
        ("XDE89370400440532013000", []),
        ("ORDER AB12 3456 7890 1234 56", []),
        ("2026-11-23T05:10:00Z", []),
    ],
)
def test_iban(text: str, expected: list[str]) -> None:
    assert found("iban", text) == expected


@pytest.mark.parametrize(
    ("compact", "valid"),
    [("DE89370400440532013000", True), ("DE89370400440532013001", False),
     ("GB82WEST12345698765432", True), ("GB82WEST1234569876543", False)],
)
def test_iban_check(compact: str, valid: bool) -> None:
    assert checks.iban_valid(compact) is valid
