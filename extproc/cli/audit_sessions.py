"""`tollgate audit sessions`: agent runs, one line each — whose, of what kind, when, how
long, and how their exchanges ended — to pick one to `replay --session`.

A session's kind is what its targets speak (a run that reached an LLM and an MCP server
is of both): the words here are the operator's, the protocols behind them the config's.
The listing reads the store as recording/sessions.py does for every reader of sessions.
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import TYPE_CHECKING, Any

from extproc.cli import audit_looks as looks
from extproc.cli.common import add_period, period, positive
from extproc.codecs.inert import json_text
from extproc.codecs.text import cut, lasted, print_table, utc
from extproc.codecs.vocabulary import SESSION_KINDS, session_kinds

if TYPE_CHECKING:
    from extproc import config as config_module
    from extproc.recording.sessions import Summary

_DEFAULT_LIMIT = 50
_CELL_CHARS = 32


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    sessions = actions.add_parser(
        "sessions", parents=[common, as_json],
        help="agent runs, the latest begun first: whose, what kind, when, how long, how "
             "their exchanges ended")
    add_period(sessions, since="7d")
    sessions.add_argument("--identity", metavar="SUB",
                          help="runs with records of this subject (the token's) then")
    sessions.add_argument("--kind", choices=SESSION_KINDS,
                          help="runs that reached a target of this kind then (by its "
                               "protocol: http and egress; llm; mcp; sql-http, postgres and "
                               "mysql; ssh; k8s)")
    sessions.add_argument("--text", metavar="TEXT",
                          help="runs with a record holding TEXT, any case, as stored "
                               "(masked): which run did `cat .env`?")
    sessions.add_argument("--limit", default=str(_DEFAULT_LIMIT), metavar="N",
                          help=f"at most N (default {_DEFAULT_LIMIT}); `--until` the last "
                               "one's start lists those begun before it")


def sessions(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording.sessions import listing

    since_us, until_us = period(args, config)
    limit = positive(args.limit, "--limit")
    with looks.looking(config, args) as (connection, look):
        found = listing(connection, since_us=since_us, until_us=until_us,
                        identity=args.identity, target=args.target, limit=limit,
                        text=args.text,
                        protocols=None if args.kind is None else SESSION_KINDS[args.kind])
        look.shown([summary.session_id for summary in found])
    if args.json:
        for summary in found:
            print(json_text(json.dumps(as_json(summary), ensure_ascii=False)))
        return 0
    if not found:
        print("no sessions match")
        return 0
    table: list[tuple[str, ...]] = [(
        "START (UTC)", "SESSION", "IDENTITY", "KIND", "TARGETS", "DURATION", "EXCHANGES",
        "ALLOWED", "REFUSED", "HELD", "MASKED")]
    for s in found:
        table.append((
            utc(s.first_us), s.session_id, cut(identities(s), _CELL_CHARS),
            "+".join(kinds(s)) or "-", cut(", ".join(sorted(s.targets)) or "-", _CELL_CHARS),
            lasted(s.duration_us / 1000), *map(str, (s.exchanges, s.allowed, s.refused,
                                                      s.held, s.masked))))
    print_table(table)
    if len(found) == limit:
        print(f"\nthe {limit} latest begun; those begun before: --until "
              f"{_moment(found[-1].first_us)}")
    return 0


def describe(summary: Summary) -> str:
    """A session in a line (what `replay --session` says of it first)."""
    return (f"{identities(summary)}; {'+'.join(kinds(summary)) or 'no known kind'} "
            f"({', '.join(sorted(summary.targets)) or 'no target'}); began "
            f"{utc(summary.first_us)} UTC, lasted {lasted(summary.duration_us / 1000)}; "
            f"{summary.exchanges} {'exchange' if summary.exchanges == 1 else 'exchanges'}: "
            f"{summary.allowed} allowed, {summary.refused} refused, {summary.held} held, "
            f"{summary.masked} masked")


def kinds(summary: Summary) -> list[str]:
    return session_kinds(summary.protocols)


def identities(summary: Summary) -> str:
    """Whose the run was: its subjects (`-`: an exchange without a verified token)."""
    return ", ".join(each or "-" for each in summary.named_identities()) or "-"


def _moment(us: int) -> str:
    """µs since the epoch as a UTC time `--until` takes back exactly."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)
    return moment.isoformat(timespec="microseconds")


def as_json(summary: Summary) -> dict[str, Any]:
    return {**summary.as_json(), "kinds": kinds(summary)}
