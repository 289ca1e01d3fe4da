"""Key-name rules where JSON is text: SSE `data:` lines, JSON in strings, `key=value`."""

from __future__ import annotations

import random
import re
import string

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


# A credential longer than the 512 bytes a reader once stopped at: each way text names
# one. Masked in its first 512 bytes (`key=value`) or not at all (the others), the rest
# left in clear.
_LONG = "".join(random.Random(5).choices(string.ascii_letters + string.digits, k=1200))
_LONG_SHAPES = [
    ("access_token=" + _LONG + "&x=1", "access_token=[REDACTED:FIELD]&x=1"),
    ('log: {"token": "' + _LONG + '"}', 'log: {"token": "[REDACTED:FIELD]"}'),
    ("Authorization: Bearer " + _LONG + "\nnext", "Authorization: Bearer [REDACTED:FIELD]\nnext"),
    ("password: " + _LONG + "\n", "password: [REDACTED:FIELD]\n"),
    ("headers: X-Api-Key: " + _LONG + " ok", "headers: X-Api-Key: [REDACTED:FIELD] ok"),
    ("Cookie: theme=dark; sid=" + _LONG + "\n", "Cookie: theme=dark; sid=[REDACTED:FIELD]\n"),
    ('[{"name": "session", "value": "' + _LONG + '"}]',
     '[{"name": "session", "value": "[REDACTED:FIELD]"}]'),
]


@pytest.mark.parametrize(("text", "masked"), _LONG_SHAPES,
                         ids=["assignment", "quoted-pair", "auth-header", "config-line",
                              "header-word", "cookie", "named-value"])
def test_a_long_value_under_a_key_is_masked_whole(masker: Masker, text: str, masked: str
                                                   ) -> None:
    assert masker.mask_text(text, SPEC)[0] == masked


@pytest.mark.parametrize(("text", "masked"), _LONG_SHAPES[:4],
                         ids=["assignment", "quoted-pair", "auth-header", "config-line"])
def test_a_long_value_streamed_in_pieces_is_masked_as_a_whole_text_is(
        masker: Masker, text: str, masked: str) -> None:
    """The stream holds back a key's reach, not a value's: a value still open at the
    end of what it holds is a finding to that end, so it is held until it ends."""
    for step in (7, 100, 513, 700):
        stream = masker.stream(SPEC)
        out = "".join(stream.feed(text[i:i + step]) for i in range(0, len(text), step))
        assert out + stream.finish() == masked, step


def test_a_bearer_token_in_prose_is_masked_whole_however_long(masker: Masker) -> None:
    text = "retried with Bearer " + _LONG + " and it worked"
    assert masker.mask_text(text, MaskSpec())[0] == (
        "retried with Bearer [REDACTED:SECRET] and it worked")


def test_an_unclosed_quoted_value_at_the_end_is_masked_to_the_end(masker: Masker) -> None:
    """A text cut inside a named value (a truncated log line) masks what is there."""
    assert masker.mask_text('{"password": "hunter2-and-more', SPEC)[0] == (
        '{"password": "[REDACTED:FIELD]')
    assert masker.mask_text("password: 'hunter2-and-more", SPEC)[0] == (
        "password: '[REDACTED:FIELD]")


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
