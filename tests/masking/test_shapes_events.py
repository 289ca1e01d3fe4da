"""A value split across two events of an event stream (issue 39, item 5), for the event
shapes of LLM APIs, and the new shapes of values cut anywhere in a stream.

A stream masks what it releases exactly as `mask_text` masks the whole, wherever the
chunks were cut (stream.py); the event streams of extproc/masking/body.py feed each
stream of text pieces through one MaskingStream, wherever an API puts them (under a
`delta`, in a legacy completion's choice, at the top of Cohere v1's events), and the
events whose data is plain text through one PartStream per event name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from extproc.masking import Masker, MaskSpec
from extproc.masking.body import ByteStream

SPEC = MaskSpec()
SECRET = "card 4111 1111 1111 1111 and mail jo.doe@example.com ok"
JWE = ("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZ."
       "48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rp.XFBoMYUZodetZdvTiFvSkQ")
SHAPES = {
    "tabbed-card": "pay 4111\t1111\t1111\t1111 now",
    "glued-card": "pan:x4111111111111111y done",
    "spelled-email": "write jo.doe [at] example [dot] com today",
    "jwe": f"token {JWE}. done",
    "truncated-key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
                     "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n\nthat is all, thanks",
    "putty": "PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAAIA4rUvmB0E1Jj2Kq\n"
             "Private-MAC: 8f0c2f0b9e6b1c5a rest",
}


@pytest.mark.parametrize("text", list(SHAPES.values()), ids=list(SHAPES))
def test_a_new_shape_cut_anywhere_masks_as_the_whole(masker: Masker, text: str) -> None:
    expected, counts = masker.mask_text(text, SPEC)
    assert counts
    for cut in range(len(text) + 1):
        stream = masker.stream(SPEC)
        assert stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish() == expected


def test_prose_after_a_truncated_key_is_released(masker: Masker) -> None:
    masked, _ = masker.mask_text(SHAPES["truncated-key"], SPEC)
    assert masked == "[REDACTED:PRIVATE_KEY]\n\nthat is all, thanks"


Events = Callable[[list[str]], list[dict[str, Any]]]


def chat(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces]


def cohere_v2(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"type": "content-delta", "index": 0,
             "delta": {"message": {"content": {"text": p}}}} for p in pieces]


def bedrock(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"contentBlockIndex": 0, "delta": {"text": p}} for p in pieces]


def tgi(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"token": {"id": 1, "text": p, "special": False}, "generated_text": None}
            for p in pieces]


def completions(pieces: list[str]) -> list[dict[str, Any]]:
    """OpenAI's legacy /v1/completions (and vLLM's, llama.cpp's): `choices[].text`."""
    return [{"object": "text_completion",
             "choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in pieces]


def cohere_v1(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"is_finished": False, "event_type": "text-generation", "text": p} for p in pieces]


def anthropic_legacy(pieces: list[str]) -> list[dict[str, Any]]:
    """Anthropic's legacy /v1/complete: `completion` at the top of `completion` events."""
    return [{"type": "completion", "completion": p, "stop_reason": None, "model": "claude-2.1"}
            for p in pieces]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [s for item in items for s in strings(item)]


def leaked(masker: Masker, data: bytes) -> bool:
    """Whether a piece of the card or the address passes in clear in any event."""
    stream = ByteStream(masker, SPEC, events=True)
    out = (stream.feed(data) + stream.finish()).decode()
    texts = []
    for line in out.split("\n"):
        if line.startswith("data: {"):
            texts += strings(json.loads(line[6:]))
        elif line.startswith("data: "):
            texts.append(line[6:])
    return any(mark in text for text in texts for mark in ("4111", "1111 1111", "jo.doe",
                                                             "example.com"))


def events(make: Events, cut: int) -> bytes:
    pieces = [SECRET[:cut], SECRET[cut:]]
    return b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in make(pieces))


@pytest.mark.parametrize("make", [chat, cohere_v2, bedrock, tgi])
def test_a_value_split_between_two_events_is_masked(masker: Masker, make: Events) -> None:
    assert [cut for cut in range(1, len(SECRET)) if leaked(masker, events(make, cut))] == []


@pytest.mark.parametrize("make", [completions, cohere_v1, anthropic_legacy])
def test_text_of_events_that_name_their_kind_outside_a_delta(masker: Masker,
                                                             make: Events) -> None:
    assert [cut for cut in range(1, len(SECRET)) if leaked(masker, events(make, cut))] == []


def test_plain_text_events(masker: Masker) -> None:
    def plain(cut: int) -> bytes:
        return f"data: {SECRET[:cut]}\n\ndata: {SECRET[cut:]}\n\n".encode()

    assert [cut for cut in range(1, len(SECRET)) if leaked(masker, plain(cut))] == []


def sse(payloads: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in payloads)


def masked_events(masker: Masker, data: bytes) -> list[dict[str, Any]]:
    stream = ByteStream(masker, SPEC, events=True)
    out = (stream.feed(data) + stream.finish()).decode()
    return [json.loads(block[6:]) for block in out.split("\n\n") if block.startswith("data: {")]


OTHER = "ssn 512-34-6789 then card 5500 0000 0000 0004 end"


def test_legacy_completions_stream_each_choice_apart(masker: Masker) -> None:
    """`n=2`: the choices' pieces interleave, in events of their own or together (listed in
    any order: a choice is its `index`); each choice is masked as its own whole, and what
    it held goes out in the event that finishes it."""
    for cut in range(1, len(SECRET), 5):
        other = cut * len(OTHER) // len(SECRET)

        def choice(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

        data = sse([{"object": "text_completion", "choices": c} for c in (
            [choice(0, SECRET[:cut])], [choice(1, OTHER[:other])],
            [choice(1, OTHER[other:]), choice(0, SECRET[cut:])],
            [choice(1, "", "length"), choice(0, "", "stop")])]) + b"data: [DONE]\n\n"
        out = masked_events(masker, data)
        texts = {i: "".join(c["text"] for e in out for c in e["choices"] if c["index"] == i)
                 for i in (0, 1)}
        assert texts == {0: masker.mask_text(SECRET, SPEC)[0],
                         1: masker.mask_text(OTHER, SPEC)[0]}, cut
        assert len(out) == 4, cut  # nothing after the finishing event


def test_a_whole_completion_in_one_event_is_released_at_once(masker: Masker) -> None:
    stream = ByteStream(masker, SPEC, events=True)
    payload = {"object": "text_completion",
               "choices": [{"index": 0, "text": SECRET, "finish_reason": "stop"}]}
    out = json.loads(stream.feed(sse([payload]))[6:])
    assert out["choices"][0]["text"] == masker.mask_text(SECRET, SPEC)[0]


def test_cohere_v1_releases_what_it_held_before_stream_end(masker: Masker) -> None:
    """`stream-end` (`is_finished`) ends the text: what it held goes out before it; its
    whole `response.text` is masked as JSON."""
    cut = SECRET.index("1111") + 2
    data = sse([{"is_finished": False, "event_type": "stream-start", "generation_id": "g1"},
                *cohere_v1([SECRET[:cut], SECRET[cut:]]),
                {"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE",
                 "response": {"text": SECRET, "generation_id": "g1"}}])
    out = masked_events(masker, data)
    expected = masker.mask_text(SECRET, SPEC)[0]
    assert [e["event_type"] for e in out][-1] == "stream-end"
    assert "".join(e["text"] for e in out if e["event_type"] == "text-generation") == expected
    assert out[-1]["response"]["text"] == expected


def test_anthropic_legacy_releases_what_it_held_in_its_last_event(masker: Masker) -> None:
    data = sse([*anthropic_legacy([SECRET[:12], SECRET[12:]]),
                {"type": "completion", "completion": "", "stop_reason": "stop_sequence",
                 "model": "claude-2.1"}])
    out = masked_events(masker, data)
    assert len(out) == 3 and out[-1]["stop_reason"] == "stop_sequence"
    assert "".join(e["completion"] for e in out) == masker.mask_text(SECRET, SPEC)[0]


@pytest.mark.parametrize("payload", [
    {"type": "response.output_text.done", "item_id": "m", "text": SECRET},
    {"is_finished": False, "event_type": "search-results",
     "documents": [{"id": "d1", "text": SECRET}]},
    {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": SECRET},
                                               "finish_reason": None}]},
    {"object": "text_completion", "choices": [{"index": 0, "logprobs": {"text": SECRET}}]},
], ids=["responses-done", "cohere-documents", "whole-chat", "nested-in-a-choice"])
def test_a_whole_text_of_a_kind_that_names_itself_is_masked_at_once(
        masker: Masker, payload: dict[str, Any]) -> None:
    """Negatives: a `text` that is no piece (a kind's whole text, one nested deeper than
    a choice, a document) is masked as JSON in its own event, released at once."""
    stream = ByteStream(masker, SPEC, events=True)
    out = stream.feed(sse([payload]))
    assert json.loads(out[6:]) == masker.mask_json(payload, SPEC)[0]
    assert stream.finish() == b""
