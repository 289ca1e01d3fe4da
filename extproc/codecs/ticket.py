"""An inspected tunnel's ticket: what its CONNECT was decided with (the verified claims,
the destination, the address pinned, the exchange, the client's address), carried by
Envoy from the CONNECT to the requests inside the tunnel (the filter state it shares with
its inspect listener, set there as a header tollgate reads) and to that listener's access
log. Encoded as base64url JSON: a header value, and a filter state Envoy logs as is.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from extproc.codecs import jsonenc

_MOST_TICKET_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class Ticket:
    """What an inspected tunnel's CONNECT was decided with, for the requests inside."""

    claims: dict[str, Any]
    destination: str  # host:port, as the CONNECT named it
    address: str  # where Envoy was pinned to connect
    trace_id: str  # the CONNECT's exchange, for the record
    span_id: str
    source: str | None  # the client's address, as the CONNECT came from it

    def header(self) -> str:
        """The ticket as a header value (base64url of its JSON)."""
        raw = jsonenc.dumps({"claims": self.claims, "destination": self.destination,
                             "address": self.address, "trace_id": self.trace_id,
                             "span_id": self.span_id, "source": self.source})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def read(cls, value: str) -> Ticket:
        """The ticket a header carries; ValueError when it is none."""
        if not value or value == "-" or len(value) > _MOST_TICKET_BYTES:
            raise ValueError("the request carries no ticket of its tunnel's CONNECT")
        try:
            fields = jsonenc.loads(base64.urlsafe_b64decode(value.encode()).decode())
            source = fields["source"]
            ticket = cls(dict(fields["claims"]), str(fields["destination"]),
                         str(fields["address"]), str(fields["trace_id"]),
                         str(fields["span_id"]), None if source is None else str(source))
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the tunnel's ticket cannot be read ({exc})") from None
        return ticket
