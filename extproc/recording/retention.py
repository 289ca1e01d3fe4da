"""What pruning deletes and what it keeps: retention per target, and legal holds.

A record is past retention when it started more than its target's `retention_days` ago
(the store's when its target sets none, or it has no target; 0: kept for ever). It is
still kept while a legal hold names its session, or a trace one of that session's
records belongs to. So what is deleted is no longer a prefix of a chain: the leading
deleted range leaves a signed `prune` statement, as it always did, and each range deleted
from among kept records a signed `cut` statement (its first and last record, and the
last one's hash, which the next remaining record links to). A range at a chain's end
waits for a newer record to follow it: a cut nothing links to vouches for nothing.

Pruning never hides a deletion it did not make: a gap no statement covers stays a gap
(and `verify` keeps naming it); it is not merged into a range pruned next to it.

Terminal recordings (recording/terminal.py) go with the last record of their trace, in the
same transaction; one no record vouches for, once past every retention and not held.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from extproc.config import Config
from extproc.recording import store, terminal
from extproc.recording.chain import Checkpoint, Signer
from extproc.store import Connection, StoreError

_DAY_US = 86_400_000_000


class HoldError(Exception):
    """A hold that cannot be placed or released (the message says why)."""


@dataclass(frozen=True)
class Rules:
    """How long records are kept, in days (0: for ever): the store's, and each target's
    that sets its own (a target the config no longer has follows the store's)."""

    store_days: float = 0
    target_days: dict[str, float] = field(default_factory=dict)

    @property
    def prunes(self) -> bool:
        """Whether any record is ever past retention."""
        return bool(self.store_days or any(self.target_days.values()))

    def cutoffs(self, now_us: int) -> tuple[int | None, dict[str, int | None]]:
        """The start before which records are past retention: the store's, per target."""
        return _cutoff(self.store_days, now_us), {
            name: _cutoff(days, now_us) for name, days in self.target_days.items()}


def rules_of(config: Config, store_days: float | None = None) -> Rules:
    """The config's retention (with `store_days` in place of the store's, if given)."""
    return Rules(config.store.retention_days if store_days is None else store_days,
                 {t.name: t.retention_days for t in config.targets
                  if t.retention_days is not None})


@dataclass
class Pruned:
    """What a prune deleted (per writer), and what it kept of what is past retention."""

    deleted: dict[str, int] = field(default_factory=dict)
    held: int = 0  # past retention, in a held session or trace
    waiting: int = 0  # past retention, at a chain's end: deleted once a newer record follows
    # Past the store's retention, kept by their target's longer one (or its 0: for ever).
    by_target: dict[str, int] = field(default_factory=dict)
    recordings: int = 0  # terminal recordings deleted

    def kept(self) -> list[str]:
        """Why what is past retention (the store's, or its target's) was kept."""
        found = [f"{self.held} in held sessions"] if self.held else []
        if self.waiting:
            found.append(f"{self.waiting} at a chain's end, until a newer record follows")
        found += [f"{count} of target {name} within its own retention"
                  for name, count in sorted(self.by_target.items())]
        return found


@dataclass(frozen=True)
class Hold:
    session_id: str
    held_us: int
    held_by: str
    reason: str


def hold(connection: Connection, session_id: str, reason: str, by: str) -> int:
    """Hold a session's records (and its traces') from pruning. Returns how many records
    it holds now. A session with no record is refused: a mistyped id would hold nothing
    while looking as if it did."""
    _require_holds(connection)
    with connection.transaction():
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM records WHERE session_id = ? OR trace_id = ?",
            (session_id, session_id))[0]
        if not count:
            raise HoldError(f"no record of session {session_id!r} in {connection.where}: "
                            "nothing to hold (give a session id as replay --session takes)")
        found = _held(connection, session_id)
        if found is not None:
            raise HoldError(f"session {session_id!r} is already held (by {found.held_by}: "
                            f"{found.reason})")
        connection.execute(
            "INSERT INTO legal_holds (session_id, held_us, held_by, reason) "
            "VALUES (?, ?, ?, ?)", (session_id, int(time.time() * 1e6), by, reason))
    return int(count)


def release(connection: Connection, session_id: str) -> Hold:
    """End a hold; its records are pruned as retention says from the next prune on."""
    _require_holds(connection)
    with connection.transaction():
        found = _held(connection, session_id)
        if found is None:
            raise HoldError(f"session {session_id!r} is not held")
        connection.execute("DELETE FROM legal_holds WHERE session_id = ?", (session_id,))
    return found


def holds(connection: Connection) -> list[Hold]:
    """Every hold, oldest first."""
    _require_holds(connection)
    return [Hold(*values) for values in connection.execute(
        "SELECT session_id, held_us, held_by, reason FROM legal_holds "
        "ORDER BY held_us, session_id")]


def prune(connection: Connection, signer: Signer, rules: Rules,
          now_us: int | None = None) -> Pruned:
    """Delete what is past retention and not held, leaving every chain verifiable (the
    module's docstring says how). One transaction: all of it, or nothing."""
    store_cutoff, target_cutoffs = rules.cutoffs(
        int(time.time() * 1e6) if now_us is None else now_us)
    pruned = Pruned()
    if not rules.prunes:
        return pruned  # everything is kept for ever
    cutoffs = [c for c in (store_cutoff, *target_cutoffs.values()) if c is not None]
    _require_holds(connection)
    with connection.transaction():
        _check_key(connection, signer)
        held = _held_keys(connection)
        statements = store.checkpoints(connection)
        writers = connection.execute(
            "SELECT writer, MAX(seq) FROM records WHERE started_us < ? GROUP BY writer",
            (max(cutoffs),))
        for writer, bound in writers:
            mine = [s for s in statements if s.writer == writer]
            start = max((s.seq for s in mine if s.kind == "prune"), default=0)
            if bound <= start:
                continue  # only records standing where a prune was: verify names them
            rows = connection.stream(
                "SELECT seq, started_us, target, session_id, trace_id, hash, prev_hash "
                "FROM records WHERE writer = ? AND seq > ? ORDER BY seq LIMIT ?",
                (writer, start, bound - start + 1))  # one past `bound`: what follows it
            walk = _Walk(start, {s.from_seq: s for s in mine if s.kind == "cut"})
            for seq, started_us, target, session_id, trace_id, hash_, prev_hash in rows:
                cutoff = target_cutoffs.get(target, store_cutoff)
                past = cutoff is not None and started_us < cutoff
                if not past and store_cutoff is not None and started_us < store_cutoff:
                    pruned.by_target[target] = pruned.by_target.get(target, 0) + 1
                kept_held = past and (session_id in held or trace_id in held)
                pruned.held += kept_held
                walk.add(seq, hash_, prev_hash, past and not kept_held)
            pruned.waiting += walk.end()
            for run in walk.runs:
                pruned.recordings += _delete(connection, signer, writer, run)
                pruned.deleted[writer] = pruned.deleted.get(writer, 0) + run.records
        if store_cutoff is not None and None not in target_cutoffs.values():
            # No record names the target of one that no record vouches for: it goes once
            # past the longest retention (never while any keeps for ever).
            pruned.recordings += terminal.prune_unrecorded(
                connection, min(cutoffs), held)
    return pruned


@dataclass
class _Run:
    """Consecutive seqs to be gone: records to delete, and ranges already cut."""

    first: int
    leading: bool  # nothing kept before it: a prune statement, else a cut
    last: int = 0
    hash: str = ""
    records: int = 0


class _Walk:
    """A chain's records in order, gathered into the runs to delete."""

    def __init__(self, start: int, cuts: dict[int | None, Checkpoint]) -> None:
        self.runs: list[_Run] = []
        self._cuts = cuts
        self._expect = start + 1
        self._leading = True
        self._run: _Run | None = None

    def add(self, seq: int, hash_: str, prev_hash: str, delete: bool) -> None:
        if seq > self._expect:
            cut = self._cuts.get(self._expect)
            if cut is not None and cut.seq == seq - 1 and cut.hash == prev_hash:
                self._extend(self._expect, cut.seq, cut.hash, 0)  # a range cut before
            else:
                self._close()  # a gap no statement covers: left for verify to name
        if delete:
            self._extend(seq, seq, hash_, 1)
        else:
            self._close()
        self._expect = seq + 1

    def end(self) -> int:
        """The chain ends: a leading run is pruned whole; an interior one waits. Returns
        how many records wait."""
        run, self._run = self._run, None
        if run is not None and run.leading:
            self.runs.append(run)
            return 0
        return run.records if run is not None else 0

    def _extend(self, first: int, last: int, hash_: str, records: int) -> None:
        if self._run is None:
            self._run = _Run(first, self._leading)
        self._run.last, self._run.hash = last, hash_
        self._run.records += records

    def _close(self) -> None:
        if self._run is not None and self._run.records:
            self.runs.append(self._run)
        self._run, self._leading = None, False


def _delete(connection: Connection, signer: Signer, writer: str, run: _Run) -> int:
    """Delete a run's records and the statements about them, and the terminal recordings
    whose last records they are; sign what replaces them. Returns how many recordings."""
    signed_us = int(time.time() * 1e6)
    params: tuple[object, ...]
    if run.leading:
        statement = signer.sign("prune", writer, run.last, run.hash, signed_us)
        where, params = "writer = ? AND seq <= ?", (writer, run.last)
    else:
        statement = signer.sign("cut", writer, run.last, run.hash, signed_us, run.first)
        where, params = "writer = ? AND seq BETWEEN ? AND ?", (writer, run.first, run.last)
    gone = terminal.prune_with_records(connection, where, params)
    connection.execute(f"DELETE FROM records WHERE {where}", params)
    connection.execute(f"DELETE FROM checkpoints WHERE {where}", params)
    store.add_checkpoints(connection, [statement])
    return gone


def _check_key(connection: Connection, signer: Signer) -> None:
    keys = {k for (k,) in connection.execute("SELECT DISTINCT key_id FROM checkpoints")}
    if keys - {signer.public.key_id}:
        # Pruning deletes evidence: only with the key the chain was signed with, or what
        # remains would no longer verify.
        raise StoreError(
            f"{connection.where}: its checkpoints are signed with key "
            f"{', '.join(sorted(keys))}, not {signer.public.key_id}: not pruning")


def _held_keys(connection: Connection) -> set[str]:
    """The held sessions, and every trace their records belong to (a trace's records
    share its fate: a held session's exchange is not kept without its approval's)."""
    sessions = [s for (s,) in connection.execute("SELECT session_id FROM legal_holds")]
    return set(sessions) | set(_traces(connection, sessions))


def _traces(connection: Connection, sessions: Iterable[str]) -> Iterable[str]:
    for session in sessions:
        for (trace,) in connection.execute(
                "SELECT DISTINCT trace_id FROM records WHERE session_id = ?", (session,)):
            yield trace


def _held(connection: Connection, session_id: str) -> Hold | None:
    found = connection.execute(
        "SELECT session_id, held_us, held_by, reason FROM legal_holds WHERE session_id = ?",
        (session_id,))
    return Hold(*found[0]) if found else None


def _require_holds(connection: Connection) -> None:
    if store.version(connection) < store.CUTS:
        raise StoreError(f"{connection.where}: its recording tables predate legal holds and "
                         "cut statements; start this tollgate on it once to upgrade them")


def _cutoff(days: float, now_us: int) -> int | None:
    return None if not days else now_us - int(days * _DAY_US)
