"""What tollgate will not pass, as an exception any step may raise.

The pipeline and the fronts raise `BadInput` for a request or response they refuse (bad
input, no token, an approval still pending, a record that cannot be written ...); the
front answers it in the protocol's shape, with the trace id (`Exchange.refuse`).
"""

from __future__ import annotations

from typing import Any


class BadInput(Exception):
    """A request tollgate refuses; becomes a JSON error answer (`details` join its body;
    `action` is what the record and span call it: a held request refused is a `hold`)."""

    def __init__(self, status: int, error: str, message: str, *,
                 details: dict[str, Any] | None = None, action: str = "deny",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.details, self.action = details or {}, action
        # Headers the answer needs (a 407's Proxy-Authenticate).
        self.headers = headers
