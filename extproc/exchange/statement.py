"""A database statement's exchange, as every database front runs it: the steps the
PostgreSQL and MySQL sessions share, written once.

A front opens an act for each statement (act.py) and follows its answers on its own
wire; what it does with them is the same on both: a result's rows are masked as the
decision asks and counted in the span and record (`masked`), kept in the record's
sample as the client got them (`kept`), and the statement ends in one record naming its
outcome and its rows (`answered`). A refusal says the same beside its reasons on both
wires (`refusal_notes`). The measured effect of a write is `effect.py`'s, a hold
`Act.hold`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from extproc import ledger
from extproc.codecs.refusal import Refusal
from extproc.exchange.state import held_because
from extproc.interpret.instructions import kinds_in

if TYPE_CHECKING:
    from extproc.exchange.act import Act
    from extproc.exchange.state import Answer, Exchange

_Rows = TypeVar("_Rows")


@dataclass(slots=True)
class Statement:
    """A statement's exchange on a database front, from its act to its record: what a
    front's own run of it adds is the front's (`measure`: a write whose effect the
    database is to measure before the verdict, effect.py)."""

    act: Act
    rows: int = 0
    sample: bytearray = field(default_factory=bytearray)
    error: str | None = None
    measure: bool = False
    # Rows' values on their way to the agent, not yet fingerprinted (act.delivering):
    # the front keeps them before it writes the rows on.
    unkept: list[list[object]] = field(default_factory=list)
    # The record's ending (`answered`'s arguments), put off while rows wait to be kept:
    # `keep` writes it, so that the record says what was kept, or that it was not.
    ending: tuple[str, str | None, tuple[str, list[str]]] | None = None

    @property
    def exchange(self) -> Exchange:
        return self.act.exchange

    def masked(self, mask: Callable[[], tuple[_Rows, Counter[str]]]) -> _Rows:
        """A result's rows as `mask` masks them (the ledger's mask stage), what it
        masked counted in the span and record."""
        exchange = self.exchange
        with ledger.stage(exchange.front, "mask"):
            rows, counts = mask()
        if counts:
            exchange.record_masking(counts)
        return rows

    def delivering(self, values: Callable[[], list[list[object]]]) -> bool:
        """Rows go to the agent: their `values` are read for the flow where the
        exchange's mask leaves protected values unmasked (fingerprints), and where the
        target is untrusted (words to the model). True: the front must `keep` before it
        writes them on."""
        if not self.act.fingerprinting and not self.act.reads_words:
            return False
        first = not self.unkept
        self.unkept.extend(values())
        return first

    async def keep(self) -> None:
        """What the rows read by `delivering` carry, kept for the flow: their protected
        values' fingerprints, and an untrusted target's words to the model noted (a
        Refusal, 503, where the store cannot keep them: the rows must not go on, and the
        record says they were refused); then the record, if the statement ended
        meanwhile."""
        rows, self.unkept = self.unkept, []
        act = self.act
        try:
            if rows and act.reads_words and (
                    told := kinds_in(" ".join(str(v) for row in rows for v in row
                                              if v is not None))):
                await act.received("instructions", told)
            if rows and act.fingerprinting:
                await act.delivering({"rows": rows})
        except Refusal as bad:
            self.exchange.refuse(bad)
            if self.ending is not None:
                self.ending = (self.ending[0], f"refused: {bad.message}", self.ending[2])
            raise
        finally:
            if self.ending is not None:
                ending, self.ending = self.ending, None
                self.answered(*ending)

    def kept(self, sample: Callable[[int], bytes]) -> None:
        """Rows as the client got them, in the record's sample while it is under the
        record's limit (`sample`: them as the record keeps them, within a size)."""
        limit = self.exchange.record_limit
        if len(self.sample) < limit:
            self.sample += b"\n" if self.sample else b""
            self.sample += sample(limit)

    def answered(self, front: str, outcome: str | None, summary: tuple[str, list[str]]
                 ) -> None:
        """The statement's last answer went by (or never will): its record, its outcome
        (None: none to name), its rows counted as `tollgate.<front>.rows`, and `summary`
        (a name, the answers' tags) as its answer's headers. Once only: a front that
        recorded it before the answer's last bytes left says so again as it ends."""
        if self.act.ended:
            return
        if self.unkept:
            self.ending = (front, outcome, summary)
            return
        found = self.exchange.outcome
        if outcome is not None:
            found["tollgate.outcome"] = outcome
        found[f"tollgate.{front}.rows"] = self.rows
        name, tags = summary
        self.act.answered({name: "; ".join(tags), "rows": str(self.rows)}, bytes(self.sample))


def refusal_notes(answer: Answer) -> list[str]:
    """What a database front's refusal says beside its reasons: the rules, the approval
    as it stands and why it was held, the trace id."""
    body = answer.body
    notes = [f"trace id {answer.trace_id}"]
    if body.get("rules"):
        notes.insert(0, "rules: " + ", ".join(body["rules"]))
    if body.get("approval_id"):
        notes.insert(0, f"approval {body['approval_id']} ({body.get('status')})"
                     + held_because(answer))
    return notes
