"""Ways to make a host run what the gateway never decided, tried on real shells.

Each case's keys go through the gateway's line editor; what the gateway would send the
host (each readable line whole with CR, as if the pack allowed it; Ctrl-C and Ctrl-D on
an empty line; nothing of an unreadable line) is typed into a real bash and a real dash
on a pseudo-terminal, with each terminal setting of line_shells.STTY. The commands the
shell ran (logged by the shell itself) must be the readable lines, no more, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.terminal.lines import EndOfInput, Interrupt, LineEditor, Submitted
from tests.support.line_shells import SHELLS, STTY, LoggedShell, PtyShell

# (name, keys, the lines the editor reads readable: what the host may run)
CASES: list[tuple[str, bytes, list[str]]] = [
    ("Ctrl-D before Enter sends nothing", b": typed\x04\x15", []),
    ("Ctrl-D before Enter, then Enter", b": typed\x04 more\r", [": typed more"]),
    ("Ctrl-C drops the line; type-ahead is a line of its own", b": held\x03: next\r",
     [": next"]),
    ("Ctrl-C on no line, then type-ahead", b"\x03: after\r", [": after"]),
    ("Ctrl-V literal-next", b": a\x16\r: b\r", [": b"]),
    ("Ctrl-V before a control key", b": a\x16\x15\r", []),
    ("CR in the middle", b": a\r: b\r", [": a", ": b"]),
    ("ESC sequences", b": a\x1b[D\x1b[Dx\r\x1bb: c\r", []),
    ("Alt-d", b": keep \x1bdx\r", []),
    ("bracketed paste with a newline inside", b"\x1b[200~: p1\n: p2\x1b[201~\r", []),
    ("Ctrl-O", b": o\x0f\r", []),
    ("Ctrl-J is an Enter", b": j\n", [": j"]),
    ("backslash-newline continuation", b": r\\\r: m\r", [": m"]),
    ("a continuation inside double quotes", b": \"a\\\r: b\r", [": b"]),
    ("a heredoc started in one line", b"cat <<E\r: x\rE\r", [": x", "E"]),
    ("an open quote", b": 'a\r: b\r", [": b"]),
    ("a trailing pipe", b": a |\r: b\r", [": b"]),
    ("an open if", b"if : a; then\r: b\r", [": b"]),
    ("a function without its body", b"f()\r: b\r", [": b"]),
    ("history expansion", b": hist\r!!\r^hist^x\r", [": hist"]),
    ("erase with DEL and BS", b": abx\x7f\x08c\r", [": ac"]),
    ("werase", b": a bad\x17good\r", [": a good"]),
    ("kill", b"shred x\x15: k\r", [": k"]),
    ("a byte past ASCII", ": caf\u00e9\r".encode(), []),
    ("Tab", b": a\tb\r", []),
    ("NUL", b": a\x00b\r", []),
]


def host_bytes(keys: bytes) -> tuple[list[bytes], list[str]]:
    """What the gateway sends the host for `keys` if every readable line is allowed, in
    writes (after a Ctrl-C or Ctrl-D, the gateway waits for the host's answer), and the
    lines sent."""
    sent, lines = [b""], []
    for piece in LineEditor().feed(keys):
        if isinstance(piece, Submitted) and piece.readable:
            sent[-1] += piece.line.encode() + b"\r"
            if piece.line.strip():
                lines.append(piece.line)
        elif isinstance(piece, Interrupt | EndOfInput):
            sent[-1] += b"\x03" if isinstance(piece, Interrupt) else b"\x04"
            sent.append(b"")
    return sent, lines


@pytest.mark.parametrize(("keys", "expected"), [(k, e) for _, k, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_the_editor_reads_only_what_the_host_would_run(keys: bytes,
                                                       expected: list[str]) -> None:
    assert host_bytes(keys)[1] == expected


@pytest.mark.e2e  # runs bash and dash
@pytest.mark.parametrize("stty", STTY, ids=[s or "default" for s in STTY])
@pytest.mark.parametrize("shell", SHELLS)
def test_a_real_shell_runs_only_the_lines_read(tmp_path: Path, shell: str, stty: str) -> None:
    logged = LoggedShell(tmp_path)
    logged.prepare(shell, stty)
    host = PtyShell(logged)
    try:
        for n, (name, keys, _) in enumerate(CASES):
            sent, lines = host_bytes(keys)
            sentinel = f": end-{n}"
            for write in sent[:-1]:  # as the gateway: a Ctrl-C answered, an empty Enter
                host.type(write)
                host.answered()
                if write.endswith(b"\x03"):
                    host.type(b"\r")
                    host.answered()
            host.type(sent[-1] + sentinel.encode() + b"\r")
            ran = host.ran_until(sentinel)
            assert [" ".join(line.split()) for line in lines] == ran, name
            logged.log.write_text("")
    finally:
        host.close()
