"""us_ssn: SSA issuing rules; dashed anywhere, any other way only with a cue.

A bare 9-digit number is far more often an order id, a routing number or a zip+4 than
an SSN, and spaced, dotted or slashed digits are dates, versions and phone fragments:
without "ssn", "social security", "tax id" or the like within 48 bytes before it, in its
JSON key or its CSV column's header, such a number is not one. Each way of writing an
SSN below is a class: found with a cue, left alone without one.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec
from tests.masking.conftest import found

NO_FIELDS = MaskSpec(fields=frozenset())  # "ssn" is a default field rule: the detector alone


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


# One class per way of writing it: (the SSN as written, found with a cue, without one).
FORMS = {
    "dashes": ("078-05-1120", True),
    "spaces": ("078 05 1120", False),
    "dots": ("078.05.1120", False),
    "slashes": ("078/05/1120", False),
    "underscores": ("078_05_1120", False),
    "tabs": ("078\t05\t1120", False),
    "runs of spaces": ("078  05   1120", False),
    "spaces and a tab": ("078 \t05 1120", False),
    "none": ("078051120", False),
}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("cue", ["SSN", "ssn:", "Social security no.", "tax ID", "Taxpayer ID:",
                                 "national id", "TIN:", "ITIN"])
def test_each_form_is_found_after_a_cue(form: str, cue: str) -> None:
    value, _ = FORMS[form]
    assert found("us_ssn", f"{cue} {value} on file") == [value]


@pytest.mark.parametrize("form", list(FORMS))
def test_only_dashes_need_no_cue(form: str) -> None:
    value, alone = FORMS[form]
    assert found("us_ssn", f"ref {value} ok") == ([value] if alone else [])


@pytest.mark.parametrize(
    "key", ["ssn", "SSN", "tax_id", "taxId", "taxpayer_id", "national_id", "social", "ssn_number",
            "tin", "TIN", "itin", "customer_ssn", "social_security_number"])
@pytest.mark.parametrize("form", ["none", "spaces", "dots"])
def test_a_json_key_is_a_cue(masker: Masker, key: str, form: str) -> None:
    value, _ = FORMS[form]
    masked, counts = masker.mask_json({"id": 7, key: value, "note": "x"}, NO_FIELDS)
    assert masked[key] == "[REDACTED:US_SSN]" and counts == {"us_ssn": 1}


@pytest.mark.parametrize("key", ["id", "order_id", "routing", "zip", "phone_ext", "tint", "costin",
                                 "social_media", "tin_can_count"])
def test_other_keys_are_no_cue(key: str) -> None:
    assert found("us_ssn", f"{key}\x01078051120\x00") == []


@pytest.mark.parametrize("form", [f for f in FORMS if f not in ("dashes", "none")])
@pytest.mark.parametrize("record", ["Jane Roe (US) — {}", "country=US ref={}",
                                    "locale: en_US, ref {}"])
def test_a_us_record_is_a_cue_of_an_ssn_in_groups(form: str, record: str) -> None:
    """A line that marks its record as American reads digits in the SSN's groups as one
    (a US phone number is grouped 3-3-4); a bare run of nine stays an order's."""
    value, _ = FORMS[form]
    assert found("us_ssn", record.format(value)) == [value]
    assert found("us_ssn", record.format("078051120")) == []


@pytest.mark.parametrize("record", ["Jan Kowalski (PL) — {}", "country=DE ref={}",
                                    "(US)\nnext line {}", "(us) {}", "(USA) {}"])
def test_no_other_mark_is_an_ssn_cue(record: str) -> None:
    """Another country, a mark on another line, or no ISO code in capitals: no cue."""
    assert found("us_ssn", record.format("078 05 1120")) == []


def test_a_us_object_is_a_cue_of_an_ssn_in_groups(masker: Masker) -> None:
    masked, counts = masker.mask_json({"country": "US", "ref": "078 05 1120"}, NO_FIELDS)
    assert masked["ref"] == "[REDACTED:US_SSN]" and counts == {"us_ssn": 1}
    _, counts = masker.mask_json({"country": "US", "ref": "078051120"}, NO_FIELDS)
    assert counts == {}


@pytest.mark.parametrize("key", ["id_number", "identity", "personal_id", "tax_number"])
def test_the_other_ids_english_keys_are_no_ssn_cue(key: str) -> None:
    """They are cues of every other id (national_ids._ANY_ID), whose checksums pass one
    number in ten or fewer; SSN rules pass most 9-digit numbers."""
    assert found("us_ssn", f"{key}\x01078051120\x00") == []
    assert found("us_ssn", f"{key}: 078 05 1120") == []


@pytest.mark.parametrize("sep", [",", "\t", "|", ";"])
@pytest.mark.parametrize("quote", ["", '"'])
def test_a_csv_header_is_a_cue(masker: Masker, sep: str, quote: str) -> None:
    header = sep.join(["id", "name", f"{quote}Tax ID{quote}", "city"])
    rows = [sep.join(["1", "Ann", f"{quote}078051120{quote}", "Paris"]),
            sep.join(["2", "Bob", f"{quote}536 90 1234{quote}", "Rome"])]
    masked, counts = masker.mask_text("\r\n".join([header, *rows]), NO_FIELDS, delimiter=sep)
    assert counts == {"us_ssn": 2}
    assert "078051120" not in masked and "536 90 1234" not in masked


def test_another_columns_header_is_no_cue() -> None:
    filler = ",".join(["x" * 20] * 3)
    text = f"id,ssn,order\n{filler}\n1,078-05-1120,{' ' * 40}536901234\n"
    assert found("us_ssn", text) == ["078-05-1120"]


def test_a_header_cell_is_no_finding() -> None:
    """The first line has no header above it: a header that is itself a number stays."""
    assert found("us_ssn", "ssn,536901234\n1,2\n") == ["536901234"]  # the "ssn" word before
    assert found("us_ssn", "x,536901234\n1,2\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN:078-05-1120x", ["078-05-1120"]),
        ("ssn: a078051120", ["078051120"]),
        ("ssn\x01078051120b\x00", ["078051120"]),
        ("SSN 078 05 1120Z", ["078 05 1120"]),
        # negatives: no cue, a word (two letters or more), or digits glued
        ("a078051120", []),
        ("078-05-1120x", []),
        ("ref ab078051120", []),
        ("ssn: ab078051120", []),
        ("ssn: 078051120ab", []),
        ("ssn: 1078051120", []),
        ("ssn: a1078051120", []),
    ],
)
def test_a_letter_glued_to_either_end(text: str, expected: list[str]) -> None:
    assert found("us_ssn", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ITIN: 912-70-1234", ["912-70-1234"]),
        ("itin\x01912701234\x00", ["912701234"]),
        ("tax id 950-65-4321", ["950-65-4321"]),
        ("912-70-1234", []),  # an ITIN without a cue: SSN-shaped, not SSN-valid
        ("itin: 912-69-1234", []),  # group 69: no ITIN range
        ("itin: 912-93-1234", []),
        ("SSN or ITIN: 912 70 1234", ["912 70 1234"]),
    ],
)
def test_itins_after_a_cue(text: str, expected: list[str]) -> None:
    """An ITIN is its own detector's (`us_itin`), never an SSN."""
    assert found("us_itin", text) == expected
    assert found("us_ssn", text) == []


@pytest.mark.parametrize(
    "text",
    [
        "order 078051120 shipped",  # 9-digit order id
        "zip 94105-1234",  # zip+4
        "routing 021000021",  # ABA routing number
        "call 415 555 2671 or 415.555.2671",  # phone fragments
        "dated 2024.05.1234",
        "on 12/05/2024 at 10:30",  # dates
        "build 123.45.6789",  # a version
        "ids 078 05 1120 and 078.05.1120",  # spaced and dotted, no cue
        "in tin cans: 078051120",  # "tin" as a word, not a key
        "social media 078051120",
        "ssn: 12-345-6789",  # other grouping
        "ssn: 078-05-1120-44",  # more digits after
        "ssn: 078 05 1120 44",
        "ssn: 078.05.11200",
        "ssn: 078//05//1120",  # doubled punctuation is no SSN separator
    ],
)
def test_look_alikes_stay(text: str) -> None:
    assert found("us_ssn", text) == []


def test_context_is_only_the_value_and_its_key() -> None:
    """In a JSON document's joined text, another value's "ssn" is no context."""
    assert found("us_ssn", "note\x01ssn\x00id\x01536901234\x00") == []


@given(area=st.integers(1, 899).filter(lambda a: a != 666), group=st.integers(1, 99),
       serial=st.integers(1, 9999), sep=st.sampled_from(["-", " ", ".", "/", "_", "\t", "  ", ""]))
def test_every_valid_ssn_after_a_cue_is_found(area: int, group: int, serial: int,
                                              sep: str) -> None:
    value = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    assert found("us_ssn", f"SSN {value}") == [value]
    assert found("us_ssn", f"tax_id\x01{value}\x00") == [value]


@given(number=st.integers(100_000_000, 999_999_999), key=st.sampled_from(["id", "order", "ref"]))
def test_no_bare_nine_digits_without_a_cue(number: int, key: str) -> None:
    assert found("us_ssn", f"{key}\x01{number}\x00 {key}: {number}") == []
