"""The line tracker: what an agent's keystrokes make of the line the host's shell runs.

Each case is checked fed whole, cut at every byte boundary and fed a byte at a time: the
lines are the same, and the bytes passed on with the Enters, joined, are the keystrokes
(nothing dropped, nothing reordered). The readable cases are then typed into a real bash
on a pseudo-terminal, whose history must hold the lines the tracker read.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.ssh.lines import LineTracker, Piece, Submitted

Line = tuple[str, bool, bytes]

READABLE: list[tuple[str, bytes, list[Line]]] = [
    ("plain", b"ls -l\r", [("ls -l", True, b"\r")]),
    ("line feed", b"uptime\n", [("uptime", True, b"\n")]),
    ("two lines in one write", b"id\rpwd\r", [("id", True, b"\r"), ("pwd", True, b"\r")]),
    ("CR LF is two Enters", b"ls\r\n", [("ls", True, b"\r"), ("", True, b"\n")]),
    ("empty line", b"\r", [("", True, b"\r")]),
    ("DEL", b"ls -l\x7f\x7fla\r", [("ls la", True, b"\r")]),
    ("BS", b"catt\x08 x\r", [("cat x", True, b"\r")]),
    ("erase past the start", b"a\x7f\x7f\x7fb\r", [("b", True, b"\r")]),
    ("erase a two-byte character", "echo café\x7fe\r".encode(), [("echo cafe", True, b"\r")]),
    ("erase a three-byte character", "echo €1\x7f\x7f2\r".encode(), [("echo 2", True, b"\r")]),
    ("erase a four-byte character", "echo 🙂\x7f!\r".encode(), [("echo !", True, b"\r")]),
    ("Ctrl-U", b"rm -f x\x15ls\r", [("ls", True, b"\r")]),
    ("Ctrl-W", b"cat /etc/passwd\x17/etc/hosts\r", [("cat /etc/hosts", True, b"\r")]),
    ("Ctrl-W over blanks", b"ab  cd  \x17e\r", [("ab  e", True, b"\r")]),
    ("Ctrl-W twice", b"a b c\x17\x17d\r", [("a d", True, b"\r")]),
    ("Ctrl-W on an empty line", b"\x17ls\r", [("ls", True, b"\r")]),
    ("Ctrl-C abandons", b"rm -f x\x03ls\r", [("ls", True, b"\r")]),
    ("Ctrl-C makes an unreadable line readable", b"ab\tc\x03ls\r", [("ls", True, b"\r")]),
    ("Ctrl-D on an empty line", b"\x04ls\r", [("ls", True, b"\r")]),
    ("paste", b"echo \x1b[200~a b\x1b[201~ c\r", [("echo a b c", True, b"\r")]),
    ("paste keeps what a key would be", b"\x1b[200~echo ~[A\x1b[201~\r",
     [("echo ~[A", True, b"\r")]),
    ("paste submits at each newline", b"\x1b[200~echo a\necho b\r\x1b[201~\r",
     [("echo a", True, b"\n"), ("echo b", True, b"\r"), ("", True, b"\r")]),
    ("paste of UTF-8", "\x1b[200~echo née\x1b[201~\r".encode(), [("echo née", True, b"\r")]),
    ("text after a paste is typed again", b"\x1b[200~a\x1b[201~b\x7fc\r",
     [("ac", True, b"\r")]),
]

UNREADABLE: list[tuple[str, bytes, list[Line]]] = [
    ("Tab", b"cat /etc/pa\tsswd\r", [("cat /etc/passwd", False, b"\r")]),
    ("up arrow", b"\x1b[A\r", [("", False, b"\r")]),
    ("left arrow, then text", b"lsa\x1b[D-\r", [("lsa-", False, b"\r")]),
    ("application-mode arrow", b"ls\x1bOD\x1bOC\r", [("ls", False, b"\r")]),
    ("Home", b"ls\x1b[1~x \r", [("lsx ", False, b"\r")]),
    ("Alt-b", b"ls -l\x1bbx\r", [("ls -lx", False, b"\r")]),
    ("Ctrl-A", b"ls\x01rm \r", [("lsrm ", False, b"\r")]),
    ("Ctrl-E", b"ls\x05\r", [("ls", False, b"\r")]),
    ("Ctrl-K", b"ls\x0b\r", [("ls", False, b"\r")]),
    ("Ctrl-R", b"\x12ssh\r", [("ssh", False, b"\r")]),
    ("Ctrl-P", b"\x10\r", [("", False, b"\r")]),
    ("Ctrl-V", b"echo \x16\x01\r", [("echo ", False, b"\r")]),
    ("Ctrl-D on a line", b"ls\x04\r", [("ls", False, b"\r")]),
    ("Ctrl-U after a cursor move", b"ls\x1b[Drm\x15x\r", [("x", False, b"\r")]),
    ("ESC then Enter is an Enter", b"ls\x1b\r", [("ls", False, b"\r")]),
    ("CSI cut by Enter", b"ls\x1b[1;\r", [("ls", False, b"\r")]),
    ("CSI cut by DEL", b"ls\x1b[1\x7fx\r", [("lx", False, b"\r")]),
    ("ESC ESC then a paste", b"\x1b\x1b[200~x\n\x1b[201~\r",
     [("x", False, b"\n"), ("", True, b"\r")]),
    ("a paste's end outside a paste", b"ls\x1b[201~\r", [("ls", False, b"\r")]),
    ("Tab in a paste", b"\x1b[200~a\tb\x1b[201~\r", [("ab", False, b"\r")]),
    ("DEL in a paste", b"\x1b[200~ab\x7f\x1b[201~\r", [("ab", False, b"\r")]),
    ("Ctrl-U in a paste", b"\x1b[200~ls /\x15rm x\x1b[201~\r", [("ls /rm x", False, b"\r")]),
    ("another escape in a paste", b"\x1b[200~a\x1b[Ab\x1b[201~\r", [("a[Ab", False, b"\r")]),
    ("a paste's end marker cut short", b"\x1b[200~a\x1b[20x\x1b[201~\r",
     [("a[20x", False, b"\r")]),
    ("Ctrl-C ends a paste", b"\x1b[200~rm\x03\tls\r", [("ls", False, b"\r")]),
    ("Ctrl-O runs the line; the next is history's", b"ls\x0fpwd\rid\r",
     [("ls", True, b"\x0f"), ("pwd", False, b"\r"), ("id", True, b"\r")]),
    ("Ctrl-O in a paste is literal", b"\x1b[200~ls\x0f\x1b[201~\r", [("ls", False, b"\r")]),
    ("a stray continuation byte", b"ls \x80\r", [("ls \ufffd", False, b"\r")]),
    ("a character cut short", b"ls \xc3x\r", [("ls \ufffdx", False, b"\r")]),
    ("a character cut by Enter", b"ls \xe2\x82\r", [("ls \ufffd", False, b"\r")]),
    ("an overlong form", b"ls \xc0\xaf\r", [("ls \ufffd\ufffd", False, b"\r")]),
    ("a surrogate", b"ls \xed\xa0\x80\r", [("ls \ufffd", False, b"\r")]),
    ("past U+10FFFF", b"ls \xf4\x90\x80\x80\r", [("ls \ufffd", False, b"\r")]),
    ("unreadable until submitted", b"a\tb\rc\r", [("ab", False, b"\r"), ("c", True, b"\r")]),
]


def feed(chunks: Iterable[bytes], tracker: LineTracker | None = None,
         ) -> tuple[list[Line], bytes]:
    """The lines `chunks` submit, and every byte passed on (the Enters included), in order.
    Each feed's pieces are as the relay takes them: no empty piece, no two byte pieces
    in a row (what passes at once is one write)."""
    tracker = tracker or LineTracker()
    lines: list[Line] = []
    passed = bytearray()
    for chunk in chunks:
        pieces = list(tracker.feed(chunk))
        assert all(piece for piece in pieces if isinstance(piece, bytes))
        assert not any(isinstance(a, bytes) and isinstance(b, bytes)
                       for a, b in pairwise(pieces))
        for piece in pieces:
            passed += _bytes_of(piece, lines)
    return lines, bytes(passed)


def _bytes_of(piece: Piece, lines: list[Line]) -> bytes:
    if isinstance(piece, Submitted):
        lines.append((piece.line, piece.readable, piece.enter))
        return piece.enter
    return piece


def cuts(keys: bytes) -> Iterator[list[bytes]]:
    """`keys` whole, cut in two at every boundary, and a byte at a time."""
    yield [keys]
    for at in range(1, len(keys)):
        yield [keys[:at], keys[at:]]
    yield [keys[i:i + 1] for i in range(len(keys))]


@pytest.mark.parametrize(("keys", "expected"), [(k, e) for _, k, e in READABLE + UNREADABLE],
                         ids=[name for name, _, _ in READABLE + UNREADABLE])
def test_lines_however_the_keystrokes_are_cut(keys: bytes, expected: list[Line]) -> None:
    for chunks in cuts(keys):
        lines, passed = feed(chunks)
        assert lines == expected, chunks
        assert passed == keys, chunks


def test_bytes_pass_at_once_and_only_the_enter_is_held() -> None:
    tracker = LineTracker()
    assert list(tracker.feed(b"rm -rf /tmp/x")) == [b"rm -rf /tmp/x"]
    assert list(tracker.feed(b"\x7fy\rls")) == [
        b"\x7fy", Submitted("rm -rf /tmp/y", True, b"\r"), b"ls"]
    assert list(tracker.feed(b"\n")) == [Submitted("ls", True, b"\n")]


@pytest.mark.parametrize(("keys", "after"), [
    # The host got Ctrl-C for the refused first line: the paste is over there, so what
    # follows is typed (DEL erases), and the paste's end marker a key it does not know.
    (b"\x1b[200~rm x\nls\x7f\x1b[201~\r", [("l", False, b"\r")]),
    # Ctrl-O refused: no history line was put in the editor.
    (b"rm x\x0fpwd\r", [("pwd", True, b"\r")]),
])
def test_a_line_the_relay_abandons_is_dropped_with_its_paste(keys: bytes,
                                                            after: list[Line]) -> None:
    tracker = LineTracker()
    pieces = tracker.feed(keys)
    for piece in pieces:
        if isinstance(piece, Submitted):
            tracker.abandon()  # refused: Ctrl-C goes to the host in the Enter's place
            break
    lines: list[Line] = []
    for piece in pieces:
        _bytes_of(piece, lines)
    assert lines == after


def test_a_line_too_long_is_cut_and_not_readable() -> None:
    lines, _ = feed([b"echo " + b"x" * 20 + b"\r", b"echo ok\r"],
                    LineTracker(max_line=10))
    assert lines == [("echo xxxxx", False, b"\r"), ("echo ok", True, b"\r")]
    lines, _ = feed(["échos".encode() + b"\r"], LineTracker(max_line=3))
    assert lines == [("éch", False, b"\r")]


@pytest.mark.parametrize(("keys", "expected"), [
    (b"", None),
    (b"ls -l", ("ls -l", True, b"")),
    (b"ls\x1b", ("ls", False, b"")),
    (b"ls \xc3", ("ls \ufffd", False, b"")),
    (b"a\tb\r", None),
    (b"\x1b[A", ("", False, b"")),
    (b"ls\r\x1b[200~", None),
])
def test_finish_submits_the_line_left_without_an_enter(keys: bytes,
                                                       expected: Line | None) -> None:
    tracker = LineTracker()
    list(tracker.feed(keys))
    found = tracker.finish()
    assert (None if found is None else (found.line, found.readable, found.enter)) == expected
    assert tracker.finish() is None


# Keystrokes drawn mostly from the bytes the tracker treats apart.
KEYS = st.lists(st.one_of(
    st.sampled_from([b"\r", b"\n", b"\x03", b"\x04", b"\x08", b"\x7f", b"\x0f", b"\x15",
                     b"\x17", b"\t", b"\x1b", b"[", b"O", b"~", b"\x1b[200~", b"\x1b[201~",
                     b"\x1b[A", b"\xc3", b"\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x99\x82"]),
    st.binary(max_size=6)), max_size=40).map(b"".join)


@given(KEYS, st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_any_keystrokes_however_cut_lose_nothing(keys: bytes, at: list[int]) -> None:
    whole = feed([keys])
    bounds = sorted({min(a, len(keys)) for a in at} | {0, len(keys)})
    assert feed([keys[a:b] for a, b in pairwise(bounds)]) == whole
    assert whole[1] == keys
    for line, _, _ in whole[0]:  # a control character is a key, never text
        assert not any(char < " " or char == "\x7f" for char in line), line


# -- against a real bash ----------------------------------------------------------------


class Bash:
    """An interactive bash on a pseudo-terminal of its own (its controlling terminal),
    typed into as an agent's keystrokes reach the host."""

    PROMPT = b"READY> "

    def __init__(self, home: Path) -> None:
        self._master, slave = pty.openpty()
        env = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "LANG": "C.UTF-8",
               # No history file: bash run as root with HISTFILE=/dev/null truncates its
               # history at exit by writing a regular file over /dev/null.
               "HOME": str(home), "PS1": self.PROMPT.decode(), "HISTFILE": "",
               "INPUTRC": "/dev/null"}
        self._process = subprocess.Popen(
            ["setsid", "--ctty", "bash", "--norc", "--noprofile", "-i"],
            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=home)
        os.close(slave)
        self._output = b""
        self.prompted()

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def prompted(self, timeout: float = 10.0) -> None:
        """Wait for the next prompt: bash has run the line, and reads the next."""
        deadline = time.monotonic() + timeout
        while self.PROMPT not in self._output:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._master], [], [], left)[0]:
                raise AssertionError(f"no prompt within {timeout}s: {self._output[-200:]!r}")
            self._output += os.read(self._master, 65536)
        self._output = self._output.split(self.PROMPT, 1)[1]

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        os.close(self._master)


@pytest.mark.e2e  # runs bash
def test_readable_lines_are_what_bash_runs(tmp_path: Path) -> None:
    """Each readable case, made a harmless command (`: ` before it), typed into bash
    after its prompt; bash's history is then what it ran."""
    typed: list[tuple[bytes, list[Line]]] = []
    for _, case, _ in READABLE:
        keys = b": " + case
        lines = feed([keys])[0]
        if (b"\x03" in keys  # a signal's timing is the kernel's
                or (b"\x1b[200~" in keys and b"\n" in keys)  # bash keeps a pasted newline
                or not all(readable for _, readable, _ in lines)):
            continue
        typed.append((keys, lines))
    bash = Bash(tmp_path)
    try:
        for keys, lines in typed:
            bash.type(keys)
            for _ in lines:
                bash.prompted()
        bash.type(f"history -w {tmp_path}/ran\r".encode())
        bash.prompted()
    finally:
        bash.close()
    expected = [line for _, lines in typed for line, _, _ in lines if line]
    ran = (tmp_path / "ran").read_text().splitlines()
    assert ran == [*expected, f"history -w {tmp_path}/ran"]
