"""Bodies masked as tollgate sends them: an event stream cut anywhere, events released whole."""

from __future__ import annotations

import json

import pytest

from extproc.body_masking import ByteStream, ChatTextMasking, mask_body, spec_of
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


# -- an OpenAI chat stream, masked across its events ------------------------------------

SECRET_TEXT = "Her SSN is 512-34-6789 and her card 4111 1111 1111 1111, noted."


def chat_event(content: str | None = None, finish: str | None = None,
               arguments: str | None = None) -> tuple[bytes, dict]:
    delta: dict = {}
    if content is not None:
        delta["content"] = content
    if arguments is not None:
        delta["tool_calls"] = [{"index": 0, "function": {"arguments": arguments}}]
    payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n".encode(), payload


def streamed_text(masking: ChatTextMasking, events: list[tuple[bytes, dict]]) -> str:
    """What a client assembles from the masked events (the content deltas joined)."""
    out = b"".join(masking.event(raw, payload) for raw, payload in events) + masking.finish()
    text = []
    for block in out.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                for choice in json.loads(line[6:])["choices"]:
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


def test_a_secret_cut_between_two_events_anywhere_is_masked() -> None:
    assert SPEC is not None
    expected, _ = MASKER.mask_text(SECRET_TEXT, SPEC)
    assert "512-34-6789" not in expected and "4111" not in expected
    for cut in range(1, len(SECRET_TEXT)):
        events = [chat_event(SECRET_TEXT[:cut]), chat_event(SECRET_TEXT[cut:]),
                  chat_event(finish="stop")]
        assert streamed_text(ChatTextMasking(MASKER, SPEC), events) == expected, cut


def test_a_secret_streamed_a_few_characters_per_event_is_masked() -> None:
    assert SPEC is not None
    events = [chat_event(SECRET_TEXT[i:i + 3]) for i in range(0, len(SECRET_TEXT), 3)]
    masking = ChatTextMasking(MASKER, SPEC)
    text = streamed_text(masking, [*events, chat_event(finish="stop")])
    assert text == MASKER.mask_text(SECRET_TEXT, SPEC)[0]
    assert masking.counts == {"us_ssn": 1, "credit_card": 1}


def test_text_still_held_when_a_stream_is_cut_short_is_released_masked() -> None:
    assert SPEC is not None
    masking = ChatTextMasking(MASKER, SPEC)
    assert streamed_text(masking, [chat_event(SECRET_TEXT)]) == (
        MASKER.mask_text(SECRET_TEXT, SPEC)[0]
    )


def test_tool_call_arguments_are_masked_across_events() -> None:
    assert SPEC is not None
    arguments = json.dumps({"note": SECRET_TEXT})
    events = [chat_event(arguments=arguments[i:i + 4]) for i in range(0, len(arguments), 4)]
    masking = ChatTextMasking(MASKER, SPEC)
    out = b"".join(masking.event(raw, p) for raw, p in [*events, chat_event(finish="tool_calls")])
    joined = "".join(
        call["function"]["arguments"]
        for block in out.decode().split("\n\n") if block.startswith("data: ")
        for choice in json.loads(block[6:])["choices"]
        for call in choice["delta"].get("tool_calls", [])
    )
    assert json.loads(joined) == {"note": MASKER.mask_text(SECRET_TEXT, SPEC)[0]}


def test_an_event_that_is_not_a_chat_chunk_is_masked_as_text() -> None:
    assert SPEC is not None
    raw = b'data: {"error": {"message": "key 4111 1111 1111 1111 refused"}}\n\n'
    masked = ChatTextMasking(MASKER, SPEC).event(raw, json.loads(raw[6:]))
    assert b"4111" not in masked and masked.endswith(b"\n\n")
