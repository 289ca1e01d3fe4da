"""`tollgate audit verify`: recompute every chain and check every signed statement.

For each writer's chain, in order: the numbering has no gap, each record's hash is the
hash of its content in its place, each record names its predecessor's hash, and the
searchable columns still match the content. A gap is pruning's only when a validly
signed `cut` statement covers exactly it and the record after it links to the hash the
statement names; any other missing record is deletion, and a cut that covers no such
gap (at a chain's end, or re-ranged) is named too. Then every checkpoint: its signature
is the audit key's, and the record it names is there with that hash.

The store alone cannot show what was cut from its end, or a writer deleted whole: so
the anchor logs kept outside it (`anchors.py`) are held against it, both ways. What a
log has and the store lacks was deleted from the store (a writer, a tail: "shortened", a
statement, a registration); what the store has and the log of a writer registered with
it lacks, was cut from the log. A chain is vouched for up to its newest anchored
statement; what comes after, and any writer no given log knows, only the store shows.

An anchor log may be shared by stores (two configs naming one file): each statement names
its store's id, signed with it, and a store is held only to the anchors that name it (or
name none: written before stores had ids); the others are counted as skipped. What
names the store's id is signed: a store whose id was changed (to skip its own anchors)
has statements naming the old one, which is named; one whose id no signed statement
names (nothing started on it, or everything naming the old id was deleted with it) is
held to every anchor, as before ids.

Records that were spooled while the store could not take them (spool.py) are ordinary
links of their chains; verify says how many there are, from which stop, why, and when
they were written (`Report.spooled`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc.codecs.text import utc
from extproc.recording import store
from extproc.recording.anchors import AnchorLog
from extproc.recording.chain import GENESIS, Checkpoint, Verifier, record_hash
from extproc.store import Connection

# Problems reported per chain: the first broken link is what matters; the rest is noise.
_MOST_PER_CHAIN = 20
# A checkpoint signed this shortly before its log was read may be between the store's
# commit and the log's append: not yet anchored, rather than cut from the log.
_IN_FLIGHT_US = 5_000_000
# What problems about no one chain are filed under.
_LOG, _KEY, _STORE = "anchor log", "audit key", "store id"
# Trace ids listed per spool file (the rest are counted).
_TRACES_LISTED = 20


@dataclass(frozen=True)
class Problem:
    writer: str
    seq: int | None  # None: about the writer (or the log, the key) as a whole
    what: str

    def __str__(self) -> str:
        where = self.writer if self.seq is None else store.record_id(self.writer, self.seq)
        return f"{where}: {self.what}"


@dataclass
class Chain:
    writer: str
    first: int = 0
    last: int = 0
    records: int = 0
    pruned_to: int = 0  # the last seq a valid prune statement covers
    cut: list[tuple[int, int]] = field(default_factory=list)  # ranges valid cuts cover
    checkpointed_to: int = 0  # the last seq a valid checkpoint covers
    registered: dict[int, str | None] = field(default_factory=dict)  # start µs -> its log
    anchor: str | None = None  # the log its newest registration names
    anchored: bool = False  # a log given to verify is this writer's, or names it
    anchored_to: int = -1  # the newest record an anchored statement names
    anchored_us: int = 0  # when that statement was signed

    @property
    def end(self) -> int:
        """The newest record the store shows of this chain (pruned ones included)."""
        return self.last if self.records else self.pruned_to

    def gone(self, seq: int) -> bool:
        """Whether record `seq` was pruned (so statements naming it are stale)."""
        return seq <= self.pruned_to or any(a <= seq <= b for a, b in self.cut)


@dataclass
class Spooled:
    """The records written from one spool file: one stop the store could not wait for."""

    spool: str  # the spool file's id
    reason: str  # why they were spooled
    spooled_us: int
    written_us: int  # when the first of them was written into the chain
    records: int = 0
    writers: set[str] = field(default_factory=set)  # the chains they were written into
    first_us: int = 0  # the earliest and latest of their exchanges
    last_us: int = 0
    trace_ids: list[str] = field(default_factory=list)  # the first _TRACES_LISTED

    def add(self, row: store.Row) -> None:
        self.records += 1
        self.writers.add(row.writer)
        self.first_us = min(self.first_us or row.started_us, row.started_us)
        self.last_us = max(self.last_us, row.started_us)
        if len(self.trace_ids) < _TRACES_LISTED:
            self.trace_ids.append(row.trace_id)


@dataclass
class Report:
    chains: dict[str, Chain] = field(default_factory=dict)
    checkpoints: int = 0
    anchors: int = 0
    anchoring: bool = False  # anchor logs were given (none: nothing outside the store)
    # At most `listed_per_chain` problems of a chain are listed; `problem_count` counts all.
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    listed_per_chain: int = _MOST_PER_CHAIN
    # Records written from the spool, by spool file, oldest spooling first (spooled()).
    spooled_from: dict[str, Spooled] = field(default_factory=dict)
    # The store's id (None: its tables predate ids), and the anchors of other stores the
    # logs hold, which it is not held to: how many, by store id.
    store_id: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def spooled(self) -> list[Spooled]:
        return sorted(self.spooled_from.values(), key=lambda s: (s.spooled_us, s.spool))

    @property
    def intact(self) -> bool:
        return not self.problem_count

    def add(self, problem: Problem) -> None:
        _add(self, problem)

    def unvouched(self) -> dict[str, str]:
        """Chains only the store vouches for (so deletion from it may not show), and why."""
        if not self.anchoring:
            return {w: "no anchor log (recording.checkpoint_file is off)" for w in self.chains}
        return {c.writer: _why_unanchored(c) for c in self.chains.values() if not c.anchored}

    def first_broken(self) -> dict[str, Problem]:
        """The first problem of each chain, in chain order."""
        first: dict[str, Problem] = {}
        for problem in self.problems:
            first.setdefault(problem.writer, problem)
        return first


def verify(connection: Connection, verifier: Verifier,
           logs: list[AnchorLog] | None = None) -> Report:
    """Check the store against itself, and against the anchor `logs` kept outside it
    (None: there are none, and the report says what that leaves unvouched)."""
    report = Report(anchoring=logs is not None)
    statements = store.checkpoints(connection)
    signed = [c for c in statements if _signed(report, verifier, c)]
    pruned = _prune_points(signed)
    named: dict[tuple[str, int], list[Checkpoint]] = defaultdict(list)
    for checkpoint in signed:
        if checkpoint.kind == "checkpoint":
            named[(checkpoint.writer, checkpoint.seq)].append(checkpoint)
    mine = _own_ids(report, connection, verifier, signed, logs or [])
    anchored = _anchored(report, verifier, logs or [], mine)
    for statement in (s for found in anchored.values() for s in found):
        if statement.kind == "checkpoint" and _key(statement) not in {
                _key(c) for c in named[(statement.writer, statement.seq)]}:
            named[(statement.writer, statement.seq)].append(statement)

    cuts = {(c.writer, c.from_seq): c for c in signed if c.kind == "cut"
            and c.seq > getattr(pruned.get(c.writer), "seq", 0)}
    seen = _walk(report, connection, pruned, named, cuts)
    for registration in store.registrations(connection):
        chain = report.chains.setdefault(registration.writer, Chain(registration.writer))
        chain.registered[registration.registered_us] = chain.anchor = registration.anchor
    for writer, start in pruned.items():
        report.chains.setdefault(writer, Chain(writer)).pruned_to = start.seq
    _unlinked_cuts(report, cuts)
    shortened = _against_anchors(report, anchored, statements)
    _against_store(report, logs or [], anchored, signed)
    _against_checkpoints(report, named, seen, shortened)
    report.problems.sort(key=lambda p: (p.writer, p.seq or 0))
    return report


def _against_checkpoints(report: Report, named: dict[tuple[str, int], list[Checkpoint]],
                         seen: dict[tuple[str, int], str], shortened: set[str]) -> None:
    """Each record a signed checkpoint names is there, with the hash it names."""
    for (writer, seq), found in named.items():
        chain = report.chains.get(writer)
        if (chain is not None and chain.gone(seq)) or (
                writer in shortened and chain is not None and seq > chain.end):
            continue  # named a record pruned since, or one the shortening names already
        for checkpoint in found:
            if (writer, seq) not in seen:
                _add(report, Problem(writer, seq,
                                     "a signed checkpoint names this record, which is missing "
                                     "(deleted)"))
            elif seen[(writer, seq)] != checkpoint.hash:
                _add(report, Problem(writer, seq, "differs from what a signed checkpoint "
                                     "says it was (replaced)"))
            elif chain is not None:
                chain.checkpointed_to = max(chain.checkpointed_to, seq)


def _walk(report: Report, connection: Connection, pruned: dict[str, Checkpoint],
          named: dict[tuple[str, int], list[Checkpoint]],
          cuts: dict[tuple[str, int | None], Checkpoint]) -> dict[tuple[str, int], str]:
    """Every chain in order: numbering, hashes, links (across cuts), columns. Returns the
    hashes of the records signed statements name."""
    seen: dict[tuple[str, int], str] = {}
    writer, expected_seq, expected_prev = None, 0, GENESIS
    for row in store.chain_rows(connection):
        if row.writer != writer:
            writer = row.writer
            chain = report.chains[writer] = Chain(writer, first=row.seq)
            start = pruned.get(writer)
            expected_seq, expected_prev = (start.seq + 1, start.hash) if start else (1, GENESIS)
        chain.last, chain.records = row.seq, chain.records + 1
        cut = cuts.get((writer, expected_seq)) if row.seq > expected_seq else None
        if cut is not None and cut.seq == row.seq - 1:
            chain.cut.append((expected_seq, cut.seq))
            expected_prev = cut.hash  # the record after a cut links to its last
        elif row.seq > expected_seq:
            # A cut ending short of the gap covers only its part: the rest is deletion.
            missing = cut.seq + 1 if cut is not None and cut.seq < row.seq else expected_seq
            _add(report, Problem(writer, missing, _gap(missing, row.seq)))
            expected_prev = row.prev_hash  # the gap is the break; the link cannot be checked
        elif row.seq < expected_seq:
            _add(report, Problem(writer, row.seq,
                                 "stands where a prune statement says records were deleted"))
        if record_hash(row.prev_hash, row.writer, row.seq, row.content) != row.hash:
            _add(report, Problem(writer, row.seq,
                                 "its content does not match its hash (edited)"))
        elif row.prev_hash != expected_prev:
            _add(report, Problem(writer, row.seq, "does not link to the record before it "
                                 "(inserted, reordered, or its predecessor replaced)"))
        content = _content(row)
        edited = _columns_edited(row, content)
        _note_spooled(report, row, content)
        if edited:
            verb = "no longer matches" if len(edited) == 1 else "no longer match"
            _add(report, Problem(writer, row.seq,
                                 f"its {', '.join(edited)} {verb} its content (edited)"))
        expected_seq, expected_prev = row.seq + 1, row.hash
        if (writer, row.seq) in named:
            seen[(writer, row.seq)] = row.hash
    return seen


def _unlinked_cuts(report: Report, cuts: dict[tuple[str, int | None], Checkpoint]) -> None:
    """Valid cut statements that cover no gap a remaining record links across: one at a
    chain's end (nothing shows the range was the chain's), or one whose range differs
    from the gap's."""
    for cut in cuts.values():
        chain = report.chains.get(cut.writer)
        if chain is None or (cut.from_seq, cut.seq) not in chain.cut:
            _add(report, Problem(cut.writer, cut.from_seq, f"a cut statement says records "
                                 f"{cut.from_seq}..{cut.seq} were pruned, but no remaining "
                                 "record links across exactly that gap (at the chain's end, "
                                 "or records around it deleted or restored)"))


def _own_ids(report: Report, connection: Connection, verifier: Verifier,
             signed: list[Checkpoint], logs: list[AnchorLog]) -> set[str] | None:
    """The store ids whose anchors this store is held to: its own, and any its signed
    statements name (a changed id is named, and changes nothing). None: every anchor
    (the store predates ids, or no signed statement names its id, so nothing shows
    that the anchors naming another are not its own)."""
    ids = store.store_ids(connection)
    report.store_id = ids[0] if ids and len(ids) == 1 else None
    if ids is None:
        return None
    if len(ids) != 1:
        _add(report, Problem(_STORE, None, f"the store's id table holds "
                             f"{', '.join(ids) or 'no id'}, where it holds one id, made with "
                             "the store and never changed (edited)"))
    named = {c.store_id for c in signed if c.store_id is not None}
    for other in sorted(named - set(ids)):
        _add(report, Problem(_STORE, None, f"signed statements in the store name store "
                             f"{other}, but the store says it is {' or '.join(ids) or 'none'}: "
                             "its id was changed (an id is made with the store and never "
                             "changes), or statements of another store were copied in"))
    vouched = bool(named & set(ids)) or any(
        s.store_id in ids and verifier.valid(s) for log in logs for s in log.statements)
    if not vouched:
        others = {s.store_id for log in logs for s in log.statements
                  if s.store_id is not None and s.store_id not in ids}
        if others:
            _add(report, Problem(_STORE, None, f"no signed statement names the store's id "
                                 f"({' or '.join(ids) or 'none'}), while the anchor logs "
                                 f"hold anchors of store {', '.join(sorted(others))}: no "
                                 "writer has started on this store, or its id was changed "
                                 "and what named the old one deleted; it is held to every "
                                 "anchor"))
        return None
    return named | set(ids)


def _anchored(report: Report, verifier: Verifier, logs: list[AnchorLog],
              mine: set[str] | None) -> dict[str, list[Checkpoint]]:
    """The validly signed statements of each log (by identity), each once: those naming
    a store in `mine` or none (None: every one). Another store's are counted, unchecked:
    they may be signed with that store's key."""
    anchored: dict[str, list[Checkpoint]] = {}
    keys: set[str] = set()
    for log in logs:
        found: dict[tuple[str, int, str, str, int], Checkpoint] = {}
        for statement in log.statements:
            other = statement.store_id
            if mine is not None and other is not None and other not in mine:
                report.skipped[other] = report.skipped.get(other, 0) + 1
                continue
            report.anchors += 1
            keys.add(statement.key_id)
            if not verifier.valid(statement):
                _add(report, Problem(statement.writer, statement.seq, f"an anchored "
                                     f"{statement.kind} statement's signature is not the "
                                     "audit key's"))
                continue
            found.setdefault((*_key(statement), statement.signed_us), statement)
        anchored[log.identity] = [*anchored.get(log.identity, []), *found.values()]
        if log.cut_line is not None:
            _add(report, Problem(_LOG, None, f"{log.path}: line {log.cut_line} is cut short "
                                 "(the log was truncated mid-line, or its writer stopped "
                                 "mid-write)"))
    if keys - {verifier.key_id}:
        _add(report, Problem(_KEY, None, f"the anchor logs are signed with key "
                             f"{', '.join(sorted(keys))}, not {verifier.key_id}: the signing "
                             "key was replaced, or verify was given another one"))
    return anchored


def _against_anchors(report: Report, anchored: dict[str, list[Checkpoint]],
                     statements: list[Checkpoint]) -> set[str]:
    """What the logs have and the store lacks: a writer deleted whole, a chain shortened,
    a statement or registration deleted. Returns the writers found shortened."""
    stored = {_key(c) for c in statements}
    by_writer: dict[str, list[Checkpoint]] = defaultdict(list)
    for statement in (s for found in anchored.values() for s in found):
        by_writer[statement.writer].append(statement)
    shortened = set()
    for writer, found in sorted(by_writer.items()):
        top = max(found, key=lambda s: (s.seq, s.signed_us))
        began = utc(min(s.signed_us for s in found))
        chain = report.chains.get(writer)
        if chain is None:
            report.chains[writer] = Chain(writer, anchored_to=top.seq,
                                          anchored_us=top.signed_us)
            _add(report, Problem(writer, None, f"missing from the store (deleted): the anchor "
                                 f"log says this writer was there from {began} UTC and "
                                 f"reached record {top.seq}; the store has no record, "
                                 "statement or registration of it"))
            continue
        chain.anchored_to, chain.anchored_us = top.seq, top.signed_us
        if top.seq > chain.end:
            shortened.add(writer)
            ends = f"ends at record {chain.end}" if chain.end else "has no records"
            _add(report, Problem(writer, None, f"shortened: the store's chain "
                                 f"{ends}, but the anchor log says it reached record "
                                 f"{top.seq} ({utc(top.signed_us)} UTC): records "
                                 f"{chain.end + 1}..{top.seq} were deleted, with their "
                                 "checkpoints"))
        for statement in found:
            if statement.kind == "start":
                if statement.signed_us not in chain.registered:
                    _add(report, Problem(writer, None, f"its start at record "
                                         f"{statement.seq} ({utc(statement.signed_us)} UTC) "
                                         "is in the anchor log, not in the store's writers "
                                         "(registration deleted)"))
            elif (not chain.gone(statement.seq)
                  and statement.seq <= chain.end and _key(statement) not in stored):
                _add(report, Problem(writer, statement.seq, f"the anchored {statement.kind} "
                                     "statement is missing from the store (deleted, or "
                                     "replaced by another)"))
    return shortened


def _against_store(report: Report, logs: list[AnchorLog],
                   anchored: dict[str, list[Checkpoint]], signed: list[Checkpoint]) -> None:
    """What the store has and a log lacks, for the writers anchored to that log: the log
    was cut short (or emptied, or replaced)."""
    by_identity = {log.identity: log for log in logs}
    stored: dict[str, list[Checkpoint]] = defaultdict(list)
    for checkpoint in signed:
        if checkpoint.kind == "checkpoint":
            stored[checkpoint.writer].append(checkpoint)
    for chain in sorted(report.chains.values(), key=lambda c: c.writer):
        log = by_identity.get(chain.anchor or "")
        if log is None:
            continue
        chain.anchored = True
        found = [s for s in anchored.get(log.identity, []) if s.writer == chain.writer]
        starts = {s.signed_us for s in found if s.kind == "start"}
        for registered, named_log in chain.registered.items():
            if named_log == log.identity and registered not in starts:
                _add(report, Problem(chain.writer, None, f"the anchor log {log.path} lacks "
                                     f"its start of {utc(registered)} UTC (the log was cut "
                                     "short, emptied or replaced)"))
        since = max(us for us, named_log in chain.registered.items()
                    if named_log == log.identity)
        logged = {s.seq for s in found if s.kind == "checkpoint"}
        due = sorted((c for c in stored[chain.writer] if c.signed_us >= since),
                     key=lambda c: c.seq)
        lacking = [c for c in due if c.seq not in logged]
        if lacking and not _in_flight(lacking, due, log):
            _add(report, Problem(chain.writer, lacking[-1].seq, f"its checkpoint "
                                 f"({utc(lacking[-1].signed_us)} UTC) is in the store, not "
                                 f"in the anchor log {log.path} (the log was cut short)"))
    for chain in report.chains.values():
        chain.anchored = chain.anchored or any(
            s.writer == chain.writer for found in anchored.values() for s in found)


def _in_flight(lacking: list[Checkpoint], due: list[Checkpoint], log: AnchorLog) -> bool:
    """Whether the one checkpoint a log lacks may be on its way there (the newest, signed
    moments before the log was read: committed, and not yet appended)."""
    return lacking == due[-1:] and lacking[0].signed_us > log.read_us - _IN_FLIGHT_US


def _key(statement: Checkpoint) -> tuple[str, int, str, str]:
    """What makes two signed statements the same statement (a signature differs each time
    one is made: a retried anchor, a restarted named writer)."""
    return statement.writer, statement.seq, statement.kind, statement.hash


def _why_unanchored(chain: Chain) -> str:
    if chain.anchor is not None:
        return f"its anchor log ({chain.anchor}) was not given"
    if chain.registered:
        return "it was started with no anchor log (recording.checkpoint_file: null)"
    return "it is not registered (written before writers registered, or its registration " \
           "was deleted)"


def _signed(report: Report, verifier: Verifier, checkpoint: Checkpoint) -> bool:
    report.checkpoints += 1
    if verifier.valid(checkpoint):
        return True
    _add(report, Problem(checkpoint.writer, checkpoint.seq,
                         f"its {checkpoint.kind} statement's signature is not the audit key's "
                         "(forged, or signed with another key)"))
    return False


def _prune_points(signed: list[Checkpoint]) -> dict[str, Checkpoint]:
    """Each chain's newest valid prune statement: where what remains begins."""
    points: dict[str, Checkpoint] = {}
    for checkpoint in signed:
        if checkpoint.kind == "prune" and checkpoint.seq > getattr(
                points.get(checkpoint.writer), "seq", -1):
            points[checkpoint.writer] = checkpoint
    return points


def _content(row: store.Row) -> Any:
    """The row's content parsed (None: not JSON, which `_columns_edited` names)."""
    try:
        return orjson.loads(row.content)
    except orjson.JSONDecodeError:
        return None


def _note_spooled(report: Report, row: store.Row, content: Any) -> None:
    """A record written from the spool, counted under its spool file."""
    mark = content.get("spooled") if isinstance(content, dict) else None
    if not isinstance(mark, dict):
        return
    spool_id = str(mark.get("id", "")).partition("/")[0]
    found = report.spooled_from.get(spool_id)
    if found is None:
        found = report.spooled_from[spool_id] = Spooled(
            spool_id, str(mark.get("reason", "")), _int(mark.get("spooled_us")),
            _int(mark.get("written_us")))
    found.add(row)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _columns_edited(row: store.Row, content: Any) -> list[str]:
    try:
        expected = {**store.projections(content), "id": store.record_id(row.writer, row.seq)}
    except (KeyError, TypeError, AttributeError):
        return ["content (not a record)"]
    return [name for name, value in expected.items() if getattr(row, name) != value]


def _gap(expected: int, found: int) -> str:
    if found == expected + 1:
        return f"is missing (deleted): record {found} follows record {expected - 1}"
    return (f"is missing, and so are the records up to {found - 1} (deleted): record "
            f"{found} follows record {expected - 1}")


def _add(report: Report, problem: Problem) -> None:
    report.problem_count += 1
    if sum(p.writer == problem.writer for p in report.problems) < report.listed_per_chain:
        report.problems.append(problem)
