"""Policy engines compared: µs per decision and decisions/s, embedded regorus against OPA REST.

Run from the repository root: `python -m bench.policy_engines` (`make bench` does).

The OPA side is the stand-in server (tests/standins/opa_standin.py: the real OPA engine behind
OPA's REST API; no OPA binary can be installed here) in its own process, asked by
tollgate's own `opa` backend — what `policy.engine: opa` costs a gateway. Inputs are
the policy inputs the servicer builds for a headers-only GET and for a 2 KB JSON body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from extproc import config
from extproc.policy import open_engine
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.input import InputEncoder
from extproc.policy.sources import read_modules
from extproc.quickstart import stack

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
QUERY = "data.tollgate.decision"


def inputs() -> dict[str, str]:
    """The policy inputs of a GET and of a 2 KB JSON POST, encoded as the servicer does."""
    target = config.parse({"targets": [{"name": "demo", "match": {"route": "demo"}}]}).targets[0]
    encoder = InputEncoder(target)
    headers = {"user-agent": "agent/1.0", "accept": "application/json", "x-request-id": "r-1"}
    get = {"method": "GET", "path": "/api/customers", "query": {}, "headers": headers,
           "body": None}
    post = {**get, "method": "POST", "path": "/sql",
            "body": {"sql": "SELECT name FROM customers", "pad": "x" * 2000}}
    identity = {"authenticated": True, "sub": "svc-autogen", "iss": "https://tollgate.dev.local",
                "aud": ["tollgate"], "email": None, "groups": ["agents"], "jti": "j-1"}
    return {"headers-only": encoder.encode("request", identity, get, None),
            "2 KB body": encoder.encode("request", identity, post, None)}


async def timed(decide: Callable[[], Awaitable[object]], seconds: float) -> list[float]:
    """µs of each decision, one after another, for `seconds` (after a short warm-up)."""
    for _ in range(50):
        await decide()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter_ns()
        await decide()
        samples.append((time.perf_counter_ns() - started) / 1e3)
    return samples


async def rate(decide: Callable[[], Awaitable[object]], seconds: float, concurrency: int) -> float:
    """Decisions per second with `concurrency` decisions in flight (the event loop's view)."""
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await decide()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


@dataclass(frozen=True)
class Row:
    input: str
    engine: str
    p50_us: float
    p99_us: float
    per_second: float


async def measure(seconds: float, concurrency: int, opa_url: str) -> list[Row]:
    embedded = EmbeddedEngine(read_modules(POLICIES), QUERY)
    settings = config.parse({
        "policy": {"engine": "opa", "url": opa_url, "dir": str(POLICIES), "timeout_seconds": 5},
        "targets": [{"name": "demo", "match": {"route": "demo"}}],
    }).policy
    opa = await open_engine(settings, POLICIES)
    rows: list[Row] = []
    try:
        for name, input_json in inputs().items():
            # The same decision from both, or the comparison means nothing.
            assert await embedded.decide(input_json) == await opa.decide(input_json)
            for engine_name, engine in (("embedded", embedded), ("opa REST", opa)):
                def once(engine=engine, input_json=input_json) -> Awaitable[object]:
                    return engine.decide(input_json)

                samples = await timed(once, seconds)
                rows.append(Row(
                    name, engine_name, statistics.median(samples),
                    statistics.quantiles(samples, n=100)[98],
                    await rate(once, seconds, concurrency),
                ))
    finally:
        await opa.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="decisions in flight")
    args = parser.parse_args(argv)
    port = stack.free_port()
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as work:
        opa = stack.Process.spawn("opa-standin", [
            sys.executable, "-m", "tests.standins.opa_standin", "--port", str(port),
        ], Path(work))
        try:
            opa.ready_or_fail(stack.tcp_accepts(port), 30, f"accepting on {port}")
            rows = asyncio.run(measure(args.seconds, args.concurrency, f"http://127.0.0.1:{port}"))
        finally:
            opa.stop()
    print("Policy decisions on the default pack (the OPA side: real OPA engine behind the")
    print("stand-in REST server, its own process; asked by tollgate's opa backend)\n")
    print(f"{'input':14} {'engine':10} {'p50 µs':>9} {'p99 µs':>9} {'decisions/s':>12} ratio")
    embedded = {row.input: row.p50_us for row in rows if row.engine == "embedded"}
    for row in rows:
        print(f"{row.input:14} {row.engine:10} {row.p50_us:9.0f} {row.p99_us:9.0f} "
              f"{row.per_second:12.0f} {row.p50_us / embedded[row.input]:5.1f}x")
    print(f"\n(ratio: p50 against embedded; decisions/s with {args.concurrency} in flight. The")
    print("stand-in's HTTP layer is Python's http.server, slower than OPA's own Go server:")
    print("read the OPA REST figures as an upper bound of what a real OPA sidecar costs.)")
    print(json.dumps([asdict(row) for row in rows]))

if __name__ == "__main__":
    main()
