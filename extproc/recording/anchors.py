"""The anchor log: signed statements kept outside the store, so that the store alone
cannot be shortened, or lose a whole writer, unnoticed.

Each writer appends to it, as JSON lines, fsynced once the store has committed them:
its `start` statement when it registers (it begins, or continues, its chain at record N
with hash H) and every checkpoint it signs. The log lives where whoever can rewrite the
store cannot write (another folder, volume or host). `verify` compares the two: what the
log has and the store lacks was deleted from the store; a writer the store says anchors
to this log, but whose registration or newest checkpoint the log lacks, means the log was
cut short. The store names a log by `identity` (host and absolute path).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from extproc.recording.chain import Checkpoint

_TEXT_FIELDS = ("writer", "kind", "hash", "key_id", "signature")


class AnchorLogError(Exception):
    """A line that is no statement: the file is not an anchor log (the message says where)."""


def identity(path: Path) -> str:
    """How a writer's registration names its log: a host's file, whichever the folder."""
    return f"{socket.gethostname()}:{path.resolve()}"


def append(path: Path, statements: list[Checkpoint]) -> None:
    """Append `statements` and fsync (raises OSError): a statement is anchored once it is on
    disk. O_APPEND: writers sharing the file never interleave within a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as out:
        out.write(b"".join(orjson.dumps(s.as_json()) + b"\n" for s in statements))
        out.flush()
        os.fsync(out.fileno())


@dataclass
class AnchorLog:
    """One anchor log as read: its statements, and whether it ends cut mid-line."""

    path: Path
    identity: str
    statements: list[Checkpoint] = field(default_factory=list)
    read_us: int = field(default_factory=lambda: int(time.time() * 1e6))
    exists: bool = True
    cut_line: int | None = None  # a last line cut short (no newline, not a statement)


def read(path: Path) -> AnchorLog:
    """The statements in `path`, read before the store is (one is appended only once the
    store has it, so all must be there). A missing file is an empty log that says so
    (verify decides whether one was due); a last line cut mid-way is noted, not refused (the
    log was truncated, or its writer died mid-write); any other line that is not a
    statement raises AnchorLogError: the file is something else."""
    log = AnchorLog(path, identity(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        log.exists = False
        return log
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorLogError(f"{path}: cannot read: {exc}") from None
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            log.statements.append(_statement(line))
        except (ValueError, TypeError) as exc:
            if number == len(lines):  # the last line, with no newline after it
                log.cut_line = number
                continue
            raise AnchorLogError(f"{path}: line {number}: not a checkpoint: {exc}") from None
    return log


def _statement(line: str) -> Checkpoint:
    statement = Checkpoint(**json.loads(line))
    if not (isinstance(statement.seq, int) and isinstance(statement.signed_us, int)
            and all(isinstance(getattr(statement, name), str) for name in _TEXT_FIELDS)):
        raise TypeError("a field has the wrong type")
    return statement
