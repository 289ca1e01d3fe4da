"""`tollgate audit flow`: what an agent run (or an identity) received and what it did
next, from the record — the answers noted as untrusted content before the agent read
them, and the requests the flow rules held or refused, each with the answers that
caused it (docs/flows.md).

A run is the trace the agent propagates (`--trace`); an agent that sends none is read by
its identity over a period (`--identity`). A held request's reason names the traces of
the answers before it; those answers are shown with it, wherever they are in the record.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

from extproc.cli import audit_looks as looks
from extproc.cli.common import add_period, period
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.text import cut, utc

if TYPE_CHECKING:
    from extproc import config as config_module
    from extproc.recording.store import Row

_NAMED_TRACE = re.compile(r"\btrace ([0-9a-f]{32})\b")
_MOST = 1000  # records of an identity read at most
_EXCERPT_CHARS = 100


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    flow = actions.add_parser(
        "flow", parents=[common, as_json],
        help="what an agent run received and what it did next: untrusted answers, and the "
             "requests held or refused after them")
    flow.add_argument("--trace", metavar="TRACE_ID",
                      help="the agent run: the trace its calls share")
    flow.add_argument("--identity", metavar="SUB",
                      help="instead, everything one identity's token did in the period")
    add_period(flow, since="1d")


def flow(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording import store

    if (args.trace is None) == (args.identity is None):
        raise Unusable("flow: give --trace TRACE_ID or --identity SUB")
    with looks.looking(config, args) as (connection, look):
        if args.trace is not None:
            rows = store.by_id(connection, args.trace)
            asked = f"trace {args.trace!r}"
        else:
            since_us, until_us = period(args, config)
            rows = [row for row in store.search(
                connection, identity=args.identity, target=args.target, since_us=since_us,
                limit=_MOST)[::-1] if row.started_us < until_us]
            asked = f"records of {args.identity!r} since {args.since}"
        if not rows:
            raise Unusable(f"no {asked} in {connection.where}")
        steps = [step(row) for row in rows]
        causes = sorted({t for s in steps for t in s["after"]} - {r.trace_id for r in rows})
        earlier = [step(row) for t in causes for row in store.by_id(connection, t)]
        look.shown([row.id for row in rows])
    # Each cause by its trace: the exchange that answered (its trace's other records, an
    # alert or an approval, say nothing of what was received).
    by_trace = {s["trace_id"]: s for s in [*steps, *earlier] if s["kind"] == "exchange"}
    if args.json:
        for each in steps:
            print(json_text(json.dumps(
                {**each, "after": [by_trace.get(t, {"trace_id": t}) for t in each["after"]]},
                ensure_ascii=False)))
        return 0
    print(terminal(f"{asked}: {len(rows)} {'record' if len(rows) == 1 else 'records'}, "
                   "oldest first"))
    for each in steps:
        print(terminal(_line(each)))
        for trace in each["after"]:
            before = by_trace.get(trace)
            print(terminal(f"    after {_line(before) if before else trace + ' (not found)'}"))
    return 0


def step(row: Row) -> dict[str, Any]:
    """A record as the flow sees it: what it was, what it received, what held it."""
    content = row.document()
    outcome = content.get("outcome") or {}
    request = content.get("request") or {}
    flow_rules = [d for d in content.get("decisions") or []
                  if any(r.startswith("flow.") for r in d.get("rules") or [])]
    told = ((content.get("meaning") or {}).get("mcp") or {}).get("answer", {}) \
        .get("instructions") or []
    return {
        "id": row.id, "kind": row.kind, "trace_id": row.trace_id,
        "started_us": row.started_us,
        "identity": row.identity, "target": row.target, "action": row.action,
        "what": f"{request.get('method', '')} {request.get('path', '')}".strip(),
        "received": outcome.get("received") or [],
        "instructions": [{"kind": t.get("kind"), "excerpt": t.get("excerpt")} for t in told],
        "flow": [{"action": d.get("action"), "rules": d.get("rules"),
                  "reasons": d.get("reasons")} for d in flow_rules],
        "after": sorted({t for d in flow_rules for reason in d.get("reasons") or []
                         for t in _NAMED_TRACE.findall(reason)}),
    }


def _line(each: dict[str, Any]) -> str:
    """A step in a line: when, where, how it ended, and what the flow made of it."""
    kind = "" if each["kind"] == "exchange" else f" ({each['kind']} record)"
    said = [f"{utc(each['started_us'], precise=True)} UTC{kind}  {each['target'] or '-'}  "
            f"{each['action']}  {cut(each['what'], 60) or '-'}  trace {each['trace_id']}"]
    if each["received"]:
        said.append(f"received {'+'.join(each['received'])}")
    for told in each["instructions"]:
        said.append(f"{told['kind']}: {cut(str(told['excerpt']), _EXCERPT_CHARS)!r}")
    for decided in each["flow"]:
        said.append(f"{decided['action']} by {', '.join(decided['rules'])}: "
                    + "; ".join(decided["reasons"] or []))
    return "; ".join(said)
