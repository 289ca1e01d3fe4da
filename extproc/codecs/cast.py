"""Terminal recordings as asciicast v2: written while an interactive session runs, played
back by `tollgate audit replay`.

The writer keeps what the agent was shown (masked), as JSON lines: a header, then events
`[seconds since the start, code, data]`: "o" output, "r" a resize ("80x24"), "m" a marker
(what tollgate decided of a line). It hands out what was written since the last take, for
the store's chunks (recordings.py), and counts the size and SHA-256 of all of it, which
the SHELL exchange's record keeps. Lines are ASCII (JSON escapes for the rest), so a
recording is valid UTF-8 text however the output was cut, and shows as it is anywhere.

Played back, the output is text an agent controlled, reaching an operator's terminal.
Some sequences make a terminal type into its own input (a cursor position report, the
window title read back: whatever the operator's shell reads next), and some change more
than the screen (the clipboard, the title, mouse reporting, bracketed paste mode left
on). So the player passes what draws a screen (text, cursor movement, erasing, colours,
scroll regions, the alternate screen), drops the rest (`ScreenFilter`), and leaves the
terminal's modes as it found them.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

# A recording's media type (the SHELL exchange's response body).
MEDIA_TYPE = "application/x-asciicast"


class CastError(Exception):
    """A recording that cannot be played (the message says which line, and why)."""


class CastWriter:
    """One session's recording, written as it goes; `t` is seconds since `started`."""

    def __init__(self, width: int, height: int, term: str, title: str,
                 started: float) -> None:
        header: dict[str, Any] = {"version": 2, "width": width, "height": height,
                                  "timestamp": int(started)}
        if title:
            header["title"] = title
        if term:
            header["env"] = {"TERM": term}
        self._header = _line(header)
        self._pending = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0
        self._last = 0.0
        # Output read in pieces may cut a character: its first bytes wait for the rest.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._write(self._header)

    def header_line(self) -> bytes:
        return self._header

    def output(self, t: float, data: bytes | str) -> None:
        """What the agent was shown: bytes as they went out (UTF-8, any cut), or text."""
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        if text:
            self._event(t, "o", text)

    def resize(self, t: float, width: int, height: int) -> None:
        self._event(t, "r", f"{width}x{height}")

    def marker(self, t: float, label: str) -> None:
        self._event(t, "m", label)

    def finish(self, t: float) -> None:
        """The output ended: a character it cut short is written (as U+FFFD)."""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._event(t, "o", rest)

    def take(self) -> bytes:
        """What was written since the last take (the header first), for the store."""
        taken = bytes(self._pending)
        self._pending.clear()
        return taken

    @property
    def pending(self) -> bytes:
        """What the next take returns."""
        return bytes(self._pending)

    @property
    def sha256(self) -> str:
        """Of everything written: what every take returned, joined, and what is pending."""
        return self._digest.hexdigest()

    def _event(self, t: float, code: str, data: str) -> None:
        # Events keep their order when the clock steps back.
        self._last = max(self._last, round(t, 6))
        self._write(_line([self._last, code, data]))

    def _write(self, line: bytes) -> None:
        self._pending += line
        self._digest.update(line)
        self.size += len(line)


def _line(value: Any) -> bytes:
    return (json.dumps(value) + "\n").encode("ascii")


def play(cast: bytes, write: Callable[[str], None], speed: float = 1.0,
         max_wait: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Write a recording's output as it was shown, through a ScreenFilter: each piece
    after the time since the one before, idle gaps cut to `max_wait` seconds, all divided
    by `speed`. CastError when it is not an asciicast v2 recording; what came before the
    fault has been played, and the terminal is left as it was found either way."""
    lines = cast.split(b"\n")
    header = _parsed(lines[0], 1)
    if not isinstance(header, dict) or header.get("version") != 2:
        raise CastError("line 1: not an asciicast v2 header")
    screen = ScreenFilter()
    at = 0.0
    try:
        for number, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            t, code, data = _event(_parsed(line, number), number)
            if code != "o":
                continue  # a resize or a marker: nothing to draw
            wait = min(max(t - at, 0.0), max_wait) / speed
            at = max(at, t)
            if wait > 0:
                sleep(wait)
            shown = screen.feed(data)
            if shown:
                write(shown)
    finally:
        ending = screen.close()
        if ending:
            write(ending)


def _parsed(line: bytes, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise CastError(f"line {number}: not JSON") from None


def _event(value: Any, number: int) -> tuple[float, str, str]:
    if (isinstance(value, list) and len(value) == 3 and not isinstance(value[0], bool)
            and isinstance(value[0], int | float) and isinstance(value[1], str)
            and isinstance(value[2], str)):
        return float(value[0]), value[1], value[2]
    raise CastError(f"line {number}: not an event [time, code, data]")


# -- what reaches the operator's terminal ------------------------------------------------

_ESC = "\x1b"
# Text, and the controls that only move the cursor or ring the bell.
_PLAIN = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
_CONTROLS = frozenset("\a\b\t\n\v\f\r")
# CSI sequences that draw: cursor movement, insert/delete, erase, scroll, tabs, colours
# (m), the scroll region (r), cursor save/restore (s, u). Not: reports (n, c, x), window
# operations (t), printing (i), keyboard and mouse settings, or anything private.
_CSI_FINALS = frozenset("@ABCDEFGHIJKLMPSTXZ`abdefgmrsu")
# Modes set with CSI ? h / l that change only the screen, with the value each is left at:
# origin mode, autowrap, the cursor shown, the alternate screens (1048: saved cursor).
_SCREEN_MODES = {"?1049": "l", "?1047": "l", "?47": "l", "?6": "l", "?7": "h", "?25": "h",
                 "?1048": None, "4": "l"}  # 4: insert mode (CSI 4 h)
_MOST_SEQUENCE = 64  # characters of a sequence's parameters; a longer one is dropped
_STRING_STARTS = frozenset("]P_^X")  # OSC, DCS, APC, PM, SOS: dropped to their end
_CANCEL = frozenset("\x18\x1a")  # CAN, SUB: a sequence is abandoned


class ScreenFilter:
    """Terminal output with what does more than draw the screen taken out; fed in any
    pieces (a sequence may span them). `close` returns what restores the modes the
    output changed."""

    def __init__(self) -> None:
        self._state = "ground"  # escape | intermediate | csi | string | string_escape
        self._sequence = ""
        self._modes: dict[str, str] = {}
        self._coloured = self._region = self._charset = False

    def feed(self, text: str) -> str:
        shown: list[str] = []
        i = 0
        while i < len(text):
            if self._state == "ground":
                run = _PLAIN.match(text, i)
                if run is not None:
                    shown.append(run.group())
                    i = run.end()
                    continue
            self._char(text[i], shown)
            i += 1
        return "".join(shown)

    def close(self) -> str:
        """The sequences that put back what the output changed (the alternate screen
        left first, so the rest applies to the screen the operator sees)."""
        self._state = "ground"
        restore = [f"\x1b[{mode}{value}" for mode, value in _SCREEN_MODES.items()
                   if value is not None and self._modes.get(mode, value) != value]
        if self._coloured:
            restore.append("\x1b[0m")
        if self._region:
            restore.append("\x1b7\x1b[r\x1b8")  # the region's reset homes the cursor
        if self._charset:
            restore.append("\x1b(B")
        self._modes.clear()
        self._coloured = self._region = self._charset = False
        return "".join(restore)

    def _char(self, char: str, shown: list[str]) -> None:
        state = self._state
        if state == "ground":
            if char == _ESC:
                self._state, self._sequence = "escape", ""
            elif char in _CONTROLS:
                shown.append(char)
        elif state in ("string", "string_escape"):
            self._string(char, shown)
        elif char in _CANCEL:
            self._state = "ground"
        elif char == _ESC:
            self._state, self._sequence = "escape", ""
        elif state == "csi":
            self._csi(char, shown)
        elif char < " " or "\x7f" <= char <= "\x9f":
            self._state = "ground"  # a control ends an escape sequence, and acts
            self._char(char, shown)
        elif state == "escape":
            self._escape(char, shown)
        else:
            self._intermediate(char, shown)

    def _escape(self, char: str, shown: list[str]) -> None:
        """The character after ESC."""
        if char == "[":
            self._state, self._sequence = "csi", ""
        elif char in _STRING_STARTS:
            self._state = "string"
        elif " " <= char <= "/":
            self._state, self._sequence = "intermediate", char
        else:
            self._state = "ground"
            if char in "78DEHM":  # cursor save/restore, index, next line, tab set
                shown.append(_ESC + char)

    def _intermediate(self, char: str, shown: list[str]) -> None:
        """ESC, an intermediate character, and this: of those, character set choices."""
        if char <= "/":
            self._sequence = (self._sequence + char)[:_MOST_SEQUENCE]
            return
        self._state = "ground"
        if self._sequence in ("(", ")") and char <= "~":
            shown.append(f"\x1b{self._sequence}{char}")
            if self._sequence == "(":  # G0, the set text is drawn in
                self._charset = char != "B"

    def _string(self, char: str, shown: list[str]) -> None:
        """A control string's character: dropped, up to its end (BEL, ST, or CAN/SUB);
        an ESC that is not ST ends it and begins a sequence."""
        if self._state == "string_escape":
            self._state = "ground" if char == "\\" else "escape"
            if char != "\\":
                self._char(char, shown)
        elif char == _ESC:
            self._state = "string_escape"
        elif char in "\a\x9c" or char in _CANCEL:
            self._state = "ground"

    def _csi(self, char: str, shown: list[str]) -> None:
        if " " <= char <= "?":
            if len(self._sequence) <= _MOST_SEQUENCE:
                self._sequence += char
        elif "@" <= char <= "~":
            self._state = "ground"
            self._csi_final(self._sequence, char, shown)
        elif char in _CONTROLS:
            shown.append(char)  # a terminal acts on it, and reads on
        elif char >= "\x80":
            self._state = "ground"
            self._char(char, shown)
        # other controls and DEL: ignored within the sequence, as a terminal does

    def _csi_final(self, parameters: str, final: str, shown: list[str]) -> None:
        if len(parameters) > _MOST_SEQUENCE or any(" " <= c <= "/" for c in parameters):
            return  # too long to be drawing, or intermediates (reports, settings)
        if final in "hl":
            private = "?" if parameters.startswith("?") else ""
            modes = [m for m in parameters.removeprefix("?").split(";")
                     if private + m in _SCREEN_MODES]
            if modes:
                shown.append(f"\x1b[{private}{';'.join(modes)}{final}")
                self._modes.update({private + m: final for m in modes})
            return
        if parameters[:1] in ("<", "=", ">", "?") or final not in _CSI_FINALS:
            return
        if final == "T" and ";" in parameters:
            return  # xterm's mouse highlight tracking, not a scroll
        shown.append(f"\x1b[{parameters}{final}")
        if final == "m":
            self._coloured = parameters not in ("", "0")
        elif final == "r":
            self._region = bool(parameters.strip(";"))
