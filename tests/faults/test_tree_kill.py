"""A process tree killed at once (supervisor, workers and their writers: an OOM kill, a
lost pod) loses no record of an exchange it answered.

Through a real Envoy and tollgate (one process, which serves, and its writer process):
the writer is frozen (SIGSTOP) so that no record can reach the store, exchanges are
answered (allowed, and refused by the policy); then every process of the tree is frozen
and SIGKILLed (no close path runs, no spool is written). Started again on the same
config, tollgate spools what the dead processes journaled and writes it into a chain:
every answered exchange's record is there, once, and `tollgate audit verify` exits 0.
Without the journal those records were lost (they were on the writer's pipe). The
store's write lock is held meanwhile, as a writer frozen mid-commit holds it. And a
statement sent to the database, its tree killed while it runs: the provisional record
journaled as it went upstream is written, so the record shows what reached the server.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from extproc import config as config_module
from extproc.quickstart import stack
from extproc.recording import journal
from tests.cli.test_audit_cli import audit
from tests.e2e.test_activity_e2e import SELECT, sql
from tests.faults.test_spool import restarted
from tests.support import tokens
from tests.support.databases import PG_ADMIN, throwaway_database
from tests.support.gateway import POLICIES, Gateway, GatewayFactory

pytestmark = [pytest.mark.e2e]

REFUSED = "GRANT ALL ON customers TO public"  # sql.privilege: denied outright



def kill_tree(gateway: Gateway) -> None:
    """Every process of tollgate's tree frozen, then killed (stack.kill_tree), and gone."""
    tree = stack.kill_tree(gateway.tollgate.pid)
    gateway.tollgate.popen.wait(10)
    stack.wait_until(lambda: not set(tree) & set(stack.process_stats()), 10,
                     "the killed processes to be gone")


def spool_folder(gateway: Gateway) -> Path:
    config = config_module.load(gateway.config_path)
    return config.resolve(config.recording.spool_dir or Path())


def test_a_killed_tree_loses_no_answered_exchange(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway = make_gateway(POLICIES, settings={"store": {"url": f"sqlite:///{tmp_path}/s.db"}})
    token = tokens.token("killed-tree-agent")
    assert sql(gateway, SELECT, token).status == 200
    writers = stack.descendants(gateway.tollgate.pid)[1:]
    assert writers, "tollgate's writer process"
    for pid in writers:
        os.kill(pid, signal.SIGSTOP)
    # As if the writer froze mid-commit: the store's write lock stays taken. The answers
    # do not wait on it (a refusal's count and alert claim once waited 5 s for it: 504).
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        replies = [sql(gateway, SELECT, token), sql(gateway, REFUSED, token),
                   sql(gateway, SELECT, token)]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r.status for r in replies] == [200, 403, 200], [r.body for r in replies]
    kill_tree(gateway)
    journals = spool_folder(gateway) / journal.FOLDER
    assert list(journals.glob("*.journal")), "the dead processes' journal is on disk"
    restarted(gateway)
    answered = [r.trace_id for r in replies]
    records = [r for r in gateway.records("exchange") if r["trace_id"] in answered]
    assert sorted(r["trace_id"] for r in records) == sorted(answered), records
    assert all(r.get("spooled") for r in records)
    refused = next(r for r in records if r["trace_id"] == answered[1])
    assert refused["outcome"]["action"] == "deny", refused["outcome"]
    # The orphan is gone once spooled: what is left is the new process's own journal.
    assert {p.name.split("-")[0] for p in journals.glob("*.lock")} <= {
        str(pid) for pid in stack.descendants(gateway.tollgate.pid)}
    result = audit(gateway.config_path, "verify")
    assert result.returncode == 0, result.stdout + result.stderr


def test_records_written_before_the_kill_are_not_written_twice(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """Killed with the store writable right after a burst: records committed whose
    word had not reached the request process are still in its journal, and the next
    start recognises them in the store; whatever the mix the kill leaves, each answered
    exchange has one record."""
    gateway = make_gateway(POLICIES, settings={"store": {"url": f"sqlite:///{tmp_path}/s.db"}})
    token = tokens.token("killed-tree-agent")
    replies = [sql(gateway, SELECT, token) for _ in range(20)]
    assert {r.status for r in replies} == {200}
    kill_tree(gateway)
    restarted(gateway)
    answered = [r.trace_id for r in replies]
    records = [r["trace_id"] for r in gateway.records("exchange")
               if r["trace_id"] in answered]
    assert sorted(records) == sorted(answered)
    result = audit(gateway.config_path, "verify")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_statement_killed_while_it_runs_leaves_its_decision_record(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    with throwaway_database("tollgate_tree_kill") as url:
        gateway = make_gateway(POLICIES, settings={
            "store": {"url": f"sqlite:///{tmp_path}/s.db"}}, postgres={}, targets=[
            {"name": "killed-pg", "protocol": "postgres", "match": {"database": "shop"},
             "environment": "test",
             "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                          "database": url.rsplit("/", 1)[1], "sslmode": "disable"}}])
        token = tokens.token("svc-killed-agent", ["agents"])
        client = psycopg.connect(
            f"postgresql://agent:{token}@127.0.0.1:{gateway.ports.postgres}/shop"
            "?sslmode=require", autocommit=True, connect_timeout=10)
        failed: list[BaseException] = []

        def sleep() -> None:
            try:
                client.execute("SELECT pg_sleep(60)")
            except psycopg.Error as exc:  # its gateway is killed under it
                failed.append(exc)

        sleeper = threading.Thread(target=sleep)
        sleeper.start()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            stack.wait_until(lambda: admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                "'%pg_sleep(60)%' AND pid <> pg_backend_pid()").fetchone()[0] == 1,  # type: ignore[index]
                30, "the statement to run on the server")
            kill_tree(gateway)
            sleeper.join(30)
            assert failed, "the client saw its connection end"
            restarted(gateway)
            decisions = [r for r in gateway.records("decision")
                         if "pg_sleep(60)" in str(r.get("request"))]
            assert len(decisions) == 1, decisions
            assert decisions[0]["spooled"]["reason"].startswith("journaled by processes")
            client.close()
