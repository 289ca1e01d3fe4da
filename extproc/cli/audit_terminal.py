"""`tollgate audit replay`'s terminal recordings: each checked against its record, then
played as the agent saw it, or written to a .cast file.

A recording (recording/terminal.py) is stored apart from the chained records, so the store
alone could be edited; the SHELL exchange's record (same trace) keeps its size and
SHA-256, and only a recording that matches them is said to be verified. Playing goes
through cast.py's ScreenFilter: what the agent's output could do to the operator's
terminal beyond drawing on it is dropped, and tollgate's verdict is printed again once
the playing ends, where no recorded output can have drawn over it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal
from extproc.codecs.text import size, utc

if TYPE_CHECKING:
    from extproc.recording.store import Row
    from extproc.recording.terminal import Stored
    from extproc.store import Connection

_DEFAULT_MAX_WAIT = 2.0


def add_arguments(replay: argparse.ArgumentParser) -> None:
    """`replay`'s flags for the terminal recordings of what it shows."""
    replay.add_argument("--speed", type=float, metavar="N",
                        help="play terminal recordings N times as fast (default 1)")
    waits = replay.add_mutually_exclusive_group()
    waits.add_argument("--max-wait", type=float, metavar="S",
                       help="cut idle gaps in terminal recordings to S seconds "
                            f"(default {_DEFAULT_MAX_WAIT:g})")
    waits.add_argument("--no-wait", action="store_true",
                       help="print terminal recordings at once")
    replay.add_argument("--cast", type=Path, metavar="FILE",
                        help="write each terminal recording to an asciicast v2 file instead "
                             "of playing it (the second to FILE-2.cast, and so on)")


@dataclass(frozen=True)
class Options:
    speed: float
    max_wait: float
    cast: Path | None


def options(args: argparse.Namespace) -> Options:
    """The playing options, refused when they make no sense together."""
    timed = args.speed is not None or args.max_wait is not None or args.no_wait
    if args.json and (timed or args.cast is not None):
        raise Unusable("replay --json lists records only: it takes no --speed, --max-wait, "
                       "--no-wait or --cast")
    if args.cast is not None and timed:
        raise Unusable("replay --cast writes recordings instead of playing them: it takes no "
                       "--speed, --max-wait or --no-wait")
    if args.speed is not None and not args.speed > 0:
        raise Unusable(f"--speed: expected a number > 0, got {args.speed:g}")
    if args.max_wait is not None and not args.max_wait >= 0:
        raise Unusable(f"--max-wait: expected a number of seconds >= 0, got {args.max_wait:g}")
    max_wait = 0.0 if args.no_wait else (
        _DEFAULT_MAX_WAIT if args.max_wait is None else args.max_wait)
    return Options(args.speed or 1.0, max_wait, args.cast)


@dataclass(frozen=True)
class Checked:
    """A recording, and what its record says of it: `matches` None when there is nothing
    to check it against."""

    stored: Stored
    matches: bool | None
    verdict: str
    detail: str


def checked(connection: Connection, keys: list[str], rows: list[Row]) -> list[Checked]:
    """The recordings of the sessions or traces `keys` (whose records are `rows`), each
    checked against the record of its exchange."""
    from extproc.recording import store
    from extproc.recording.terminal import load

    found: dict[str, Checked] = {}
    for key in keys:
        for stored in load(connection, key):
            mine = [row for row in rows if row.trace_id == stored.recording_id]
            found.setdefault(stored.recording_id, _check(
                stored, mine or store.by_id(connection, stored.recording_id)))
    return list(found.values())


def _check(stored: Stored, rows: list[Row]) -> Checked:
    exchanges = [row for row in rows if row.kind == "exchange"]
    if not exchanges:
        return Checked(stored, None, "NOT VERIFIED", "no record of its exchange (the "
                       "session may still be open, or tollgate stopped before its end)")
    row = exchanges[0]
    body = (row.document().get("response") or {}).get("body") or {}
    if "sha256" not in body:
        return Checked(stored, None, "NOT VERIFIED", f"record {row.id} keeps no SHA-256 of it")
    digest = hashlib.sha256(stored.data).hexdigest()
    if body.get("size") == len(stored.data) and body["sha256"] == digest:
        return Checked(stored, True, "verified", f"its size and SHA-256 are those record "
                       f"{row.id} keeps ({len(stored.data)} bytes, sha256 {digest[:16]}…)")
    missing = (f"; chunks {', '.join(map(str, stored.missing))} are missing"
               if stored.missing else "")
    return Checked(stored, False, "DOES NOT MATCH the record",
                   f"record {row.id} keeps {body.get('size')} bytes, sha256 "
                   f"{body['sha256'][:16]}…; the store holds {len(stored.data)} bytes, sha256 "
                   f"{digest[:16]}…{missing}")


def replay(found: list[Checked], chosen: Options) -> int:
    """Each recording: what it is, its verdict, then played (or written to a file).
    Returns 1 when one does not match its record or cannot be played, else 0."""
    from extproc.codecs.cast import CastError, play

    status = 0
    for n, each in enumerate(found):
        stored = each.stored
        print()
        print(terminal(f"== terminal recording {stored.recording_id} (session "
                       f"{stored.session_id}): {stored.chunks} chunks, "
                       f"{size(len(stored.data))}, written {utc(stored.first_us)} to "
                       f"{utc(stored.last_us)} UTC"))
        print(terminal(f"  {each.verdict}: {each.detail}"))
        if each.matches is False:
            status = 1
        if chosen.cast is not None:
            path = _cast_path(chosen.cast, n)
            try:
                path.write_bytes(stored.data)
            except OSError as exc:
                raise Unusable(f"--cast {path}: {exc.strerror}") from None
            print(terminal(f"  written to {path}"))
            continue
        print(f"  playing it as the agent saw it (speed {chosen.speed:g}, idle gaps cut to "
              f"{chosen.max_wait:g} s):")
        sys.stdout.flush()
        ended = f"end of terminal recording {stored.recording_id}"
        try:
            play(stored.data, _write, chosen.speed, chosen.max_wait)
        except CastError as exc:
            ended, status = f"terminal recording {stored.recording_id} cut short ({exc})", 1
        print()
        print(terminal(f"== {ended}: {each.verdict}"))
    return status


def _write(text: str) -> None:
    """Played output to the terminal at once (UTF-8, whatever the locale says)."""
    sys.stdout.buffer.write(text.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def _cast_path(path: Path, n: int) -> Path:
    return path if n == 0 else path.with_name(f"{path.stem}-{n + 1}{path.suffix}")
