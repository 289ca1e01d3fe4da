"""mask_json: masked JSON stays JSON, the input is untouched, numbers are read as digits."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from extproc.masking import Masker, MaskSpec
from extproc.masking import masker as masker_module

SPEC = MaskSpec()


def test_stays_valid_json_and_round_trips(masker: Masker) -> None:
    value = {
        "customer": {"name": "Jo", "email": "jo@example.com", "phone": "+44 20 7946 0958",
                     "notes": 'said "hi"\nmy card is 4111 1111 1111 1111\tthanks'},
        "orders": [{"id": 123456789, "total": 12.5, "paid": True, "ref": None}],
        "card": 4111111111111111,
    }
    masked, counts = masker.mask_json(value, SPEC)
    assert json.loads(json.dumps(masked)) == masked
    assert masked["customer"]["notes"] == 'said "hi"\nmy card is [REDACTED:CREDIT_CARD]\tthanks'
    assert masked["card"] == "[REDACTED:CREDIT_CARD]"  # a number masked becomes a string
    assert masked["orders"] == value["orders"]  # a 9-digit id without context stays a number
    assert counts == {"email": 1, "phone": 1, "credit_card": 2}


def test_input_is_not_modified_and_unchanged_parts_are_shared(masker: Masker) -> None:
    value = {"a": {"mail": "jo@example.com"}, "b": {"x": [1, 2, 3]}, "c": ["plain"]}
    before = copy.deepcopy(value)
    masked, _ = masker.mask_json(value, SPEC)
    assert value == before
    assert masked["a"] is not value["a"] and masked["b"] is value["b"] and masked["c"] is value["c"]


def test_nothing_to_mask_returns_the_value_itself(masker: Masker) -> None:
    value = {"a": ["x", 1, {"b": None}]}
    masked, counts = masker.mask_json(value, SPEC)
    assert masked is value and counts == {}


def test_a_key_that_is_data_is_renamed_masked_in_place(masker: Masker) -> None:
    value = {"jo@example.com": "jo@example.com", "order": {"4111111111111111": 1}, "z": 2}
    masked, counts = masker.mask_json(value, SPEC)
    assert masked == {"[REDACTED:EMAIL_ADDRESS]": "[REDACTED:EMAIL_ADDRESS]",
                      "order": {"[REDACTED:CREDIT_CARD]": 1}, "z": 2}
    assert list(masked) == ["[REDACTED:EMAIL_ADDRESS]", "order", "z"]  # order kept
    assert counts == {"email": 2, "credit_card": 1}


def test_keys_masked_alike_stay_apart(masker: Masker) -> None:
    value = {"ann@example.com": 1, "[REDACTED:EMAIL_ADDRESS]": 2, "bob@example.com": 3}
    masked, _ = masker.mask_json(value, SPEC)
    assert masked == {"[REDACTED:EMAIL_ADDRESS] #2": 1, "[REDACTED:EMAIL_ADDRESS]": 2,
                      "[REDACTED:EMAIL_ADDRESS] #3": 3}


def test_keys_that_are_no_data_stay(masker: Masker) -> None:
    value = {"4111111111111112": 1, "order-123456789": 2, "2026-01-02": 3}
    assert masker.mask_json(value, SPEC) == (value, {})


def test_a_key_is_its_values_context(masker: Masker) -> None:
    value = {"customer_ssn": 536901234, "ssns": ["536901234"], "phone": "0612345678",
             "order": 536901234}
    masked, _ = masker.mask_json(value, SPEC)
    assert masked == {"customer_ssn": "[REDACTED:US_SSN]", "ssns": ["[REDACTED:US_SSN]"],
                      "phone": "[REDACTED:PHONE_NUMBER]", "order": 536901234}


def test_scalars_at_the_top(masker: Masker) -> None:
    assert masker.mask_json("ssn 123-45-6789", SPEC)[0] == "ssn [REDACTED:US_SSN]"
    assert masker.mask_json(4111111111111111, SPEC)[0] == "[REDACTED:CREDIT_CARD]"
    assert masker.mask_json(-4111111111111111, SPEC)[0] == "-[REDACTED:CREDIT_CARD]"
    assert masker.mask_json(None, SPEC) == (None, {})


def test_integers_beyond_64_bits(masker: Masker) -> None:
    big = 4111111111111111 * 10**30
    assert masker.mask_json({"n": big}, SPEC) == ({"n": big}, {})


def test_separator_bytes_in_keys_or_values_change_nothing(masker: Masker) -> None:
    """Values are scanned joined by NUL and SOH; a value holding them is scanned on its own."""
    value = {"a\x00b": "x\x01 4111 1111 1111 1111", "c": "jo@example.com\x00"}
    masked, counts = masker.mask_json(value, SPEC)
    assert masked == {"a\x00b": "x\x01 [REDACTED:CREDIT_CARD]", "c": "[REDACTED:EMAIL_ADDRESS]\x00"}
    assert counts == {"credit_card": 1, "email": 1}


def test_one_separator_byte_costs_one_scan_of_its_own_not_one_per_string(
    masker: Masker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A string holding a separator byte (a JSON `\\u0001`, which anyone can send) is
    scanned alone; the document's other strings are still scanned as one text, masked as
    they would be without it (an attacker cannot make a large answer cost a scan per
    string)."""
    rows = [{"email": f"user{n}@example.com", "ssn": f"note {n}", "tag": "x"} for n in range(300)]
    plain, plain_counts = masker.mask_json({"rows": rows}, SPEC)
    scans = []
    scan = masker_module._scan

    def counted(*args: Any) -> Any:
        scans.append(args[0])
        return scan(*args)

    monkeypatch.setattr(masker_module, "_scan", counted)
    dirty = {"rows": [*rows[:150], {"email": "x\x01 ann@example.org"}, *rows[150:]]}
    masked, counts = masker.mask_json(dirty, SPEC)
    assert len(scans) == 2  # the 900 clean strings, and the one apart
    assert masked["rows"][150] == {"email": "x\x01 [REDACTED:EMAIL_ADDRESS]"}
    assert masked["rows"][:150] + masked["rows"][151:] == plain["rows"]
    assert counts == plain_counts + Counter({"email": 1})


def test_deep_nesting(masker: Masker) -> None:
    value: object = "ssn 123-45-6789"
    for _ in range(5000):
        value = [value]
    masked, counts = masker.mask_json(value, SPEC)
    for _ in range(5000):
        masked = masked[0]
    assert masked == "ssn [REDACTED:US_SSN]" and counts == {"us_ssn": 1}


def test_lone_surrogates_survive(masker: Masker) -> None:
    value = {"t": "\ud800 jo@example.com"}
    assert masker.mask_json(value, SPEC)[0] == {"t": "\ud800 [REDACTED:EMAIL_ADDRESS]"}


def test_a_container_held_in_two_places_is_masked_in_both() -> None:
    """Values built in Python (an interpreter's readings) may share a list; both places
    must come out masked, and the input must stay as it was."""
    shared = [{"text": "write to ann.lee@example.com"}]
    value = {"before": {"messages": shared}, "after": {"messages": shared, "done": True}}
    masked, counts = Masker(b"k" * 32).mask_json(value, MaskSpec())
    assert "ann.lee@example.com" not in json.dumps(masked)
    assert counts["email"] == 2
    assert shared[0]["text"] == "write to ann.lee@example.com"
