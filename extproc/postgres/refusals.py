"""How tollgate's refusals read on the PostgreSQL wire, and what stands in for a refused
message upstream.

A refusal must reach the client in order, after the answers to what it sent before, and
leave both ends agreeing on the protocol's state (the extended protocol's skip to Sync,
a transaction's failed state). So a refused message is not answered by tollgate: it
goes upstream *substituted*, as a message the database cannot run (a Query or Parse of
text that does not parse, an Execute of a portal that does not exist); the database
answers it with an error in its place and does the protocol's bookkeeping, and that
error is replaced by tollgate's refusal (SQLSTATE 42501, the reasons, the trace id) on
its way to the client (answers.py). The client sees what a permission error would have
shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.exchange.state import Answer, refusal_reasons
from extproc.exchange.statement import refusal_notes
from extproc.postgres import messages as pg
from extproc.postgres import namespace

if TYPE_CHECKING:
    from extproc.exchange.state import Exchange

# A refused statement's stand-in: text no PostgreSQL parses, naming the trace.
REFUSED = "tollgate refused this statement (trace {trace})"


def stand_in(exchange: Exchange) -> str:
    """The stand-in text of a refused exchange's message."""
    return REFUSED.format(trace=exchange.trace_id)


def sqlstate_of(status: int) -> str:
    """The SQLSTATE that tells a PostgreSQL client what an HTTP-shaped refusal means."""
    if status in (401, 407):
        return "28000"  # invalid_authorization_specification
    if status == 403:
        return "42501"  # insufficient_privilege
    if status == 413:
        return "54000"  # program_limit_exceeded
    if status == 429:
        return "53400"  # configuration_limit_exceeded
    if status in (400, 422):
        return "08P01"  # protocol_violation
    return "58000"  # system_error


def refusal_message(answer: Answer, severity: str = "ERROR", code: str | None = None,
                    note: str | None = None) -> bytes:
    """tollgate's refusal as an ErrorResponse: SQLSTATE by its status, the reasons as the
    message (a held statement's: where its approval stands, who denied it and why), and
    `note`, whose statement it is (drivers.py); the rules, approval, why it was held and
    trace id as the detail, what to do as the hint."""
    body = answer.body
    reasons = refusal_reasons(answer)
    detail = refusal_notes(answer)
    hint = None
    if body.get("approval_id") and body.get("approve_url") and body.get("status") == "pending":
        # Still undecided: running the statement again passes once it is approved.
        hint = (f"an approver decides it at {body['approve_url']}; run the statement "
                "again once it is approved")
    message = "tollgate: " + "; ".join(map(str, reasons))
    return pg.error(code or sqlstate_of(answer.status),
                    message if note is None else f"{message} ({note})",
                    detail="; ".join(detail), hint=hint, severity=severity)


def notice(exchange: Exchange, seconds: int) -> bytes:
    """What a held statement's client is told while it waits (a NOTICE, which psql
    shows)."""
    approval = exchange.evidence.approval or {}
    return pg.notice(
        f"tollgate: this statement waits up to {seconds} s for an approval "
        f"({', '.join(exchange.decision.reasons)})",
        detail=f"approval {approval.get('id')}; trace id {exchange.trace_id}")


def unknown(what: str, name: str) -> str:
    """Why a name the client did not prepare or bind through tollgate is refused."""
    named = f'{what} "{name}"' if name else f"the unnamed {what}"
    done = "prepared" if what == "statement" else "bound (nor declared)"
    return (f"{named} was not {done} through tollgate in this session (or no longer "
            "exists): tollgate runs only statements it decided")


def owned(*names: str) -> str:
    """Why a name of the gateway's own is refused to the client."""
    return (f"{', '.join(names)} names a prepared statement or portal of tollgate's own "
            f"(names beginning {namespace.PREFIX!r} are the gateway's): what the "
            "protocol prepared runs only through Bind and Execute")


class Fatal(Exception):
    """The session cannot go on (the message goes to the client as a FATAL error)."""


class NameRefused(Exception):
    """A statement naming a cursor the front cannot run it with: its SQLSTATE."""

    def __init__(self, code: str, error: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


class MeasuredRefused(Exception):
    """A measured write refused by a refusal already recorded (its rows unmaskable)."""

    def __init__(self, refusal: bytes) -> None:
        super().__init__("refused")
        self.refusal = refusal
