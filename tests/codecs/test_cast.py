"""Terminal recordings: the asciicast v2 writer (chunks, size, SHA-256), the player's
timing (its clock is the `sleep` it is given: the tests pass one that notes each wait),
and what of the recorded output reaches an operator's terminal."""

from __future__ import annotations

import hashlib
import json

import pytest

from extproc.codecs.cast import CastError, CastWriter, ScreenFilter, play

STARTED = 1_760_000_000.25


def writer() -> CastWriter:
    return CastWriter(80, 24, "xterm-256color", "web-1 (s-1)", STARTED)


def lines_of(data: bytes) -> list[object]:
    return [json.loads(line) for line in data.decode("ascii").splitlines()]


class Clock:
    """The player's clock: notes each wait instead of sleeping it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))


def played(cast: bytes, **options: float) -> tuple[str, list[float]]:
    clock, shown = Clock(), []
    play(cast, shown.append, sleep=clock.sleep, **options)
    return "".join(shown), clock.waits


# -- the writer ---------------------------------------------------------------------------


def test_the_header_comes_first_and_the_events_follow_in_order() -> None:
    cast = writer()
    cast.output(0.5, b"$ ")
    cast.resize(1.25, 100, 30)
    cast.marker(2.0, "allow [trace abc]")
    cast.output(2.0000004, "ls\r\n")
    assert lines_of(cast.take()) == [
        {"version": 2, "width": 80, "height": 24, "timestamp": 1_760_000_000,
         "title": "web-1 (s-1)", "env": {"TERM": "xterm-256color"}},
        [0.5, "o", "$ "], [1.25, "r", "100x30"], [2.0, "m", "allow [trace abc]"],
        [2.0, "o", "ls\r\n"]]
    assert cast.header_line() == (json.dumps(
        {"version": 2, "width": 80, "height": 24, "timestamp": 1_760_000_000,
         "title": "web-1 (s-1)", "env": {"TERM": "xterm-256color"}}) + "\n").encode()


def test_without_a_terminal_type_or_title_the_header_names_neither() -> None:
    assert lines_of(CastWriter(80, 24, "", "", STARTED).take()) == [
        {"version": 2, "width": 80, "height": 24, "timestamp": 1_760_000_000}]


def test_takes_are_what_was_written_since_and_add_up_to_the_size_and_hash() -> None:
    cast = writer()
    taken = [cast.take()]
    assert cast.take() == b""
    for n in range(5):
        cast.output(n, f"line {n}\r\n")
        assert cast.pending == cast.pending  # a look does not take
        if n % 2:
            taken.append(cast.take())
    assert cast.pending != b""
    taken.append(cast.take())
    assert cast.pending == b""
    whole = b"".join(taken)
    assert cast.size == len(whole)
    assert cast.sha256 == hashlib.sha256(whole).hexdigest()
    assert [event[2] for event in lines_of(whole)[1:]] == [f"line {n}\r\n" for n in range(5)]


def test_a_character_cut_between_reads_is_written_whole() -> None:
    cast = writer()
    cast.take()
    data = "naïve € 🙂\r\n".encode()
    for i in range(len(data)):
        cast.output(0.1 * i, data[i:i + 1])
    cast.finish(9.0)
    assert "".join(event[2] for event in lines_of(cast.take())) == "naïve € 🙂\r\n"


def test_a_character_cut_at_the_end_is_written_as_a_replacement() -> None:
    cast = writer()
    cast.take()
    cast.output(0.1, b"ok \xe2\x82")
    cast.finish(0.2)
    cast.finish(0.3)  # nothing more to write
    assert lines_of(cast.take()) == [[0.1, "o", "ok "], [0.2, "o", "\ufffd"]]


def test_lines_are_ascii_json_whatever_the_output_holds() -> None:
    cast = writer()
    cast.take()
    cast.output(0.1, "\x1b[31mrouge\x1b[0m é\u202e\x00\n")
    assert cast.take() == (
        b'[0.1, "o", "\\u001b[31mrouge\\u001b[0m \\u00e9\\u202e\\u0000\\n"]\n')
    cast.output(0.2, b"\xff\xfe")
    assert lines_of(cast.take()) == [[0.2, "o", "\ufffd\ufffd"]]


def test_times_never_go_back_and_keep_microseconds() -> None:
    cast = writer()
    cast.take()
    cast.output(2.1234567, "a")
    cast.output(1.5, "b")  # the clock stepped back
    cast.output(2.5, "c")
    assert [event[0] for event in lines_of(cast.take())] == [2.123457, 2.123457, 2.5]


# -- the player ---------------------------------------------------------------------------


def recorded() -> bytes:
    """Output at 0.5 s, a 10 s idle gap, a resize and a marker, output 1 s later."""
    cast = writer()
    cast.output(0.5, "$ ")
    cast.output(10.5, "uptime\r\n")
    cast.resize(11.0, 120, 40)
    cast.marker(11.2, "allow")
    cast.output(11.5, " 10:00 up 1 day\r\n")
    return cast.take()


def test_play_writes_the_output_in_order_with_its_timing() -> None:
    shown, waits = played(recorded(), max_wait=60)
    assert shown == "$ uptime\r\n 10:00 up 1 day\r\n"
    assert waits == [0.5, 10.0, 1.0]


def test_idle_gaps_are_cut_to_max_wait_then_divided_by_speed() -> None:
    assert played(recorded())[1] == [0.5, 2.0, 1.0]
    assert played(recorded(), speed=4, max_wait=3)[1] == [0.125, 0.75, 0.25]
    assert played(recorded(), max_wait=0)[1] == []


def test_events_out_of_order_do_not_wait() -> None:
    cast = (b'{"version": 2, "width": 80, "height": 24}\n'
            b'[1.0, "o", "a"]\n[0.5, "o", "b"]\n\n[1.5, "o", "c"]\n[2, "x", "?"]\n')
    assert played(cast) == ("abc", [1.0, 0.5])


NOT_AN_EVENT = "not an event [time, code, data]"


@pytest.mark.parametrize(("cast", "said"), [
    (b"", "line 1: not JSON"),
    (b"not a cast\n", "line 1: not JSON"),
    (b'{"version": 1, "width": 80, "height": 24}\n', "line 1: not an asciicast v2 header"),
    (b'[0.1, "o", "x"]\n', "line 1: not an asciicast v2 header"),
    (b'{"version": 2}\n[0.1, "o", "seen"]\n[0.2, "o"]\n', f"line 3: {NOT_AN_EVENT}"),
    (b'{"version": 2}\n[true, "o", "x"]\n', f"line 2: {NOT_AN_EVENT}"),
    (b'{"version": 2}\n[0.1, "o", 5]\n', f"line 2: {NOT_AN_EVENT}"),
    (b'{"version": 2}\n[0.1, "o", "seen"]\n[0.2, "o", "cut', "line 3: not JSON"),
])
def test_a_recording_that_is_not_one_is_refused_at_its_line(cast: bytes, said: str) -> None:
    shown: list[str] = []
    with pytest.raises(CastError) as raised:
        play(cast, shown.append, sleep=Clock().sleep)
    assert str(raised.value) == said
    assert "".join(shown) == ("seen" if b"seen" in cast else "")


def test_a_terminal_left_changed_is_restored_even_when_the_recording_is_cut() -> None:
    cast = (b'{"version": 2}\n[0.1, "o", "\\u001b[?1049h\\u001b[?25l\\u001b[1;31mtop"]\n'
            b'[0.2, "o", ')
    shown: list[str] = []
    with pytest.raises(CastError):
        play(cast, shown.append, sleep=Clock().sleep)
    assert shown == ["\x1b[?1049h\x1b[?25l\x1b[1;31mtop", "\x1b[?1049l\x1b[?25h\x1b[0m"]


def test_what_was_written_plays_back_as_shown() -> None:
    cast = writer()
    text = "Last login: today\r\n\x1b[1;32mdeploy@web-1\x1b[0m:~$ ls\r\nfile  naïve\r\n"
    for i in range(0, len(text), 7):
        cast.output(i / 100, text[i:i + 7].encode())
    assert played(cast.take(), max_wait=0) == (text, [])


# -- what reaches the operator's terminal -------------------------------------------------

DRAWS = [
    "plain text, naïve, 日本語, \u202e reversed",
    "\x1b[31mred\x1b[0m \x1b[1;4;38;5;208mbold\x1b[m",
    "\x1b[H\x1b[2J\x1b[10;5H\x1b[K\x1b[3A\x1b[2B\x1b[C\x1b[D\x1b[1P\x1b[2@\x1b[3X\x1b[2L",
    "\x1b[5;20r\x1b[S\x1b[2T",
    "\x1b7moved\x1b8\x1b[s\x1b[u\x1bM\x1bD\x1bE",
    "\x1b(0lqk\x1b(B\x1b)0",
    "\a\b\t\n\v\f\r",
    "\x1b[?25l\x1b[?1049h\x1b[?7l\x1b[4h",
]

DROPS = [
    ("window title (OSC, BEL)", "\x1b]0;pwned\a"),
    ("window title (OSC, ST)", "\x1b]2;pwned\x1b\\"),
    ("clipboard write (OSC 52)", "\x1b]52;c;cm0gLXJmIH4K\a"),
    ("hyperlink (OSC 8)", "\x1b]8;;https://evil.test\x1b\\"),
    ("DCS (DECRQSS, a report)", "\x1bP$qm\x1b\\"),
    ("APC", "\x1b_payload\x1b\\"),
    ("cursor position report", "\x1b[6n"),
    ("device attributes", "\x1b[c\x1b[>c\x1b[=c"),
    ("window title read back", "\x1b[21t"),
    ("window resize", "\x1b[8;100;200t"),
    ("mode report", "\x1b[?2004$p"),
    ("mouse reporting", "\x1b[?1000h\x1b[?1006h"),
    ("focus events", "\x1b[?1004h"),
    ("bracketed paste mode", "\x1b[?2004h"),
    ("application cursor keys", "\x1b[?1h\x1b="),
    ("modifyOtherKeys", "\x1b[>4;2m"),
    ("mouse highlight tracking", "\x1b[1;2;3;4;5T"),
    ("media copy", "\x1b[5i"),
    ("soft reset", "\x1b[!p"),
    ("full reset", "\x1bc"),
    ("identify", "\x1bZ"),
    ("answerback (ENQ)", "\x05"),
    ("C1 CSI", "\x9b6n"),
    ("C1 OSC", "\x9d0;pwned\x9c"),
    ("DEL and other controls", "\x7f\x00\x0e\x0f\x1c"),
    ("an overlong sequence", "\x1b[" + "1;" * 40 + "m"),
]


@pytest.mark.parametrize("text", DRAWS)
def test_what_draws_the_screen_passes(text: str) -> None:
    assert ScreenFilter().feed(text) == text


@pytest.mark.parametrize("text", [text for _, text in DROPS],
                         ids=[name for name, _ in DROPS])
def test_what_does_more_than_draw_is_dropped(text: str) -> None:
    # A C1 control is dropped alone (a UTF-8 terminal does not act on it either).
    left = {"\x9b6n": "6n", "\x9d0;pwned\x9c": "0;pwned"}.get(text, "")
    assert ScreenFilter().feed(f"a{text}b") == f"a{left}b"


def test_mixed_modes_keep_only_the_screens() -> None:
    assert ScreenFilter().feed("\x1b[?25;1000;1049h\x1b[?2004;7l\x1b[4;20h") == (
        "\x1b[?25;1049h\x1b[?7l\x1b[4h")


def test_a_control_string_ends_at_an_escape_that_begins_a_sequence() -> None:
    assert ScreenFilter().feed("\x1b]0;title\x1b[31mred") == "\x1b[31mred"
    assert ScreenFilter().feed("\x1b]0;cancelled\x18text") == "text"


def test_controls_in_a_csi_act_and_the_sequence_reads_on() -> None:
    assert ScreenFilter().feed("\x1b[1\r\n2m") == "\r\n\x1b[12m"
    assert ScreenFilter().feed("\x1b[1\x05;2m") == "\x1b[1;2m"


def test_sequences_cut_anywhere_filter_alike() -> None:
    text = ("$ \x1b]0;user@host\a\x1b[1;32mok\x1b[0m\x1b[6n naïve\x1b[?1049h\x1b[?1000h"
            "\x1bP1$r0m\x1b\\\x1b(0q\x1b(B\x1b[21t end")
    whole = ScreenFilter().feed(text)
    for at in range(len(text) + 1):
        screen = ScreenFilter()
        assert screen.feed(text[:at]) + screen.feed(text[at:]) == whole
    assert whole == "$ \x1b[1;32mok\x1b[0m naïve\x1b[?1049h\x1b(0q\x1b(B end"


def test_close_restores_what_the_output_changed_and_only_that() -> None:
    screen = ScreenFilter()
    assert screen.close() == ""
    screen.feed("\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[?6h\x1b[4h\x1b[31m\x1b[2;10r\x1b(0")
    assert screen.close() == ("\x1b[?1049l\x1b[?6l\x1b[?7h\x1b[?25h\x1b[4l\x1b[0m"
                              "\x1b7\x1b[r\x1b8\x1b(B")
    assert screen.close() == ""
    screen.feed("\x1b[?1049h\x1b[?1049l\x1b[?25l\x1b[?25h\x1b(0\x1b(B")
    assert screen.close() == ""
