"""The database drivers' own test suites, run straight to the database and through Envoy
and tollgate, test by test compared: what passes directly passes through tollgate, or
tests/drivers/refusals.toml says why not.

The pack lets everything through and masks nothing, and the targets let one identity
hold as many sessions as the suites open and idle in a transaction as long as they
like: what is measured is the front's fidelity to the protocol, not a policy. Each run
gets servers of its own (servers.py), the same programs and settings both times (the
statement log below aside); the run through tollgate logs in with a token as the
password, as the same user and to the same database names as the direct one.

The run through tollgate proves the record complete too: its server logs every
statement, and once the run is over every statement the server ran on the sessions
that came through tollgate must be in the gateway's record, allowed, as often as it
ran, and nothing the record only refused in the log (tests/support/statement_log.py,
which the statement-log differentials share, says what differs by design).

`make test` runs the chunks of the suites that CI can have (suites.py says where each
comes from); `make test-drivers` runs every suite whole (TOLLGATE_DRIVER_SUITES=full),
psycopg's, PyMySQL's and mysqlclient's from clones named by PSYCOPG_SOURCE,
PYMYSQL_SOURCE and MYSQLCLIENT_SOURCE.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from extproc.quickstart import stack
from tests.drivers import outcomes, servers, suites
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import statement_log, tokens
from tests.support.gateway import Gateway, GatewayFactory

pytestmark = pytest.mark.e2e

FULL = os.environ.get("TOLLGATE_DRIVER_SUITES") == "full"
IDENTITY = tokens.token("svc-driver-suites", ["agents"])
PERMISSIVE = """package tollgate

import rego.v1

# Everything allowed, nothing masked: the driver suites measure the fronts alone.
default decision := {"action": "allow", "reasons": [], "rules": []}
"""
# A whole run's limit (the suites' own take a few minutes at most).
RUN_SECONDS = 1200.0
# What a target lets one identity do, for a suite's pools and long transactions.
UNLIMITED = {"max_sessions_per_identity": 1000, "idle_in_transaction_seconds": 0}
# The databases the suites connect to: their own, and `postgres` (asyncpg's pools);
# `testdb` and `asyncpg_intro_test` asyncpg's tests make, then connect to.
PG_DATABASES = ("suite", "postgres", "testdb", "asyncpg_intro_test")
# PyMySQL's test1 and test2, mysqlclient's mysqldb_test (as their CI makes them).
MY_DATABASES = ("test1", "test2", "mysqldb_test")


def _runs() -> list[Any]:
    """(suite, chunk name, selection) for each run this session makes: every suite whole
    under `make test-drivers`, the chunks CI can have otherwise."""
    if FULL:
        return [pytest.param(s, "full", s.full, id=s.name) for s in suites.SUITES.values()]
    return [pytest.param(s, name, selection, id=f"{s.name}-{name}")
            for s in suites.SUITES.values() for name, selection in s.chunks.items()]


@dataclass(frozen=True)
class Served:
    """A server of the suites' databases: its port, its CA, the account the suites and
    the gateway log in as, and what its statement log holds of the sessions that came
    through tollgate, held against a gateway's record (`log_statements`)."""

    port: int
    ca_file: Path
    user: str
    compared: Callable[[list[dict[str, Any]]], statement_log.Comparison]
    log_text: Callable[[], str]  # every text of the log, joined: to wait on one


@contextlib.contextmanager
def _servers(database: str, log_statements: bool = False) -> Iterator[Served]:
    """A fresh server of `database`'s kind with the suites' databases, logging every
    statement it runs with `log_statements`."""
    if database == "postgres":
        with servers.private_postgres(log_statements) as pg:
            pg.create_database("suite")
            yield Served(pg.port, pg.ca_file, servers.SUPERUSER,
                         lambda records: statement_log.pg_compare(pg.logged(), records),
                         lambda: "\n".join(e.text for e in pg.logged()))
    else:
        with servers.private_server_mariadb(log_statements) as maria:
            maria.root("; ".join(f"CREATE DATABASE {name} DEFAULT CHARACTER SET utf8mb4"
                                 for name in MY_DATABASES))
            yield Served(maria.port, maria.ca_file, maria.user,
                         lambda records: statement_log.my_compare(maria.logged(), records),
                         lambda: "\n".join(text for _, text in maria.logged()))


def _targets(database: str, port: int, user: str) -> list[dict[str, Any]]:
    """A target per database the suites use, each opening the same name upstream, over
    TLS as the clients' side is (a suite's thousand sessions found the front leaving
    each TLS connection to the server open after its client: used up within a minute)."""
    if database == "postgres":
        return [{"name": f"drivers-{name}", "protocol": "postgres",
                 "match": {"database": name}, "environment": "test",
                 "postgres": {"upstream": f"127.0.0.1:{port}", "user": user,
                              "database": name, "sslmode": "require", **UNLIMITED}}
                for name in PG_DATABASES]
    return [{"name": f"drivers-{name}", "protocol": "mysql", "match": {"database": name},
             "environment": "test",
             "mysql": {"upstream": f"127.0.0.1:{port}", "user": user, "database": name,
                       "tls": "require", **UNLIMITED}}
            for name in MY_DATABASES]


def _source(suite: suites.Suite) -> Path | str:
    """The suite's folder, or what to do to have it."""
    try:
        return suite.source.obtain()
    except suites.SuiteUnavailable as unavailable:
        return f"{suite.name}: {unavailable}"


def _run(suite: suites.Suite, tree: Path, selection: tuple[str, ...], work: Path,
         to: suites.Endpoint) -> suites.Ran:
    work.mkdir()
    prepared = suite.prepare(suite, tree, to, work)
    return suites.run(prepared, selection, work, RUN_SECONDS)


@pytest.mark.parametrize(("suite", "chunk", "selection"), _runs())
def test_what_passes_directly_passes_through_tollgate(
        suite: suites.Suite, chunk: str, selection: tuple[str, ...], tmp_path: Path,
        otlp: OtlpReceiver) -> None:
    tree = _source(suite)
    if isinstance(tree, str):
        pytest.fail(tree, pytrace=False)
    listed = outcomes.refusals(suite.name)
    with _servers(suite.database) as server:
        direct = _run(suite, tree, selection, tmp_path / "direct",
                      suites.Endpoint(server.port, server.user, "", server.ca_file))
    before = outcomes.outcomes(direct.lines)
    assert before, f"the direct run reported no test:\n{direct.output}"
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "tollgate.rego").write_text(PERMISSIVE)
    (tmp_path / "gateway").mkdir()
    factory = GatewayFactory(tmp_path / "gateway", otlp)
    on_postgres = suite.database == "postgres"
    try:
        with _servers(suite.database, log_statements=True) as server:
            gateway = factory(policy_dir=pack,
                              targets=_targets(suite.database, server.port, server.user),
                              postgres={} if on_postgres else None,
                              mysql=None if on_postgres else {})
            listener = gateway.ports.postgres if on_postgres else gateway.ports.mysql
            assert listener is not None
            endpoint = suites.Endpoint(listener, server.user, IDENTITY, server.ca_file)
            through = _run(suite, tree, selection, tmp_path / "through", endpoint)
            after = outcomes.outcomes(through.lines)
            gateway_cpu = cpu_seconds([p.pid for p in gateway.processes])
            started = time.monotonic()
            record = record_complete(suite.database, server, gateway, endpoint)
            compared_in = time.monotonic() - started
    finally:
        factory.stop_all()
    comparison = outcomes.compare(before, after, listed, whole_suite=chunk == "full")
    print(summary(suite.name, chunk, direct, through, before, after, comparison))
    print(f"  the gateway (Envoy, tollgate): {gateway_cpu:.1f} s CPU")
    print(f"  the server's statement log: {record.logged} statements ran through "
          f"tollgate ({record.own} the front's own), "
          + ("each in the record, allowed" if record.holds else
             f"{len(record.unrecorded) + len(record.refused)} differences from the record")
          + f"; compared in {compared_in:.1f} s")
    for entry, pattern in comparison.fixed:
        warnings.warn(f"refusals.toml [[{suite.name}]] {pattern!r} ({entry.kind}): every "
                      "test it names passes through tollgate now: remove it", stacklevel=1)
    problems = [] if comparison.holds else [
        outcomes.explain(comparison) + f"\n\nthe run through tollgate said:\n{through.output}"]
    if not record.holds:
        problems.insert(0, "the record is not what the server ran "
                           f"(tests/support/statement_log.py):\n{record.explain()}")
    assert not problems, "\n\n".join(problems)


def record_complete(database: str, server: Served, gateway: Gateway,
                    endpoint: suites.Endpoint) -> statement_log.Comparison:
    """What the server's statement log holds of the run through tollgate against the
    gateway's record, once both hold a last statement sent after the suite's (the log
    and the record are written as statements run: by then, all of the suite's)."""
    last = f"SELECT 'the end of the run {uuid.uuid4()}'"
    if database == "postgres":
        with psycopg.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                             password=endpoint.password, dbname="suite", sslmode="require",
                             autocommit=True) as connection:
            connection.execute(last)
    else:
        connection = pymysql.connect(
            host=endpoint.host, port=endpoint.port, user=endpoint.user,
            password=endpoint.password, database=MY_DATABASES[0],
            ssl={"ca": str(endpoint.ca_file), "check_hostname": False})
        try:
            with connection.cursor() as cursor:
                cursor.execute(last)
        finally:
            connection.close()
    stack.wait_until(lambda: last in server.log_text(), 60, "the run's end in the server's log")
    gateway.record_of(last, timeout=60)
    return server.compared(gateway.records())


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time `pids` and their descendants have spent so far (their own, and that
    of their children that have ended)."""
    stats = stack.process_stats()
    tree, found = set(pids), True
    while found:
        found = False
        for pid, fields in stats.items():
            if pid not in tree and int(fields[1]) in tree:
                tree.add(pid)
                found = True
    # After the command: state, ppid, ..., utime (index 11), stime, cutime, cstime.
    ticks = sum(sum(int(f) for f in stats[pid][11:15]) for pid in tree if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def summary(name: str, chunk: str, direct: suites.Ran, through: suites.Ran,
            before: dict[str, outcomes.Outcome], after: dict[str, outcomes.Outcome],
            comparison: outcomes.Comparison) -> str:
    """A line per run (tests passed, failed, skipped; seconds; the suite process's CPU)
    and the refused tests by entry."""
    def counts(found: dict[str, outcomes.Outcome], ran: suites.Ran) -> str:
        states = [o.state for o in found.values()]
        return (f"{sum(s in outcomes.PASSING for s in states)} passed, "
                f"{states.count('failed')} failed, "
                f"{states.count('skipped') + states.count('xfailed')} skipped; "
                f"{ran.seconds:.1f} s, {ran.cpu_seconds:.1f} s CPU")
    lines = [f"{name} ({chunk}): {comparison.compared} compared",
             f"  directly:         {counts(before, direct)}",
             f"  through tollgate: {counts(after, through)}"]
    by_entry: dict[str, list[str]] = {}
    for nodeid, (entry, _) in comparison.refused.items():
        by_entry.setdefault(f"{entry.kind}: {entry.reason}", []).append(nodeid)
    for reason, nodeids in by_entry.items():
        lines.append(f"  refused, {len(nodeids)}: {reason}")
    return "\n".join(lines)
