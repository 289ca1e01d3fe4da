"""Bodies masked as tollgate sends them: an event stream cut anywhere, events released whole."""

from __future__ import annotations

import json

import pytest

from extproc.codecs.refusal import Refusal
from extproc.interpret.llm import ChatStream
from extproc.masking import Masker
from extproc.masking.body import ByteStream, EventMasking, mask_body
from extproc.masking.policy_mask import spec_of

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
    assert stream.counts["field:ssn"] == 1  # masked as the JSON it is: a key-name rule


def test_a_blank_line_cut_in_two_still_ends_the_event() -> None:
    assert SPEC is not None
    stream = ByteStream(MASKER, SPEC, events=True)
    # A JSON event, released whole once it ends (a plain-text one is held longer: it is
    # masked joined with the plain events that follow it).
    assert stream.feed(b'data: {"a": 1}\n') == b""  # held: the event is not over
    assert stream.feed(b"\n") == b'data: {"a": 1}\n\n'


def test_no_mask_asked_is_no_spec() -> None:
    assert spec_of([{}, {"detectors": []}, {"strategy": ("hash",)}]) is None


def test_masks_add_up_and_the_last_strategy_wins() -> None:
    spec = spec_of([{"detectors": ["email"]}, {"detectors": ["us_ssn"], "strategy": ("hash",)}])
    assert spec is not None
    assert spec.detectors == {"email", "us_ssn"} and spec.strategy == "hash"


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", ""])
def test_a_body_that_is_not_text_cannot_be_masked(content_type: str) -> None:
    assert SPEC is not None
    with pytest.raises(Refusal) as refused:
        mask_body(MASKER, SPEC, content_type, b"\x89PNG\r\n")
    assert refused.value.error == "unmaskable_body"


@pytest.mark.parametrize("content_type", [
    "application/yaml", "application/x-yaml", "application/soap+xml; charset=utf-8",
    "application/atom+xml", "image/svg+xml", "application/openapi+yaml", "application/toml",
])
def test_text_formats_named_by_their_type_or_suffix_are_read_and_masked(
        content_type: str) -> None:
    assert SPEC is not None
    masked, counts = mask_body(MASKER, SPEC, content_type, b"<note>mail ada@example.com</note>")
    assert masked == b"<note>mail [REDACTED:EMAIL_ADDRESS]</note>" and counts == {"email": 1}


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


def streamed_text(masking: EventMasking, events: list[tuple[bytes, dict]]) -> str:
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
        assert streamed_text(EventMasking(MASKER, SPEC), events) == expected, cut


def test_a_secret_streamed_a_few_characters_per_event_is_masked() -> None:
    assert SPEC is not None
    events = [chat_event(SECRET_TEXT[i:i + 3]) for i in range(0, len(SECRET_TEXT), 3)]
    masking = EventMasking(MASKER, SPEC)
    text = streamed_text(masking, [*events, chat_event(finish="stop")])
    assert text == MASKER.mask_text(SECRET_TEXT, SPEC)[0]
    assert masking.counts == {"us_ssn": 1, "credit_card": 1}


def test_text_still_held_when_a_stream_is_cut_short_is_released_masked() -> None:
    assert SPEC is not None
    masking = EventMasking(MASKER, SPEC)
    assert streamed_text(masking, [chat_event(SECRET_TEXT)]) == (
        MASKER.mask_text(SECRET_TEXT, SPEC)[0]
    )


def test_tool_call_arguments_are_masked_across_events() -> None:
    assert SPEC is not None
    arguments = json.dumps({"note": SECRET_TEXT})
    events = [chat_event(arguments=arguments[i:i + 4]) for i in range(0, len(arguments), 4)]
    masking = EventMasking(MASKER, SPEC)
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
    masked = EventMasking(MASKER, SPEC).event(raw, json.loads(raw[6:]))
    assert b"4111" not in masked and masked.endswith(b"\n\n")


# -- actions: a model's tool-call arguments, masked with the mask's `actions` ---------------

PACK = spec_of([{"detectors": ["all"], "strategy": ["redact"],
                 "actions": ["credit_card", "us_ssn", "iban", "jwt", "connection_password"]}])
ARGUMENTS = json.dumps({"url": "http://10.1.2.3:8080/x", "to": "ops@example.com",
                        "card": "4111 1111 1111 1111", "note": "naïve ✓"})


def test_masks_without_actions_add_up_as_their_detectors() -> None:
    spec = spec_of([{"detectors": ["email"]}, {"detectors": ["us_ssn"], "actions": []}])
    assert spec is not None and spec.for_actions.detectors == {"email"}
    spec = spec_of([{"actions": ["credit_card"]}])
    assert spec is not None and (spec.detectors, spec.for_actions.detectors) == (
        frozenset(), {"credit_card"})
    assert PACK is not None and PACK.for_actions.detectors == {
        "credit_card", "us_ssn", "iban", "jwt", "connection_password"}


def sse(*payloads: dict) -> bytes:
    return b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in payloads) + (
        b"data: [DONE]\n\n")


def tool_call_stream(arguments: str, size: int = 5, legacy: bool = False) -> bytes:
    def delta(piece: str, first: bool) -> dict:
        if legacy:
            return {"function_call": {"name": "send", "arguments": piece} if first
                    else {"arguments": piece}}
        call = {"index": 0, "function": {"arguments": piece}}
        if first:
            call.update(id="call_1", type="function")
            call["function"]["name"] = "send"
        return {"tool_calls": [call]}

    pieces = [arguments[i:i + size] for i in range(0, len(arguments), size)]
    return sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Mail ann@x.io"},
                      "finish_reason": None}]},
        *({"choices": [{"index": 0, "delta": delta(p, i == 0), "finish_reason": None}]}
          for i, p in enumerate(pieces)),
        {"choices": [{"index": 0, "delta": {},
                      "finish_reason": "function_call" if legacy else "tool_calls"}]},
    )


def client_view(out: bytes) -> tuple[str, str]:
    """What an OpenAI client assembles: the text, and the first call's arguments."""
    text, arguments = [], []
    for block in out.decode().split("\n\n"):
        if not block.startswith("data: {"):
            continue
        for choice in json.loads(block[6:])["choices"]:
            delta = choice["delta"]
            text.append(delta.get("content") or "")
            calls = delta.get("tool_calls") or [delta.get("function_call") or {}]
            for call in calls:
                arguments.append((call.get("function", call)).get("arguments", ""))
    return "".join(text), "".join(arguments)


def masked_stream(data: bytes, cuts: list[int]) -> bytes:
    """`data` cut at `cuts`, read into events and masked as the gateway does."""
    assert PACK is not None
    stream, masking = ChatStream(), EventMasking(MASKER, PACK)
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        out += [masking.event(e.raw, e.payload) for e in stream.feed(data[a:b])]
    out += [masking.event(e.raw, e.payload) for e in stream.finish()]
    return b"".join(out) + masking.finish()


@pytest.mark.slow  # thousands of cuts: ~10 s each; `make test` runs it, `make test-unit` not
@pytest.mark.parametrize("legacy", [False, True], ids=["tool_calls", "function_call"])
def test_streamed_arguments_cut_at_every_byte_are_masked_as_actions(legacy: bool) -> None:
    assert PACK is not None
    expected = MASKER.mask_text(ARGUMENTS, PACK.for_actions)[0]
    assert json.loads(expected) == {"url": "http://10.1.2.3:8080/x", "to": "ops@example.com",
                                    "card": "[REDACTED:CREDIT_CARD]", "note": "naïve ✓"}
    data = tool_call_stream(ARGUMENTS, legacy=legacy)
    for cut in range(1, len(data)):
        text, arguments = client_view(masked_stream(data, [cut]))
        assert (text, arguments) == ("Mail [REDACTED:EMAIL_ADDRESS]", expected), cut


def test_streamed_arguments_one_byte_per_chunk() -> None:
    data = tool_call_stream(ARGUMENTS, size=1)
    _, arguments = client_view(masked_stream(data, list(range(1, len(data)))))
    assert json.loads(arguments)["card"] == "[REDACTED:CREDIT_CARD]"
    assert json.loads(arguments)["to"] == "ops@example.com"


@pytest.mark.parametrize("field", ["refusal", "reasoning_content", "reasoning"])
def test_a_choices_other_text_is_masked_across_events_as_data(field: str) -> None:
    assert SPEC is not None
    events = [(b"", {"choices": [{"index": 0, "delta": {field: SECRET_TEXT[i:i + 3]}}]})
              for i in range(0, len(SECRET_TEXT), 3)]
    masking = EventMasking(MASKER, SPEC)
    out = [masking.event(raw, payload) for raw, payload in events]
    out.append(masking.event(b"", {"choices": [{"index": 0, "delta": {},
                                                 "finish_reason": "stop"}]}))
    joined = "".join(json.loads(block[6:])["choices"][0]["delta"].get(field, "")
                     for block in b"".join(out).decode().split("\n\n") if block)
    assert joined == MASKER.mask_text(SECRET_TEXT, SPEC)[0]


def test_a_responses_api_event_is_masked_as_the_json_it_is() -> None:
    """The Responses API streams no `choices`: each event's JSON is masked whole, a
    function call's arguments as actions."""
    assert PACK is not None
    item = {"type": "function_call", "name": "send", "arguments": ARGUMENTS}
    payload = {"type": "response.output_item.done", "output_index": 0, "item": item}
    raw = f"event: response.output_item.done\ndata: {json.dumps(payload)}\n\n".encode()
    masking = EventMasking(MASKER, PACK)
    out = masking.event(raw, payload)
    assert out.startswith(b"event: response.output_item.done\ndata: ")
    masked = json.loads(out.split(b"data: ", 1)[1])["item"]["arguments"]
    assert masked == MASKER.mask_text(ARGUMENTS, PACK.for_actions)[0]
    assert masking.counts == {"credit_card": 1}
    plain = {"type": "response.done", "status": "nothing to hide"}
    plain_raw = f"data: {json.dumps(plain)}\n\n".encode()
    assert masking.event(plain_raw, plain) is plain_raw  # unchanged: passed as it came
