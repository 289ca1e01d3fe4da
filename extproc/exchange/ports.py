"""What the exchange pipeline needs from the rest of tollgate, as Protocols.

The pipeline is written against these, not against the SQLite/PostgreSQL-backed
classes, so a unit test can drive it with the in-memory fakes in tests/support/fakes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from extproc.approvals.model import Approval
from extproc.config import Target
from extproc.credentials import Injection
from extproc.identity import Who
from extproc.policy import Decision
from extproc.policy.decision import Alert, Severity
from extproc.recording import Evidence
from extproc.token_exchange import Subject

if TYPE_CHECKING:
    from extproc.exchange.state import Exchange


class Recorder(Protocol):
    """The audit record's writer (recording/writer.py)."""

    def admit(self, who: str | None = None) -> None:
        """Take a place in the record's queue, or raise RecordingUnavailable (full,
        failed) or RecordingQuota (`who` holds its whole share): what cannot be recorded
        does not pass."""
        ...

    def submit(self, evidence: Evidence, who: str | None = None) -> None:
        """Hand over an admitted exchange's evidence; never blocks, never fails."""
        ...

    async def commit(self, evidence: Evidence, who: str | None = None) -> None:
        """Write `evidence` and wait until it is durable (a strict target's decision)."""
        ...

    def provisional(self, evidence: Evidence) -> None:
        """Journal a decision record as the request goes upstream, for a kill before
        the exchange ends to leave (recording/journal.py)."""
        ...


class Holds(Protocol):
    """Holding requests for a human (approvals/hold.py)."""

    def seconds(self, decision: Decision) -> int:
        """How long a held request waits in-stream."""
        ...

    async def granted(self, bound: str, decision: Decision,
                      evidence: Evidence) -> Approval | None:
        """A grant that lets this request through now."""
        ...

    async def ask(self, bound: str, decision: Decision, evidence: Evidence) -> Approval:
        """The approval this request waits for (approvers are notified of a new one)."""
        ...

    async def settle(self, approval: Approval, seconds: int,
                     trace_id: str) -> tuple[Approval, bool]:
        """Wait for `approval` to be decided; it as it then stands, and whether it passes."""
        ...

    async def left(self, approval: Approval, stopped: BaseException) -> Approval:
        """The request stopped waiting on `approval` before its decision (`stopped`:
        why): withdrawn unless its client was told of it; it as it then stands."""
        ...

    def withdrawn(self, approval: Approval) -> bool:
        """Whether `approval` was withdrawn, its waiter having left."""
        ...

    def approve_url(self, approval: Approval) -> str | None:
        """Where an approver decides it."""
        ...


class Credentials(Protocol):
    """The targets' own credentials (credentials.py)."""

    def injection(self, target: str) -> Injection:
        """What an allowed request to `target` goes upstream with."""
        ...

    async def upstream(self, target: str, subject: Subject | None) -> Injection:
        """What an allowed request to `target` goes upstream with now: a token asked of
        an authorization server for it, when its credential says so."""
        ...

    def rejected(self, target: str, token: str) -> None:
        """The upstream refused (401) the token `upstream` asked an authorization server
        for: not to be served again."""
        ...


class Activity(Protocol):
    """What each identity has been doing (activity/tracker.py)."""

    async def input_json(self, identity: Who | None, administrative: bool,
                         target: Target | None = None, source: str | None = None) -> str:
        """`input.activity` for `identity` acting now, as JSON text: the process's view
        (no I/O), and with `target` the live counts every process wrote (one round trip
        to the store)."""
        ...

    async def refused(self, identity: Who | None) -> None:
        """Count a refusal where every process sees it, before it is answered."""
        ...


class Flow(Protocol):
    """What each identity and agent run has received that may steer it
    (activity/flow.py)."""

    async def received(self, identity: str, run: str | None, target: str, cause: str,
                       kinds: Iterable[str], trace_id: str) -> None:
        """Note untrusted content where every process reads it; StoreError if the store
        does not take the note."""
        ...

    async def kept(self, identity: str, run: str | None, target: str, trace_id: str,
                   found: dict[str, str]) -> None:
        """Keep the fingerprints of values an answer carried to the agent unmasked
        (digest -> kind); StoreError if the store does not take them."""
        ...

    async def read(self, identity: str, run: str | None,
                   carried: Callable[[], Collection[str]] = tuple) -> bytes:
        """`input.flow` as JSON: what the identity and the run received (one round trip),
        and which of `carried()` (fingerprints of what the request carries out, asked
        only if they received any protected value)."""
        ...


class Alerts(Protocol):
    """Where the policy's alerts go (exchange/alerts.py)."""

    async def raised(self, exchange: Exchange, alerts: tuple[Alert, ...]) -> None:
        """On the exchange's span at once; claimed (once per rule and identity within the
        deduplication window, over every process) before it returns; to the record and
        the webhook in the background."""
        ...

    def raise_soon(self, exchange: Exchange, rule: str, severity: Severity,
                   message: str) -> None:
        """One alert of tollgate's own (not the policy's) `raised` in the background,
        for code that cannot wait."""
        ...

    async def raise_about(self, identity: Who, target: Target, rule: str, severity: Severity,
                          message: str, key: str = "") -> None:
        """One alert of tollgate's own about an identity, outside any one exchange."""
        ...


class Revisions(Protocol):
    def refusal(self) -> str | None:
        """Why this process refuses to decide (it serves an older policy revision than
        the processes it shares a store with), or None."""
        ...
