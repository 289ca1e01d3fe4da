"""Masking applied to HTTP bodies: which masking a body gets, by what the policies asked
and by its media type. Knows nothing of Envoy; the masking itself is extproc.masking.

A body that must be masked but cannot be read as text (an image, a protobuf) is
refused rather than passed: what cannot be masked must not pass unmasked.
"""

from __future__ import annotations

import codecs
import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from extproc import jsonenc
from extproc.http_message import BadInput, is_json, media_type, parse_json
from extproc.masking import Masker, MaskingStream, MaskSpec

log = logging.getLogger("tollgate.masking")

# Media types whose bodies are text that masking can read (beyond text/* and JSON).
_TEXT_MEDIA = ("application/xml", "application/x-www-form-urlencoded", "application/x-ndjson",
               "application/javascript", "application/graphql")


class MaskError(ValueError):
    """A policy's `mask` that names no existing detector or strategy (a policy error)."""


def new_masker(hmac_key: bytes | None) -> Masker:
    """The process's masker. Without a configured key, hashes are keyed per process."""
    if hmac_key is None:
        log.warning("masking.hash_key is not set: the `hash` strategy uses a key made for this "
                    "process, so hashed values do not join across restarts or replicas")
        hmac_key = secrets.token_bytes(32)
    return Masker(hmac_key)


def spec_of(masks: Iterable[Mapping[str, Sequence[str]]]) -> MaskSpec | None:
    """One spec for every `mask` the exchange's decisions asked for (None: mask nothing).

    Masks add up: what any decision asked to hide stays hidden (a mask without
    `actions` hides in actions what it hides elsewhere). The strategy of the last
    decision that names one wins.
    """
    merged: dict[str, tuple[str, ...]] = {}
    for mask in masks:
        if not (mask.get("detectors") or mask.get("fields") or mask.get("actions")):
            continue
        if "actions" not in mask:
            mask = {**mask, "actions": mask.get("detectors", ())}
        for key, values in mask.items():
            if key == "strategy":
                merged[key] = tuple(values)
            else:
                merged[key] = tuple(dict.fromkeys((*merged.get(key, ()), *values)))
    if not merged:
        return None
    return _spec(tuple(sorted(merged.items())))


@lru_cache(maxsize=256)
def _spec(mask: tuple[tuple[str, tuple[str, ...]], ...]) -> MaskSpec:
    """Built once per distinct mask: a pack asks for a handful."""
    try:
        return MaskSpec.from_policy(dict(mask))
    except ValueError as exc:
        raise MaskError(str(exc)) from None


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return media_type(headers.get("content-type", "")) == "text/event-stream"


def mask_body(
    masker: Masker, spec: MaskSpec, content_type: str, data: bytes
) -> tuple[bytes, Counter[str]]:
    """The body with what `spec` names masked; JSON stays valid JSON."""
    if not data:
        return data, Counter()
    media = media_type(content_type)
    if not (media.startswith("text/") or is_json(content_type) or media in _TEXT_MEDIA):
        raise BadInput(
            502, "unmaskable_body",
            f"the policy asks to mask this body, but a {media or 'untyped'} body cannot be "
            "read as text; it is refused rather than passed unmasked",
        )
    text = data.decode("utf-8", "replace")
    if is_json(content_type):
        try:
            value: Any = parse_json(text)
        except ValueError:
            pass  # not JSON after all: masked as the text it is
        else:
            masked, counts = masker.mask_json(value, spec)
            return jsonenc.dumps(masked).encode(), counts
    masked_text, counts = masker.mask_text(text, spec)
    return masked_text.encode(), counts


class ByteStream:
    """A masked body fed as bytes: UTF-8 characters cut between chunks are rejoined.

    For an event stream, each complete event (ended by a blank line) is masked and
    released whole at once, so an event is never held back waiting for the next one;
    an event still arriving streams through the masker with its held-back tail.
    """

    def __init__(self, masker: Masker, spec: MaskSpec, events: bool = False) -> None:
        self._masker, self._spec, self._events = masker, spec, events
        self._stream = masker.stream(spec)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._counts: Counter[str] = Counter()
        self._ends_with_newline = False

    @property
    def counts(self) -> Counter[str]:
        return self._counts + self._stream.counts

    def feed(self, chunk: bytes) -> bytes:
        text = self._decoder.decode(chunk)
        out = []
        while self._events and (cut := self._event_end(text)) is not None:
            out += (self._stream.feed(text[:cut]), self._stream.finish())
            self._counts += self._stream.counts
            self._stream = self._masker.stream(self._spec)
            text = text[cut:]
            self._ends_with_newline = False
        if text:
            self._ends_with_newline = text.endswith("\n")
        out.append(self._stream.feed(text))
        return "".join(out).encode()

    def finish(self) -> bytes:
        tail = self._stream.feed(self._decoder.decode(b"", final=True))
        return (tail + self._stream.finish()).encode()

    def _event_end(self, text: str) -> int | None:
        """Where the first event ending in `text` ends (its blank line included)."""
        if self._ends_with_newline and text[:1] == "\n":
            return 1
        if self._ends_with_newline and text[:2] == "\r\n":
            return 2
        ends = [i + len(b) for b in ("\n\n", "\r\n\r\n") if (i := text.find(b)) >= 0]
        return min(ends) if ends else None


# What a chat choice streams for the agent to read: its text, a refusal, and the
# reasoning some servers stream (vLLM, DeepSeek, Ollama, OpenRouter).
_DELTA_TEXTS = ("content", "refusal", "reasoning_content", "reasoning")


class ChatTextMasking:
    """The text of an OpenAI-compatible chat stream, masked across its events.

    A model streams a few characters per event, so a card number or an SSN arrives cut
    over several events, and masking each event alone would let it through. Each
    choice's text, and each tool call's arguments (and the legacy `function_call`'s),
    run through one MaskingStream: text as the spec says, arguments as its
    `for_actions` says (what the agent acts on). Every event is re-written with what
    the streams release (held-back text moves into later events), and a choice's
    finishing event carries what was still held. An event that is no chat chunk (the
    Responses API's, an error) is masked as the JSON it is, or as text.
    """

    def __init__(self, masker: Masker, spec: MaskSpec) -> None:
        self._masker, self._spec = masker, spec
        self._streams: dict[tuple[Any, ...], MaskingStream] = {}
        self._counts: Counter[str] = Counter()

    @property
    def counts(self) -> Counter[str]:
        return sum((s.counts for s in self._streams.values()), self._counts)

    def event(self, raw: bytes, payload: Any) -> bytes:
        """One event (its bytes, and its `data` parsed as JSON, or None), masked."""
        if isinstance(payload, dict) and isinstance(payload.get("choices"), list):
            for choice in payload["choices"]:
                if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
                    self._mask_delta(choice)
        elif isinstance(payload, dict):
            masked, counts = self._masker.mask_json(payload, self._spec)
            self._counts += counts
            if masked is payload:
                return raw
            payload = masked
        else:
            text, counts = self._masker.mask_text(raw.decode("utf-8", "replace"), self._spec)
            self._counts += counts
            return text.encode()
        others = [line for line in raw.decode("utf-8", "replace").splitlines()
                  if line and not line.startswith("data:")]
        return "\n".join([*others, f"data: {jsonenc.dumps(payload)}", "", ""]).encode()

    def finish(self) -> bytes:
        """An event with whatever is still held when a stream ends without finishing its
        choices (cut short): held text is released, masked, never dropped."""
        choices: dict[Any, dict[str, Any]] = {}
        for key in list(self._streams):
            rest = self._release(key, "", True)
            if rest:
                _put(choices.setdefault(key[0], {"index": key[0], "delta": {}})["delta"],
                     key, rest)
        if not choices:
            return b""
        return f"data: {jsonenc.dumps({'choices': list(choices.values())})}\n\n".encode()

    def _mask_delta(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        delta, finished = choice["delta"], choice.get("finish_reason") is not None
        for name in _DELTA_TEXTS:
            if isinstance(delta.get(name), str):
                delta[name] = self._release((index, name), delta[name], finished)
        for key, function in _argument_parts(index, delta):
            function["arguments"] = self._release(key, function["arguments"], finished)
        if finished:  # what is still held goes out with the choice's last event
            for key in [k for k in self._streams if k[0] == index]:
                rest = self._release(key, "", True)
                if rest:
                    _put(delta, key, rest)

    def _release(self, key: tuple[Any, ...], text: str, final: bool) -> str:
        stream = self._streams.get(key)
        if stream is None:
            spec = self._spec.for_actions if key[1] in _ACTIONS else self._spec
            stream = self._streams[key] = self._masker.stream(spec)
        released = stream.feed(text)
        if not final:
            return released
        released += stream.finish()
        self._counts += self._streams.pop(key).counts
        return released


_ACTIONS = ("tool_calls", "function_call")


def _argument_parts(index: Any, delta: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
    """The delta's tool-call functions (and legacy `function_call`) carrying arguments,
    each with its stream's key."""
    parts = []
    calls = delta.get("tool_calls")
    for n, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            parts.append(((index, "tool_calls", call.get("index", n)), function))
    legacy = delta.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        parts.append(((index, "function_call"), legacy))
    return parts


def _put(delta: dict[str, Any], key: tuple[Any, ...], text: str) -> None:
    """Text released by the stream of `key` (a choice's) into `delta`."""
    if key[1] == "tool_calls":
        if not isinstance(delta.get("tool_calls"), list):
            delta["tool_calls"] = []
        delta["tool_calls"].append({"index": key[2], "function": {"arguments": text}})
    elif key[1] == "function_call":
        delta["function_call"] = {"arguments": text}
    else:
        delta[key[1]] = text
