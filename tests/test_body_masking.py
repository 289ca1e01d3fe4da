"""Bodies masked as tollgate sends them: an event stream cut anywhere, events released whole."""

from __future__ import annotations

import pytest

from extproc.body_masking import ByteStream, mask_body, spec_of
from extproc.http_message import BadInput
from extproc.masking import Masker

MASKER = Masker(b"k" * 32)
SPEC = spec_of([{"detectors": ["all"]}])
EVENTS = (
    'data: {"name": "Ada", "ssn": "512-34-6789", "password": "correct-horse"}\n\n'
    "data: card 4111 1111 1111 1111 expires soon\r\n\r\n"
    'data: {"note": "naïve café ✓"}\n\n'
).encode()


def test_an_event_stream_cut_at_every_byte_gives_the_one_shot_result() -> None:
    assert SPEC is not None
    whole = ByteStream(MASKER, SPEC, events=True)
    expected = whole.feed(EVENTS) + whole.finish()
    assert b"512-34-6789" not in expected and b"4111" not in expected
    assert b"correct-horse" not in expected and "naïve café ✓".encode() in expected
    for cut in range(1, len(EVENTS)):
        stream = ByteStream(MASKER, SPEC, events=True)
        assert stream.feed(EVENTS[:cut]) + stream.feed(EVENTS[cut:]) + stream.finish() == (
            expected
        ), cut


def test_a_complete_event_is_released_at_once() -> None:
    assert SPEC is not None
    stream = ByteStream(MASKER, SPEC, events=True)
    first = EVENTS.split(b"\n\n", 1)[0] + b"\n\n"
    released = stream.feed(first)
    assert released.startswith(b"data: ") and released.endswith(b"\n\n")
    assert b"[REDACTED:US_SSN]" in released
    assert stream.counts["us_ssn"] == 1


def test_a_blank_line_cut_in_two_still_ends_the_event() -> None:
    assert SPEC is not None
    stream = ByteStream(MASKER, SPEC, events=True)
    assert stream.feed(b"data: hello\n") == b""  # held: the event is not over
    assert stream.feed(b"\n") == b"data: hello\n\n"


def test_no_mask_asked_is_no_spec() -> None:
    assert spec_of([{}, {"detectors": []}, {"strategy": ("hash",)}]) is None


def test_masks_add_up_and_the_last_strategy_wins() -> None:
    spec = spec_of([{"detectors": ["email"]}, {"detectors": ["us_ssn"], "strategy": ("hash",)}])
    assert spec is not None
    assert spec.detectors == {"email", "us_ssn"} and spec.strategy == "hash"


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", ""])
def test_a_body_that_is_not_text_cannot_be_masked(content_type: str) -> None:
    assert SPEC is not None
    with pytest.raises(BadInput) as refused:
        mask_body(MASKER, SPEC, content_type, b"\x89PNG\r\n")
    assert refused.value.error == "unmaskable_body"


def test_json_stays_json_and_text_stays_text() -> None:
    assert SPEC is not None
    masked, counts = mask_body(MASKER, SPEC, "application/json", b'{"ssn": "512-34-6789"}')
    assert masked == b'{"ssn":"[REDACTED:US_SSN]"}' and counts == {"field:ssn": 1}
    text, _ = mask_body(MASKER, SPEC, "text/plain", b"mail ada@example.com")
    assert text == b"mail [REDACTED:EMAIL_ADDRESS]"
