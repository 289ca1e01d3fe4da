"""A person's end or lock that the store could not take: kept on this replica's disk,
carried out here at once, and written to the store once it answers.

An end or a lock through the admin API (admin/live/api.py) that meets the store out, or
whose record the recorder cannot admit (the store that holds the record is out), is not
refused: it is kept in a file of its own in `sessions.kept_dir` before the person is
answered (202): JSON with an HMAC-SHA256 under a key derived from the audit key (a file
this gateway did not make is moved aside, never carried out), written whole, fsynced,
mode 0600 in a folder of mode 0700. Every process of the replica reads the folder at
start, before it serves, and then every `POLL_SECONDS`: each act found is carried out in
it at once (its session ended, its identity refused: live.py's `kept`), and stays so
until the store has it.

One process at a time (an flock on the folder) writes the acts to the store, oldest
first, each in one transaction with its id in `kept_acts` (live_store.py's
`write_kept`): an act whose file outlived its commit is not written twice. The act's
record, when the recorder could not take it as the act was taken, moves to a `.record`
file of its own as the act is written (one that outlived its write has its record
handed over only if the store holds none with its trace id), handed to the recorder as
soon as it admits it, and the files deleted. The other replicas carry it out as they
carry out any end or lock: at the NOTIFY, or at their next poll. Nothing here is on an
exchange's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from extproc.codecs import private_file
from extproc.codecs.message import Request
from extproc.config import Target
from extproc.exchange.live import LiveSessions, Lock
from extproc.exchange.live_store import POLL_SECONDS, LiveStore
from extproc.exchange.ports import Recorder
from extproc.identity import Authenticated
from extproc.recording import BodyCapture, Evidence, RecordingUnavailable
from extproc.store import StoreError

log = logging.getLogger("tollgate.sessions")

# What the kept acts' key is derived for (recording/chain.py's Signer.derive).
KEY_PURPOSE = "kept-acts"
_ACT, _RECORD, _ASIDE, _LOCK = ".act", ".record", ".corrupt", ".lock"


class KeptCorrupt(Exception):
    """A kept file that cannot be trusted as this gateway wrote it: why."""


@dataclass(frozen=True, slots=True)
class KeptAct:
    """An end (`session_id`) or a lock, as the person asked it at `taken_us`."""

    act_id: str
    action: str  # "end" or "lock"
    taken_us: int
    by: str
    reason: str
    session_id: str | None = None
    # Whom it locks out: a lock's identity; an end's when its session is held here (else
    # found in the store as the act is written).
    identity: str | None = None
    locking: bool = False
    until_us: int | None = None  # the lock's end; None: until unlocked
    # Its record, when the recorder could not take it as the act was taken.
    record: dict[str, Any] | None = None

    def lock(self, identity: str | None = None) -> Lock | None:
        """The lock it gives (an end's: `identity` when its own is not known)."""
        who = self.identity or identity
        if not self.locking or who is None:
            return None
        return Lock(who, self.reason, self.by, self.until_us)

    def ended(self) -> tuple[str, str, str] | None:
        return None if self.session_id is None else (self.session_id, self.reason, self.by)


def moderation_evidence(
        started: float, trace_id: str, span_id: str, headers: dict[str, str],
        caller: Authenticated, target: Target | None, request: Request, body: BodyCapture,
        meaning: dict[str, Any], status: int, content_type: str, refusal: str | None,
        duration_ms: float) -> Evidence:
    """A person's act on the live sessions as the audit record keeps it (kind
    `moderation`): who, the request, what was ended or locked and why, the answer."""
    evidence = Evidence(
        "moderation", started, trace_id, span_id, headers, caller, target, request, body,
        meaning_key="moderation", meaning=meaning,
        response={"status": status, "headers": {"content-type": content_type},
                  "body": None},
        outcome={"tollgate.decision.action": "allow" if refusal is None else "deny",
                 "http.response.status_code": status,
                 **({"tollgate.refusal": refusal} if refusal else {})},
        duration_ms=duration_ms)
    evidence.response_type = content_type
    return evidence


class KeptActs:
    """This replica's folder of kept acts: kept, carried out, written to the store."""

    def __init__(self, folder: Path, key: bytes, store: LiveStore, sessions: LiveSessions,
                 recorder: Recorder, replica: str, targets: Mapping[str, Target],
                 record_limit: int, every: float = POLL_SECONDS) -> None:
        self.folder, self.replica = folder, replica
        self._key, self._store, self._sessions = key, store, sessions
        self._recorder, self._targets, self._record_limit = recorder, targets, record_limit
        self._every = every
        self._acts: dict[str, KeptAct] = {}  # as last read, by id
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._waiting: str | None = None  # why the store did not take them (logged once)
        self._task: asyncio.Task[None] | None = None

    # -- the admin API ---------------------------------------------------------------------

    def keep(self, act: KeptAct) -> None:
        """Write `act` to disk (OSError when it cannot be: then it is not carried out),
        carry it out here, and try the store soon."""
        self._save(act.act_id + _ACT, dataclasses.asdict(act))
        self._acts[act.act_id] = act
        self._sessions.kept(act.act_id, act.ended(), act.lock())
        log.warning("%s of %s by %s kept on %s's disk while the store is out: %s",
                    act.action, act.session_id or act.identity, act.by, self.replica,
                    act.reason)
        self._wake.set()

    # -- the process's life ----------------------------------------------------------------

    async def start(self) -> None:
        """The acts kept by an earlier run carried out here now; the writer started."""
        self._read()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stopped; what is kept stays on disk for the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._read()
            if self._acts or self._records():
                await self.write()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every)
            self._wake.clear()

    def _read(self) -> None:
        """The folder's acts: each new one carried out here, each gone (the store has it)
        let go once the store is read with it."""
        try:
            found = {path.name.removesuffix(_ACT) for path in self.folder.glob(f"*{_ACT}")}
        except OSError as exc:
            log.error("sessions.kept_dir %s cannot be read: %s", self.folder, exc)
            return
        for act_id in set(self._acts) - found:
            del self._acts[act_id]
            self._sessions.kept_written(act_id, time.monotonic())
        for act_id in sorted(found - set(self._acts)):
            act = self._open_act(act_id)
            if act is not None:
                self._acts[act_id] = act
                self._sessions.kept(act_id, act.ended(), act.lock())

    # -- writing to the store ----------------------------------------------------------------

    async def write(self) -> bool:
        """Write the kept acts to the store, oldest first, and hand their records over;
        False when some are still waiting (the store is out, or another process of the
        replica is writing them)."""
        async with self._writing:
            with self._folder_lock() as mine:
                if not mine:
                    return False
                for act_id in sorted(self._acts, key=lambda a: self._acts[a].taken_us):
                    act = self._open_act(act_id)  # afresh: another process may have written it
                    if act is None:
                        continue
                    try:
                        fresh, locked = await self._store.write_kept(act)
                    except StoreError as exc:
                        self._wait(str(exc))
                        return False
                    self._written(act, fresh, locked)
                    if act.record is not None:  # not yet handed over, unless written before
                        try:
                            handed = not fresh and await self._store.recorded(
                                act.record["trace_id"])
                        except StoreError as exc:
                            self._wait(str(exc))
                            return False
                        if not handed:
                            self._save(act_id + _RECORD, act.record)
                    self._unlink(act_id + _ACT)
                    self._acts.pop(act_id, None)
                    self._sessions.kept_written(act_id, time.monotonic())
                return self._hand_records() and not self._acts

    def _written(self, act: KeptAct, fresh: bool, locked: str | None) -> None:
        if self._waiting is not None:
            log.info("sessions: the store answers again: the kept ends and locks are "
                     "written")
            self._waiting = None
        if not fresh:
            log.info("kept %s %s was written before (its file outlived the write)",
                     act.action, act.act_id)
            return
        log.info("kept %s of %s by %s (taken %s) written to the store", act.action,
                 act.session_id or act.identity, act.by,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(act.taken_us / 1e6)))
        if act.locking and locked is None:
            log.warning("the kept end of session %s locks nobody out: the store no longer "
                        "lists the session, so its identity is not known", act.session_id)

    def _records(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return sorted(self.folder.glob(f"*{_RECORD}"))
        return []

    def _hand_records(self) -> bool:
        """The kept acts' records handed to the recorder (under the folder's lock);
        False when it cannot take them yet."""
        for path in self._records():
            try:
                record = self._open(path, _RECORD)
            except FileNotFoundError:
                continue
            except KeptCorrupt as exc:
                self._aside(path, exc)
                continue
            try:
                self._recorder.admit()
            except RecordingUnavailable as exc:
                self._wait(str(exc))
                return False
            self._recorder.submit(self._evidence(record))
            self._unlink(path.name)
        return True

    def _evidence(self, record: dict[str, Any]) -> Evidence:
        meaning = record["meaning"]
        return moderation_evidence(
            record["started"], record["trace_id"], record["span_id"], record["headers"],
            record["caller"], self._targets.get(str(meaning.get("target"))),
            record["request"],
            BodyCapture.of(record["body"].encode(), self._record_limit), meaning,
            record["status"], "application/json", None, record["duration_ms"])

    def _wait(self, why: str) -> None:
        if self._waiting is None:
            log.error("sessions: the ends and locks kept on %s's disk (%d), or their "
                      "records, cannot be written yet (%s); tried again every %g s",
                      self.replica, len(self._acts), why, self._every)
        self._waiting = why

    # -- the files ---------------------------------------------------------------------------

    def _save(self, name: str, content: dict[str, Any]) -> None:
        kind = name.rpartition(".")[2]
        body = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        private_file.write(self.folder / name, orjson.dumps(
            {"kept": kind, "content": content, "mac": self._mac(kind, body)}))
        private_file.sync_folder(self.folder)

    def _open_act(self, act_id: str) -> KeptAct | None:
        path = self.folder / (act_id + _ACT)
        try:
            content = self._open(path, _ACT)
            act = KeptAct(**content)
        except FileNotFoundError:
            return None
        except (KeptCorrupt, TypeError) as exc:
            self._aside(path, exc)
            return None
        if act.act_id != act_id:
            self._aside(path, KeptCorrupt(f"it names act {act.act_id}"))
            return None
        return act

    def _open(self, path: Path, suffix: str) -> dict[str, Any]:
        """The content of a kept file made by this gateway (KeptCorrupt otherwise)."""
        try:
            sealed = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise KeptCorrupt(f"not JSON: {exc}") from None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise KeptCorrupt(str(exc)) from None
        kind = suffix.removeprefix(".")
        if not isinstance(sealed, dict) or sealed.get("kept") != kind:
            raise KeptCorrupt(f"no kept {kind}")
        body = orjson.dumps(sealed.get("content"), option=orjson.OPT_SORT_KEYS)
        if not hmac.compare_digest(str(sealed.get("mac")), self._mac(kind, body)):
            raise KeptCorrupt("its HMAC does not match this gateway's key")
        content: dict[str, Any] = sealed["content"]
        return content

    def _mac(self, kind: str, body: bytes) -> str:
        return hmac.new(self._key, kind.encode() + b"\0" + body, hashlib.sha256).hexdigest()

    def _aside(self, path: Path, why: Exception) -> None:
        """A file that is not ours, moved aside (never carried out, never deleted)."""
        log.error("kept file %s cannot be trusted (%s): moved aside as %s%s", path, why,
                  path.name, _ASIDE)
        with contextlib.suppress(OSError):
            path.rename(path.with_name(path.name + _ASIDE))
        self._acts.pop(path.name.removesuffix(_ACT), None)

    def _unlink(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)
        private_file.sync_folder(self.folder)

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[bool]:
        """Whether this process is the one writing the folder's acts now (an flock)."""
        try:
            fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # no folder yet: nothing was kept
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
