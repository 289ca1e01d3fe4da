"""`tollgate ...` run in the test's own process, for the many tests of what a command
prints and returns: a process each cost ~0.4 s of CPU to import what the command needs,
which the whole suite paid hundreds of times over.

The command is a function of its argv (`extproc.cli.main`): it runs here on a thread of
its own (so its `asyncio.run` never meets a test's running loop), with stdin empty and
stdout and stderr captured as bytes, as a process's pipes are. What only a process
shows — how it ends in a closed pipe, its interpreter's start — stays tested as one
(tests/cli/test_closed_pipe.py, the keygen and `serve` tests).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

from extproc.cli import main

# sys.stdout and sys.stderr are the interpreter's, not a thread's: one command at a time.
_ONE_AT_A_TIME = threading.Lock()


def _pipe() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict",
                            write_through=True)


def tollgate(*argv: str | Path, stdin: str = "", cwd: Path | None = None,
             newlines: bool = True) -> subprocess.CompletedProcess[str]:
    """`tollgate ARGV` given `stdin`, in `cwd`: its exit status and what it wrote, as
    subprocess.run(text=True) would give them (`newlines=False`: CR LF as written)."""
    args = [str(a) for a in argv]
    out, err = _pipe(), _pipe()
    given = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
    status: list[int] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            status.append(main(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
            status.append(code if isinstance(code, int) else 0 if code is None else 1)
        except BaseException as exc:  # a traceback a process would have printed
            raised.append(exc)

    with _ONE_AT_A_TIME, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(cwd or os.getcwd()):
        saved_stdin, sys.stdin = sys.stdin, given
        try:
            thread = threading.Thread(target=run, name="tollgate-cli")
            thread.start()
            thread.join()
        finally:
            sys.stdin = saved_stdin
    if raised:
        raise raised[0]
    return subprocess.CompletedProcess(
        ["tollgate", *args], status[0], _text(out, newlines), _text(err, newlines))


def _text(pipe: io.TextIOWrapper, newlines: bool) -> str:
    pipe.flush()
    buffer = pipe.buffer
    assert isinstance(buffer, io.BytesIO)
    text = buffer.getvalue().decode("utf-8")
    # As text=True reads a pipe: universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n") if newlines else text
