"""What an agent types into a terminal, line by line, as the host's line editor reads it.

In an interactive shell the agent's keystrokes go to the host as typed: the host's shell
echoes them and edits the line (readline, or the terminal's own line discipline) and runs
it at Enter. tollgate holds each Enter back until the line is decided, so it must know
the line without asking the host. LineTracker replays the editing whose effect depends
on nothing tollgate cannot see: text, erasing the character before the cursor (BS, DEL),
the word before it (Ctrl-W), the whole line (Ctrl-U), abandoning it (Ctrl-C: the shell
drops it and prompts anew). Any other key (Tab's completion, arrows and history,
Ctrl-A/E/K/R, Alt-anything) makes the line what only the host knows: the line is then
not readable, and says so, until it is submitted or abandoned.

Keys that make the shell run the line count as Enter: CR, LF, and Ctrl-O (readline's
operate-and-get-next, which also puts the next history line in the editor: the line after
it starts unreadable). A byte that ends an escape sequence early still acts: ESC then CR
is an Enter to a shell whose key timeout has passed, so it is held like one.

Bracketed paste (ESC[200~ ... ESC[201~) is text the editor inserts as it is, and each
newline in it is held as an Enter: the shell may run it (a line discipline without paste
support does), and where readline keeps the pasted lines to run them with the next Enter,
each has been decided already. A control character in a paste is literal to readline but
a key to a line discipline, so it makes the line unreadable.

A line the relay refuses is dropped on the host with Ctrl-C in its Enter's place; the
relay says so (`abandon`), since that also ends a paste the host was reading.

Text is UTF-8; an invalid sequence makes the line unreadable (shown as U+FFFD).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Characters a line keeps; beyond, it is cut and not readable (a shell's line, not a file).
MAX_LINE = 64 * 1024

_LF, _CR, _ESC, _DEL = 0x0A, 0x0D, 0x1B, 0x7F
_CTRL_C, _CTRL_D, _BS, _CTRL_O, _CTRL_U, _CTRL_W = 0x03, 0x04, 0x08, 0x0F, 0x15, 0x17
_CTRL_O_KEY = bytes([_CTRL_O])
_PASTE_START = b"200~"  # after ESC[
_PASTE_END = b"[201~"  # after ESC
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")
_WORD_SPACE = " \t"  # readline's unix-word-rubout: words end at blanks
_MOST_PARAMETERS = 16  # of a CSI sequence's bytes kept (only the paste marker is read)


@dataclass(frozen=True, slots=True)
class Submitted:
    """A line the agent entered: as the host's editor has it when `readable`, else as far
    as tollgate could follow it; `enter` is the key that submits it (CR, LF or Ctrl-O),
    for the relay to pass once the line is allowed (b"": the input ended without one)."""

    line: str
    readable: bool
    enter: bytes


# Keystrokes to pass to the host as they are, or a line submitted (its Enter held back).
Piece = bytes | Submitted


class LineTracker:
    """The line being typed, fed the keystrokes as they come (any split)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._most = max_line
        self._chars: list[str] = []
        self._readable = True
        self._paste = False
        # The escape sequence being read: "esc" (after ESC), "csi" (ESC[), "ss3" (ESC O),
        # "paste_end" (ESC in a paste: ESC[201~ ends it); None: none.
        self._escape: str | None = None
        self._sequence = bytearray()  # the escape sequence's bytes so far, after ESC or ESC[
        self._utf8 = bytearray()  # a character's first bytes

    def feed(self, data: bytes) -> Iterator[Piece]:
        """The keystrokes in `data`: the bytes to pass on now, and each line submitted,
        in order; the bytes and the Enters, joined, are `data`. The keystrokes are read
        as the pieces are taken (a line up to its Enter when it is yielded), so what the
        relay does about a line (`abandon`) counts for the keystrokes after it."""
        start = i = 0
        while i < len(data):
            if self._escape is None and not self._utf8:
                run = _PRINTABLE.match(data, i)
                if run is not None:
                    self._text(run.group().decode("ascii"))
                    i = run.end()
                    continue
            i += 1
            if self._take(data[i - 1]):
                if i - 1 > start:
                    yield data[start:i - 1]
                yield self._submit(data[i - 1:i])
                start = i
        if start < len(data):
            yield data[start:]

    def finish(self) -> Submitted | None:
        """The input ended: the line typed without an Enter (`enter` b""), if any."""
        if self._utf8:
            self._broken()
        if self._escape is not None:
            self._escape, self._readable = None, False
        if not self._chars and self._readable:
            return None
        line = self._submit(b"")
        self._paste = False
        return line

    @property
    def pasting(self) -> bool:
        """Whether a bracketed paste is in progress (the host reads keys literally)."""
        return self._paste

    def abandon(self) -> None:
        """The host was sent Ctrl-C in a refused line's Enter's place: it drops the line
        and any paste in progress, as for a Ctrl-C typed."""
        self._chars.clear()
        self._utf8.clear()
        self._readable, self._paste, self._escape = True, False, None

    # -- one byte at a time -------------------------------------------------------------

    def _take(self, byte: int) -> bool:
        """One byte (the printable ASCII runs take a shorter way); True: it submits."""
        if self._utf8 and not 0x80 <= byte <= 0xBF:
            self._broken()
        if byte in (_CR, _LF, _CTRL_C) or (byte == _CTRL_O and not self._paste):
            if self._escape is not None:  # the sequence ends here: this key acts
                self._escape, self._readable = None, False
            if byte == _CTRL_C:
                self.abandon()
                return False
            return True
        if self._escape is not None:
            self._escaped(byte)
        elif byte >= 0x80:
            self._utf8_byte(byte)
        elif byte == _ESC:
            self._escape = "paste_end" if self._paste else "esc"
            self._sequence.clear()
        elif 0x20 <= byte < _DEL:
            self._text(chr(byte))
        elif self._paste:
            self._readable = False  # literal to readline, a key to a line discipline
        else:
            self._control(byte)
        return False

    def _control(self, byte: int) -> None:
        chars = self._chars
        if byte in (_BS, _DEL):
            if chars:
                chars.pop()
        elif byte == _CTRL_U:
            chars.clear()
        elif byte == _CTRL_W:
            while chars and chars[-1] in _WORD_SPACE:
                chars.pop()
            while chars and chars[-1] not in _WORD_SPACE:
                chars.pop()
        elif byte != _CTRL_D or chars or not self._readable:
            # Ctrl-D on an empty line is the end of input (the shell leaves); on any other,
            # readline deletes the character under the cursor, wherever that is.
            self._readable = False

    def _escaped(self, byte: int) -> None:
        """A byte of an escape sequence (not CR, LF, Ctrl-C or Ctrl-O: those act)."""
        escape = self._escape
        if escape == "paste_end":
            if byte == _PASTE_END[len(self._sequence)]:
                self._sequence.append(byte)
                if len(self._sequence) == len(_PASTE_END):
                    self._escape = None
                    self._paste = False
                return
            # An escape in the paste that does not end it: literal to readline only.
            self._escape, self._readable = None, False
            self._text(self._sequence.decode("ascii"))
            self._take(byte)
            return
        if byte == _ESC or byte < 0x20:
            self._escape, self._readable = None, False
            self._take(byte)  # a control character ends the sequence, and acts
            return
        if escape == "esc" and byte in b"[O":
            self._escape = "csi" if byte == ord("[") else "ss3"
            return
        if escape == "csi" and 0x20 <= byte <= 0x3F:
            if len(self._sequence) < _MOST_PARAMETERS:
                self._sequence.append(byte)
            return
        self._escape = None
        if escape == "csi" and bytes(self._sequence) + bytes([byte]) == _PASTE_START:
            self._paste = True
            return
        self._readable = False
        if escape == "csi" and not 0x40 <= byte <= 0x7E:
            self._take(byte)  # not a CSI byte: the sequence broke off before it

    # -- text -----------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        room = self._most - len(self._chars)
        if len(text) > room:
            self._readable = False
            text = text[:room]
        self._chars.extend(text)

    def _utf8_byte(self, byte: int) -> None:
        if self._utf8:  # a continuation byte (any other broke the character off)
            self._utf8.append(byte)
            if len(self._utf8) == _utf8_length(self._utf8[0]):
                try:
                    self._text(self._utf8.decode())
                except UnicodeDecodeError:  # an overlong form, a surrogate, past U+10FFFF
                    self._readable = False
                    self._text("\ufffd")
                self._utf8.clear()
        elif _utf8_length(byte):
            self._utf8.append(byte)
        else:
            self._readable = False
            self._text("\ufffd")

    def _broken(self) -> None:
        """A character cut short by a byte that cannot continue it."""
        self._utf8.clear()
        self._readable = False
        self._text("\ufffd")

    # -- the line's end -------------------------------------------------------------------

    def _submit(self, enter: bytes) -> Submitted:
        line = Submitted("".join(self._chars), self._readable, enter)
        self._chars.clear()
        # Ctrl-O puts the next history line in the editor, unseen.
        self._readable = enter != _CTRL_O_KEY
        return line


def _utf8_length(lead: int) -> int:
    """The length of the UTF-8 sequence `lead` begins (0: it begins none)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0
