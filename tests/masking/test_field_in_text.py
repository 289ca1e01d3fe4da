"""Key-name rules where JSON is text: SSE `data:` lines, JSON in strings, `key=value`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking import DEFAULT_FIELDS, Masker, MaskSpec

SPEC = MaskSpec(detectors=frozenset(), fields=DEFAULT_FIELDS)


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(b"k" * 32)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('data: {"password": "hunter2"}', 'data: {"password": "[REDACTED:FIELD]"}'),
        ('{"Api-Key" :  "abc123", "n": 1}', '{"Api-Key" :  "[REDACTED:FIELD]", "n": 1}'),
        ('{"token": "a\\"b"}', '{"token": "[REDACTED:FIELD]"}'),
        ("login?user=ada&password=hunter2&next=/",
         "login?user=ada&password=[REDACTED:FIELD]&next=/"),
        ("PASSWD=s3cr3t ./run", "PASSWD=[REDACTED:FIELD] ./run"),
    ],
    ids=["sse-json", "spaced-key-case", "escaped-quote", "query-string", "env-style"],
)
def test_values_under_sensitive_keys_are_masked(masker: Masker, text: str, masked: str) -> None:
    assert masker.mask_text(text, SPEC)[0] == masked


@pytest.mark.parametrize(
    "text",
    [
        '{"tokens": 1234, "name": "password"}',      # a count, and the word as a value
        '{"next_page_token_hint": "abc"}',           # not an exact key
        '{"password": ""}',                          # nothing to mask
        "mypassword=nope",                           # part of a longer key
        '{"note": "the password is in the vault"}',  # prose
    ],
)
def test_look_alikes_are_left_alone(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, SPEC) == (text, {})


def test_fields_replaced_by_a_policy_apply_in_text_too(masker: Masker) -> None:
    spec = MaskSpec(detectors=frozenset(), fields=frozenset({"salary"}))
    masked, counts = masker.mask_text('{"salary": "120000", "password": "kept"}', spec)
    assert masked == '{"salary": "[REDACTED:FIELD]", "password": "kept"}'
    assert counts == {"field": 1}


def test_a_value_cut_at_every_position_of_a_stream_is_still_caught(masker: Masker) -> None:
    text = 'data: {"id": 7, "password": "correct-horse-battery"}\n\n'
    whole = masker.mask_text(text, SPEC)[0]
    for cut in range(1, len(text)):
        stream = masker.stream(SPEC)
        out = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish()
        assert out == whole, cut
        assert "correct-horse-battery" not in out


# Fragments of JSON string values: key=value rules, values they would read on into the
# next scalar, and text with nothing to mask.
_FRAGMENTS = ["ssn=", "password=", "x?", "&", " ", "123-45-6789", "hunter2", "ok", "note",
              "4111 1111 1111 1111", "=", "/"]


@pytest.mark.slow
@given(st.lists(st.lists(st.sampled_from(_FRAGMENTS), max_size=5).map("".join),
                min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_a_rule_never_reads_one_json_value_into_the_next(values: list[str]) -> None:
    """A key=value rule at a string's end found its value in the next scalar of the
    joined scan: spliced, every later string moved into another's place, an SSN was left
    in clear beside a masked one, and some documents raised. Each string keeps only text
    of its own, and what masking it alone removes, masking it among others removes too."""
    masker = Masker(b"k" * 32)
    document = {f"k{i}": value for i, value in enumerate(values)}
    masked, _ = masker.mask_json(document, MaskSpec())
    assert masked.keys() == document.keys()
    for key, value in document.items():
        alone = masker.mask_json({key: value}, MaskSpec())[0][key]
        for secret in ("123-45-6789", "4111 1111 1111 1111"):
            assert secret not in masked[key] or secret in alone, (key, masked)
        kept = [part for part in re.split(r"\[REDACTED:[A-Z_]+\]", masked[key]) if part]
        assert all(part in value for part in kept), (key, value, masked[key])
