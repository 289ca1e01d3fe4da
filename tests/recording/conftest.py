"""Records for the recording tests and the audit command's: evidence, settings and a
real Recorder writing them. The stores (`store_url`: a SQLite file and a real PostgreSQL
database) and the `signer` are tests/conftest.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from extproc.config import Match, Target
from extproc.masking import Masker
from extproc.recording import Decided, Evidence, Recorder, RecorderSettings
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture
from extproc.store import connect

MASKER = Masker(b"k" * 32)


def settings(**overrides: Any) -> RecorderSettings:
    values: dict[str, Any] = {"queue_size": 1000, "batch_size": 64, "checkpoint_every": 1000,
                              "checkpoint_seconds": 3600.0, "writer_id": "writer-a"}
    return RecorderSettings(**{**values, **overrides})


TARGET = Target(name="orders", match=Match(route="orders"), protocol="http",
                environment="prod", labels={"team": "db"})
# A second target, for what differs per target (retention, a report on one).
BILLING = Target(name="billing", match=Match(route="billing"))


def evidence(
    n: int = 0, *, action: str = "allow", sub: str = "svc-autogen", target: Target = TARGET,
    method: str = "GET", path: str = "/api/orders", status: int = 200,
    body: bytes | None = None, response_body: bytes | None = None,
    session: str | None = None, rules: tuple[str, ...] = (), reasons: tuple[str, ...] = (),
    started: float | None = None,
) -> Evidence:
    """One exchange's evidence as the servicer gathers it (a fixed, readable shape)."""
    headers = {":method": method, ":path": path, ":authority": "gateway.test",
               "x-request-id": f"req-{n}", "content-type": "application/json"}
    if session:
        headers["x-session-id"] = session
    trace = f"{n:032x}"
    found = Evidence(
        "exchange", started if started is not None else time.time(), trace, f"{n:016x}",
        headers,
        {"authenticated": True, "sub": sub, "iss": "https://issuer.test", "aud": ["tollgate"],
         "email": None, "groups": ["agents"], "jti": f"j-{n}"},
        target,
        request={"method": method, "path": path, "query": {}, "headers": {}, "body": None},
    )
    if body is not None:
        found.request_body = BodyCapture.of(body, 64 * 1024)
    found.decisions.append(Decided("request", action, reasons, rules,
                                   403, "rev-1", 40))
    if action == "allow":
        found.response = {"status": status, "headers": {"content-type": "application/json"}}
        found.response_type = "application/json"
        if response_body is not None:
            found.response_body = BodyCapture.of(response_body, 64 * 1024)
            found.response_read = True
    found.outcome = {"http.response.status_code": status if action == "allow" else 403}
    return found


async def record(url: str, signer: Signer, evidences: list[Evidence], **overrides: Any,
                 ) -> Recorder:
    """Write `evidences` through a real Recorder (admitted, submitted, drained)."""
    recorder = Recorder(url, settings(**overrides), signer, MASKER)
    recorder.start()
    for found in evidences:
        recorder.admit()
        recorder.submit(found)
    await recorder.close()
    return recorder


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


@contextmanager
def table_away(url: str, table: str = "records") -> Iterator[None]:
    """The store's `table` renamed away for the block, as an outage looks to the writer,
    then put back."""
    outage = connect(url)
    outage.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        outage.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        outage.close()
