"""What the host's shell makes of a line the gateway sends whole: it runs it as typed.

The gateway sends a decided line with its Enter; a line the shell would read on past
(continuation.py) or rewrite with its history is not readable. Checked against the
shells themselves: every line `bash -n` or `dash -n` finds cut short (an end of file
where more was due) is one the reading calls unreadable; and the readable lines of the
editor's cases, typed into a real bash on a pseudo-terminal, are what its history holds.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.terminal.continuation import unreadable
from extproc.terminal.lines import LineEditor, Submitted
from tests.terminal.test_line_editor import CASES

COMPLETE = [
    "ls -l", "echo 'it''s' \"a b\"", "for i in 1 2; do echo $i; done", "if true; then ls; fi",
    "case $x in a|b) echo ab;; *) echo other;; esac", "f() { echo f; }",
    "function g { echo g; }", "echo $(ls | wc -l) `date`", "(cd /tmp && ls) > out 2>&1",
    "{ ls; pwd; }", "[[ -f x && ! -d y ]]", "echo $((1 + (2 * 3)))", "((x = 1))",
    "echo ${x:-default} $'a\\'b'", "while read -r l; do echo \"$l\"; done < f",
    "cat <<< 'here string'", "echo done fi esac", "[ ! -f x ] || echo missing",
    "x=1 y=2 env", "ls # a comment", "echo a\\ b", "time ls", "! grep -q x f",
    "echo \"$(echo \"nested\")\"", "echo #not-a-comment", "ls &", "sleep 1 & wait",
]

INCOMPLETE = [
    "ls \\", "echo 'a", 'echo "a', "echo $'a", "echo `ls", "echo $(ls", "echo ${x",
    "echo $((1+2)", "if true; then ls", "case x in a) ls;;", "for i in 1 2; do",
    "while true", "{ ls;", "( ls", "ls |", "ls &&", "ls ||", "f()", "function f",
    "cat <<EOF", "cat <<-EOF", "[[ -f x", "echo \"$(ls\")", "echo \"a\\",
    "ls # it's", "echo $(case x in a) ls;;)", "((x = 1", "f() (",
]


@pytest.mark.parametrize("line", COMPLETE)
def test_a_complete_line_is_readable(line: str) -> None:
    assert unreadable(line) is None


@pytest.mark.parametrize("line", INCOMPLETE)
def test_a_line_the_shell_reads_on_past_is_not(line: str) -> None:
    why = unreadable(line)
    assert why is not None and why.startswith("the shell would read on past its end")


@pytest.mark.parametrize("line", ["echo !!", "!rm", "echo !$", "^a^b", " ^a^b",
                                  'echo "!x"', "histchars=%^#"])
def test_history_expansion_makes_a_line_unreadable(line: str) -> None:
    assert "history" in (unreadable(line) or "")


@pytest.mark.parametrize("line", ["echo 'a!b'", "[ ! -f x ]", "echo a!", "x != y",
                                  "echo \\!x"])
def test_a_bang_bash_leaves_alone_is_read(line: str) -> None:
    assert unreadable(line) is None


def cut_short(shell: str, line: str) -> bool:
    """Whether `shell -n` finds `line` ends where more was due (an end of file)."""
    found = subprocess.run([shell, "-n"], input=line + "\n", capture_output=True,
                           text=True, timeout=10, env={"PATH": os.environ["PATH"]})
    said = found.stderr.lower()
    return any(what in said for what in ("end of file", "eof", "unterminated",
                                         "here-document"))


TOKENS = st.sampled_from([
    "ls", "x", "echo", "a=1", " ", " ", ";", "&", "|", "&&", "||", "'", '"', "\\", "`",
    "$(", "(", ")", "{", "}", "$((", "))", "((", "${", "if", "then", "else", "fi", "case",
    "in", "esac", ";;", "for", "while", "do", "done", "function", "f()", "[[", "]]", "#",
    "<<", "<<<", "<", ">", "!", "$'", "=", "\n",
])


@pytest.mark.e2e  # runs bash and dash
@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=12).map(" ".join))
def test_what_bash_or_dash_would_read_on_past_is_never_readable(line: str) -> None:
    line = line.replace(" \n ", " ")  # one line: a newline is an Enter
    for shell in ("bash", "dash"):
        if cut_short(shell, line):
            assert unreadable(line) is not None, (shell, line)


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
    """The editor's cases, made harmless commands (`: ` before them), as the gateway
    sends them (each readable line whole, with CR) to bash after its prompt: bash's
    history is then the lines read, nothing else."""
    sent, expected = b"", []
    for _, keys, _ in CASES:
        for piece in LineEditor().feed(b": " + keys.replace(b"\x03", b"")):
            if isinstance(piece, Submitted) and piece.readable and piece.line.strip():
                sent += piece.line.encode() + b"\r"
                expected.append(piece.line)
    bash = Bash(tmp_path)
    try:
        for line in sent.split(b"\r")[:-1]:
            bash.type(line + b"\r")
            bash.prompted()
        bash.type(f"history -w {tmp_path}/ran\r".encode())
        bash.prompted()
    finally:
        bash.close()
    ran = (tmp_path / "ran").read_text().splitlines()
    assert ran == [*expected, f"history -w {tmp_path}/ran"]
