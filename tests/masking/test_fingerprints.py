"""Keyed fingerprints of protected values (masking/fingerprints.py): one value, however
it is spelled or encoded, has one fingerprint; another value, another kind or another
deployment's key, another; the kinds a mask leaves are the only ones read."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.masking.fingerprints import DEFAULT_KINDS, MOST_PER_ANSWER, Fingerprints
from extproc.masking.masker import Masker, MaskSpec

KEY = b"k" * 32
FINGERPRINTS = Fingerprints(Masker(KEY))
EMAIL = "Ada.Lovelace@example.com"


def only(found: dict[str, str]) -> str:
    [digest] = found
    return digest


SPELLINGS = [
    f"write to {EMAIL} today",
    f"write to {EMAIL.lower()}",
    "to=" + urllib.parse.quote(EMAIL.lower(), safe=""),
    "to=" + urllib.parse.quote(urllib.parse.quote(EMAIL, safe=""), safe=""),
    "data: " + base64.b64encode(EMAIL.encode()).decode(),
    "data: " + base64.b64encode(json.dumps({"to": EMAIL}).encode()).decode(),
    "ada.lovelace (at) example (dot) com",
    "ada.lovelace&#64;example.com",
    json.dumps({"rows": [[7, EMAIL]]}),
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_one_value_however_spelled_has_one_fingerprint(text: str) -> None:
    assert FINGERPRINTS.of_text(text) == FINGERPRINTS.of_text(EMAIL)


def test_another_value_kind_or_key_has_another() -> None:
    mine = only(FINGERPRINTS.of_text(EMAIL))
    assert only(FINGERPRINTS.of_text("grace.hopper@example.com")) != mine
    assert only(Fingerprints(Masker(b"x" * 32)).of_text(EMAIL)) != mine
    # Nor is the fingerprint the `hash` strategy's digest of the same value.
    assert mine[:16] not in Masker(KEY).mask_text(EMAIL, MaskSpec(strategy="hash"))[0]


def test_a_fingerprint_names_its_kind_and_never_holds_the_value() -> None:
    found = FINGERPRINTS.of_text(f"{EMAIL}, SSN 078-05-1120, card 4111 1111 1111 1111")
    assert sorted(found.values()) == ["credit_card", "email", "us_ssn"]
    assert all(len(d) == 32 and "example" not in d for d in found)


def test_only_the_kinds_asked_for_are_read() -> None:
    text = f"{EMAIL}, SSN 078-05-1120"
    assert set(FINGERPRINTS.of_text(text, frozenset({"us_ssn"})).values()) == {"us_ssn"}
    assert FINGERPRINTS.of_text(text, frozenset()) == {}


def test_what_a_mask_leaves_unmasked_is_what_is_read() -> None:
    assert FINGERPRINTS.unmasked(None) == DEFAULT_KINDS
    assert FINGERPRINTS.unmasked(MaskSpec.from_policy({"detectors": ["all"]})) == frozenset()
    privileged = MaskSpec.from_policy({"detectors": ["jwt", "aws_secret_key"]})
    assert FINGERPRINTS.unmasked(privileged) == DEFAULT_KINDS - {"jwt", "aws_secret_key"}


def test_json_values_are_read_key_and_value_numbers_included() -> None:
    found = FINGERPRINTS.of_json({"rows": [[1, EMAIL, None, True], [4111111111111111]],
                                  EMAIL.lower(): 1})
    assert sorted(found.values()) == ["credit_card", "email"]


def test_an_answer_keeps_at_most_its_bound() -> None:
    text = " ".join(f"user{i}@example.com" for i in range(MOST_PER_ANSWER + 50))
    assert len(FINGERPRINTS.of_text(text)) == MOST_PER_ANSWER


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown detectors: nope"):
        Fingerprints(Masker(KEY), {"email", "nope"})


# Twelve bytes at least: a shorter base64 run (under 16 characters) reads as a word, not
# as encoded text (decoding.py's _MIN_BLOCK).
@given(st.from_regex(r"[a-z][a-z0-9._]{4,20}[a-z0-9]@[a-z][a-z0-9-]{2,15}\.(com|org|io)",
                     fullmatch=True),
       st.sampled_from(["plain", "percent", "base64", "upper"]))
def test_any_address_encoded_matches_it_plain(address: str, how: str) -> None:
    spelled = {"plain": address, "upper": address.upper(),
               "percent": urllib.parse.quote(address, safe=""),
               "base64": base64.b64encode(address.encode()).decode()}[how]
    assert FINGERPRINTS.of_text(f"x {spelled} y") == FINGERPRINTS.of_text(address)
