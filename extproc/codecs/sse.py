"""Server-sent events (text/event-stream) cut into events as the bytes arrive.

One splitter serves every reader of event streams (a model's streamed answer, an MCP
server's messages): events end at a blank line, with LF, CRLF or CR line ends; `data`
lines join per the SSE spec. Whatever the cuts between chunks, the events are the same.
"""

from __future__ import annotations

import re

_SSE_FIELDS = frozenset({b"", b"data", b"event", b"id", b"retry"})  # b"": a comment, a blank
_LINE_END = re.compile(rb"\r\n|\r|\n")
# A line end then a blank line; a CR is a line end of its own only when no LF follows it.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_CR, _LF, _CR_BYTE = 0x0D, 0x0A, b"\r"


class EventSplitter:
    """`feed` returns the events the bytes so far complete, each exactly as received
    (its terminating blank line included); `finish` what is left at the stream's end."""

    def __init__(self) -> None:
        self._buffer = bytearray()  # from the start of the current event
        self._search = 0  # where an event's end may start in the buffer, at the earliest
        self._cr_seen = False  # CR line ends are possible (else events end at LF LF)

    def feed(self, chunk: bytes) -> list[bytes]:
        self._cr_seen = self._cr_seen or _CR_BYTE in chunk
        self._buffer += chunk
        return self._complete(final=False)

    def finish(self) -> list[bytes]:
        """The end of the stream: what is left, an unterminated last event included."""
        events = self._complete(final=True)
        if self._buffer:
            events.append(bytes(self._buffer))
            self._buffer.clear()
            self._search = 0
        return events

    def _complete(self, *, final: bool) -> list[bytes]:
        buffer, size = self._buffer, len(self._buffer)
        events: list[bytes] = []
        start = 0
        while start < size:
            if self._cr_seen:
                # A blank line right at the start is an (empty) event of its own.
                m = _LINE_END.match(buffer, start) or _EVENT_END.search(buffer, self._search)
                if m is None:
                    self._search = max(start, size - 3)  # an end may begin in the last 3 bytes
                    break
                if m.end() == size and buffer[-1] == _CR and not final:
                    self._search = m.start()  # maybe the first half of a CRLF: wait for it
                    break
                end = m.end()
            elif buffer[start] == _LF:
                end = start + 1
            else:
                # LF only so far, as every API sends: memchr-fast, ~3x the regex's speed.
                found = buffer.find(b"\n\n", self._search)
                if found < 0:
                    self._search = max(start, size - 1)
                    break
                end = found + 2
            events.append(bytes(buffer[start:end]))
            start = self._search = end
        del buffer[:start]
        self._search -= start
        return events


def event_data(raw: bytes) -> tuple[bytes | None, bool]:
    """An event's data lines joined with LF (the SSE spec), or None when it has none; and
    whether a line is no SSE field (`data`, `event`, `id`, `retry`, a `:` comment)."""
    data = []
    foreign = False
    for line in raw.split(b"\n") if _CR_BYTE not in raw else _LINE_END.split(raw):
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value[:1] == b" " else value)
        elif name not in _SSE_FIELDS:
            foreign = True
    return (b"\n".join(data) if data else None), foreign


_BOM = "\ufeff"


def fields(raw: bytes, *, first: bool = False) -> list[tuple[str, str]]:
    """An event's lines as a client parses them (WHATWG's "interpret an event stream"):
    (name, value) pairs, a comment named ":", a line without a colon a field with an
    empty value. Names are case-sensitive (`Data` is no `data`); one space after the
    colon is dropped; `first`: the stream's first event, whose leading BOM a client
    strips."""
    text = raw.decode("utf-8", "replace")
    if first:
        text = text.removeprefix(_BOM)
    found = []
    for line in _LINE_END_TEXT.split(text):
        if not line:
            continue
        if line[0] == ":":
            found.append((":", line[1:]))
            continue
        name, _, value = line.partition(":")
        found.append((name, value[1:] if value[:1] == " " else value))
    return found


_LINE_END_TEXT = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    """`feed` returns the lines the bytes so far complete, each as received (its LF, or
    CRLF, included); `finish` what is left at the stream's end: a stream of JSON written
    one message a line, split as EventSplitter splits events."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        end = chunk.rfind(b"\n")
        if end == -1:
            self._buffer += chunk
            return []
        whole = bytes(self._buffer) + chunk[: end + 1]
        self._buffer[:] = chunk[end + 1 :]
        return whole.splitlines(keepends=True)

    def finish(self) -> list[bytes]:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return [rest] if rest else []


def event_of(lines: list[tuple[str, str]]) -> bytes:
    """An event written from (name, value) pairs as `fields` reads them, LF-ended (`data`
    a line per line of it; other values, read from one line, hold no line end)."""
    out = []
    for name, value in lines:
        if name == "data":
            out += [f"data: {part}" for part in value.split("\n")]
        else:
            out.append(f"{name}: {value}" if name != ":" else f":{value}")
    return "\n".join([*out, "", ""]).encode()
