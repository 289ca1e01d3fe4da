"""A look at the record from the command line, itself recorded.

Every `tollgate audit` command that shows what the record holds (search, sessions,
replay, whatif, report, export) leaves a record of kind `access`, as a read through the
recordings API does: who looked (the operating-system user running it, as that system
authenticated them: `identity.iss` is `os:HOST`), with which command and arguments, and
what it was shown (the records' ids, or the sessions', up to 500, and how many). The
record is written by a chain of its own (`cli-HOST-PID-TAG`), registered in the store
and the anchor log before anything is read, and it is written, checkpointed, signed and
anchored before anything is shown: a look that cannot be recorded (a read-only store,
no signing key, an anchor log that cannot be written) is not made (exit 2). A look
refused once the store was open (an id that names no record) is recorded too, refused.

Not recorded: `verify` (it shows no record's content, only whether and where chains
break, and must run where nothing can be written: an auditor's copy, with the key's
public half), `hold` and `prune` (they change what is kept, and leave their own traces:
the hold's who and why, signed prune statements), and what reads a file rather than the
store (`verify-export`, `verify-report`). Whoever reads the store itself (its file, its
database) reads it unrecorded: who may is the host's and the database's access control.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import secrets
import shlex
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.codecs.durations import Unusable

if TYPE_CHECKING:
    from extproc.identity import Authenticated
    from extproc.recording.record import Evidence
    from extproc.recording.writer import LoneWriter
    from extproc.store import Connection

# What the access record keeps of what a look showed: ids, up to this many (as the
# recordings API's access records).
_MOST_IDS_KEPT = 500
# Parsed arguments that are not the look's own.
_NOT_ASKED = frozenset({"command", "audit_command", "log_level", "argv"})


class Look:
    """One command's look: its record written once, when `shown` says what it shows (or,
    refused, when it ends)."""

    def __init__(self, writer: LoneWriter, args: argparse.Namespace) -> None:
        self._writer, self._args = writer, args
        self._started = time.time()
        self.recorded: str | None = None  # the access record's id, once written
        self._failed = False

    def shown(self, returned: Sequence[str] | None = None, count: int | None = None,
              ) -> None:
        """Record the look before it is shown: the ids of what it shows (records, or
        sessions), and how many records it read (`count`; by default as many as ids;
        neither given: not known before it is shown, as an export's). Raises Unusable
        when it cannot be recorded: then nothing is shown."""
        if count is None and returned is not None:
            count = len(returned)
        self._write(returned or (), count, None)

    def refused(self, why: str) -> None:
        """Record a look that ends without an answer (exit 2, `why`), unless its record
        is written already (or could not be: its failure is what the command says)."""
        if self.recorded is None and not self._failed:
            with contextlib.suppress(Unusable):  # the refusal is what the command says
                self._write((), 0, why)

    def _write(self, returned: Sequence[str], count: int | None,
               refusal: str | None) -> None:
        from extproc.store import StoreError

        if self.recorded is not None:
            raise AssertionError("a look is recorded once")
        try:
            (self.recorded,) = self._writer.write([self._evidence(returned, count, refusal)])
        except StoreError as exc:
            self._failed = True
            raise Unusable(f"this look at the record cannot be recorded, so it is not "
                           f"shown: {exc}") from None

    def _evidence(self, returned: Sequence[str], count: int | None,
                  refusal: str | None) -> Evidence:
        from extproc.recording.record import Evidence

        args = self._args
        command = f"audit {args.audit_command}"
        argv = getattr(args, "argv", None)
        line = "tollgate " + shlex.join(argv if argv is not None else command.split())
        meaning = {
            "via": "cli", "endpoint": args.audit_command, "command_line": line,
            "arguments": _asked(args), "host": socket.gethostname(), "pid": os.getpid(),
            "count": count, "returned": list(returned[:_MOST_IDS_KEPT]),
            "returned_truncated": len(returned) > _MOST_IDS_KEPT,
        }
        outcome: dict[str, Any] = {"tollgate.decision.action": "allow"}
        if refusal is not None:
            outcome = {"tollgate.decision.action": "deny", "tollgate.refusal": "unusable_input",
                       "tollgate.outcome": refusal}
        headers = {":method": "tollgate", ":path": command}
        return Evidence(
            "access", self._started, secrets.token_hex(16), secrets.token_hex(8), headers,
            reader(), None, {"method": "tollgate", "path": command, "query": {},
                             "headers": {}, "body": None},
            meaning_key="access", meaning=meaning, outcome=outcome,
            duration_ms=(time.time() - self._started) * 1000)


@contextmanager
def looking(config: config_module.Config, args: argparse.Namespace,
            ) -> Iterator[tuple[Connection, Look]]:
    """The config's store (as `audit_access.store` opens it), and the look at it, whose
    writer is registered before anything is read. The block calls `look.shown(...)`
    before it shows anything; a block ending in unusable input is recorded as a look
    refused."""
    from extproc.masking import Masker
    from extproc.recording.writer import LoneWriter, RecorderSettings, default_writer_id
    from extproc.store import StoreError

    try:
        signer = access.signer(config)
    except Unusable as exc:
        raise Unusable(f"a look at the record is recorded, signed with its key, and "
                       f"this one cannot be: {exc}") from None
    anchor = config.recording.checkpoint_file
    settings = RecorderSettings(
        queue_size=1, batch_size=1, checkpoint_every=1, checkpoint_seconds=3600.0,
        checkpoint_file=config.resolve(anchor) if anchor else None,
        shared_anchor_log=config.recording.shared_anchor_log,
        writer_id=f"cli-{default_writer_id()}")
    with access.store(config) as connection:
        # The record masks by redacting (recording/record.py's RECORD_MASK): no value is
        # hashed, so the masker's key is never used.
        writer = LoneWriter(connection, settings, signer, Masker(secrets.token_bytes(32)))
        try:
            writer.start()
        except StoreError as exc:
            raise Unusable(f"this look at the record cannot be recorded, so it is not "
                           f"made: {exc}") from None
        look = Look(writer, args)
        try:
            yield connection, look
        except (Unusable, StoreError) as exc:  # a StoreError: Unusable once out of the store
            look.refused(str(exc))
            raise
        except Exception as exc:  # a bug: its traceback follows, the look recorded
            look.refused(f"tollgate failed: {type(exc).__name__}")
            raise
        if look.recorded is None:
            raise AssertionError(f"audit {args.audit_command} showed what it read "
                                 "without recording the look (Look.shown)")


def reader() -> Authenticated:
    """Who looks from the command line: the operating-system user this process runs as
    (its effective uid, not $USER, which the user sets), on this host."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no name (a container's)
        user = f"uid-{os.geteuid()}"
    return {"authenticated": True, "sub": user, "iss": f"os:{socket.gethostname()}",
            "aud": [], "email": None, "groups": [], "jti": None}


def _asked(args: argparse.Namespace) -> dict[str, Any]:
    """The look's arguments as parsed (defaults included; those not given left out),
    paths as text."""
    return {name: _plain(value) for name, value in sorted(vars(args).items())
            if name not in _NOT_ASKED and value not in (None, False, [])}


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(each) for each in value]
    return value if isinstance(value, str | int | float | bool) else str(value)
