"""Generated interactive sessions for the line editor's differentials, one per front that
relays a terminal (tests/e2e/test_ssh_line_differential_e2e.py, ..._k8s_...): the
keystrokes an agent types, how they are cut into writes, the hypothesis settings both run
under, and the lines a session's record allowed, as the shell's log (line_shells) shows
them. Shared so that each front is held to the same sessions and the same reading.
"""

from __future__ import annotations

import shlex
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from extproc.quickstart import stack
from tests.support.gateway import Gateway
from tests.support.line_shells import LoggedShell

# A line: its command's first word, edits, what may end it unread, and how it ends.
COMMANDS = [b": ", b"echo ", b"true ", b"shred ", b"rm -rf "]
EDITS = [b"alpha ", b"beta ", b"gamma", b"\x7f", b"\x08", b"\x17", b"\x15",
         b"y\x04",  # Ctrl-D on a line: ignored
         b"\t", b"\x1b[D", b"\x16x", b"\x0f", b"\x12", "é".encode(),  # not modeled
         b"\\", b"'", b" !a"]  # continued, or rewritten by history
TAILS = [b"", b"", b"", b" |", b" <<E", b" \\"]  # the shell would read on
ENDS = [b"\r", b"\n", b"z\x03"]  # Enter, or the line dropped with Ctrl-C
LINE = st.builds(lambda c, e, t, end: c + b"".join(e) + t + end, st.sampled_from(COMMANDS),
                 st.lists(st.sampled_from(EDITS), max_size=5), st.sampled_from(TAILS),
                 st.sampled_from(ENDS))
KEYS = st.lists(LINE, min_size=1, max_size=6).map(b"".join)
# Where the keys are cut into writes (offsets past the end cut nothing).
CUTS = st.lists(st.integers(min_value=0, max_value=400), max_size=5)
# Each example starts a real shell through a real gateway: reproducible runs (the same
# sessions every time, none replayed from a database), no per-example deadline.
DIFFERENTIAL = settings(derandomize=True, database=None, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture,
                                               HealthCheck.too_slow])
END_OF_KEYS = ": end-of-keys"  # the line typed last: once it ran, everything before had


def cut(keys: bytes, cuts: list[int]) -> list[bytes]:
    """`keys` as the writes `cuts` makes of them, in order."""
    bounds = sorted({min(c, len(keys)) for c in cuts} | {0, len(keys)})
    return [keys[a:b] for a, b in pairwise(bounds)]


def as_logged(shell: str, command: str) -> str:
    """A command as its shell's log shows it: bash's, as typed (blanks made single);
    dash's, traced, as the words it ran (`\\a` ran as `a`)."""
    return " ".join(shlex.split(command) if shell == "dash" else command.split())


class RecordedSession:
    """One session through the gateway, read back from its records: those of sessions
    before it are set aside when it is made. A front says which record ends a session
    (`closing`, its method) and where a LINE record keeps the line (`line_of`)."""

    closing = ""

    def __init__(self, gw: Gateway, shells: LoggedShell) -> None:
        self.gw, self.shells = gw, shells
        self.known = {r["session_id"] for r in gw.records()}

    def line_of(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def allowed(self) -> list[str]:
        """The session's LINE records allowed, in order, once its closing record is in."""
        found: dict[str, list[dict[str, Any]]] = {}

        def closed() -> bool:
            records = [r for r in self.gw.records() if r["session_id"] not in self.known]
            found["lines"] = [r for r in records if r["request"]["method"] == "LINE"]
            return any(r["request"]["method"] == self.closing for r in records)

        stack.wait_until(closed, 20, "the session's records")
        return [as_logged(self.shells.shell, self.line_of(r)) for r in found["lines"]
                if r["outcome"]["action"] == "allow"]
