"""The anchor log: signed statements kept outside the store, so that the store alone
cannot be shortened, or lose a whole writer, unnoticed.

Each writer appends to it, as JSON lines, fsynced once the store has committed them:
its `start` statement when it registers (it begins, or continues, its chain at record N
with hash H) and every checkpoint it signs. The log lives where whoever can rewrite the
store cannot write (another folder, volume or host). `verify` compares the two: what the
log has and the store lacks was deleted from the store; a writer the store says anchors
to this log, but whose registration or newest checkpoint the log lacks, means the log was
cut short. The store names a log by `identity` (host and absolute path).

Each statement names the store it is about (its id, signed with it): two stores whose
configs name one log (a copied config keeps the file) each verify against their own
anchors only. A writer does not start on a log another store's writers append to
unless told it is shared (`recording.shared_anchor_log`): `stores_named`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from extproc.recording.chain import Checkpoint

_TEXT_FIELDS = ("writer", "kind", "hash", "key_id", "signature")
# How much of a log's beginning and of its end `stores_named` reads: the store it was
# first written for, and those writing to it now, without reading a long log whole.
_SCANNED_BYTES = 1 << 20
# A statement's store id as `append` writes it (orjson: no spaces), found in one pass.
_STORE_ID = re.compile(rb'"store_id":"([0-9a-zA-Z_-]{1,64})"')


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


def stores_named(path: Path) -> set[str]:
    """The store ids the statements of the log's first and last MiB name: the store it
    was first written for, and those whose writers append to it now (a log of several
    GiB is not read whole at each start). A log not there names none (its first append
    makes it, or says why it cannot); what is not a statement is passed over (verify
    names it)."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(0)
            head = log.read(_SCANNED_BYTES)
            tail = b""
            if size > _SCANNED_BYTES:
                log.seek(max(_SCANNED_BYTES, size - _SCANNED_BYTES))
                tail = log.read(_SCANNED_BYTES).partition(b"\n")[2]  # from a whole line
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {found.decode() for found in _STORE_ID.findall(head + b"\n" + tail)}


def _statement(line: str) -> Checkpoint:
    statement = Checkpoint(**json.loads(line))
    if not (isinstance(statement.seq, int) and isinstance(statement.signed_us, int)
            and all(isinstance(getattr(statement, name), str) for name in _TEXT_FIELDS)
            and isinstance(statement.store_id, str | None)):
        raise TypeError("a field has the wrong type")
    return statement
