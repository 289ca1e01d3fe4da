"""`tollgate audit verify`: recompute every chain and check every signed statement.

For each writer's chain, in order: the numbering has no gap, each record's hash is the
hash of its content in its place, each record names its predecessor's hash, and the
searchable columns still match the content. Then every checkpoint: its signature is the
audit key's, and the record it names is there with that hash. Checkpoints kept outside
the store (`recording.checkpoint_file`) are checked the same way, so a store rewritten
whole — chains recomputed, checkpoints dropped — still disagrees with them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from extproc.recording import store
from extproc.recording.chain import GENESIS, Checkpoint, Verifier, record_hash
from extproc.store import Connection

# Problems reported per chain: the first broken link is what matters; the rest is noise.
_MOST_PER_CHAIN = 20


@dataclass(frozen=True)
class Problem:
    writer: str
    seq: int
    what: str

    def __str__(self) -> str:
        return f"{store.record_id(self.writer, self.seq)}: {self.what}"


@dataclass
class Chain:
    writer: str
    first: int = 0
    last: int = 0
    records: int = 0
    pruned_to: int = 0  # the last seq a valid prune statement covers
    checkpointed_to: int = 0  # the last seq a valid checkpoint covers


@dataclass
class Report:
    chains: dict[str, Chain] = field(default_factory=dict)
    checkpoints: int = 0
    anchors: int = 0
    # At most `listed_per_chain` problems of a chain are listed; `problem_count` counts all.
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    listed_per_chain: int = _MOST_PER_CHAIN

    @property
    def intact(self) -> bool:
        return not self.problem_count

    def first_broken(self) -> dict[str, Problem]:
        """The first problem of each chain, in chain order."""
        first: dict[str, Problem] = {}
        for problem in self.problems:
            first.setdefault(problem.writer, problem)
        return first


def verify(connection: Connection, verifier: Verifier,
           anchors: list[Checkpoint] | None = None) -> Report:
    report = Report()
    statements = store.checkpoints(connection)
    signed = [c for c in statements if _signed(report, verifier, c)]
    pruned = _prune_points(signed)
    named: dict[tuple[str, int], list[Checkpoint]] = defaultdict(list)
    for checkpoint in signed:
        if checkpoint.kind == "checkpoint":
            named[(checkpoint.writer, checkpoint.seq)].append(checkpoint)
    stored = {(c.writer, c.seq, c.kind, c.signature) for c in statements}
    for anchor in anchors or ():
        report.anchors += 1
        if not verifier.valid(anchor):
            _add(report, Problem(anchor.writer, anchor.seq,
                                 "an anchored checkpoint's signature is not the audit key's"))
            continue
        if anchor.seq <= getattr(pruned.get(anchor.writer), "seq", 0):
            continue  # about records pruned since, with their checkpoints
        if (anchor.writer, anchor.seq, anchor.kind, anchor.signature) not in stored:
            _add(report, Problem(anchor.writer, anchor.seq, f"the anchored {anchor.kind} "
                                 "statement is missing from the store (deleted)"))
        if anchor.kind == "checkpoint" and anchor not in named[(anchor.writer, anchor.seq)]:
            named[(anchor.writer, anchor.seq)].append(anchor)

    seen: dict[tuple[str, int], str] = {}
    writer, expected_seq, expected_prev = None, 0, GENESIS
    for row in store.chain_rows(connection):
        if row.writer != writer:
            writer = row.writer
            chain = report.chains[writer] = Chain(writer, first=row.seq)
            start = pruned.get(writer)
            chain.pruned_to = start.seq if start else 0
            expected_seq, expected_prev = (start.seq + 1, start.hash) if start else (1, GENESIS)
        chain.last, chain.records = row.seq, chain.records + 1
        if row.seq > expected_seq:
            _add(report, Problem(writer, expected_seq, _gap(expected_seq, row.seq)))
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
        edited = _columns_edited(row)
        if edited:
            verb = "no longer matches" if len(edited) == 1 else "no longer match"
            _add(report, Problem(writer, row.seq,
                                 f"its {', '.join(edited)} {verb} its content (edited)"))
        expected_seq, expected_prev = row.seq + 1, row.hash
        if (writer, row.seq) in named:
            seen[(writer, row.seq)] = row.hash

    for (writer, seq), found in named.items():
        chain = report.chains.get(writer)
        if seq <= getattr(pruned.get(writer), "seq", 0):
            continue  # named a record pruned since
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
    for writer, start in pruned.items():
        if writer not in report.chains:
            report.chains[writer] = Chain(writer, pruned_to=start.seq)
    report.problems.sort(key=lambda p: (p.writer, p.seq))
    return report


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


def _columns_edited(row: store.Row) -> list[str]:
    try:
        content = orjson.loads(row.content)
        expected = {**store.projections(content), "id": store.record_id(row.writer, row.seq)}
    except (orjson.JSONDecodeError, KeyError, TypeError):
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
