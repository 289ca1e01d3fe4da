"""Text an agent controls, made inert wherever it reaches a human.

Agents write the SQL, paths and tool calls that approvers and operators read later: in a
terminal (`tollgate approvals`, `tollgate audit`, `tollgate policy`), in a chat message
(the approvals webhook), in tollgate's log. Raw, a control sequence there redraws the
terminal (`\\x1b[2K\\r` erases the line and writes a fake statement over it), a bidi
override reverses what is read, a newline forges a log line, and Slack markup makes a
link or a mention. Each kind of output has one function here, and every output of that
kind goes through it: what is there is shown (as `\\x1b`, `\\u202e`), never played.
The approvals page does the same in page.js (`visible`).
"""

from __future__ import annotations

import logging
import re

# Unicode's control (Cc), format (Cf), surrogate (Cs) and line/paragraph separator (Zl,
# Zp) characters, as of Unicode 15: C0, DEL and C1 controls (ESC, CSI, CR, newline),
# bidi embeddings, overrides, isolates and marks, zero-width and other invisible
# characters, tag characters, lone surrogates. tests/test_inert.py checks this class
# against Python's own Unicode table.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
# A mention written plainly (@here, @channel, @alice): Slack with link_names, Mattermost
# and others notify on it. An e-mail address (dana@example.com) is no mention.
_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n":
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xd800 + (code >> 10):04x}\\u{0xdc00 + (code & 0x3ff):04x}"


def terminal(text: str) -> str:
    """`text` as one line a terminal shows as it is: every control, bidi and invisible
    character (newlines too) as a visible escape such as `\\x1b` or `\\u202e`."""
    if text.isprintable():  # none of them in it (10x faster than the search)
        return text
    return UNSAFE.sub(_escape, text)


def json_text(text: str) -> str:
    """JSON text (from a JSON encoder) that a terminal shows as it is and that still means
    the same: those characters inside its strings become `\\uXXXX` escapes. Its newlines
    stay: an encoder writes them only between values (inside strings they are escaped)."""
    return UNSAFE.sub(_json_escape, text)


def slack(text: str) -> str:
    """`text` for a chat message's `text`: one line with visible escapes, Slack's control
    characters (`&`, `<`, `>`) as entities so no link or `<!channel>` can form, and a
    plain mention's `@` as the full-width at sign (U+FF20), which notifies nobody."""
    escaped = terminal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("\uff20", escaped)


class LogFormatter(logging.Formatter):
    """Log lines no message can forge: the message is one line (`terminal`), and every
    line of a traceback is escaped the same way and indented, so none of it can look like
    a log line of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = terminal(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        # The traceback may come formatted by another handler (LogRecord.exc_text).
        line, newline, more = super().format(record).partition("\n")
        if not newline:
            return line
        return line + "".join(f"\n  {terminal(part)}" for part in more.split("\n"))
