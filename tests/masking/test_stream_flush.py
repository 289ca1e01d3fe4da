"""A stream's flush (a pause in the input): what it lets go, what it keeps, and what a
value written slowly can and cannot do (extproc/masking/stream.py's docstring).

Chunks are cut anywhere and pauses fall at any cut. The property held to: a value whose
every pause came where what was written of it could be recognised as a start (a run of
non-space characters, groups of digits and capitals, a key block) comes out exactly as
`mask_text` of the whole masks it; and a value on a line of its own never shows in
clear, whatever the text around it and wherever the pauses fall.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec
from extproc.masking.stream import MaskingStream
from tests.masking.conftest import KEY
from tests.masking.test_properties import SECRETS

MASKER = Masker(KEY)
SPEC = MaskSpec()
SETTINGS = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
VALUES = [*SECRETS, "postgres://app:Tr0ub4dor&3xyz@db.example.com/x", "+44 20 7946 0958",
          "192.168.10.20", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
          "GB29 NWBK 6016 1331 9268 19", "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34"
          "GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----"]
WORDS = ["the", "log", "said", "ok", "done", "at", "step", "rows", "then", "x"]


def streamed(text: str, cuts: list[int], pauses: set[int]) -> tuple[str, MaskingStream]:
    """`text` fed in pieces cut at `cuts`, the stream flushed after the cuts in `pauses`."""
    stream, out, at = MASKER.stream(SPEC), [], 0
    for cut in sorted({c for c in cuts if 0 < c < len(text)}):
        out.append(stream.feed(text[at:cut]))
        if cut in pauses:
            out.append(stream.flush())
        at = cut
    out.append(stream.feed(text[at:]))
    return "".join(out) + stream.finish(), stream


@st.composite
def cut_up(draw: st.DrawFn, text: st.SearchStrategy[str]) -> tuple[str, list[int], set[int]]:
    whole = draw(text)
    cuts = draw(st.lists(st.integers(0, len(whole)), max_size=12))
    return whole, cuts, set(draw(st.lists(st.sampled_from(cuts), max_size=12)) if cuts else ())


# Values and harmless words, each after a space or a line's end: every value starts where
# a start can be recognised.
prose = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(VALUES)), min_size=1,
                 max_size=8).flatmap(lambda parts: st.lists(
                     st.sampled_from([" ", "\n"]), min_size=len(parts),
                     max_size=len(parts)).map(
                         lambda seps: "".join(p + s for p, s in zip(parts, seps, strict=True))))


@pytest.mark.slow
@SETTINGS
@given(cut_up(prose))
def test_values_written_with_pauses_are_masked_as_whole(case: tuple[str, list[int], set[int]]
                                                          ) -> None:
    text, cuts, pauses = case
    expected, counts = MASKER.mask_text(text, SPEC)
    out, stream = streamed(text, cuts, pauses)
    assert out == expected
    assert stream.counts == counts


CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
anything = st.text(CHARS, max_size=80)
on_its_line = st.tuples(anything, st.sampled_from(VALUES), anything).map(
    lambda t: f"{t[0]}\n{t[1]}\n{t[2]}")


@pytest.mark.slow
@SETTINGS
@given(cut_up(on_its_line))
def test_a_value_on_its_line_never_shows_whatever_the_pauses(
        case: tuple[str, list[int], set[int]]) -> None:
    text, cuts, pauses = case
    value = text.split("\n")[1] if "BEGIN" not in text else "MIIBOgIBAAJBAKj34"
    out, _ = streamed(text, cuts, pauses)
    if value not in MASKER.mask_text(text, SPEC)[0]:
        assert value not in out


@pytest.mark.slow
@SETTINGS
@given(cut_up(anything))
def test_without_a_pause_the_output_is_mask_text(case: tuple[str, list[int], set[int]]) -> None:
    text, cuts, _ = case
    assert streamed(text, cuts, set())[0] == MASKER.mask_text(text, SPEC)[0]


@SETTINGS
@given(st.text(CHARS, max_size=3000))
def test_a_pause_holds_no_more_than_the_bound(text: str) -> None:
    stream = MASKER.stream(SPEC)
    stream.feed(text)
    stream.flush()
    bound = max([stream.hold] + [d.max_len for d in MASKER.detectors(SPEC) if d.pending])
    assert stream.held <= bound


@SETTINGS
@given(st.text(CHARS.filter(lambda c: c != "\n"), max_size=400))
def test_a_line_that_ended_is_released_whole(line: str) -> None:
    """Nothing of an ended line could start a value (but an open key block or JWT)."""
    stream = MASKER.stream(SPEC)
    shown = stream.feed(line + "\n") + stream.flush()
    if "BEGIN" not in line.upper() and "LS0tLS1CRUdJTi" not in line:
        assert stream.held == 0
        assert shown == MASKER.mask_text(line + "\n", SPEC)[0]


def test_a_pause_keeps_back_only_a_possible_start() -> None:
    stream = MASKER.stream(SPEC)
    assert stream.feed("user@host:~$ ") == ""
    assert stream.flush() == "user@host:~$ "  # a prompt shows whole
    assert stream.feed("line one\nkey AKIA") == ""
    assert stream.flush() == "line one\nkey "  # "AKIA" could start a key
    assert stream.feed("IOSFODNN7EXAMPLE and") == ""
    assert stream.flush() == "[REDACTED:AWS_ACCESS_KEY_ID] "
    assert stream.feed(" card 4111 1111 ") == ""
    assert stream.flush() == "and card "  # groups of digits: a card may go on
    assert stream.feed("1111 1111\n") == ""
    assert stream.flush() == "[REDACTED:CREDIT_CARD]\n"
    assert stream.finish() == ""


def test_a_key_block_is_held_while_open_and_released_once_it_ends() -> None:
    begin, body = "-----BEGIN RSA PRIVATE KEY-----\n", "MIIBOgIBAAJBAKj34GkxFhD90vcN\n"
    stream = MASKER.stream(SPEC)
    assert stream.feed("key:\n-----BEGIN RSA ") + stream.flush() == "key:\n"
    assert stream.feed(begin[len("-----BEGIN RSA "):] + body) + stream.flush() == ""
    shown = stream.feed("-----END RSA PRIVATE KEY-----\nnext\n") + stream.flush()
    assert shown == "[REDACTED:PRIVATE_KEY]\nnext\n"


def test_what_a_slow_secret_cannot_do() -> None:
    """The documented limit: a value with a space in it that is no group of digits or
    capitals (an address spelled out), paused at that space, has its first part
    released before the rest comes; the rest is masked."""
    text = "write to jo (at) example (dot) com now\n"
    assert MASKER.mask_text(text, SPEC)[0] == "write to [REDACTED:EMAIL_ADDRESS] now\n"
    pause_at = text.index("example")
    out, _ = streamed(text, [pause_at], {pause_at})
    assert out.startswith("write to jo (at) ") and "example" not in out
