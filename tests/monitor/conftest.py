"""What the monitor reads, seeded as tollgate writes it: activity counts in the store's
`activity_counts` (per key, clock minute and metric, as the tracker's upserts leave
them), and records written through a real Recorder (chained, masked, checkpointed):
refused exchanges, and alerts as extproc/exchange/alerts.py records them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from extproc import envoy_bootstrap
from extproc.approvals.auth import Verifier
from extproc.config import Identity, Target
from extproc.identity import Who
from extproc.recording import Evidence
from extproc.store import connect
from tests.recording.conftest import TARGET, evidence
from tests.support import tokens


def counts(url: str, rows: list[tuple[str, int, str, int]]) -> None:
    """Add (key, minute, metric, value) rows to activity_counts, summed as the tracker's
    upserts sum them."""
    store = connect(url)
    try:
        store.executemany(
            "INSERT INTO activity_counts (key, minute, metric, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, minute, metric) DO UPDATE SET "
            "value = activity_counts.value + excluded.value", rows)
    finally:
        store.close()


def who(sub: str) -> Who:
    return {"authenticated": True, "sub": sub, "iss": tokens.ISSUER, "aud": [tokens.AUDIENCE],
            "email": None, "groups": ["agents"], "jti": f"j-{sub}"}


def refusal(n: int, sub: str, *, path: str = "/api/orders", started: float | None = None,
            body: bytes | None = None, rules: tuple[str, ...] = ("sql.destructive",),
            reasons: tuple[str, ...] = ("destructive SQL: DROP",),
            trace: str | None = None, statement: str | None = None,
            target: Target = TARGET) -> Evidence:
    """A refused exchange of `sub`, on trace n (or `trace`); with `statement`, the SQL it
    sent (the record's `what`), else its request line is what it did."""
    found = evidence(n, action="deny", sub=sub, method="POST", path=path, status=403,
                     body=body, rules=rules, reasons=reasons, started=started, target=target)
    found.trace_id = trace or found.trace_id
    if statement is not None:
        found.meaning_key, found.meaning = "sql", {"statements": [{"text": statement}]}
    return found


def alert(n: int, sub: str, *, rule: str = "activity.administrative",
          severity: str = "warning", message: str = "an administrative action by an agent",
          trace_ids: tuple[str, ...] = (), target: Target = TARGET,
          started: float | None = None, trace: str | None = None) -> Evidence:
    """An alert record of `sub` on trace n (or `trace`), as Alerts._record makes it."""
    trace = trace or f"{n:032x}"
    identity = who(sub)
    meaning = {"rule": rule, "severity": severity, "message": message, "identity": sub,
               "target": target.name, "trace_ids": [trace, *trace_ids]}
    return Evidence("alert", started if started is not None else time.time(), trace,
                    f"{n:016x}", {}, identity, target, meaning_key="alert", meaning=meaning,
                    outcome={"tollgate.decision.action": "alert"})


def verifier(tmp_path: Path) -> Verifier:
    """Approvers' tokens verified as a gateway trusting the test issuer verifies them."""
    bootstrap = envoy_bootstrap.with_jwt_issuer(envoy_bootstrap.load(), tokens.ISSUER,
                                                [tokens.AUDIENCE], tokens.jwks())
    return Verifier.from_bootstrap(envoy_bootstrap.write(bootstrap, tmp_path / "envoy.yaml"),
                                   Identity())


def series(minute: int, key: str, values: dict[int, dict[str, int]]) -> list[tuple[Any, ...]]:
    """activity_counts rows: {minutes back: {metric: value}} for `key`."""
    return [(key, minute - back, metric, value)
            for back, metrics in values.items() for metric, value in metrics.items()]
