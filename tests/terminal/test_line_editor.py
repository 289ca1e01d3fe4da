"""The gateway's line editor (extproc/terminal/lines.py): what keys make of a line, what the
agent is shown, and what may go to the host (Ctrl-C, Ctrl-D on an empty line).

Each case is checked fed whole, cut at every byte boundary and a byte at a time: the
pieces are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.terminal.lines import (
    END_OF_INPUT,
    INTERRUPT,
    Echo,
    EndOfInput,
    Interrupt,
    LineEditor,
    Submitted,
)

# A line: (text, readable); "INT" and "EOF": Ctrl-C or Ctrl-D for the host.
Event = tuple[str, bool] | str

CASES: list[tuple[str, bytes, list[Event]]] = [
    ("plain", b"ls -l\r", [("ls -l", True)]),
    ("line feed", b"uptime\n", [("uptime", True)]),
    ("two lines in one write", b"id\rpwd\r", [("id", True), ("pwd", True)]),
    ("CR LF is two Enters", b"ls\r\n", [("ls", True), ("", True)]),
    ("DEL", b"ls -l\x7f\x7fla\r", [("ls la", True)]),
    ("BS", b"catt\x08 x\r", [("cat x", True)]),
    ("erase past the start", b"a\x7f\x7f\x7fb\r", [("b", True)]),
    ("Ctrl-U", b"rm -f x\x15ls\r", [("ls", True)]),
    ("Ctrl-W", b"cat /etc/passwd\x17/etc/hosts\r", [("cat /etc/hosts", True)]),
    ("Ctrl-W over blanks", b"ab  cd  \x17e\r", [("ab  e", True)]),
    ("Ctrl-W twice", b"a b c\x17\x17d\r", [("a d", True)]),
    ("Ctrl-W on an empty line", b"\x17ls\r", [("ls", True)]),
    ("Ctrl-C discards a line", b"rm -f x\x03ls\r", [("ls", True)]),
    ("Ctrl-C on an empty line is for the host", b"\x03ls\r", ["INT", ("ls", True)]),
    ("Ctrl-C discards an unreadable line", b"ab\tc\x03ls\r", [("ls", True)]),
    ("Ctrl-U makes an unreadable line readable", b"ab\tc\x15ls\r", [("ls", True)]),
    ("Ctrl-D on an empty line is for the host", b"\x04", ["EOF"]),
    ("Ctrl-D on a line is ignored", b"ls\x04 -l\r", [("ls -l", True)]),
    ("Tab", b"cat /etc/pa\tsswd\r", [("cat /etc/passwd", False)]),
    ("an arrow", b"\x1b[A\r", [("[A", False)]),
    ("Ctrl-A", b"ls\x01rm \r", [("lsrm ", False)]),
    ("Ctrl-R", b"\x12ssh\r", [("ssh", False)]),
    ("Ctrl-V", b"echo \x16\x01\r", [("echo ", False)]),
    ("Ctrl-O is no Enter", b"ls\x0fpwd\r", [("lspwd", False)]),
    ("DEL does not undo an unmodeled key", b"ls\t\x7f\r", [("l", False)]),
    ("a byte past ASCII", "echo café\r".encode(), [("echo caf", False)]),
    ("a paste is keys", b"\x1b[200~ls\nrm x\x1b[201~\r",
     [("[200~ls", False), ("rm x[201~", False)]),
    ("a trailing backslash", b"ls \\\r", [("ls \\", False)]),
    ("an open quote", b"echo 'a\r", [("echo 'a", False)]),
    ("a heredoc", b"cat <<EOF\r", [("cat <<EOF", False)]),
    ("history expansion", b"echo !!\r", [("echo !!", False)]),
]


def events(chunks: Iterable[bytes], editor: LineEditor | None = None
           ) -> tuple[list[Event], bytes]:
    """The lines and host keys `chunks` make, and everything echoed."""
    editor = editor or LineEditor()
    found: list[Event] = []
    shown = bytearray()
    for chunk in chunks:
        for piece in editor.feed(chunk):
            if isinstance(piece, Echo):
                assert piece.shown
                shown += piece.shown
            elif isinstance(piece, Submitted):
                assert piece.readable == (piece.why is None)
                found.append((piece.line, piece.readable))
            else:
                found.append("INT" if isinstance(piece, Interrupt) else "EOF")
    return found, bytes(shown)


def cuts(keys: bytes) -> Iterator[list[bytes]]:
    """`keys` whole, cut in two at every boundary, and a byte at a time."""
    yield [keys]
    for at in range(1, len(keys)):
        yield [keys[:at], keys[at:]]
    yield [keys[i:i + 1] for i in range(len(keys))]


@pytest.mark.parametrize(("keys", "expected"), [(k, e) for _, k, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_lines_however_the_keystrokes_are_cut(keys: bytes, expected: list[Event]) -> None:
    whole = events([keys])
    assert whole[0] == expected
    for chunks in cuts(keys):
        assert events(chunks) == whole, chunks


@pytest.mark.parametrize(("keys", "shown"), [
    (b"ls\r", b"ls\r\n"),
    (b"lx\x7fs", b"lx\b \bs"),
    (b"a b\x17", b"a b\b \b"),
    (b"ab\x15", b"ab\b \b\b \b"),
    (b"ls\x03", b"ls^C\r\n"),
    (b"a\tb\x1b", b"a^Ib^["),
    (b"\xc3", b"M-C"),
    (b"ls\x04", b"ls"),
])
def test_what_the_agent_is_shown(keys: bytes, shown: bytes) -> None:
    assert events([keys])[1] == shown


def test_a_piece_is_made_only_when_the_one_before_is_taken() -> None:
    """Keys after an Enter wait for the line's decision: the relay takes one piece at a
    time, and the editor reads on only then."""
    editor = LineEditor()
    pieces = editor.feed(b"ls\rrm")
    assert next(pieces) == Echo(b"ls\r\n")
    assert next(pieces) == Submitted("ls", True)
    assert editor.finish() is None  # "rm" not read yet
    assert list(pieces) == [Echo(b"rm")]
    assert editor.finish() == Submitted("rm", True)


def test_the_host_keys_are_markers() -> None:
    assert list(LineEditor().feed(b"\x03\x04")) == [INTERRUPT, END_OF_INPUT]
    assert isinstance(INTERRUPT, Interrupt) and isinstance(END_OF_INPUT, EndOfInput)


def test_a_line_too_long_is_cut_and_not_readable() -> None:
    found, _ = events([b"echo " + b"x" * 20 + b"\r", b"echo ok\r"], LineEditor(max_line=10))
    assert found == [("echo xxxxx", False), ("echo ok", True)]


@pytest.mark.parametrize(("keys", "expected"), [
    (b"", None),
    (b"ls -l", Submitted("ls -l", True)),
    (b"ls\x1b", Submitted("ls", False, "an escape sequence (arrows, Alt-keys, a bracketed "
                                        "paste)")),
    (b"a\tb\r", None),
])
def test_finish_submits_the_line_left_without_an_enter(keys: bytes,
                                                       expected: Submitted | None) -> None:
    editor = LineEditor()
    list(editor.feed(keys))
    assert editor.finish() == expected
    assert editor.finish() is None


def test_without_a_terminal_the_input_is_a_stream() -> None:
    """`ssh host < script`: lines end at LF; every other byte is the line's, unedited."""
    editor = LineEditor(terminal=False)
    pieces = list(editor.feed("a\tb\x7f\x03\r café\nls\n".encode()))
    assert pieces == [Submitted("a\tb\x7f\x03\r café", True), Submitted("ls", True)]


KEYS = st.lists(st.one_of(
    st.sampled_from([b"\r", b"\n", b"\x03", b"\x04", b"\x08", b"\x7f", b"\x0f", b"\x15",
                     b"\x16", b"\x17", b"\t", b"\x1b", b"\x1b[A", b"\x1b[200~", b"\\",
                     b"'", b"!", b"\xc3\xa9"]),
    st.binary(max_size=6)), max_size=40).map(b"".join)


@settings(derandomize=True, database=None)
@given(KEYS, st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_any_keystrokes_however_cut(keys: bytes, at: list[int]) -> None:
    """The same lines however the keys are cut; a line is printable ASCII only, and one
    that is readable was typed with no key the editor does not model."""
    whole = events([keys])
    bounds = sorted({min(a, len(keys)) for a in at} | {0, len(keys)})
    assert events([keys[a:b] for a, b in pairwise(bounds)]) == whole
    for event in whole[0]:
        if isinstance(event, tuple):
            assert all(" " <= char <= "~" for char in event[0]), event
