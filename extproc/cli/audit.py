"""`tollgate audit`: the record from a shell — verify, search, sessions, replay, what-if, prune.

An auditor verifies the chains with the public half of the signing key (`public-key`
prints it, so the private key need not leave the gateway's host), and with the
checkpoints anchored outside the store; an operator finds exchanges (`search`) and agent
runs (`sessions`), reads one run as it happened (`replay`), tries a policy change on
recorded traffic (`whatif`) and prunes what retention allows (`prune`). Every
sub-command reads the store and key a tollgate config names (`--config`, the
quickstart's by default). Each that shows what the record holds records the look first,
as a record of kind `access` (audit_looks.py): nobody looks unrecorded.

Exit status: 0 success (for `verify`: intact, and every chain vouched for by an anchor
log); 1 `verify` found the record broken, or shortened, or `replay` a terminal recording
that does not match its record; 2 unusable input (the config, the store, a key, a policy
directory, an argument), one line on stderr; 3 `verify` found the record intact as far as
the store shows, but some chain is vouched for by no anchor log given (it names them,
and why); 141 the output's reader left (`| head`: common.reader_may_leave).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.cli import (
    audit_export,
    audit_flow,
    audit_report,
    audit_retention,
    audit_sessions,
    audit_terminal,
)
from extproc.cli import audit_looks as looks
from extproc.cli.common import QUICKSTART_CONFIG, add_key_flags, positive
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.text import cut, lasted, print_table, size, utc
from extproc.codecs.vocabulary import ACTIONS, KINDS

# The store, the chain and the policy engine are imported by the commands that use
# them: `tollgate token` and `tollgate serve` need not load them for the parser.
# What search filters take (the recordings API's too): how a record's exchange ended
# (`action`: a decision's, an approver's, an alert; `none`: nothing was decided, or a
# record of no exchange; `unknown`: a record that could not be built whole), and what the
# record is of (`kind`).

if TYPE_CHECKING:
    from extproc.recording.anchors import AnchorLog
    from extproc.recording.chain import Verifier
    from extproc.recording.store import Row
    from extproc.recording.verify import Problem, Report
    from extproc.recording.whatif import Tally, WhatIf

# Bodies, rules and paths longer than these are cut in the human listings (--json has
# them whole).
_BODY_CHARS = 300
_PATH_CHARS = 60
_DESTINATION_CHARS = 32
_RULES_CHARS = 40


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `audit verify|public-key|search|replay|whatif|keygen` under `tollgate`,
    `sessions` (audit_sessions.py), `flow` (audit_flow.py), `report|verify-report`
    (audit_report.py), `prune|hold` (audit_retention.py) and `export|verify-export`
    (audit_export.py)."""
    audit = commands.add_parser(
        "audit", help="verify, search and replay the audit record; try policies on it")
    actions = audit.add_subparsers(
        dest="audit_command", required=True,
        metavar="{verify,public-key,search,sessions,flow,replay,whatif,prune,hold,keygen,"
                "report,verify-report,export,verify-export}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=QUICKSTART_CONFIG,
        help="the tollgate config naming store.url and recording.signing_key_file "
             "(default: the quickstart's)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="JSON instead of text")

    verify = actions.add_parser(
        "verify", parents=[common, as_json],
        help="recompute every chain and check every signed checkpoint")
    add_key_flags(verify, anchors=True)

    actions.add_parser(
        "public-key", parents=[common],
        help="print the public half of the signing key, for verifying elsewhere")

    search = actions.add_parser(
        "search", parents=[common, as_json], help="records matching filters, newest first",
        description="Records matching every filter given, newest first. The search is itself "
                    "recorded, as every command that shows the record is: a look at the "
                    "record (kind access), by this OS user, naming what it showed.")
    search.add_argument("--identity", metavar="SUB",
                        help="who acted: the token's subject (an agent's, an approver's, a "
                             "reader's), or the OS user of a look from this command line")
    search.add_argument("--target", metavar="NAME", help="the target's name")
    search.add_argument("--action", choices=ACTIONS,
                        help="how it ended: allow, deny (refused: an exchange, a read of the "
                             "record), hold (an exchange refused or left while held); "
                             "approve, deny (an approver's act, refused attempts too: STATUS "
                             "says); alert; none (nothing decided, a policy load); unknown (a "
                             "record that could not be built whole)")
    search.add_argument("--kind", choices=KINDS,
                        help="what the record is of: an agent's exchange, a strict target's "
                             "decision, an approver's act, an alert, a policy load, a look "
                             "at the record (access: through the recordings API, or one of "
                             "these commands), how an egress tunnel ended (tunnel)")
    search.add_argument("--session", metavar="ID",
                        help="one agent run's records, and those sharing their traces (as "
                             "`replay --session` shows them)")
    search.add_argument("--text", metavar="TEXT",
                        help="records whose content holds TEXT, any case: what was stored, "
                             "masked (e.g. 'cat .env'); a scan, so bound it with --since")
    search.add_argument("--since", metavar="DURATION",
                        help="records of this last while (a tunnel's is when it ended), "
                             "e.g. 30m, 1h, 7d")
    search.add_argument("--limit", default="100", metavar="N", help="at most N (default 100)")

    audit_sessions.add_parser(actions, common, as_json)
    audit_flow.add_parser(actions, common, as_json)

    replay = actions.add_parser(
        "replay", parents=[common, as_json],
        help="exchanges as they happened: one record, a trace, or an agent's session")
    replay.add_argument("id", nargs="?", help="a record id (writer:seq) or a trace id")
    replay.add_argument("--session", metavar="ID",
                        help="every exchange of one agent run, in order (a session id from "
                             "`audit sessions`, or a trace id)")
    audit_terminal.add_arguments(replay)

    whatif = actions.add_parser(
        "whatif", parents=[common, as_json],
        help="what candidate policies would have decided on recorded traffic")
    whatif.add_argument("--policies", required=True, type=Path, metavar="DIR",
                        help="the candidate policy directory")
    whatif.add_argument("--since", default="7d", metavar="DURATION",
                        help="records of this last while (default 7d)")
    whatif.add_argument("--target", metavar="NAME", help="only this target's records")
    whatif.add_argument("--examples", default="3", metavar="N",
                        help="examples shown per change (default 3)")

    keygen = actions.add_parser(
        "keygen", help="write a new Ed25519 signing key (one for every replica to share)")
    keygen.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="where to write it (mode 0600); an existing file is kept")
    audit_report.add_parser(actions, common)
    audit_retention.add_parser(actions, common)
    audit_export.add_parser(actions, common)


def main(args: argparse.Namespace) -> int:
    try:
        if args.audit_command == "keygen":
            return _keygen(args)
        if args.audit_command == "verify-export" and args.public_key is not None:
            return audit_export.verify_export(args, None)  # away from tollgate: no config
        config = _load(args.config)
        return _COMMANDS[args.audit_command](args, config)
    except Unusable as exc:
        print(f"tollgate: {terminal(str(exc))}", file=sys.stderr)
        return 2


# -- verify, public-key ----------------------------------------------------------------


def _verify(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording.verify import Problem, verify

    verifier, key_from = access.verifier(args, config)
    logs = access.anchor_logs(args, config)
    with access.store(config) as connection:
        report = verify(connection, verifier, logs)
        where = connection.where
    replaced = _key_file_replaced(args, config, verifier)
    if replaced:
        report.add(Problem("audit key", None, replaced))
    status = 1 if not report.intact else 3 if report.unvouched() else 0
    if args.json:
        print(json_text(json.dumps(_verify_json(report, where, verifier.key_id, logs, status),
                                   ensure_ascii=False)))
    else:
        _show_verify(report, where, f"{verifier.key_id} ({key_from})", logs)
    return status


def _keygen(args: argparse.Namespace) -> int:
    from extproc.recording.chain import Signer, SigningKeyError

    try:
        signer = Signer.generate(args.out)
    except SigningKeyError as exc:
        raise Unusable(str(exc)) from None
    print(f"wrote {args.out} (key {signer.public.key_id}); set recording.signing_key_file "
          "to it on every replica, and keep it secret")
    return 0


def _public_key(_args: argparse.Namespace, config: config_module.Config) -> int:
    print(access.signer(config).public.public_pem().decode(), end="")
    return 0


def _key_file_replaced(args: argparse.Namespace, config: config_module.Config,
                       verifier: Verifier) -> str | None:
    """With the key given apart from the store (--public-key), whether the signing key
    file beside tollgate holds another: someone replaced it (and can re-sign with it)."""
    from extproc.recording.chain import Signer, SigningKeyError

    if args.public_key is None:
        return None
    try:
        found = Signer.from_file(access.key_path(config)).public.key_id
    except SigningKeyError:
        return None  # an auditor's copy of the config, without the private key
    if found == verifier.key_id:
        return None
    return (f"{access.key_path(config)} holds key {found}, not {verifier.key_id} (--public-key): "
            "the signing key was replaced; what it signs does not vouch for anything")


def _show_verify(report: Report, where: str, key: str, logs: list[AnchorLog] | None,
                 ) -> None:
    print(f"audit record: {where}" + (f" (store id {report.store_id})"
                                      if report.store_id else ""))
    print(f"key: {key}")
    print(terminal("anchor logs: " + (", ".join(
        f"{log.path} ({len(log.statements)} statements)" if log.exists
        else f"{log.path} (missing)" for log in logs) if logs
        else "none (recording.checkpoint_file is off)")))
    for chain in sorted(report.chains.values(), key=lambda c: c.writer):
        print()
        if not chain.records:
            gone = f"all pruned, up to {chain.pruned_to}" if chain.pruned_to else "none left"
            print(terminal(f"chain {chain.writer}: no records ({gone})"))
        else:
            print(terminal(f"chain {chain.writer}: {chain.records} records, "
                           f"{chain.first}..{chain.last}"))
            print(f"  pruned: {f'up to {chain.pruned_to}' if chain.pruned_to else 'nothing'}"
                  + "".join(f"; cut {a}..{b}" for a, b in chain.cut))
            _show_signed(chain.first, chain.last, chain.checkpointed_to)
        if chain.anchored_to >= 0:
            print(f"  anchored up to: record {chain.anchored_to} "
                  f"({utc(chain.anchored_us)} UTC)" + (
                      f"; records {chain.anchored_to + 1}..{chain.last} came after: only "
                      "the store vouches for them" if chain.last > chain.anchored_to else ""))
    if not report.chains:
        print("\nno records")
    _show_spooled(report)
    print(f"\ncheckpoints checked: {report.checkpoints}; anchors checked: {report.anchors}")
    for store_id, count in sorted(report.skipped.items()):
        noun = "anchor" if count == 1 else "anchors"
        print(terminal(f"skipped {count} {noun} of another store (id {store_id}): the "
                       "anchor log is shared, and this store is held to its own"))
    if not report.intact:
        print(f"BROKEN: {_problem_count(report)}; the first broken link per chain:")
        for problem in report.first_broken().values():
            print(f"  {terminal(str(problem))}")
        return
    print("intact: every record matches its hash and links to the one before it, "
          "and every checkpoint is signed with this key")
    unvouched = report.unvouched()
    vouched = sorted(w for w in report.chains if w not in unvouched)
    if vouched:
        print(terminal(f"vouched for by the anchor logs: {', '.join(vouched)}, each up to its "
                       "last anchor (nothing was cut from them or deleted whole); what came "
                       "after, the store alone shows"))
    if unvouched:
        print("NOT VOUCHED: nothing outside the store shows whether records were cut from "
              "the end of these chains, or whole chains deleted:")
        for writer, why in sorted(unvouched.items()):
            print(terminal(f"  {writer}: {why}"))


def _show_spooled(report: Report) -> None:
    """What was spooled while the store could not take it, and when it was written."""
    for found in report.spooled():
        noun = "record was" if found.records == 1 else "records were"
        listed = ", ".join(found.trace_ids) + (
            f" and {found.records - len(found.trace_ids)} more"
            if found.records > len(found.trace_ids) else "")
        print()  # a blank line before each (terminal() would show a newline as `\n`)
        print(terminal(
            f"spooled: {found.records} {noun} spooled while the store could not take "
            f"them and written on {utc(found.written_us)} UTC (spooled "
            f"{utc(found.spooled_us)} UTC: {found.reason}), into chain "
            f"{', '.join(sorted(found.writers))}: exchanges of {utc(found.first_us)} to "
            f"{utc(found.last_us)} UTC, traces {listed}"))


def _show_signed(first: int, last: int, checkpointed_to: int) -> None:
    after = _unsigned(first, last, checkpointed_to)
    if not checkpointed_to:
        print(f"  signed checkpoint: none; all {after} records are covered by the "
              "chain only")
    elif after:
        print(f"  signed checkpoint up to: {checkpointed_to}; the {after} "
              "records after it are covered by the chain only")
    else:
        print(f"  signed checkpoint up to: {checkpointed_to} (every record)")


def _unsigned(first: int, last: int, checkpointed_to: int) -> int:
    """Records after the last signed checkpoint: only the chain vouches for them."""
    return last - max(checkpointed_to, first - 1)


def _problem_count(report: Report) -> str:
    count = report.problem_count
    noun = "problem" if count == 1 else "problems"
    capped = count > len(report.problems)
    return f"{count} {noun}" + (
        f" (at most {report.listed_per_chain} are listed per chain)" if capped else "")


def _verify_json(report: Report, where: str, key_id: str, logs: list[AnchorLog] | None,
                 status: int) -> dict[str, Any]:
    unvouched = report.unvouched()
    return {
        "store": where, "store_id": report.store_id, "key_id": key_id,
        "intact": report.intact, "status": status,
        "anchor_logs": [{"path": str(log.path), "identity": log.identity,
                         "exists": log.exists, "statements": len(log.statements)}
                        for log in logs or ()],
        "chains": [{
            "writer": c.writer, "records": c.records,
            "first": c.first if c.records else None, "last": c.last if c.records else None,
            "pruned_to": c.pruned_to, "cut": [list(r) for r in c.cut],
            "checkpointed_to": c.checkpointed_to,
            "unsigned": _unsigned(c.first, c.last, c.checkpointed_to) if c.records else 0,
            "anchor": c.anchor,
            "anchored_to": c.anchored_to if c.anchored_to >= 0 else None,
            "anchored_us": c.anchored_us if c.anchored_to >= 0 else None,
            "unvouched": unvouched.get(c.writer),
        } for c in sorted(report.chains.values(), key=lambda c: c.writer)],
        "checkpoints": report.checkpoints, "anchors": report.anchors,
        "skipped_anchors": [{"store_id": store_id, "anchors": count}
                            for store_id, count in sorted(report.skipped.items())],
        "spooled": [{
            "spool": s.spool, "records": s.records, "reason": s.reason,
            "spooled_us": s.spooled_us, "written_us": s.written_us,
            "writers": sorted(s.writers), "first_started_us": s.first_us,
            "last_started_us": s.last_us, "trace_ids": s.trace_ids,
        } for s in report.spooled()],
        "first_broken": [_problem_json(p) for p in report.first_broken().values()],
        "problems": [_problem_json(p) for p in report.problems],
    }


def _problem_json(problem: Problem) -> dict[str, Any]:
    where = problem.writer if problem.seq is None else f"{problem.writer}:{problem.seq}"
    return {"id": where, "writer": problem.writer, "seq": problem.seq, "what": problem.what}


# -- search ------------------------------------------------------------------------------


def _search(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording import store

    since_us = _since_us(args.since, "--since") if args.since else None
    limit = positive(args.limit, "--limit")
    with looks.looking(config, args) as (connection, look):
        if args.session is None:
            rows = store.search(connection, identity=args.identity, target=args.target,
                                action=args.action, kind=args.kind, since_us=since_us,
                                text=args.text, limit=limit)
        else:  # store.search takes no session: its other filters, applied here
            wanted = {"identity": args.identity, "target": args.target,
                      "action": args.action, "kind": args.kind}
            rows = [row for row in reversed(store.session(connection, args.session))
                    if all(v is None or getattr(row, k) == v for k, v in wanted.items())
                    and (since_us is None or row.started_us >= since_us)
                    and (args.text is None or args.text.lower() in row.content.lower())
                    ][:limit]
        look.shown([row.id for row in rows])
    if args.json:
        for row in rows:
            print(_row_json(row))
        return 0
    if not rows:
        print("no records match")
        return 0
    table = [("TIME (UTC)", "RECORD", "IDENTITY", "TARGET", "WHAT", "ACTION", "STATUS",
              "RULES", "SESSION", "TRACE")]
    for row in rows:
        content = row.document()
        rules = sorted({r for d in content.get("decisions", []) for r in d["rules"]})
        table.append((
            utc(row.started_us), row.id, row.identity or "-", row.target or "-",
            _request_cell(content), row.action,
            "-" if row.status is None else str(row.status),
            cut(",".join(rules), _RULES_CHARS) or "-", row.session_id, row.trace_id))
    print_table(table)
    return 0


def _request_cell(content: dict[str, Any]) -> str:
    """What was asked, in a line, cut: the record's `what` (the statement, the command,
    the tool call, the Kubernetes call: extproc/interpret/what.py), as recorded (masked);
    of an alert, its rule and message; of a policy load, its revision and why; of a
    tunnel's end, where it went, then (never cut) the bytes each way, how long and how
    it ended."""
    if content.get("kind") == "tunnel":
        return "TUNNEL " + _tunnel_summary(_tunnel(content), cut_to=_DESTINATION_CHARS)
    return cut(_request_text(content), _PATH_CHARS)


def _request_text(content: dict[str, Any]) -> str:
    if content.get("kind") == "alert":
        alert = ((content.get("meaning") or {}).get("alert") or {})
        return f"ALERT {alert.get('rule')} [{alert.get('severity')}]: {alert.get('message')}"
    if content.get("kind") == "policy":
        policy = ((content.get("meaning") or {}).get("policy") or {})
        return f"POLICY {policy.get('revision')} loaded ({policy.get('why')})"
    if content.get("what"):
        return str(content["what"])
    # A record written before records said what the exchange does.
    request = content["request"]
    body = request.get("body")
    if (content.get("target") or {}).get("protocol") == "postgres" and isinstance(
            body, dict) and body.get("encoding") == "text" and body.get("value"):
        return f"{request['method']} {' '.join(str(body['value']).split())}"
    return f"{request['method']} {_where(content)}"


def _where(content: dict[str, Any]) -> str:
    """The path asked for; through the egress proxy, after its destination, as approvers
    see it (`host:port/path`; a CONNECT's path is empty)."""
    path = content["request"]["path"]
    destination = (content.get("destination") or {}).get("destination")
    if destination:
        return f"{destination}{path}"
    if content["request"]["method"] == "CONNECT" and not path:
        return "(destination not read)"  # refused before it was (a proxy token, say)
    return str(path)


def _tunnel(content: dict[str, Any]) -> dict[str, Any]:
    """A tunnel record's `meaning.tunnel`."""
    return dict((content.get("meaning") or {}).get("tunnel") or {})


def _tunnel_summary(tunnel: dict[str, Any], cut_to: int) -> str:
    """`pypi.org:443 ↑5.1 kB ↓30 kB 3.6 s client_closed`: where, bytes up (from the
    client) and down, how long, how it ended (Envoy's words when tollgate has none)."""
    return (f"{cut(str(tunnel.get('destination')), cut_to)} "
            f"↑{size(int(tunnel.get('bytes_up') or 0))} "
            f"↓{size(int(tunnel.get('bytes_down') or 0))} "
            f"{lasted(float(tunnel.get('duration_ms') or 0))} "
            f"{cut(str(tunnel.get('ended')), _RULES_CHARS)}")


def _row_json(row: Row) -> str:
    """The record's content with its id, one line; the content's text is kept as stored
    (exact: a body's big integers are not rounded through a parse), its control and
    invisible characters as JSON escapes."""
    return json_text(f'{{"id":{json.dumps(row.id)},{row.content[1:]}')


# -- replay ------------------------------------------------------------------------------


def _replay(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording import store

    if (args.id is None) == (args.session is None):
        raise Unusable("replay: give a record id or trace id, or --session SESSION")
    playing = audit_terminal.options(args)
    with looks.looking(config, args) as (connection, look):
        if args.session is not None:
            rows = store.session(connection, args.session)
            asked = f"session {args.session!r}"
        else:
            rows = store.by_id(connection, args.id)
            asked = f"record or trace {args.id!r}"
        if not rows:
            raise Unusable(f"no {asked} in {connection.where}")
        # A session's recordings; a record's or a trace's: its trace's.
        recordings = [] if args.json else audit_terminal.checked(
            connection, [args.session] if args.session is not None
            else sorted({row.trace_id for row in rows}), rows)
        look.shown([row.id for row in rows])
    if args.json:
        for row in rows:
            print(_row_json(row))
        return 0
    began = None
    if args.session is not None:
        began = _show_session(args.session, rows)
    for row in rows:
        print()
        _show_exchange(row, row.document(), began)
    return audit_terminal.replay(recordings, playing)


def _show_session(asked: str, rows: list[Row]) -> int:
    """What a session's replay says first: how many records, then the run in a line
    (whose, what kind, when, how long, how its exchanges ended), as `audit sessions`
    lists it (not given a trace id: its records are part of a session). Returns when
    its first record began."""
    from extproc.recording.sessions import fold

    print(terminal(f"session {asked}: {len(rows)} "
                   f"{'record' if len(rows) == 1 else 'records'}, oldest first"))
    for summary in fold((row.session_id, row.kind, row.started_us, row.identity, row.action,
                         row.content) for row in rows if row.session_id == asked):
        print(terminal(f"  {audit_sessions.describe(summary)}"))
    return rows[0].started_us


def _show_exchange(row: Row, content: dict[str, Any], began: int | None = None) -> None:
    """One exchange as a timeline: who asked what, what was decided, what came back;
    in a session's replay, how long after its first record it began."""
    target = content["target"] or {}
    kind = "" if content["kind"] == "exchange" else f" ({content['kind']} record)"
    after = "" if began is None else f" +{lasted((row.started_us - began) / 1000)}"
    print(terminal(f"== {row.id}{kind}  {utc(row.started_us, precise=True)} UTC{after}  "
                   f"target {target.get('name', '(none)')}"))
    source = (content.get("source") or {}).get("address")
    _field("who", _who(content["identity"]) + (f" from {source}" if source else ""))
    rule = content.get("session_rule")  # which grouped it (records from before: none)
    _field("trace", f"{content['trace_id']}  span {content['span_id']}  request id "
                    f"{content['request_id'] or '-'}  session {content['session_id']}"
                    + (f" (by {rule})" if rule else ""))
    if "error" in content:  # a record the writer could not build whole (record.unbuildable)
        request = content["request"]
        _field("request", f"{request['method']} {request['path']}")
        _field("error", content["error"])
        return
    if target:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(target["labels"].items()))
        _field("target", f"{target['name']} ({target['protocol']}, "
                         f"{target['environment']}{'; ' + labels if labels else ''})")
    if content["kind"] == "tunnel":
        _show_tunnel(content)
        return
    request = content["request"]
    _field("request", f"{request['method']} {_where(content)}{_query(request['query'])}")
    if content.get("destination"):
        _field("egress", _egress_line(content["destination"], content["meaning"]))
    if request["headers"]:
        _field("", "headers: " + _excerpt(json.dumps(request["headers"], ensure_ascii=False)))
    _field("", f"body: {_body(request['body'])}")
    _show_meaning(content["meaning"] or {})
    for decision in content["decisions"]:
        _field("decision", _decision(decision))
    if not content["decisions"]:
        _field("decision", "none (nothing was decided)")
    _field("approval", "none" if content["approval"] is None
           else json.dumps(content["approval"], ensure_ascii=False))
    response = content["response"]
    if response is None:
        _field("response", "none from upstream")
    else:
        _show_response(response, content["decisions"])
    _field("outcome", _outcome(content["outcome"]))
    upstream = content["upstream_ms"]
    _field("timings", f"total {content['duration_ms']} ms"
                      + ("" if upstream is None else f", upstream {upstream} ms"))
    masked = content["masked"]
    _field("masked", ", ".join(f"{k} {n}" for k, n in masked.items()) if masked
           else "nothing")


def _show_meaning(meaning: dict[str, Any]) -> None:
    """What the interpreter read, cut; what the excerpt may cut and a reader looks for
    first (a model's tool calls, an MCP call) in a line of its own."""
    for key, value in meaning.items():
        _field("meaning", f"{key}: {_excerpt(json.dumps(value, ensure_ascii=False))}")
        if key == "llm" and value and value.get("tool_calls"):
            # What the model asked the agent to run, which the excerpt may cut.
            _field("", "tool calls: " + _excerpt("; ".join(
                f"{call['name']}({call['arguments_text']})"
                for call in value["tool_calls"])))
        if key == "mcp" and value:
            _field("", "mcp: " + _excerpt(_mcp_line(value)))


def _egress_line(destination: dict[str, Any], meaning: dict[str, Any] | None) -> str:
    """Where the egress proxy was asked to go, in a line: the addresses the destination
    resolved to with their ranges (what the policy judged), the one connected to, and
    whether this identity had been there before."""
    scheme = "tunnel" if destination.get("scheme") == "tunnel" else "plain HTTP"
    line = f"{scheme} to {destination['destination']}"
    addresses = destination.get("addresses") or []
    if addresses:
        line += "; addresses " + ", ".join(f"{a['address']} ({a['range']})"
                                           for a in addresses)
    else:
        # On the proxy's own target, the reading says why there are none.
        resolution = ((meaning or {}).get("egress") or {}).get("resolution") or {}
        line += {"pending": "; not looked up (decided on its name)",
                 "failed": f"; does not resolve ({resolution.get('error')})",
                 }.get(str(resolution.get("status")), "; no address")
    if destination.get("address"):
        line += f"; connected to {destination['address']}"
    first = destination.get("first_seen")
    if first is not None:
        line += "; first time for this identity" if first else "; reached before"
    return line


def _show_tunnel(content: dict[str, Any]) -> None:
    """A tunnel's end: what Envoy's access log said of the bytes a CONNECT carried
    (tollgate read none of them); its decision is in the CONNECT's record, same trace."""
    tunnel = _tunnel(content)
    up, down = int(tunnel.get("bytes_up") or 0), int(tunnel.get("bytes_down") or 0)
    # The address as the record's `destination` keeps it (the meaning's is masked).
    address = (content.get("destination") or {}).get("address")
    _field("tunnel", f"{tunnel.get('destination')}, connected to {address or '(none)'}")
    _field("bytes", f"↑{size(up)} ({up}) from the client, ↓{size(down)} ({down}) to it")
    _field("ended", f"{tunnel.get('ended')} after "
                    f"{lasted(float(tunnel.get('duration_ms') or 0))} (Envoy: "
                    f"{tunnel.get('details') or '-'}, status {tunnel.get('status') or '-'})")
    _field("decision", "in the CONNECT's exchange record on this trace")


def _mcp_line(reading: dict[str, Any]) -> str:
    """An MCP message in a line: what the client sent (a tool call with its arguments),
    and what tollgate kept from the client of the server's answer."""
    tool = reading.get("tool")
    line = f"{reading.get('kind')} {reading.get('method') or ''}".rstrip()
    if tool:
        line += f" {tool['name']}({json.dumps(tool['arguments'], ensure_ascii=False)})"
        pin = (tool.get("pin") or {}).get("status")
        line += f", definition {pin}" if pin else ""
    for key, names in (reading.get("answer") or {}).items():
        items = names.items() if isinstance(names, dict) else names
        line += f"; {key.replace('_', ' ')}: {', '.join(map(_answer_item, items))}"
    return line


def _answer_item(item: Any) -> str:
    """One item of what tollgate kept of an MCP answer, in words: a name; an instruction
    found (its kind and excerpt); a binary item described; a count by what it counts."""
    if isinstance(item, dict) and {"kind", "excerpt"} <= item.keys():
        return f"{item['kind']} ({item['excerpt']!r})"
    if isinstance(item, tuple) and len(item) == 2:  # dropped: what, how many times
        return f"{item[0]} x{item[1]}"
    return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)


def _show_response(response: dict[str, Any], decisions: list[dict[str, Any]]) -> None:
    """The upstream's answer, and what the client got: the same body, masked as the
    policy asked, unless a response decision refused it."""
    refused = any(d["phase"] == "response" and d["action"] != "allow" for d in decisions)
    if refused and "upstream_body" in response:
        _field("response", f"{response['status']} from upstream, refused by tollgate")
        upstream = response["upstream_body"]
        read = upstream is not None or response["body_read"]
        _field("", f"upstream sent: {_body(upstream) if read else 'not read by tollgate'}")
        _field("", f"client got: {_body(response['body'])}")
        return
    _field("response", f"{response['status']}")
    unread = response["body"] is None and not response["body_read"]
    _field("", f"body: {_body(response['body'])}"
               + (" (not read by tollgate, or refused)" if unread else ""))


def _field(label: str, text: str) -> None:
    """One line of an exchange: `text` (what agents sent, often) shown inert."""
    print(f"  {label:<9} {terminal(text)}")


def _who(identity: dict[str, Any] | None) -> str:
    if not identity:
        return "(no identity)"
    if not identity.get("authenticated"):
        return "anonymous (no verified token)"
    details = [f"iss {identity.get('iss') or '-'}"]
    if identity.get("groups"):
        details.append(f"groups {', '.join(identity['groups'])}")
    if identity.get("email"):
        details.append(f"email {identity['email']}")
    return f"{identity.get('sub')} ({'; '.join(details)})"


def _query(query: dict[str, list[str]]) -> str:
    if not query:
        return ""
    return "?" + "&".join(f"{k}={v}" for k, values in query.items() for v in values)


def _body(body: dict[str, Any] | None) -> str:
    if body is None:
        return "none"
    about = f"{body['media_type'] or 'no type'}, {body['size']} bytes"
    if body["truncated"]:
        about += f", cut in the record (whole: sha256 {body['sha256'][:16]}…)"
    if body.get("encoding") == "binary":
        return f"{about}, binary (sha256 {body['sha256'][:16]}…)"
    value: Any = body.get("value")  # text, or a JSON value
    text = value if body.get("encoding") == "text" else json.dumps(value, ensure_ascii=False)
    return f"{about}: {_excerpt(text)}"


def _decision(decision: dict[str, Any]) -> str:
    parts = [f"{decision['phase']}: {decision['action']}"]
    if decision["action"] != "allow":
        parts.append(f"status {decision['status']}")
    parts.append(f"rules {', '.join(decision['rules']) or '-'}")
    if decision["reasons"]:
        parts.append(f"reasons {'; '.join(map(str, decision['reasons']))}")
    if decision.get("approvers"):
        parts.append(f"approvers {', '.join(decision['approvers'])}")
    if decision.get("hold_seconds"):
        parts.append(f"hold {decision['hold_seconds']} s")
    parts.append(f"policy {decision['policy_revision']}, {decision['duration_us']} µs")
    return "  ".join(parts)


def _outcome(outcome: dict[str, Any]) -> str:
    text = f"{outcome['action']}, status {outcome['status'] or '-'}"
    if outcome.get("refusal"):
        text += f", refused by tollgate: {outcome['refusal']}"
    if outcome.get("detail"):
        text += f" ({outcome['detail']})"
    if outcome.get("policy_error"):
        text += f"; policy error: {outcome['policy_error']}"
    if outcome.get("fail_open"):
        text += " (failed open)"
    return text


# -- whatif ------------------------------------------------------------------------------


def _whatif(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.policy import PolicyLoadError
    from extproc.policy.embedded import EmbeddedEngine
    from extproc.policy.sources import read_modules
    from extproc.recording import store
    from extproc.recording.whatif import whatif

    since_us = _since_us(args.since, "--since")
    examples = positive(args.examples, "--examples", zero=True)
    try:
        engine = EmbeddedEngine(read_modules(args.policies), config.policy.query)
    except PolicyLoadError as exc:
        raise Unusable(f"--policies {args.policies}: {exc}") from None
    with looks.looking(config, args) as (connection, look):
        rows = (row for row in store.since(connection, since_us)
                if args.target is None or row.target == args.target)
        report = whatif(rows, engine, examples)
        # What it shows of records: the examples (their ids), of how many re-evaluated.
        shown = [e.id for tallies in (report.actions, report.fired, report.quiet)
                 for tally in tallies.values() for e in tally.examples]
        look.shown(list(dict.fromkeys(shown)), count=report.records)
    scope = f"the last {args.since}" + (f", target {args.target}" if args.target else "")
    if args.json:
        print(json_text(json.dumps({"policies": str(args.policies), "since": args.since,
                                    "target": args.target, **report.as_json()},
                                   ensure_ascii=False)))
    else:
        _show_whatif(report, args.policies, scope)
    return 0


def _show_whatif(report: WhatIf, policies: Path, scope: str) -> None:
    print(f"what-if: the policies in {policies} (revision {report.revision}) on the "
          f"records of {scope}")
    print("note: records hold bodies masked, and cut past recording.max_body_bytes (older "
          "records lack a refused response's body); a decision that depends on a masked "
          "or cut value may differ. Decisions missing part of a body count as "
          "approximate.")
    print(f"\nrecords re-evaluated: {report.records}; decisions: {report.decisions}")
    if report.duplicates:
        print(f"  ({report.duplicates} strict decision records skipped: their "
              "exchange's record holds the same decision)")
    print(f"unchanged: {report.unchanged}")
    print(f"changed: {report.changed} ({report.approximate_changed} of them approximate)")
    print(f"approximate: {report.approximate} of the decisions")
    print(f"policy errors: {report.policy_errors} (the candidate could not answer)")
    if report.actions:
        print("\nactions (recorded -> candidate):")
        for (old, new), tally in sorted(report.actions.items(),
                                        key=lambda item: -item[1].count):
            _show_tally(f"{old} -> {new}", tally)
    for title, tallies in (("rules that newly fire", report.fired),
                           ("rules that no longer fire", report.quiet)):
        if tallies:
            print(f"\n{title}:")
            for rule, tally in sorted(tallies.items(), key=lambda item: -item[1].count):
                _show_tally(rule, tally)


def _show_tally(label: str, tally: Tally) -> None:
    print(terminal(f"  {label}: {tally.count}"))
    for example in tally.examples:
        print(f"    {terminal(str(example))}")
        for reason in example.reasons:
            print(f"      {terminal(reason)}")


# -- shared ------------------------------------------------------------------------------


def _load(path: Path) -> config_module.Config:
    try:
        return config_module.load(path)
    except config_module.ConfigError as exc:
        raise Unusable(str(exc)) from None


def _since_us(text: str, flag: str) -> int:
    """The moment `text` (30m, 1h, 7d, 2w, 1d12h) before now, in µs since the epoch."""
    seconds = parse_duration(text, flag, "30m, 1h, 7d or 1d12h")
    return int((time.time() - seconds) * 1_000_000)


def _excerpt(text: str) -> str:
    """Text on one line, cut to `_BODY_CHARS`, saying how much more there is."""
    flat = " ".join(text.split())
    if len(flat) <= _BODY_CHARS:
        return flat
    return f"{flat[:_BODY_CHARS]}… (+{len(flat) - _BODY_CHARS} chars; whole with --json)"


_COMMANDS = {
    "verify": _verify, "public-key": _public_key, "search": _search,
    "sessions": audit_sessions.sessions, "replay": _replay, "flow": audit_flow.flow,
    "whatif": _whatif, "prune": audit_retention.prune, "hold": audit_retention.hold,
    "export": audit_export.export, "verify-export": audit_export.verify_export,
    "report": audit_report.report, "verify-report": audit_report.verify_report,
}
