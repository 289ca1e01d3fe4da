"""What counting activity (`input.activity`) costs an exchange, on the request path and off it.

Run from the repository root: `python -m bench.activity [--identities N] [--rounds R]
[--load] [--json-out PATH]`.

In process, timed with `time.perf_counter_ns` over many calls on this machine's CPU:

    read      `Tracker.counts_json`: what each decision pays to put the identity's and its
              token's counts in the policy input (no I/O: the view is in memory; encoded
              again after each exchange counted)
    policy    the default pack's decision with those counts in its input and with
              activity off: regorus reads the larger input (~1.3 KB more)
    observe   `Tracker.observe`: what each finished exchange pays to be counted, off the
              request path (after its answer left; a record observer)
    live      `Live.read`: what each request's decision pays for the counts summed over
              every process (one store round trip: the identity's refusals, the token's
              addresses, the target's and 2 groups' masked values, an hour of minutes
              written), and `Live.refused`, what a refusal pays before it is answered;
              on a SQLite file and on the machine's PostgreSQL
    sync      one sync of a process tracking N identities and N tokens with a delta each:
              the upsert batch and the grouped SELECT, on a SQLite file and on the
              machine's PostgreSQL (a throwaway database); off the request path, on a
              worker thread, every `activity.sync_seconds`

With `--load`, the figure the issue asks not to move: bench/load.py's headers-only
set-up (`tollgate-headers`, with its floors), run R times with activity on and R times
off, alternately, each run judged against its own Envoy-alone and do-nothing ext_proc
floors, so the machine's drift falls on both alike; the medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from extproc.activity.live import Live
from extproc.activity.tracker import Tracker
from extproc.codecs.message import Request
from extproc.config import Activity, Match, Target
from extproc.identity import Who
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.input import InputEncoder
from extproc.policy.sources import read_modules
from extproc.recording import BodyCapture, Decided, Evidence
from tests.support.databases import throwaway_database

REPO = Path(__file__).resolve().parents[1]
TARGET = Target(name="shop", protocol="sql-http", match=Match(route="shop"),
                environment="production", labels={"masking": "off"})


def identity(n: int) -> Who:
    return {"authenticated": True, "sub": f"agent-{n}", "iss": None, "aud": [],
            "email": None, "groups": ["agents"], "jti": f"token-{n}"}


def evidence(n: int) -> Evidence:
    """A finished exchange as an agent's SELECT leaves it: masked, 2 KB of JSON rows."""
    found = Evidence("exchange", time.time(), "0" * 32, "0" * 16, {}, identity(n), TARGET)
    found.decisions.append(Decided("request", "allow", (), (), 403, "r", 1, (), None, None))
    found.outcome = {"tollgate.decision.action": "allow", "client.address": "10.0.0.7"}
    found.masked = Counter({"email": 10, "phone": 10})
    found.response_body = BodyCapture.of(
        json.dumps({"rows": [[i, f"name {i}", "xxx"] for i in range(60)]}).encode(), 65536)
    found.response_type = "application/json"
    return found


def per_call_us(call: Any, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - started) / calls / 1000


async def sync_ms(url: str, identities: int, rounds: int) -> float:
    """The median of `rounds` syncs, each with a delta for every identity and token."""
    tracker = Tracker(Activity(max_identities=identities), url)
    taken = []
    try:
        for _ in range(rounds):
            for n in range(identities):
                tracker.observe(evidence(n))
            started = time.perf_counter()
            assert await tracker.sync(), "the store did not answer"
            taken.append((time.perf_counter() - started) * 1000)
    finally:
        await tracker.close()
    return statistics.median(taken)


async def live_us(url: str, calls: int) -> dict[str, float]:
    """Median µs of a decision's live reading and of a refusal's count, after an hour of
    masked values per minute on the target and its groups."""
    live = Live(url, 5.0)
    await live.start()
    try:
        for minute_ago in range(60):
            live.count_masked("shop", ["agents", "sales"], {"email": 3, "phone": 2})
            for key, minute, metric in list(live._pending):  # spread over the hour
                live._pending[(key, minute - minute_ago, metric)] = 1
        assert await live.flush(), "the store did not answer"
        taken: dict[str, list[float]] = {"read": [], "refused": []}
        for n in range(calls):
            started = time.perf_counter_ns()
            await live.read("sub:agent-0", "jti:token-0", "shop", ["agents", "sales"],
                            f"10.0.{n % 2}.7", "production")
            taken["read"].append((time.perf_counter_ns() - started) / 1000)
            started = time.perf_counter_ns()
            assert await live.refused("sub:agent-0") is not None
            taken["refused"].append((time.perf_counter_ns() - started) / 1000)
        return {name: statistics.median(values) for name, values in taken.items()}
    finally:
        await live.close()


def policy_us(tracker: Tracker, who: Who) -> float:
    """The default pack's decision on a GET to a sql-http target (bench/load.py's
    headers-only one), with this tracker's `input.activity` in its input."""
    target = Target(name="shop", protocol="sql-http", match=Match(route="shop"),
                    environment="production", labels={"masking": "off"})
    engine = EmbeddedEngine(read_modules(REPO / "policies"), "data.tollgate.decision")
    request: Request = {"method": "GET", "path": "/api/customers", "query": {},
                        "headers": {"host": "127.0.0.1"}, "body": None}
    policy_input = InputEncoder(target, "sql").encode(
        "request", who, request, None, {"statements": []}, None, None, "10.0.0.7",
        tracker.counts_json(who, False))
    assert engine.decide_now(policy_input).action == "allow"
    return per_call_us(lambda: engine.decide_now(policy_input), 3000)


def in_process(identities: int, rounds: int) -> dict[str, float]:
    tracker = Tracker(Activity(), "sqlite:///unused")
    one = evidence(0)
    for _ in range(100):
        tracker.observe(one)
    who = identity(0)

    def read_after_an_exchange() -> None:
        tracker.observe(one)
        tracker.counts_json(who, False)

    observe = per_call_us(lambda: tracker.observe(one), 20_000)
    found = {
        "read µs/decision, nothing counted since": per_call_us(
            lambda: tracker.counts_json(who, False), 20_000),
        "read µs/decision, after an exchange": per_call_us(read_after_an_exchange, 20_000)
        - observe,
        "observe µs/exchange (2 KB JSON answer, masked)": observe,
        "policy µs/decision, activity counted": policy_us(tracker, who),
        "policy µs/decision, activity off": policy_us(
            Tracker(Activity(enabled=False), "sqlite:///unused"), who),
    }
    with tempfile.TemporaryDirectory() as work:
        found[f"sync ms, {identities} identities, SQLite"] = asyncio.run(
            sync_ms(f"sqlite:///{work}/store.db", identities, rounds))
        for name, value in asyncio.run(live_us(f"sqlite:///{work}/live.db", 2000)).items():
            found[f"live {name} µs, SQLite"] = value
    with throwaway_database("tollgate_bench") as url:
        found[f"sync ms, {identities} identities, PostgreSQL"] = asyncio.run(
            sync_ms(url, identities, rounds))
        for name, value in asyncio.run(live_us(url, 2000)).items():
            found[f"live {name} µs, PostgreSQL"] = value
    return found


# What bench/load.py writes for a set-up's phase that activity could move.
def _figures(phase: dict[str, Any]) -> dict[str, float]:
    return {"req/s": phase["rps"], "ext_proc CPU µs/request": phase["cpu_us_per_request"][
        "ext_proc"], "added p50 ms": phase["added_p50_ms"], "added p99 ms": phase["added_p99_ms"]}


def under_load(rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    """bench/load.py's tollgate-headers (1 worker), activity on and off in turn: the
    medians of each figure, and of its ratio to the same run's do-nothing ext_proc."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(rounds):
            for setting in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                out = Path(work) / f"{setting}-{round_}.json"
                subprocess.run(
                    [sys.executable, "-m", "bench.load", "--only", "tollgate-headers",
                     "--workers", "1", "--activity", setting, "--rounds", "1",
                     "--seconds", str(seconds), "--json-out", str(out)],
                    cwd=REPO, check=True, stdout=subprocess.DEVNULL)
                runs[setting].append(json.loads(out.read_text())["results"])
    found: dict[str, dict[str, float]] = {}
    for setting, results in runs.items():
        figures: dict[str, float] = {}
        for phase in ("fixed_rate", "max"):
            ours = [_figures(r["tollgate-headers"][phase]) for r in results]
            floors = [_figures(r["passthrough-headers"][phase]) for r in results]
            for name in ours[0]:
                figures[f"{phase} {name}"] = statistics.median(o[name] for o in ours)
                if name in ("req/s", "ext_proc CPU µs/request"):
                    ratios = [o[name] / f[name] for o, f in zip(ours, floors, strict=True)]
                    figures[f"{phase} {name} / floor"] = statistics.median(ratios)
                    # The rounds' spread: what noise alone moves the ratio by.
                    figures[f"{phase} {name} / floor, lowest"] = min(ratios)
                    figures[f"{phase} {name} / floor, highest"] = max(ratios)
        found[f"activity {setting}"] = figures
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", action="store_true",
                        help="also bench/load.py's headers-only set-up, activity on and off")
    parser.add_argument("--seconds", type=float, default=10, help="each --load phase")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"in process": in_process(args.identities, args.rounds)}
    for name, value in results["in process"].items():
        print(f"{name:<45} {value:10.2f}")
    if args.load:
        results["headers-only"] = under_load(args.rounds, args.seconds)
        for setting, figures in results["headers-only"].items():
            print(f"\n{setting}")
            for name, value in figures.items():
                print(f"  {name:<43} {value:10.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
