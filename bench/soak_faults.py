"""Soak through faults: two replicas, their store restarted, one of them killed (its
request process alone, then its whole process tree), a policy revision pushed, and a
reload sent while a replica starts.

Run from the repository root: `python -m bench.soak_faults` (not part of CI).

What it measures, and why: bench/soak.py shows that every exchange tollgate answers
leaves exactly one record while nothing goes wrong. The deploy shape (envoy/deploy.yaml:
replicas behind one Envoy, sharing one PostgreSQL store) must keep that promise when
things do. So this runs soak.py's mix, on its timetable, through one Envoy to two
replicas recording into a PostgreSQL cluster of its own (tests/support/pg_cluster.py),
and at each sixth of the run (`Faults`): the store restarted for real (`pg_ctl -m fast
restart`: a failover, an upgrade); the second replica's request process SIGKILLed alone
(its writer lives on and writes what it was sent) and, --restart-after seconds later,
started again as its supervisor would (with a chain of its own: a restarted process
begins a new one); its whole process tree frozen and SIGKILLed (an OOM-killed
container, a lost pod: what it answered is in its journal, which the next start, on the
same spool folder, spools and writes) and started again; a policy revision pushed to
both replicas; and the replica stopped and started again with a SIGHUP as it starts.

Then the rest is stopped cleanly and the store read back, as soak.py does (its figures
come first): every answer carrying tollgate's trace id must have its one record ("lost",
goal 0). Answers Envoy gives alone (a 5xx with no trace id: the exchange was in flight
on the killed replica, its ext_proc stream cut) are no answer of tollgate's and are
counted apart, beside what the store holds of exchanges no answer names (records the
killed replica wrote of exchanges it decided before it died, whose clients got Envoy's
5xx). Per fault: what was answered in the seconds around it, p50/p99 before and after
it, and the recovery time: from the fault to the end of the last second that was not
normal (an unexpected status or no answer, or p99 over the threshold: twice the p99
before the first fault, at least THRESHOLD_FLOOR_MS) before STEADY_SECONDS normal ones in
a row. Exits 1 when a record is lost or the store does not verify.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import load, soak
from bench.soak import Answer, Driven, Gateway, by_status, latency, markdown, unexpected
from extproc.quickstart import stack
from tests.support import pg_cluster

VICTIM = 1  # the replica killed (the first stays: soak.py's CPU figures are its)
STEADY_SECONDS = 5  # normal seconds in a row that make a recovery
THRESHOLD_FACTOR, THRESHOLD_FLOOR_MS = 2.0, 50.0
AROUND = (-3, 12)  # the seconds the report shows around a fault


@dataclass(frozen=True)
class Fault:
    name: str
    at_ns: int  # perf_counter ns when it began (the generator's clock: CLOCK_MONOTONIC)
    at_us: int  # the same, wall-clock µs (records' started_us)
    took_s: float  # until the act was over: the store answering, the replica gone or serving


@dataclass
class Faults:
    """The faults, on their timetable from the run's start, and when each happened:
    the store restarted; replica VICTIM's request process SIGKILLed alone (its writer
    lives on and writes what it had), then started again; its whole process tree
    (request process, writer and fork server) frozen and SIGKILLed, as a lost pod's
    (what it answered is in its journal: the next start spools it), then started
    again; a policy revision pushed to every replica (a SIGHUP after the pack changed:
    checked off the serving path, then swapped in); the replica stopped and started
    again with a SIGHUP while it starts (kept, and reloaded once it serves)."""

    cluster: pg_cluster.Cluster
    seconds: float
    restart_after: float | None
    restarted_writers: list[str]  # the names the victim's restarts record as, in turn
    done: list[Fault] = field(default_factory=list)

    def __call__(self, gateway: Gateway, start: int) -> None:
        at = [start + int(self.seconds * k / 6 * 1e9) for k in range(1, 6)]
        self._at(at[0], "store restart", self.cluster.restart)
        self._at(at[1], f"replica {VICTIM}'s request process SIGKILLed",
                 lambda: _killed(gateway, alone=True))
        self._again(gateway)
        self._at(at[2], f"replica {VICTIM}'s whole tree SIGKILLed",
                 lambda: _killed(gateway, alone=False))
        self._again(gateway)
        self._at(at[3], "policy revision pushed to both replicas", lambda: _pushed(gateway))
        self._at(at[4], f"replica {VICTIM} restarted with a SIGHUP as it starts",
                 lambda: _restarted_hung_up(gateway, self.restarted_writers.pop(0)))

    def _again(self, gateway: Gateway) -> None:
        """The victim started again, restart_after seconds after it was killed."""
        if self.restart_after is None:
            return
        writer = self.restarted_writers.pop(0)
        self._at(self.done[-1].at_ns + int(self.restart_after * 1e9),
                 f"replica {VICTIM} started again",
                 lambda: gateway.start_replica(VICTIM, writer))

    def _at(self, due: int, name: str, act: Callable[[], object]) -> None:
        time.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9))
        print(f"  {name}", file=sys.stderr, flush=True)
        at_ns, at_us = time.perf_counter_ns(), time.time_ns() // 1000
        act()
        self.done.append(Fault(name, at_ns, at_us, (time.perf_counter_ns() - at_ns) / 1e9))


def _victim(gateway: Gateway) -> stack.Process:
    """Replica VICTIM's process now (the last one started on its port)."""
    port = gateway.grpc_ports[VICTIM]
    return next(p for p in reversed(gateway.tollgates) if _port_of(p) == port)


def _port_of(process: stack.Process) -> int | None:
    config = _config_of(process)
    return int(config["listen"]["grpc"].rsplit(":", 1)[1]) if config else None


def _config_of(process: stack.Process) -> dict[str, Any] | None:
    argv = Path(f"/proc/{process.pid}/cmdline")
    try:
        words = argv.read_bytes().split(b"\0")
    except OSError:
        return None
    path = Path(words[words.index(b"--config") + 1].decode())
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _killed(gateway: Gateway, alone: bool) -> None:
    victim = _victim(gateway)
    if alone:
        victim.popen.kill()
    else:
        stack.kill_tree(victim.pid)
    victim.popen.wait()


def _pushed(gateway: Gateway) -> None:
    """A new revision of each live replica's pack (a rule's comment changed: what the
    smoke set checks is the whole pack), then SIGHUP: the reload an operator's push is."""
    for process in gateway.tollgates:
        config = _config_of(process) if process.alive() else None
        if config is None:
            continue
        pack = Path(config["policy"]["dir"])
        with (pack / "tollgate.rego").open("a", encoding="utf-8") as rules:
            rules.write(f"\n# pushed at {time.time_ns()}\n")
        os.kill(process.pid, signal.SIGHUP)


def _restarted_hung_up(gateway: Gateway, writer: str) -> None:
    """The victim stopped as a deploy stops it, then started again, a SIGHUP sent to
    it as soon as it would take one (its handler set: before that the signal's default
    ends a process, as it does any program's)."""
    victim = _victim(gateway)
    victim.stop()

    def hung_up(process: stack.Process) -> None:
        stack.wait_until(lambda: _catches_hangup(process.pid), 60,
                         "the restarted replica to take SIGHUP")
        os.kill(process.pid, signal.SIGHUP)

    gateway.start_replica(VICTIM, writer, starting=hung_up)


def _catches_hangup(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


# ---- Figures ---------------------------------------------------------------------------------


def seconds_from(answers: list[Answer], at_ns: int) -> dict[int, list[Answer]]:
    """Answers by the second, counted from `at_ns`, they were due in."""
    buckets: dict[int, list[Answer]] = {}
    for answer in answers:
        buckets.setdefault((answer.due - at_ns) // 1_000_000_000, []).append(answer)
    return buckets


def normal(answers: list[Answer], threshold_ms: float) -> bool:
    return not unexpected(answers) and latency(answers)["p99_ms"] <= threshold_ms


def recovery(answers: list[Answer], at_ns: int, until_ns: int,
             threshold_ms: float) -> dict[str, Any]:
    """From the fault at `at_ns` to the end of the last abnormal second before
    STEADY_SECONDS normal ones (None: not within `until_ns`, the next fault or the end),
    and to the end of the last answer in that time that was unexpected or slower than
    the threshold."""
    buckets = seconds_from([a for a in answers if at_ns <= a.due < until_ns], at_ns)
    last = (until_ns - at_ns) // 1_000_000_000
    recovered = next((k for k in range(last) if all(
        normal(buckets.get(j, []), threshold_ms) for j in range(k, min(k + STEADY_SECONDS, last))
    )), None)
    odd = [a for k, mine in buckets.items() if recovered is None or k < recovered
           for a in mine if a.status != soak.KINDS[a.kind].expected
           or (a.done - a.due) / 1e6 > threshold_ms]
    return {"recovered_s": recovered,
            "last_odd_ms": max(((a.done - at_ns) / 1e6 for a in odd), default=None)}


def fault_figures(driven: Driven, faults: list[Fault], stored: soak.Stored,
                  threshold_ms: float) -> list[dict[str, Any]]:
    """For each fault: the answers around it, latency after it, its recovery, and which
    exchanges only Envoy answered (and what the store holds of those no answer names)."""
    answers = driven.answers
    answered = {a.trace_id for a in answers}
    ends = [f.at_ns for f in faults[1:]] + [max(a.due for a in answers) + 1]
    rows = []
    for fault, end in zip(faults, ends, strict=True):
        mine = [a for a in answers if fault.at_ns <= a.due < end]
        buckets = seconds_from(answers, fault.at_ns)
        unnamed = [r for trace, r in stored.recorded.items() if trace not in answered
                   and fault.at_us - 10**6 <= r.started_us < (fault.at_us + (end - fault.at_ns)
                                                             // 1000)]
        rows.append({
            **asdict(fault),
            "after_10s": latency([a for a in mine if a.due < fault.at_ns + 10**10]),
            "recovery": recovery(answers, fault.at_ns, end, threshold_ms),
            "envoy_alone": dict(Counter(f"{a.kind} {a.status or a.error}"
                                        for a in mine if a.trace_id is None)),
            "recorded_unanswered": {
                "records": len(unnamed),
                "by_writer": dict(Counter(r.writer for r in unnamed)),
                "started_ms_from_fault": sorted((r.started_us - fault.at_us) / 1000
                                                for r in unnamed)[:20]},
            "seconds": [{"second": k, "requests": len(b), "statuses": by_status(b),
                         **latency(b)} for k in range(*AROUND) if (b := buckets.get(k))],
        })
    return rows


def baseline(driven: Driven, faults: list[Fault]) -> dict[str, float]:
    """Latency before the first fault, and the threshold a normal second stays under."""
    before = latency([a for a in driven.answers if a.due < faults[0].at_ns])
    return {**before,
            "threshold_ms": max(THRESHOLD_FACTOR * before["p99_ms"], THRESHOLD_FLOOR_MS)}


# ---- Report ----------------------------------------------------------------------------------


def fault_report(result: dict[str, Any]) -> str:
    base = result["baseline"]
    rows = [("before the first fault", "-", "-",
             f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f}", "-", "-", "-")]
    for f in result["faults"]:
        rec, after = f["recovery"], f["after_10s"]
        rows.append((
            f["name"], f"{f['took_s']:.2f} s",
            ", ".join(f"{s}: {n}" for s, n in f["envoy_alone"].items()) or "0",
            f"{after['p50_ms']:.1f} / {after['p99_ms']:.1f}",
            "-" if rec["recovered_s"] is None else f"{rec['recovered_s']} s",
            "-" if rec["last_odd_ms"] is None else f"{rec['last_odd_ms']:.0f} ms",
            f["recorded_unanswered"]["records"]))
    sections = [
        f"a normal second: p99 <= {base['threshold_ms']:.1f} ms, every status as expected;"
        f" recovered: the first of {STEADY_SECONDS} such seconds in a row (from the fault); "
        "odd: an answer unexpected or slower than that threshold",
        markdown(("fault", "took", "answered by Envoy alone", "p50 / p99 ms (10 s after)",
                  "recovered after", "last odd answer ended", "records no answer names"),
                 rows)]
    for f in result["faults"]:
        sections.append(f"{f['name']}, second by second:\n" + markdown(
            ("second", "requests", "statuses", "p50 ms", "p99 ms", "max ms"),
            [(s["second"], s["requests"], ", ".join(f"{k}: {n}" for k, n in
                                                    s["statuses"].items()),
              f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['max_ms']:.1f}")
             for s in f["seconds"]]))
    return "\n\n".join(sections)


# ---- Orchestration ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5, help="how long to soak")
    parser.add_argument("--rate", type=float, default=120, help="requests per second")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--restart-after", type=float, default=10.0,
                        help="seconds from the kill to starting the replica again")
    parser.add_argument("--no-restart", dest="restart_after", action="store_const",
                        const=None, help="leave the killed replica dead")
    parser.add_argument("--json-out", type=Path,
                        help="default: bench/results/soak-faults-<timestamp>.json")
    args = parser.parse_args(argv)

    started = datetime.now(UTC)
    run_id = secrets.token_hex(3)
    writers = (f"soak-{run_id}-r0", f"soak-{run_id}-r1", *(
        f"soak-{run_id}-r1-{again}" for again in ("b", "c", "d")))
    with tempfile.TemporaryDirectory(prefix="tollgate-soak-") as work, \
            pg_cluster.cluster(log_statements=False) as cluster, \
            soak.throwaway_store(cluster.admin_url, Path(work)) as store_url:
        faults = Faults(cluster, args.minutes * 60, args.restart_after, list(writers[2:]))
        ran = soak.run(args, Path(work), store_url, writers, replicas=2, during=faults)
        spool_left = sorted(str(p) for p in (Path(work) / "spool").rglob("*.spool"))
    result = soak.summary(args, ran)
    base = baseline(ran.driven, faults.done)
    result |= {"baseline": base, "spool_files_left": spool_left,
               "faults": fault_figures(ran.driven, faults.done, ran.stored,
                                       base["threshold_ms"])}
    print(soak.report(result))
    print()
    print(fault_report(result))
    if spool_left:
        print(f"\nspool files left unwritten: {spool_left}")
    soak.finish(result, args.json_out
                or load.RESULTS / f"soak-faults-{started:%Y%m%dT%H%M%SZ}.json", started)


if __name__ == "__main__":
    main()
