"""Admit → traced work → span ended, evidence submitted: one recorded act.

Every act the audit trail keeps (an exchange, an approver's decision) follows the
same order: it takes its place in the record's queue before anything happens (what
cannot be recorded does not happen), runs under its span, and at the end, whatever
happened, ends the span and hands its evidence to the writer — only when admitted,
since a refusal to admit is itself the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from extproc.exchange.ports import Recorder
from extproc.recording import Evidence


class Admission:
    """Takes the act's place in the record's queue when called (raising
    RecordingUnavailable or RecordingQuota when there is none)."""

    __slots__ = ("_recorder", "_who", "admitted")

    def __init__(self, recorder: Recorder, who: str | None) -> None:
        self._recorder, self._who, self.admitted = recorder, who, False

    def __call__(self) -> None:
        self._recorder.admit(self._who)
        self.admitted = True


@contextmanager
def recorded(recorder: Recorder, who: str | None,
             finish: Callable[[], Evidence]) -> Iterator[Admission]:
    """Run the block as one recorded act: the block calls the admission first; `finish`
    ends the span and returns the act's evidence, submitted if it was admitted."""
    admission = Admission(recorder, who)
    try:
        yield admission
    finally:
        evidence = finish()
        if admission.admitted:
            recorder.submit(evidence, who)
