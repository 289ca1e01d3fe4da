"""What tollgate will not pass, as exceptions any step may raise, by what went wrong.

A front answers each in its protocol's shape, with the trace id (`Exchange.refuse`), and
maps it to the protocol's own code in one place: the HTTP status it carries as it is, a
PostgreSQL SQLSTATE (`postgres/refusals.py`'s `sqlstate_of`), a MySQL error
(`mysql/refusals.py`'s `refusal_packet`), a terminal's line (`terminal/gate.py`'s
`refusal_text`), a JSON-RPC error (`interpret/mcp_interpreter.py`). Three kinds, so that
a client, an operator and the record tell them apart:

- `Refused`: what the client asked is not allowed, or cannot be read: bad input, no or
  a bad token, an unknown target, the policy's or an approver's no (4xx).
- `Unavailable`: what the act needs cannot answer now: the record, a store, the
  upstream, or tollgate itself (5xx). Asking again later may pass.
- `OverLimit`: over a limit: an identity's share of the record, a body's size, a
  deadline (408, 413, 429).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Refusal(Exception):
    """What tollgate will not pass; becomes an answer (`status`: its HTTP status;
    `error`: its code; `details` join its JSON body; `action` is what the record and span
    call it: a held request refused is a `hold`; `headers` the answer needs, a 407's
    Proxy-Authenticate). Raise one of the three kinds; `refusal_of` picks one by status."""

    kind: ClassVar[str] = "refused"

    def __init__(self, status: int, error: str, message: str, *,
                 details: dict[str, Any] | None = None, action: str = "deny",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.details, self.action = details or {}, action
        self.headers = headers


class Refused(Refusal):
    """The client's request is not allowed or cannot be read (4xx)."""

    kind = "refused"


class Unavailable(Refusal):
    """What the act needs cannot answer now: the record, a store, the upstream, tollgate
    itself (5xx)."""

    kind = "unavailable"


class OverLimit(Refusal):
    """Over a limit: a quota, a size, a deadline (408, 413, 429)."""

    kind = "over_limit"


_OVER_LIMIT = frozenset({408, 413, 429})


def refusal_of(status: int, error: str, message: str, **kwargs: Any) -> Refusal:
    """The refusal of the kind `status` stands for (a status known only at run time)."""
    kind = (OverLimit if status in _OVER_LIMIT else Unavailable if status >= 500
            else Refused)
    return kind(status, error, message, **kwargs)
