"""Masking applied to HTTP bodies: which masking a body gets, by what the policies asked
and by its media type. Knows nothing of Envoy; the masking itself is extproc.masking.

A body that must be masked but cannot be read as text (an image, a protobuf) is
refused rather than passed: what cannot be masked must not pass unmasked.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.codecs import jsonenc, sse
from extproc.codecs.message import is_json, media_type, parse_json
from extproc.codecs.refusal import Unavailable
from extproc.masking import Masker, MaskingStream, MaskSpec, normalise_field
from extproc.masking.stream import PartStream

log = logging.getLogger("tollgate.masking")

# Media types whose bodies are text that masking can read (beyond text/* and JSON), and
# the structured suffixes of text formats (RFC 6839's +xml, RFC 9512's +yaml: SOAP, Atom,
# SVG, XHTML, OpenAPI documents).
_TEXT_MEDIA = ("application/xml", "application/x-www-form-urlencoded", "application/x-ndjson",
               "application/javascript", "application/graphql", "application/yaml",
               "application/x-yaml", "application/toml", "application/sql")
_TEXT_SUFFIXES = ("+xml", "+yaml")


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return media_type(headers.get("content-type", "")) == "text/event-stream"


def is_text(content_type: str) -> bool:
    """Whether a body of this type is text masking can read."""
    media = media_type(content_type)
    return (media.startswith("text/") or is_json(content_type) or media in _TEXT_MEDIA
            or media.endswith(_TEXT_SUFFIXES))


def mask_body(
    masker: Masker, spec: MaskSpec, content_type: str, data: bytes
) -> tuple[bytes, Counter[str]]:
    """The body with what `spec` names masked; JSON stays valid JSON."""
    if not data:
        return data, Counter()
    media = media_type(content_type)
    if not is_text(content_type):
        raise Unavailable(
            502, "unmaskable_body",
            f"the policy asks to mask this body, but a {media or 'untyped'} body cannot be "
            "read as text; it is refused rather than passed unmasked",
        )
    encoding = charset_of(content_type)
    text = data.decode(encoding, "replace")
    if is_json(content_type):
        try:
            value: Any = parse_json(text)
        except ValueError:
            pass  # not JSON after all: masked as the text it is
        else:
            masked, counts = masker.mask_json(value, spec)
            return jsonenc.dumps(masked).encode(encoding), counts
    masked_text, counts = masker.mask_text(text, spec, _DELIMITERS.get(media))
    return masked_text.encode(encoding, "replace"), counts


def charset_of(content_type: str) -> str:
    """The text encoding a body's type declares (`charset=`), UTF-8 when it declares none.
    Read in any other, UTF-16's say, an SSN would be no digits to a detector: a charset
    Python does not know is refused rather than read as UTF-8."""
    named = [value.strip().strip('"').strip() for name, _, value in
             (parameter.strip().partition("=") for parameter in content_type.split(";")[1:])
             if name.strip().lower() == "charset"]
    if not named:
        return "utf-8"
    try:
        found = {codecs.lookup(charset).name for charset in named}
    except LookupError:
        found = set()
    if len(found) != 1:
        # Unknown, or named twice and differently: a reader that honours the other one
        # (the last, as some do) would read what tollgate did not.
        raise Unavailable(
            502, "unmaskable_body",
            f"the policy asks to mask this body, but its charset ({', '.join(named)[:60]!r}) "
            "is not one tollgate can read; it is refused rather than passed unmasked")
    return found.pop()


# Tables as text, whose header row names the columns (key-name rules follow the names).
_DELIMITERS = {"text/csv": ",", "text/tab-separated-values": "\t"}


class ByteStream:
    """A masked body fed as bytes: UTF-8 characters cut between chunks are rejoined.

    For an event stream, each complete event (ended by a blank line, after LF, CRLF or
    CR line ends as in the SSE spec) is masked by an `EventMasking`, which releases it at
    once or, where its text streams on into later events, with them. An event still
    arriving is held until it ends, up to `_EVENT_MAX` characters: one longer streams
    through the masker as text, with its held-back tail.
    """

    def __init__(self, masker: Masker, spec: MaskSpec, events: bool = False) -> None:
        self._masker, self._spec, self._events = masker, spec, events
        self._stream = masker.stream(spec)
        self._masking = EventMasking(masker, spec)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._counts: Counter[str] = Counter()
        self._event = ""  # the event arriving, so far (its last characters, once long)
        self._long = False  # it is over `_EVENT_MAX`: streamed as text

    @property
    def counts(self) -> Counter[str]:
        return self._counts + self._stream.counts + self._masking.counts

    def feed(self, chunk: bytes) -> bytes:
        text = self._decoder.decode(chunk)
        if not self._events:
            return self._stream.feed(text).encode()
        return self._split(text, final=False).encode()

    def finish(self) -> bytes:
        tail = self._decoder.decode(b"", final=True)
        if not self._events:
            return (self._stream.feed(tail) + self._stream.finish()).encode()
        out = self._split(tail, final=True)
        if self._event or self._long:  # an event the stream ended without its blank line
            out += self._complete(len(self._event))
        return out.encode() + self._masking.finish()

    def _split(self, text: str, final: bool) -> str:
        """The events `text` completes, masked; the rest held (or, once long, streamed)."""
        search = max(0, len(self._event) - 3)  # an end may begin in the last 3 characters
        self._event += text
        out = []
        while (end := _event_end(self._event, search, not self._long, final)) is not None:
            out.append(self._complete(end))
            search = 0
        if self._long or len(self._event) > _EVENT_MAX:
            if not self._long:  # the events held before it go out before it
                out.append(self._masking.end_plain().decode())
            self._long = True
            out.append(self._stream.feed(self._event[:-3]))
            self._event = self._event[-3:]
        return "".join(out)

    def _complete(self, end: int) -> str:
        """The event ending at `end` of what arrived, masked."""
        event, self._event = self._event[:end], self._event[end:]
        if not self._long:
            raw = event.encode()
            return self._masking.event(raw, _payload(raw)).decode()
        self._long = False
        out = self._stream.feed(event) + self._stream.finish()
        self._counts += self._stream.counts
        self._stream = self._masker.stream(self._spec)
        return out


_EVENT_MAX = 1 << 20
_LINE_END = re.compile(r"\r\n|\r|\n")
# A line end then a blank line; a CR is a line end of its own only when no LF follows it.
_EVENT_END = re.compile(r"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")


def _event_end(text: str, search: int, at_start: bool, final: bool) -> int | None:
    """Where the first event in `text` ends (its blank line included), searching from
    `search`; `at_start`: `text` begins the event (so a blank line there ends it). None
    while it has not, or a last CR may still be the first half of a CRLF."""
    m = (at_start and _LINE_END.match(text)) or _EVENT_END.search(text, search)
    if not m or (not final and m.end() == len(text) and text[-1] == "\r"):
        return None
    return m.end()


def _payload(raw: bytes) -> Any:
    """An event's data as JSON (None: no data, or not JSON)."""
    data, _ = sse.event_data(raw)
    try:
        return parse_json(data.decode("utf-8", "replace")) if data is not None else None
    except ValueError:
        return None


def _data(lines: list[tuple[str, str]]) -> str | None:
    """An event's data, from its lines as `sse.fields` reads them (None: it has none)."""
    data = [value for name, value in lines if name == "data"]
    return "\n".join(data) if data else None


class EventMasking:
    """The events of a server-sent event stream, masked as JSON each, and across events
    where text streams in pieces.

    A model (or any streaming API) sends a few characters per event, so a card number or
    an SSN arrives cut over several events, and masking each event alone would let it
    through. A string field that streams (see `_read`) runs through one MaskingStream
    per stream of pieces: per event kind (`type` or `object`), identity (`item_id`,
    `output_index`, `content_index`, `index`) and JSON path (a list item by its `index`
    when it has one): text as the spec says, a tool call's arguments as its `for_actions`
    says (what the agent acts on). Each event is re-written with what the streams release
    (held-back text moves into later events of the same stream); the rest of the event
    is masked as the JSON it is. A stream ends, releasing what it still holds, when its
    chat choice finishes (`finish_reason`), when an event of another kind with the same
    identity comes (the Responses API's `….done`, Anthropic's `content_block_stop`), or
    when the event stream does (or says it does: `data: [DONE]`, or an event says it
    finishes: Cohere's `is_finished`, a `finish_reason` or `stop_reason` of its own): what
    it held goes out in a copy of its last event before that (or in the finishing
    event itself).

    An event whose data is text, not a JSON object or list (a stream of plain tokens,
    Replicate's `output` events), is one part of the text of the events of its name
    (`event:`), which one PartStream masks: text events go out whole, masked, in the
    order they came (byte for byte where nothing is found), each once what follows it
    cannot change how it masks: the stream's hold of text (~600 bytes), or the end of the
    text, where the event stream turns to a JSON event (Replicate's `done`, a closing
    status), ends, or says it does. Every other event is masked as text and goes out at
    once: a JSON list; a comment, or any event without data, even while text is held
    (a keep-alive keeps the connection alive).
    """

    def __init__(self, masker: Masker, spec: MaskSpec) -> None:
        self._masker, self._spec = masker, spec
        self._streams: dict[tuple[Any, ...], _Stream] = {}
        self._counts: Counter[str] = Counter()
        # (key, string) pairs masking found nothing in (see `_masked`); kept only where
        # what is clean as data is clean as an action (actions read fewer detectors).
        self._clean: set[tuple[str, str]] = set()
        self._remembers = spec.for_actions.detectors <= spec.detectors
        self._rules: dict[str, bool] = {}
        self._plain: dict[str, _Plain] = {}  # by event name
        self._queue: deque[_Held] = deque()  # the text events held, in order

    @property
    def counts(self) -> Counter[str]:
        counts = sum((s.masking.counts for s in self._streams.values()), self._counts)
        return sum((p.masking.counts for p in self._plain.values()), counts)

    def event(self, raw: bytes, payload: Any) -> bytes:
        """One event (its bytes, and its `data` parsed as JSON, or None), masked; with
        what earlier events held that it releases, before it."""
        if isinstance(payload, dict):
            return self.end_plain() + self._json(raw, payload)
        lines = sse.fields(raw)
        data = _data(lines)
        done = data is not None and data.startswith("[DONE]")  # as the openai client reads it
        if data is not None and not done and not isinstance(payload, list):
            return self._text(raw, lines, data)
        text, counts = self._masker.mask_text(raw.decode("utf-8", "replace"), self._spec)
        self._counts += counts
        # `[DONE]` ends the stream for a client: what is held goes out before it.
        ending = self.finish() if done else self.end_plain() if data is not None else b""
        return ending + text.encode()

    def finish(self) -> bytes:
        """Events with whatever is still held when the event stream ends: held text is
        released, masked, never dropped."""
        return b"".join(self._flush(key) for key in list(self._streams)) + self.end_plain()

    def end_plain(self) -> bytes:
        """The text events held, released: their text has ended."""
        for plain in self._plain.values():
            for held, out in zip(plain.held, plain.masking.finish_parts(), strict=True):
                held.out = out
            self._counts += plain.masking.counts
        self._plain.clear()
        return self._released()

    def _text(self, raw: bytes, lines: list[tuple[str, str]], data: str) -> bytes:
        """An event whose data is text: held, with those of its name, until released."""
        name = next((value for key, value in reversed(lines) if key == "event"), "")
        plain = self._plain.get(name)
        if plain is None:
            plain = self._plain[name] = _Plain(PartStream(self._masker, self._spec))
        others = [line for line in lines if line[0] != "data"]
        head = sse.event_of(others)[:-2].decode() if others else ""
        masked_head, counts = self._masker.mask_text(head, self._spec) if head else ("", None)
        if counts:
            self._counts += counts
        held = _Held(raw, data, head, masked_head)
        self._queue.append(held)
        plain.held.append(held)
        for out in plain.masking.feed_part(data):
            plain.held.popleft().out = out
        return self._released()

    def _released(self) -> bytes:
        """The text events at the head of the queue that are released, written."""
        out = []
        while self._queue and self._queue[0].out is not None:
            out.append(self._queue.popleft().written())
        return b"".join(out)

    def _json(self, raw: bytes, payload: dict[str, Any]) -> bytes:
        """An event whose data is a JSON object, masked."""
        kind, identity = _kind(payload), _identity(payload)
        fields, pairs = _read(payload, self._is_rule)
        fed = {(kind, identity, key_path) for _, key_path, _ in fields}
        ended = self._ended(kind, identity, payload, fed)
        out = [self._flush(key) for key in ended if key not in fed]
        blank = payload
        for path, _, _ in fields:
            blank = _with(blank, path, "")
        masked = self._masked(blank, pairs)
        lines = other_lines(raw)
        released = masked
        for path, key_path, text in fields:
            key = (kind, identity, key_path)
            stream = self._stream(key, path, lines, masked, kind)
            rest = stream.masking.feed(text)
            if key in ended:
                rest += self._end(key)
            released = _with(released, path, rest)
        if not fields and masked is payload:
            return b"".join(out) + raw
        return b"".join(out) + event_bytes(lines, released)

    def _masked(self, payload: dict[str, Any], pairs: set[tuple[str, str]] | None) -> Any:
        """`payload` masked as JSON. A model's events repeat their other fields (`id`,
        `model`, `type`...): an event whose every string was found clean before, under
        the same key, is not scanned again (~20x cheaper a chat chunk)."""
        pairs = pairs if self._remembers else None
        if pairs is not None and pairs <= self._clean:
            return payload
        masked, counts = self._masker.mask_json(payload, self._spec)
        self._counts += counts
        if pairs is not None and not counts and len(self._clean) < _CLEAN_MAX:
            self._clean |= pairs
        return masked

    def _is_rule(self, key: str) -> bool:
        """Whether a key-name rule names `key` (each key normalised once a stream)."""
        rule = self._rules.get(key)
        if rule is None:
            rule = self._rules[key] = normalise_field(str(key)) in self._spec.fields
        return rule

    def _ended(self, kind: str, identity: tuple[Any, ...], payload: dict[str, Any],
               fed: set[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The streams this event ends (those it feeds included: an event may start and
        end one): those of a chat choice it finishes, those of another kind with its
        identity, and all those of its identity if it says it finishes."""
        choices = payload.get("choices")
        finished = {("choices", _index_of(c, i)) for i, c in enumerate(
            choices if isinstance(choices, list) else ())
            if isinstance(c, dict) and c.get("finish_reason") is not None}
        done = payload.get("is_finished") is True or any(
            payload.get(k) is not None for k in ("finish_reason", "stop_reason"))
        return [key for key in (*self._streams, *(k for k in fed if k not in self._streams))
                if (key[0] == kind and key[2][:2] in finished)
                or (key[1] == identity and (done or (
                    identity and key[0] != kind and key not in fed)))]

    def _stream(self, key: tuple[Any, ...], path: tuple[Any, ...], lines: list[str],
                masked: dict[str, Any], kind: str) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            actions = kind in _ACTION_KINDS or any(k in _ACTION_KEYS for k in path)
            spec = self._spec.for_actions if actions else self._spec
            stream = self._streams[key] = _Stream(self._masker.stream(spec))
        stream.last = (lines, masked, path)
        return stream

    def _end(self, key: tuple[Any, ...]) -> str:
        stream = self._streams.pop(key)
        rest = stream.masking.finish()
        self._counts += stream.masking.counts
        return rest

    def _flush(self, key: tuple[Any, ...]) -> bytes:
        """The rest `key`'s stream holds, in a copy of its last event (b"" if nothing)."""
        lines, masked, path = self._streams[key].last
        rest = self._end(key)
        return event_bytes(lines, _with(masked, path, rest)) if rest else b""


@dataclass(slots=True)
class _Held:
    """A text event held: its bytes, its data, and its other lines (as written, and
    masked); `out`, once released, its data masked."""

    raw: bytes
    data: str
    head: str
    masked_head: str
    out: str | None = None

    def written(self) -> bytes:
        """The event as it goes out: as it came where masking changed nothing."""
        if self.out == self.data and self.masked_head == self.head:
            return self.raw
        head = f"{self.masked_head}\n" if self.masked_head else ""
        return head.encode() + sse.event_of([("data", self.out or "")])


@dataclass(slots=True)
class _Plain:
    masking: PartStream
    held: deque[_Held] = field(default_factory=deque)  # its events not yet released


@dataclass(slots=True)
class _Stream:
    masking: MaskingStream
    # Its last event: its other lines, its payload masked without the streams' texts, and
    # where this stream's text is in it (a copy carries what the stream still holds).
    last: tuple[list[str], Any, tuple[Any, ...]] = ([], None, ())


# What streams: a string under a `delta` (chat completions' and Anthropic's deltas, the
# Responses API's `delta`) named as text is; or, in an event that names no kind (Gemini's
# chunks, a generic stream of `{"text": ...}`), any `text`; a choice's `text` (legacy
# completions: OpenAI's, vLLM's, llama.cpp's); and the top-level piece of the kinds that
# stream one there (Cohere v1's `text-generation`, Anthropic's legacy `completion`).
_DELTA_TEXTS = frozenset({"content", "refusal", "reasoning_content", "reasoning", "text",
                          "partial_json", "thinking", "arguments"})
_KIND_KEYS = ("type", "object", "event_type", "event")
_PIECES = {"text-generation": "text", "completion": "completion"}
_IDENTITY = ("item_id", "output_index", "content_index", "index")
# A tool call's arguments: what the agent acts on.
_ACTION_KEYS = frozenset({"tool_calls", "function_call", "partial_json"})
_ACTION_KINDS = frozenset({"response.function_call_arguments.delta",
                           "response.custom_tool_call_input.delta"})


def _kind(payload: dict[str, Any]) -> str:
    return next((payload[k] for k in _KIND_KEYS if isinstance(payload.get(k), str)), "")


def _identity(payload: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((k, payload[k]) for k in _IDENTITY if k in payload
                 and isinstance(payload[k], str | int))


def _index_of(item: Any, position: int) -> Any:
    """A list item's place in a stream: its `index` if it has one (a chat choice, a tool
    call), else its position."""
    if isinstance(item, dict) and isinstance(item.get("index"), int):
        return item["index"]
    return position


_CLEAN_MAX = 4096
_BIG = 10**8  # numbers masking reads as digits (see Masker.mask_json)
Streamed = list[tuple[tuple[Any, ...], tuple[Any, ...], str]]


def _read(payload: dict[str, Any], is_rule: Callable[[str], bool]
          ) -> tuple[Streamed, set[tuple[str, str]] | None]:
    """An event's streaming string fields, each as (path, path with list items by their
    `index`, text), none under a key-name rule (masked whole, never streamed); and what
    masking reads in the rest, as (key, string) pairs: its strings with their key (their
    context), its keys alone, or None where it reads more (a key-name rule, a table, a
    number of 9 digits or more)."""
    generic = not any(k in payload for k in _KIND_KEYS)
    piece = _PIECES.get(_kind(payload))
    found: Streamed = []
    pairs: set[tuple[str, str]] | None = set()
    # A container, its path, its path by index, whether under a `delta`, its key, and
    # whether under a key-name rule.
    stack: list[tuple[Any, tuple[Any, ...], tuple[Any, ...], bool, str, bool]] = [
        (payload, (), (), False, "", False)]
    while stack:
        node, path, key_path, in_delta, key, ruled = stack.pop()
        is_dict = isinstance(node, dict)
        if is_dict and ("columns" in node or "fields" in node):
            pairs = None
        k: Any  # a key of a dict, an index of a list
        for k, v in node.items() if is_dict else enumerate(node):
            at = (*path, k)
            rule = ruled
            if is_dict:
                key, rule = k, ruled or is_rule(k)
                if rule:
                    pairs = None
                elif pairs is not None:
                    pairs.add(("", k))
            if isinstance(v, str):
                if not rule and (k == "delta" or (in_delta and k in _DELTA_TEXTS)
                                 or (k == "text" and (generic or (
                                     len(path) == 2 and path[0] == "choices")))
                                 or (not path and k == piece)):
                    found.append((at, (*key_path, k), v))
                elif pairs is not None:
                    pairs.add((key, v))
            elif isinstance(v, dict | list):
                stack.append((v, at, (*key_path, k if is_dict else _index_of(v, k)),
                              in_delta or k == "delta", key, rule))
            elif isinstance(v, int | float) and not -_BIG < v < _BIG:
                pairs = None
    return sorted(found), pairs


def _with(value: Any, path: tuple[Any, ...], text: str) -> Any:
    """`value` with `text` at `path`, copied along it (the original is not changed)."""
    if not path:
        return text
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _with(value[path[0]], path[1:], text)
    return copy


def other_lines(raw: bytes) -> list[str]:
    """An event's lines other than its data (`event:`, `id:`, comments): what an event
    rewritten with `event_bytes` keeps."""
    return [line for line in raw.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("data:")]


def event_bytes(lines: list[str], payload: Any) -> bytes:
    return "\n".join([*lines, f"data: {jsonenc.dumps(payload)}", "", ""]).encode()
