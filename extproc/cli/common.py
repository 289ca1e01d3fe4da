"""What every `tollgate` command shares: the quickstart's config, the error that exits 2,
how a duration, a moment and a period of the record are written on the command line."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from extproc.config import Config

# The default `--config`: the commands work against `tollgate up` with no flag.
QUICKSTART_CONFIG = Path(__file__).parent.parent / "quickstart" / "quickstart.yaml"

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MOMENT = "a duration before now (30m, 7d, 1d12h) or a UTC date (2026-11-01, 2026-11-01T09:00)"


class Unusable(Exception):
    """Input the command cannot work with (exit 2); the message is the one line printed on
    stderr."""


def parse_duration(text: str, flag: str, examples: str) -> int:
    """Seconds in `90s`, `30m`, `1h`, `2d`, `2w` or a combination such as `1d12h`; zero
    is no duration. `flag` and `examples` word the error as the command's help does."""
    parts = _DURATION.findall(text)
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != text or not seconds:
        raise Unusable(f"{flag}: expected a duration such as {examples}, got {text!r}")
    return seconds


def moment_us(text: str, flag: str, now_us: int) -> int:
    """`text` as µs since the epoch: a duration before `now_us`, or an ISO date or time
    (UTC unless it says otherwise)."""
    if text[:1].isdigit() and text[-1:] in "smhdw":
        return now_us - parse_duration(text, flag, _MOMENT) * 1_000_000
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Unusable(f"{flag}: expected {_MOMENT}, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1_000_000)


def add_period(parser: argparse.ArgumentParser, since: str | None = None) -> None:
    """`--since` (required unless it has a default), `--until` and `--target`: which
    records a command reads (`period` reads them back)."""
    parser.add_argument("--since", default=since, required=since is None, metavar="WHEN",
                        help=f"records started from then: {_MOMENT}"
                             + (f" (default {since})" if since else ""))
    parser.add_argument("--until", metavar="WHEN",
                        help=f"and before then (default now): {_MOMENT}")
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
