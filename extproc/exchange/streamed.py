"""What a stream shows the agent, read as it goes, each piece before it is let go.

A stream (an HTTP answer released chunk by chunk, a command's output) is never whole in
the gateway, yet what it carries can steer the agent as much as a page read whole: so
each piece is read, with the end of the piece before it (a value or an instruction cut
between two pieces is read whole), for the flow (activity/flow.py): the protected values
the mask leaves are kept as fingerprints (Act.delivering), and an untrusted target's
words to the model are noted (Act.received). A store that cannot take either raises the
Refusal (503): the piece must not go.
"""

from __future__ import annotations

from extproc.exchange.act import Act
from extproc.interpret.instructions import kinds_in

# What of a piece already read is read again with the next: an e-mail is at most 254
# characters, and an instruction's phrase far less.
_OVERLAP = 320


class StreamReading:
    """One stream's reader: called with each piece, in order, before it goes on."""

    def __init__(self, act: Act, values: bool, instructions: bool) -> None:
        self._act = act
        self._values, self._instructions = values, instructions
        self._tail = ""

    async def __call__(self, shown: bytes) -> None:
        text = self._tail + shown.decode("utf-8", "replace")
        self._tail = text[-_OVERLAP:]
        if self._instructions and (told := kinds_in(text)):
            self._instructions = False  # noted once per exchange (Pipeline.received)
            await self._act.received("instructions", told)
        if self._values:
            await self._act.delivering(text)


def reading(act: Act) -> StreamReading | None:
    """The reader an act's stream needs: None where nothing need be read (no flow, or a
    mask that leaves no protected value and a target whose answers are trusted)."""
    values, instructions = act.fingerprinting, act.reads_words
    return StreamReading(act, values, instructions) if values or instructions else None
