"""Stopping tollgate while its store cannot write loses no answered exchange.

Through a real Envoy and tollgate: exchanges are answered while the store refuses writes
(a SQLite store whose write lock the test holds; a PostgreSQL cluster of the test's own,
stopped for real), tollgate is stopped (SIGTERM: its close path), and the spool holds
their records. With the store writable again, tollgate starts on the same config: every
answered exchange's record is in the chain, `tollgate audit verify` exits 0 and says
what was spooled.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc import config as config_module
from extproc.quickstart import stack
from extproc.recording import spool
from extproc.recording.chain import Signer
from extproc.recording.wire import decode
from tests.cli.test_audit_cli import audit
from tests.e2e.test_activity_e2e import SELECT, sql
from tests.support import pg_cluster, tokens
from tests.support.gateway import FAST_EXPORT, POLICIES, Gateway, GatewayFactory

pytestmark = [pytest.mark.e2e]


@contextlib.contextmanager
def sqlite_outage(url: str) -> Iterator[None]:
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # readers go on; every write fails
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextlib.contextmanager
def postgres_outage(cluster: pg_cluster.Cluster) -> Iterator[None]:
    cluster.stop()
    try:
        yield
    finally:
        cluster.start()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            ) -> Iterator[tuple[str, contextlib.AbstractContextManager[None]]]:
    """The store's URL, and an outage of it (entered when the test says)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
        yield url, sqlite_outage(url)
        return
    with pg_cluster.cluster() as running:
        yield running.admin_url, postgres_outage(running)


def restarted(gateway: Gateway) -> None:
    """tollgate started again on the same config and ports (Envoy kept)."""
    gateway.tollgate.stop()
    process = stack.start_tollgate(gateway.config_path, gateway.ports.ext_proc,
                                   gateway.config_path.parent, env=FAST_EXPORT)
    gateway.processes[0] = gateway.tollgate = process


def test_records_of_exchanges_answered_while_the_store_cannot_write_are_spooled(
        make_gateway: GatewayFactory,
        backend: tuple[str, contextlib.AbstractContextManager[None]]) -> None:
    url, outage = backend
    gateway = make_gateway(POLICIES, settings={
        "store": {"url": url}, "recording": {"close_seconds": 1}})
    token = tokens.token("spool-agent")
    assert sql(gateway, SELECT, token).status == 200
    config = config_module.load(gateway.config_path)
    folder = config.resolve(config.recording.spool_dir or Path())
    key = Signer.from_file(config.resolve(config.recording.signing_key_file)).derive(
        spool.KEY_PURPOSE)
    with outage:
        # Within the store's blip budget the record's queue still admits: answered.
        replies = [sql(gateway, SELECT, token) for _ in range(2)]
        assert [r.status for r in replies] == [200, 200], [r.body for r in replies]
        # Its other parts' own closing waits on the store too (the activity counts'):
        # longer than Process.stop's default allows.
        stopping = time.monotonic()
        gateway.tollgate.stop(timeout=60)
        print(f"\nstopped in {time.monotonic() - stopping:.1f} s")
        files = sorted(folder.glob("*.spool"))
        assert len(files) == 1, list(folder.iterdir())
        spooled = {decode(r.data)[0].trace_id for r in spool.read(files[0], key).records}
        answered = {r.trace_id for r in replies}
        assert answered <= spooled
    restarted(gateway)
    assert not list(folder.glob("*.spool"))
    records = gateway.records()
    assert answered <= {r["trace_id"] for r in records}
    marked = [r for r in records if r.get("spooled")]
    assert {r["trace_id"] for r in marked} == spooled
    result = audit(gateway.config_path, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"\n\nspooled: {len(spooled)} records were spooled while the store could not " \
        "take them and written on" in result.stdout, result.stdout
    assert "\\n" not in result.stdout  # a blank line before it, not a `\n` shown as text
    for trace in answered:
        assert trace in result.stdout
