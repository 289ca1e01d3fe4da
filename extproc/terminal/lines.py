"""The line editor of an interactive session: the gateway's, not the host's.

The agent's keystrokes never reach the host as typed. LineEditor edits the line itself,
with semantics of its own, and the relay sends the host only a decided line, whole, with
its Enter (CR), so the host's editor (readline, a terminal's line discipline, a program
in raw mode) never holds a byte nobody decided. What it models:

    printable ASCII          text, echoed
    DEL, BS                  erase the last character
    Ctrl-U                   erase the line (it is readable again: nothing was sent)
    Ctrl-W                   erase the last word (blanks, then what is not blank)
    CR, LF                   Enter: the line is submitted, to be decided
    Ctrl-C                   on a line: discard it (echo ^C); on an empty line: an
                             interrupt for the host (Interrupt: what runs there stops)
    Ctrl-D                   on an empty line: end of input for the host (EndOfInput);
                             on a line: ignored (readline's delete-char at the line's end)

Anything else — Tab, ESC and every escape sequence (arrows, Alt-keys, bracketed paste),
Ctrl-R, Ctrl-V, Ctrl-O, other control characters, a byte past ASCII (the host reads those
by a locale tollgate does not know: with readline's convert-meta they are Meta keys) —
makes the line unreadable until it is submitted or erased whole (Ctrl-U, Ctrl-C); the
pack refuses an unreadable line. So does a line the host's shell would not run as typed
(continuation.py: a trailing backslash, an open quote, a heredoc, history expansion).

Without a terminal the input is a stream: lines end at LF, and are decided as they are.

Keys that arrive while a line is decided wait: the relay takes the pieces one by one, so
what follows an Enter is edited as the next line once the decision is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from extproc.terminal.continuation import unreadable

# Characters a line keeps; beyond, it is cut and not readable (a shell's line, not a file).
MAX_LINE = 64 * 1024

_BS, _CTRL_C, _CTRL_D, _LF, _CR, _CTRL_U, _CTRL_W, _DEL = 8, 3, 4, 10, 13, 21, 23, 127
_WORD_SPACE = b" "  # Tab never enters a line: it is a key tollgate does not model
_ERASE = b"\b \b"


@dataclass(frozen=True, slots=True)
class Submitted:
    """A line entered: `readable` when what the host would run is `line` exactly, else
    `why` says what tollgate could not follow."""

    line: str
    readable: bool
    why: str | None = None


@dataclass(frozen=True, slots=True)
class Echo:
    """What the agent's terminal is shown for its keys (the editor's own echo)."""

    shown: bytes


class Interrupt:
    """Ctrl-C on an empty line: for the host, an interrupt of what runs there."""


class EndOfInput:
    """Ctrl-D on an empty line: for the host, the end of its input."""


INTERRUPT, END_OF_INPUT = Interrupt(), EndOfInput()
Piece = Echo | Submitted | Interrupt | EndOfInput


class LineEditor:
    """The line being typed, fed the keystrokes as they come (any split)."""

    def __init__(self, terminal: bool = True, max_line: int = MAX_LINE) -> None:
        """`terminal` False: the input is a stream (`ssh host < script`), which the host
        reads as it is: each byte but LF is the line's, nothing is edited or echoed."""
        self._terminal = terminal
        self._most = max_line
        self._line = bytearray()
        self._why: str | None = None  # why the line is not readable (None: it is)

    def feed(self, data: bytes) -> Iterator[Piece]:
        """The pieces `data` makes, in order: echo, lines submitted, Ctrl-C and Ctrl-D for
        the host. Keys after a piece are read only once it is taken."""
        echo = bytearray()
        for byte in data:
            piece = self._key(byte, echo)
            if piece is None:
                continue
            if echo:
                yield Echo(bytes(echo))
                echo.clear()
            yield piece
        if echo:
            yield Echo(bytes(echo))

    def finish(self) -> Submitted | None:
        """The input ended: the line typed without an Enter, if any."""
        if not self._line and self._why is None:
            return None
        return self._submit()

    # -- one key --------------------------------------------------------------------------

    def _key(self, byte: int, echo: bytearray) -> Piece | None:
        if byte in (_CR, _LF) if self._terminal else byte == _LF:
            if self._terminal:
                echo += b"\r\n"
            return self._submit()
        if 0x20 <= byte < _DEL or not self._terminal:
            if len(self._line) >= self._most:
                self._why = f"longer than {self._most} characters"
            else:
                self._line.append(byte)
                if self._terminal:
                    echo.append(byte)
            return None
        return self._control(byte, echo)

    def _control(self, byte: int, echo: bytearray) -> Piece | None:
        line = self._line
        if byte in (_DEL, _BS):
            if line:
                line.pop()
                echo += _ERASE
        elif byte == _CTRL_U:
            echo += _ERASE * len(line)
            self._clear()
        elif byte == _CTRL_W:
            end = len(line.rstrip(_WORD_SPACE))
            start = line.rfind(_WORD_SPACE, 0, end) + 1
            echo += _ERASE * (len(line) - start)
            del line[start:]
        elif byte == _CTRL_C:
            if not line and self._why is None:
                return INTERRUPT
            echo += b"^C\r\n"
            self._clear()
        elif byte == _CTRL_D:
            if not line and self._why is None:
                return END_OF_INPUT
        else:
            self._why = self._why or _key_name(byte)
            echo += _caret(byte)
        return None

    def _clear(self) -> None:
        self._line.clear()
        self._why = None

    def _submit(self) -> Submitted:
        text = self._line.decode("utf-8", "surrogateescape")
        why = self._why
        self._clear()
        if why is None:
            why = unreadable(text)
        return Submitted(text, why is None, why)


def _key_name(byte: int) -> str:
    """What the line was edited with, for the record."""
    if byte >= 0x80:
        return "a byte past ASCII (the host's locale decides what it is)"
    if byte == 0x1B:
        return "an escape sequence (arrows, Alt-keys, a bracketed paste)"
    if byte == 0x09:
        return "Tab (completion)"
    return f"Ctrl-{chr(byte + 0x40)}"


def _caret(byte: int) -> bytes:
    """How a key the editor does not model is echoed: ^X (^[ for ESC), M- past ASCII."""
    if byte >= 0x80:
        return b"M-" + _caret(byte & 0x7F)
    return bytes([byte]) if 0x20 <= byte < _DEL else b"^" + bytes([byte ^ 0x40])
