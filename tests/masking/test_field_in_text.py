"""Key-name rules where JSON is text: SSE `data:` lines, JSON in strings, `key=value`."""

from __future__ import annotations

import pytest

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
