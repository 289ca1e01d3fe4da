"""Validators that turn a pattern's candidate into a finding: checksums and issuing rules.

They run only on candidates, never on whole texts, so they are written for clarity.
"""

from __future__ import annotations

import base64
import binascii
import json

# ISO 13616 registry: country code -> IBAN length (SWIFT IBAN Registry, 2024).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RU": 33, "SA": 24, "SC": 31, "SD": 18,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


_LETTER_VALUES = {ord(c): str(i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}


# A digit doubled, its digits summed (5 -> 10 -> 1), as ASCII.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn(digits: str) -> bool:
    """The Luhn checksum of a card number (ASCII digits only): every second digit from the
    right doubled, all summed as bytes (each ASCII digit is its value plus 48)."""
    number = digits.encode()[::-1]
    return (sum(number[::2]) + sum(number[1::2].translate(_DOUBLED)) - 48 * len(number)) % 10 == 0


# Card lengths -> the first digits of the networks that issue cards of that length (ISO/IEC
# 7812 IIN ranges as the networks publish them, coarsened to two or three digits where a
# range is wide). A length outside the table is no card.
_CARD_PREFIXES: dict[int, tuple[str, ...]] = {
    12: ("5018", "5020", "5038", "56", "57", "58", "6304", "6390", "6759", "6761", "6762",
         "6763"),  # Maestro
    13: ("4",),  # Visa (old)
    14: ("300", "301", "302", "303", "304", "305", "309", "36", "38", "39"),  # Diners
    15: ("34", "37", "1800", "2131"),  # Amex, old JCB
    # Mir/Mastercard 2-series, Diners, JCB, Visa, Mastercard/Maestro, Discover/UnionPay...
    16: ("22", "23", "24", "25", "26", "27", "30", "35", "36", "38", "39", "4", "5", "6"),
    **dict.fromkeys((17, 18, 19), ("220", "35", "36", "4", "50", "56", "57", "58", "59", "6")),
}


def card_issuer_plausible(digits: str) -> bool:
    """Length and first digits of a payment card: a length some network issues, starting
    with one of that network's ranges.

    Per length, not "13-19 digits starting 2-6": a Luhn-valid number is one in ten, so
    the prefixes are what tells a card from a timestamp (`20241023174846`: 14 digits, no
    Diners range), an epoch in micro- or nanoseconds (starts with 1), a 15-digit parcel
    number (only Amex and old JCB are 15 digits long) or a Chinese EAN-13 (69...).
    """
    return digits.startswith(_CARD_PREFIXES.get(len(digits), ()))


def ssn_valid(digits: str) -> bool:
    """SSA issuing rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area < "900" and group != "00" and serial != "0000"


def iban_valid(compact: str) -> bool:
    """Country length and the ISO 7064 mod-97 check of an IBAN without spaces, upper case."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    return int((compact[4:] + compact[:4]).translate(_LETTER_VALUES)) % 97 == 1


def jwt_header(header_b64: bytes) -> dict[str, object] | None:
    """A JWT's first part, decoded: base64url JSON naming its algorithm (`alg`); None if
    it is not one."""
    try:
        header = json.loads(base64.urlsafe_b64decode(header_b64 + b"=" * (-len(header_b64) % 4)))
    except (binascii.Error, ValueError):
        return None
    return header if isinstance(header, dict) and "alg" in header else None
