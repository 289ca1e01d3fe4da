"""Holding for approval: what it costs, and how soon an approval reaches a held request.

Run from the repository root: `python -m bench.approvals [--store postgresql://...]`
(`make bench` runs it on SQLite and on this machine's PostgreSQL).

- grant check: the store lookup a held request makes before it waits (is there a grant
  for it?), and the one a retry makes when its `once` approval is used up; requests the
  policy does not hold never make it.
- wake: from an approver's decision (its transaction, committed) to the held request's
  waiter returning, in the same process (an asyncio event) and, on PostgreSQL, from
  another replica (NOTIFY on its own connection; the waiters' own polling is set to
  60 s so it cannot help).
- end to end: a real Envoy, tollgate and the demo upstream; an UPDATE without WHERE held
  by the default pack, approved through the admin API; from the approval's POST to the
  held request's 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from extproc import envoy_bootstrap
from extproc.approvals import ApprovalStore
from extproc.quickstart import stack
from extproc.quickstart.demo_upstream import DemoUpstream
from tests.support import tokens
from tests.support.databases import throwaway_database

REPO = Path(__file__).resolve().parent.parent
IDENTITY = {"authenticated": True, "sub": "svc-bench", "iss": tokens.ISSUER, "groups": []}


def _fields(n: int, grant: str = "once") -> dict[str, Any]:
    return {"fingerprint": f"fp-{n}", "requester": "svc-bench", "identity": IDENTITY,
            "target": "demo", "summary": "DELETE FROM t", "request": {"method": "POST"},
            "approvers": ("group:dba",), "rules": ("sql.unbounded_write",),
            "reasons": ("DELETE without WHERE",), "grant_mode": grant,
            "grant_minutes": 5 if grant == "window" else None, "trace_id": "0" * 32,
            "span_id": "0" * 16, "held_by": "bench", "expire_seconds": 3600.0}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p99": ordered[int(len(ordered) * 0.99) - 1],
            "n": len(ordered)}


async def store_figures(url: str, rounds: int) -> dict[str, dict[str, float]]:
    """Grant checks and wake-ups on one store (two ApprovalStores: two replicas)."""
    a = await ApprovalStore.open(url, poll_seconds=60)
    b = await ApprovalStore.open(url, poll_seconds=60)
    try:
        miss, hit, local, remote = [], [], [], []
        for n in range(rounds):
            started = time.perf_counter()
            await a.grant_for(f"absent-{n}", "svc-bench", "demo", ("group:dba",), "t")
            miss.append((time.perf_counter() - started) * 1e6)
            approval = await a.create(**_fields(n))
            await a.decide(approval.id, "dana", ["dba"], True, None)
            started = time.perf_counter()
            assert await a.grant_for(f"fp-{n}", "svc-bench", "demo", ("group:dba",),
                                     "t") is not None
            hit.append((time.perf_counter() - started) * 1e6)
            for waiter, decider, into in ((a, a, local), (b, a, remote)):
                if waiter is b and a._store.backend == "sqlite":
                    continue  # one process owns a SQLite store: no other replica
                pending = await decider.create(**_fields(rounds + len(into) + 10 * n + 1))
                waiting = asyncio.create_task(waiter.wait(pending.id, 30))
                # Until the waiter is parked (the store has no event for it): the
                # measure starts there.
                while pending.id not in waiter._events:  # noqa: ASYNC110
                    await asyncio.sleep(0)
                started = time.perf_counter()
                await decider.decide(pending.id, "dana", ["dba"], True, None)
                await waiting
                into.append((time.perf_counter() - started) * 1e6)
        found = {"grant check, none found (µs)": _stats(miss),
                 "grant check, a once grant used (µs)": _stats(hit),
                 "decided to waiter woken, same process (µs)": _stats(local)}
        if remote:
            found["decided to waiter woken, other replica (µs)"] = _stats(remote)
        return found
    finally:
        await a.close()
        await b.close()


def end_to_end(rounds: int, work: Path) -> dict[str, float]:
    """ms from the approval's POST to the held request's answer, through a real Envoy."""
    ports = envoy_bootstrap.Ports(stack.free_port(), stack.free_port(), stack.free_port(), 0)
    upstream = DemoUpstream(port=0).start()
    ports = envoy_bootstrap.Ports(ports.listener, ports.admin, ports.ext_proc, upstream.port)
    bootstrap = envoy_bootstrap.write(envoy_bootstrap.with_jwt_issuer(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports),
        tokens.ISSUER, [tokens.AUDIENCE], tokens.jwks()), work / "envoy.yaml")
    admin = stack.free_port()
    (work / "tollgate.yaml").write_text(yaml.safe_dump({
        "listen": {"grpc": f"127.0.0.1:{ports.ext_proc}", "admin": f"127.0.0.1:{admin}",
                   "workers": 1},
        "policy": {"dir": str(REPO / "policies")},
        "identity": {"envoy_bootstrap": str(bootstrap)},
        "store": {"url": f"sqlite:///{work}/bench.db"},
        "recording": {"signing_key_file": str(work / "audit.key")},
        "approvals": {"max_hold_seconds": 30},
        "targets": [{"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
                     "sql": {"dialect": "sqlite"}}],
    }))
    processes = [stack.start_tollgate(work / "tollgate.yaml", ports.ext_proc, work)]
    agent, dba = tokens.token("svc-bench", ["agents"], ttl=3600), tokens.token("dana", ["dba"])
    samples: list[float] = []
    try:
        processes.append(stack.start_envoy(bootstrap, ports.admin, work))
        for n in range(rounds):
            text = f"UPDATE customers SET name = name || '{n}'"
            answer: list[int] = []
            held = threading.Thread(target=lambda text=text, answer=answer: answer.append(
                _post(f"http://127.0.0.1:{ports.listener}/sql", {"sql": text}, agent).status))
            held.start()
            approval_id = _pending(admin, dba)
            started = time.perf_counter()
            _post(f"http://127.0.0.1:{admin}/approvals/{approval_id}/approve", {}, dba)
            held.join(30)
            samples.append((time.perf_counter() - started) * 1e3)
            assert answer == [200], answer
    finally:
        for process in reversed(processes):
            process.stop()
        upstream.stop()
    return _stats(samples)


def _post(url: str, body: dict[str, Any], token: str) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"authorization": f"Bearer {token}",
                                              "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()
        return reply


def _pending(admin: int, token: str) -> str:
    found: list[str] = []

    def listed() -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{admin}/approvals?status=pending",
            headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            found[:] = [a["id"] for a in json.loads(reply.read())["approvals"]]
        return bool(found)

    stack.wait_until(listed, 15, "a pending approval")
    return found[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="store rounds per figure")
    parser.add_argument("--e2e-rounds", type=int, default=20, help="approvals end to end")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-approvals-") as tmp:
        with throwaway_database("tollgate_bench") as pg_url:
            stores = {"SQLite": f"sqlite:///{tmp}/approvals.db", "PostgreSQL": pg_url}
            for label, url in stores.items():
                for figure, found in asyncio.run(store_figures(url, args.rounds)).items():
                    print(f"{label:<10} {figure:<46} p50 {found['p50']:8.0f}  "
                          f"p99 {found['p99']:8.0f}  (n={found['n']:.0f})")
        found = end_to_end(args.e2e_rounds, Path(tmp))
        print(f"{'Envoy':<10} {'approval POST to held request answered (ms)':<46} "
              f"p50 {found['p50']:8.1f}  p99 {found['p99']:8.1f}  (n={found['n']:.0f})")


if __name__ == "__main__":
    main()
