"""The ways a policy engine fails: per decision, or at load; and regorus's errors in one
line."""

from __future__ import annotations

import re


class PolicyError(Exception):
    """The engine could not produce a valid decision (the cause is in the message).

    `rule`: the rule that failed (`data.tollgate.limit`), when the engine can say."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class Undefined(PolicyError):
    """The query has no value for this input: no rule matched, and there is no default."""


class PolicyLoadError(Exception):
    """The policies cannot be loaded (missing directory, syntax error, OPA refusing them,
    a revision failing its smoke set)."""


def clean_regorus_error(exc: BaseException) -> str:
    """One line, `FILE:LINE:COL: message` when regorus gives a location.

    regorus reports errors as a multi-line source excerpt, plus a Rust backtrace
    when RUST_BACKTRACE is set; a log line or an error exit wants one line.
    """
    text = str(exc).split("\n\nStack backtrace:", 1)[0].strip()
    location = re.search(r"-->\s*(\S+)", text)
    message = re.search(r"^error:\s*(.+)$", text, re.MULTILINE)
    if location and message:
        return f"{location.group(1)}: {message.group(1).strip()}"
    return " ".join(text.split())
