"""Masking what is already masked changes nothing (`keep_masked`, the audit record's
safety net): a token or a partial's stars stay as the client got them, under key-name
rules and in text, while anything else is masked as always."""

from __future__ import annotations

import json

import pytest

from extproc.masking import Masker, MaskSpec, strategies

KEEP = MaskSpec(keep_masked=True)
# A hash whose hex digits are all digits, and read as a card once freed from the token.
HASHED_DIGITS = "[HASH:CREDIT_CARD:4111111111111111]"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("[REDACTED:US_SSN]", True),
        ("[REDACTED:FIELD]", True),
        ("[HASH:EMAIL_ADDRESS:3f2a9c1b4d5e6f70]", True),
        ("****-****-****-1111", True),  # partial: the last 4 shown
        ("***-**-6789", True),
        ("(***) ***-0100", True),
        ("*****", True),  # partial of a short value: nothing shown
        ("[REDACTED:SOMETHING]", False),  # no such kind
        ("[HASH:US_SSN:3F2A9C1B4D5E6F70]", False),  # hashes are lowercase hex
        ("[HASH:US_SSN:3f2a9c]", False),
        ("***1234", False),  # 4 shown after fewer than 4 stars
        ("**12345", False),  # more than 4 shown
        ("12*34", False),  # shown before a star
        ("hunter2", False),
        ("", False),
    ],
)
def test_is_masked(value: str, masked: bool) -> None:
    assert strategies.is_masked(value) is masked


@pytest.mark.parametrize("strategy", ["redact", "partial", "hash"])
def test_masking_twice_changes_nothing(masker: Masker, strategy: str) -> None:
    value = {"ssn": "123-45-6789", "card_number": "4111 1111 1111 1111",
             "password": "correct-horse-battery", "note": "mail ann@example.com",
             "token": "t", "nested": {"secret": ["s3cr3t-value", 42]}}
    once, _ = masker.mask_json(value, MaskSpec(strategy=strategy))  # type: ignore[arg-type]
    twice, counts = masker.mask_json(once, KEEP)
    assert twice == once and not counts
    without, _ = masker.mask_json(once, MaskSpec())
    # Without keep_masked, field rules re-mask partials and hashes as FIELD; a bare
    # redaction carries nothing and is kept everywhere.
    assert (without == once) is (strategy == "redact")


def test_in_text_too(masker: Masker) -> None:
    text = ('{"ssn": "[REDACTED:US_SSN]", "pin": "x", "password": "***-**-6789"} '
            f"and {HASHED_DIGITS}, password=[REDACTED:PASSWORD]")
    assert masker.mask_text(text, KEEP) == (text, {})
    # The same text masked afresh: the key-name rule on the partial and the card inside
    # the hash fire; the bare redactions are kept (they carry nothing).
    _, counts = masker.mask_text(text, MaskSpec())
    assert counts == {"field": 1, "credit_card": 1}


def test_what_is_not_masked_yet_still_is(masker: Masker) -> None:
    value = {"ssn": "123-45-6789", "note": f"card 4111111111111111 beside {HASHED_DIGITS}",
             "password": "***1234"}
    masked, counts = masker.mask_json(value, KEEP)
    assert masked == {"ssn": "[REDACTED:US_SSN]",
                      "note": f"card [REDACTED:CREDIT_CARD] beside {HASHED_DIGITS}",
                      "password": "[REDACTED:FIELD]"}
    assert counts == {"field:ssn": 1, "field:password": 1, "credit_card": 1}


def test_a_stream_keeps_a_token_cut_anywhere(masker: Masker) -> None:
    """A token is read whole before anything in it is released, even with a short hold."""
    spec = MaskSpec(detectors={"credit_card"}, fields=frozenset(), keep_masked=True)
    text = f'x {HASHED_DIGITS} then 4111111111111111 {json.dumps("[REDACTED:FIELD]")}'
    expected, _ = masker.mask_text(text, spec)
    assert expected == text.replace(" 4111111111111111 ", " [REDACTED:CREDIT_CARD] ")
    for cut in range(1, len(text)):
        stream = masker.stream(spec)
        assert stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish() == (
            expected), cut


# On the request path too (no keep_masked), a redaction token is never masked again: it
# carries nothing, and a key-name rule would only turn `[REDACTED:US_SSN]` into
# `[REDACTED:FIELD]` (a model echoing a tool's masked answer, say). Hashes and partials
# are masked again there: they carry a value's trace.
ALL = MaskSpec()


def test_a_redaction_under_a_field_rule_is_kept_on_the_request_path(masker: Masker) -> None:
    masked, counts = masker.mask_json({"ssn": "[REDACTED:US_SSN]", "password": "x1"}, ALL)
    assert masked == {"ssn": "[REDACTED:US_SSN]", "password": "[REDACTED:FIELD]"}
    assert counts == {"field:password": 1}


def test_a_redaction_in_text_is_kept_on_the_request_path(masker: Masker) -> None:
    text = 'returned: {"ssn":"[REDACTED:US_SSN]","password":"hunter2"}'
    masked, _ = masker.mask_text(text, ALL)
    assert masked == 'returned: {"ssn":"[REDACTED:US_SSN]","password":"[REDACTED:FIELD]"}'


def test_a_redaction_streamed_in_pieces_is_kept(masker: Masker) -> None:
    text = '{"ssn":"[REDACTED:US_SSN]","card_number":"4111 1111 1111 1111"}' * 3
    for size in (1, 2, 7):
        stream = masker.stream(ALL)
        out = "".join(stream.feed(text[i:i + size]) for i in range(0, len(text), size))
        out += stream.finish()
        assert out == masker.mask_text(text, ALL)[0]
        assert out.count("[REDACTED:US_SSN]") == 3 and "4111" not in out


@pytest.mark.parametrize("value", [
    "[HASH:US_SSN:3f2a9c1b4d5e6f70]", "***-**-6789", "[REDACTED:SOMETHING]",
    "[REDACTED:US_SSN] 078-05-1120",
])
def test_anything_but_a_bare_redaction_is_masked_again_on_the_request_path(
    masker: Masker, value: str,
) -> None:
    masked, _ = masker.mask_json({"ssn": value}, ALL)
    assert masked == {"ssn": "[REDACTED:FIELD]"}
