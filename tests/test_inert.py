"""Agent-controlled text made inert for each output that reaches a human (extproc/codecs/inert.py):
a terminal, JSON printed to one, a Slack-compatible webhook text, tollgate's log."""

from __future__ import annotations

import io
import json
import logging
import sys
import unicodedata

import pytest

from extproc.codecs.inert import UNSAFE, LogFormatter, json_text, slack, terminal

# Unicode's controls, format characters (bidi, zero-width, tags), surrogates, separators.
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# What an agent's SQL can carry to redraw a terminal: erase the line, go back to its start,
# write a harmless statement in green over the real one; then a bidi override, a
# zero-width space, a C1 CSI and a tag character (invisible "A").
ERASE = "\x1b[2K\r"
FORGED = "SELECT count(*) FROM customers"
HOSTILE = (f"UPDATE customers SET name = '{ERASE}\x1b[32m{FORGED}\x1b[0m' "
           "/* \u202egnp.exe\u202c \u200b \x9b31m \U000e0041 */")


def raw(text: str) -> list[str]:
    """The control and invisible characters in `text` besides its newlines, by Unicode's
    own table (not extproc.codecs.inert's)."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in UNSAFE_CATEGORIES]


@pytest.mark.slow
def test_the_unsafe_class_is_unicodes_controls_format_characters_and_separators() -> None:
    """UNSAFE holds exactly what this Python's Unicode table files as Cc, Cf, Cs, Zl or Zp
    (plus format characters of later Unicode versions, for the terminals that know them)."""
    missed = [hex(c) for c in range(sys.maxunicode + 1)
              if unicodedata.category(chr(c)) in UNSAFE_CATEGORIES and not UNSAFE.match(chr(c))]
    extra = [hex(c) for c in range(sys.maxunicode + 1)
             if UNSAFE.match(chr(c)) and unicodedata.category(chr(c)) not in UNSAFE_CATEGORIES]
    assert missed == []
    assert set(extra) <= {hex(c) for c in range(0x13439, 0x13440)}  # Cf since Unicode 15


def test_terminal_shows_every_trick_as_an_escape_on_one_line() -> None:
    shown = terminal(HOSTILE)
    assert raw(shown) == [] and "\n" not in terminal("a\nb")
    assert "'\\x1b[2K\\r\\x1b[32mSELECT count(*) FROM customers\\x1b[0m'" in shown
    for escape in ("\\u202egnp.exe\\u202c", "\\u200b", "\\x9b31m", "\\U000e0041"):
        assert escape in shown
    assert terminal("a\tb\nc") == "a\\tb\\nc"
    assert terminal("plain SQL, é, 日本, emoji 🙂") == "plain SQL, é, 日本, emoji 🙂"


def test_json_text_is_inert_and_still_the_same_json() -> None:
    value = {"sql": HOSTILE, "lone": "\udcff", "lines": ["a\nb"]}
    for text in (json.dumps(value, ensure_ascii=False),
                 json.dumps(value, ensure_ascii=False, indent=2)):
        shown = json_text(text)
        assert raw(shown) == []
        assert json.loads(shown) == value
        assert shown.count("\n") == text.count("\n")  # an indented listing stays one


def test_slack_text_makes_no_link_mention_or_markup_of_its_own() -> None:
    shown = slack("<!channel> <https://evil.example|Approve> <@U024BE7LH> @here @channel "
                  "a&b dana@example.com *bold*\n*APPROVED* " + ERASE)
    assert "<" not in shown and ">" not in shown
    assert "&lt;!channel&gt; &lt;https://evil.example|Approve&gt; &lt;\uff20U024BE7LH&gt;" in shown
    assert "a&amp;b" in shown and "dana@example.com" in shown
    assert "@here" not in shown and "@channel" not in shown
    assert "\uff20here \uff20channel" in shown
    assert "*bold*\\n*APPROVED* \\x1b[2K\\r" in shown  # one line: no paragraph of its own
    assert raw(shown) == []


def logged(message: str, *args: object, error: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tollgate.test_inert")
    log.addHandler(handler)
    log.propagate = False
    try:
        if error is None:
            log.warning(message, *args)
        else:
            try:
                raise error
            except type(error):
                log.exception(message, *args)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


FORGED_LINE = "2026-01-01 00:00:00,000 INFO tollgate.approvals: approval ap-1 approved by ceo"


@pytest.mark.parametrize("path", [f"/approvals/x\n{FORGED_LINE}", f"/x\r{FORGED_LINE}",
                                  f"/x\x1b[2K\r{FORGED_LINE}", f"/x\u2028{FORGED_LINE}"])
def test_a_log_line_cannot_be_forged_by_what_it_quotes(path: str) -> None:
    text = logged("approvals API: %s %s refused: %s", "GET", path, "no token")
    (line,) = text.splitlines()
    assert raw(text) == []
    assert not line.startswith("2026-01-01") and FORGED_LINE in line
    assert line.endswith(f"{FORGED_LINE} refused: no token")


def test_a_traceback_cannot_forge_a_log_line_either() -> None:
    text = logged("trace %s: exchange failed", "t1", error=ValueError(f"bad\n{FORGED_LINE}"))
    first, *rest = text.splitlines()
    assert first.endswith("tollgate.test_inert: trace t1: exchange failed")
    assert rest[0] == "  Traceback (most recent call last):"
    assert f"  {FORGED_LINE}" in rest  # inside the traceback, indented as all of it is
    assert all(line.startswith("  ") for line in rest)
    assert raw(text) == []
