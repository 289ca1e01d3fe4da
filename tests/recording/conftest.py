"""Stores for the recording tests: a SQLite file, and a real PostgreSQL database.

PostgreSQL runs on this machine (127.0.0.1:5432, trust auth, user postgres); each test
that asks for it gets a database of its own, dropped afterwards. `store_url` runs a test
on both backends.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extproc.config import Match, Target
from extproc.masking import Masker
from extproc.recording import Decided, Evidence, Recorder, RecorderSettings
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MASKER = Masker(b"k" * 32)


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"tollgate_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/records.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.from_file(tmp_path / "audit.key", create=True)


def settings(**overrides: Any) -> RecorderSettings:
    values: dict[str, Any] = {"queue_size": 1000, "batch_size": 64, "checkpoint_every": 1000,
                              "checkpoint_seconds": 3600.0, "writer_id": "writer-a"}
    return RecorderSettings(**{**values, **overrides})


TARGET = Target(name="orders", match=Match(route="orders"), protocol="http",
                environment="prod", labels={"team": "db"})


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
