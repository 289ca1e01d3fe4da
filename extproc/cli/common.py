"""What every `tollgate` command shares: the quickstart's config, how a period of the
record is written on the command line (durations and moments: codecs/durations.py)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, ParamSpec

from extproc.codecs.durations import MOMENT, Unusable, moment_us

if TYPE_CHECKING:
    from extproc.config import Config

# The default `--config`: the commands work against `tollgate up` with no flag.
QUICKSTART_CONFIG = Path(__file__).parent.parent / "quickstart" / "quickstart.yaml"
# The status of a command whose reader left (`| head`): a shell's for a process that
# SIGPIPE ended (128 + 13), as `set -o pipefail` sees other commands end. Not 0: what
# went unread (a verification's verdict, say) was never seen.
READER_LEFT = 141

Arguments = ParamSpec("Arguments")


def reader_may_leave(main: Callable[Arguments, int]) -> Callable[Arguments, int]:
    """`main`, ending quietly when its output's reader goes away: Python ignores SIGPIPE,
    so a write to a closed pipe raises BrokenPipeError wherever it happens. Handled
    once here, as the Python documentation says (signal module, "Note on SIGPIPE"):
    standard output is pointed at /dev/null, so that the flush at exit of what is still
    buffered raises nothing more, and no traceback follows."""
    @functools.wraps(main)
    def run(*args: Arguments.args, **kwargs: Arguments.kwargs) -> int:
        try:
            try:
                return main(*args, **kwargs)
            finally:  # what is buffered, here rather than at exit (--help's text too)
                sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return READER_LEFT

    return run

def add_period(parser: argparse.ArgumentParser, since: str | None = None) -> None:
    """`--since` (required unless it has a default), `--until` and `--target`: which
    records a command reads (`period` reads them back)."""
    parser.add_argument("--since", default=since, required=since is None, metavar="WHEN",
                        help=f"records started from then: {MOMENT}"
                             + (f" (default {since})" if since else ""))
    parser.add_argument("--until", metavar="WHEN",
                        help=f"and before then (default now): {MOMENT}")
    parser.add_argument("--target", metavar="NAME", help="only this target's records")


def period(args: argparse.Namespace, config: Config) -> tuple[int, int]:
    """The period `add_period`'s flags name, in µs since the epoch: [since, until); a
    `--target` the config does not have is refused."""
    now_us = int(time.time() * 1_000_000)
    since_us = moment_us(args.since, "--since", now_us)
    until_us = now_us if args.until is None else moment_us(args.until, "--until", now_us)
    if since_us >= until_us:
        raise Unusable(f"--since {args.since} is not before --until {args.until or 'now'}")
    if args.target is not None and args.target not in {t.name for t in config.targets}:
        raise Unusable(f"--target: no target {args.target!r} in {config.source}")
    return since_us, until_us


def positive(text: str, flag: str, zero: bool = False) -> int:
    """`text` as a whole number > 0 (>= 0 given `zero`), else Unusable naming `flag`."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < (0 if zero else 1):
        raise Unusable(f"{flag}: expected a whole number {'>= 0' if zero else '> 0'}, "
                       f"got {text!r}")
    return value


def add_key_flags(parser: argparse.ArgumentParser, anchors: bool = False) -> None:
    """`--public-key` (the audit key's public half, for checking away from the gateway)
    and, given `anchors`, `--anchors`: what the audit commands verify with."""
    if anchors:
        parser.add_argument(
            "--anchors", type=Path, metavar="FILE", action="append",
            help="an anchor log kept outside the store (recording.checkpoint_file; again "
                 "for each replica's); default: the config's")
    parser.add_argument(
        "--public-key", type=Path, metavar="PEM",
        help="the audit key's public half (from `tollgate audit public-key`) instead of "
             "the config's private key")


@contextmanager
def output(path: Path | None) -> Iterator[IO[bytes]]:
    """Where a command writes what it makes (`--out`): standard output, or `path`,
    written beside it and renamed once whole, so a cut-short file never looks whole."""
    if path is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise Unusable(f"--out {path}: cannot write: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
