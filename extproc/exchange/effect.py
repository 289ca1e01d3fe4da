"""What a write did, as its database measured it: the shape both database fronts give
the policy (`input.effect`), and the verdict on it.

A reader of statement text cannot see the database's state: a foreign key `ON DELETE
CASCADE`, a trigger, a view whose rows are not the ones its text names, statistics that
are wrong. So each front runs a write the pack limits where it can undo it (a savepoint
of the client's transaction, or a transaction of its own), reads what the database
changed, and asks the policy again with that effect before the write stands
(postgres/effect.py, mysql/effect.py say how each measures). Over the limits it is
rolled back and held; once approved it runs again, and is refused if it then changes
more than the approver was shown.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypedDict, TypeVar

from extproc.codecs.refusal import Refused
from extproc.exchange.state import Answer, Exchange
from extproc.policy import Decision

# A table's size is counted up to this many rows; past it, the database's statistics.
COUNT_CAP = 10000


class TableEffect(TypedDict):
    table: str
    inserted: int
    updated: int
    deleted: int
    table_rows: int | None


class Effect(TypedDict, total=False):
    """`input.effect`: what the write did (`measured`), or why it was not measured."""

    measured: bool | None  # None: to be measured (a write's first decision)
    tables: list[TableEffect]
    rows: int
    written: list[str]  # the tables the statement itself writes (by its text or plan)
    unavailable: str | None


def to_come() -> Effect:
    """A write's first decision, when its effect will be measured (`measured` null): the
    pack need not hold it for an estimate it could not have or doubts."""
    return {"measured": None, "tables": [], "rows": 0, "written": [], "unavailable": None}


def unmeasured(why: str) -> Effect:
    return {"measured": False, "tables": [], "rows": 0, "written": [], "unavailable": why}


def measured(tables: list[TableEffect], written: list[str]) -> Effect:
    return {"measured": True, "tables": tables,
            "rows": sum(t["inserted"] + t["updated"] + t["deleted"] for t in tables),
            "written": written, "unavailable": None}


# How long a session keeps what the catalog said of a name (a trigger on a table, a
# function defined in the database): another session's DDL is seen within this.
REMEMBER_SECONDS = 10.0
# The statements that change what the catalog says (their `effects`, interpret/sql).
_SCHEMA_EFFECTS = frozenset({"schema", "destroy", "privilege", "dynamic"})
# The settings that change what an unqualified name names (interpret/sql `settings`).
_NAMING = frozenset({"search_path", "all", "session_authorization"})


Said = TypeVar("Said")


class Remembered(Generic[Said]):
    """What the catalog said of each name for one session (None: nothing of note), for
    REMEMBER_SECONDS, and forgotten at once after the session changes the schema: a
    front asks the database what a text may run once per name, not per statement."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[Said | None, float]] = {}

    def get(self, name: str, now: float) -> tuple[bool, Said | None]:
        """Whether `name` is remembered at `now` (time.monotonic), and what was said."""
        said, until = self._said.get(name, (None, 0.0))
        return until > now, said

    def remember(self, name: str, said: Said | None, now: float) -> None:
        self._said[name] = (said, now + REMEMBER_SECONDS)

    def forget_after(self, meaning: object) -> bool:
        """Forget it all if the statements just read change the schema, or what a name
        names (search_path, RESET ALL, DISCARD ALL): whether they change the latter (a
        SET LOCAL of it is undone when its transaction ends: forget then too)."""
        statements = meaning.get("statements", ()) if isinstance(meaning, dict) else ()
        path = any(setting.get("name") in _NAMING for s in statements
                   for setting in s.get("settings") or ())
        if path or any(_SCHEMA_EFFECTS.intersection(s.get("effects", ())) for s in statements):
            self._said.clear()
        return path

    def forget(self) -> None:
        self._said.clear()


def deleted(effect: Effect) -> dict[str, int]:
    """The rows of each table a measured write that stood deleted: what the activity
    counts sum per identity and table (a table emptied one row at a time is held on the
    sum: policies/blast.rego's blast.split). Updates are not summed: one row updated
    twice would count as two."""
    return {t["table"]: t["deleted"] for t in effect.get("tables", ()) if t["deleted"]}


def within(effect: Effect, approved: Effect) -> str | None:
    """Why `effect` is more than the `approved` one (None: it is not): a table changed
    that was not, or more rows of one."""
    allowed = {t["table"]: t for t in approved.get("tables", ())}
    for table in effect.get("tables", ()):
        before = allowed.get(table["table"])
        for what in ("inserted", "updated", "deleted"):
            limit = 0 if before is None else before[what]
            done = table[what]
            if done > limit:
                return (f"it {what} {done} rows of {table['table']} where the approved "
                        f"run {what} {limit}")
    return None


class Approved:
    """The effect each approval was asked for, by approval id: an approved retry is
    checked against it. Kept by this process (bounded): a retry through another replica
    does not find it and is refused, saying so."""

    def __init__(self, size: int = 4096) -> None:
        self._effects: OrderedDict[str, Effect] = OrderedDict()
        self._size = size

    def __setitem__(self, approval_id: str, effect: Effect) -> None:
        self._effects[approval_id] = effect
        self._effects.move_to_end(approval_id)
        while len(self._effects) > self._size:
            self._effects.popitem(last=False)

    def get(self, approval_id: str) -> Effect | None:
        return self._effects.get(approval_id)


APPROVED = Approved()

Run = TypeVar("Run")


class Measured(Generic[Run]):
    """A front's way to run a write where its effect is measured: `run` runs it (None:
    it failed, and the client has the database's error), `settle` keeps or undoes it,
    `hold` waits for a human (calling its callback once the approval is asked), `again`
    runs it after approval (`run` by default)."""

    def __init__(self, run: Callable[[], Awaitable[tuple[Effect, Run] | None]],
                 settle: Callable[[Run, bool], Awaitable[None]],
                 hold: Callable[[Decision, Callable[[], None]], Awaitable[None]],
                 again: Callable[[], Awaitable[tuple[Effect, Run] | None]] | None = None
                 ) -> None:
        self.run, self.settle, self.hold = run, settle, hold
        self.again = again or run


async def judged(decide: Callable[[], Awaitable[Decision]], exchange: Exchange,
                 write: Measured[Run]) -> Answer | None:
    """The write run and measured; the policy's decision on its effect; kept if it
    stands (None), else undone and its refusal. Held, it is undone while it waits, and
    once approved run again, checked against the effect the approver was shown. A
    statement its first decision held, and an approver let through, stands approved:
    the approver judged it (its text, its estimate) before it ran."""
    found = await write.run()
    if found is None:
        return None
    effect, pending = found
    exchange.effect = effect
    decision = await decide()
    if decision.action == "hold" and exchange.approval is not None:
        decision = exchange.approved(exchange.approval)
    if decision.action == "allow":
        if exchange.approval is None:  # before the answer, which may end the exchange
            exchange.evidence.deleted = deleted(effect)
        await write.settle(pending, True)
        return None
    await write.settle(pending, False)
    if decision.action != "hold":
        return exchange.refuse_decided(decision)

    def asked() -> None:
        approval = exchange.evidence.approval or {}
        if approval.get("id"):
            APPROVED[str(approval["id"])] = effect

    await write.hold(decision, asked)
    assert exchange.approval is not None
    approved = APPROVED.get(exchange.approval.id)
    if approved is None:
        raise Refused(403, "effect_unknown", (
            f"approval {exchange.approval.id} was given for an effect this gateway did "
            "not measure (another replica's, or before a restart): a retry asks anew"))
    again = await write.again()
    if again is None:
        return None
    effect, pending = again
    exchange.effect = effect
    grew = within(effect, approved)
    if grew is not None:
        await write.settle(pending, False)
        raise Refused(403, "effect_grew", f"run again once approved, {grew}: rolled back")
    await write.settle(pending, True)
    return None
