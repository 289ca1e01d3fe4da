"""`tollgate sessions`: the sessions open now on every front (PostgreSQL, MySQL, SSH,
HTTP, LLM, MCP, egress, Kubernetes) of every replica; watch or join one
(sessions_watch.py); end one; lock and unlock an identity.

It drives the admin API's live sessions (extproc/admin/live/api.py) with the
caller's own token, as `tollgate approvals` does (`--token`, TOLLGATE_TOKEN or the one
`tollgate login` kept; `--url` or the config's admin API).

Exit status: 0 success; 1 the API refused (not a viewer or moderator, no such live
session, not locked) or cannot be reached; 2 unusable input, one line on stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote, urlencode

from extproc.cli import sessions_watch
from extproc.cli.admin_client import AdminApi, Refused, add_flags, admin_url, failed, token_of
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.text import utc
from extproc.exchange.live import END_LOCK_SECONDS

FRONTS = ("postgres", "mysql", "ssh", "http", "llm", "mcp", "egress", "kubernetes")
_DURATIONS = "30m, 1h, 1d"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `sessions list|end|lock|unlock|locks` under `tollgate`."""
    sessions = commands.add_parser(
        "sessions", help="see the sessions open now, end one, lock an identity")
    actions = sessions.add_subparsers(dest="sessions_command", required=True,
                                      metavar="{list,watch,join,end,lock,unlock,locks}")
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common)
    common.add_argument("--json", action="store_true", help="the API's JSON instead of text")

    listing = actions.add_parser("list", parents=[common], help="the sessions open now, a "
                                 "line each, its id first")
    listing.add_argument("--identity", help="only this subject's")
    listing.add_argument("--target", help="only those on this target")
    listing.add_argument("--front", choices=FRONTS, help="only those of this front")

    watching = actions.add_parser("watch", parents=[common], help="a session as it "
                                  "happens, until it ends (its screen, for a terminal)")
    watching.add_argument("id")
    joining = actions.add_parser("join", parents=[common], help="watch a terminal session "
                                 "as a peer, and type each line of stdin into it")
    joining.add_argument("id")

    end = actions.add_parser(
        "end", parents=[common], help="end a session, wherever it is held, and lock its "
        f"identity out for {END_LOCK_SECONDS // 60} minutes: its client is told why",
        description="End a session wherever it is held; its client is told why. Its "
        "identity is locked out too, so that the client cannot just reconnect: for "
        f"{END_LOCK_SECONDS // 60} minutes unless --lock says how long, not at all with "
        "--no-lock (its client may then reconnect at once). A lock refuses the identity "
        "on every front and replica and ends its other open sessions.")
    end.add_argument("id")
    end.add_argument("--reason", required=True, help="why (the client is told; recorded)")
    locking = end.add_mutually_exclusive_group()
    locking.add_argument("--lock", metavar="DURATION",
                         help=f"lock its identity out for this long ({_DURATIONS}; "
                         f"default: {END_LOCK_SECONDS // 60}m)")
    locking.add_argument("--no-lock", action="store_true",
                         help="do not lock its identity: its client may reconnect at once")

    lock = actions.add_parser("lock", parents=[common], help="refuse an identity on every "
                              "front and replica, and end its sessions")
    lock.add_argument("--identity", required=True, help="the subject (sub) to refuse")
    lock.add_argument("--for", dest="duration", metavar="DURATION",
                      help=f"for this long ({_DURATIONS}; default: until unlocked)")
    lock.add_argument("--reason", required=True, help="why (its clients are told; recorded)")

    unlock = actions.add_parser("unlock", parents=[common], help="let a locked identity act "
                                "again")
    unlock.add_argument("--identity", required=True)
    unlock.add_argument("--reason", help="why (recorded)")

    actions.add_parser("locks", parents=[common], help="the identities locked now")


def main(args: argparse.Namespace) -> int:
    try:
        url = admin_url(args.url, args.config)
        api = AdminApi(url, token_of(args.token, url))
        if args.sessions_command == "watch":
            return sessions_watch.watch(api, args)
        if args.sessions_command == "join":
            return sessions_watch.join(api, args)
        found = _call(api, args)
        if args.json:
            print(json_text(json.dumps(found, indent=2, ensure_ascii=False)))
        else:
            _print(args.sessions_command, found)
    except (Unusable, Refused) as exc:
        return failed("tollgate sessions", exc)
    except KeyboardInterrupt:  # a watch or join left
        return 130
    return 0


def _call(api: AdminApi, args: argparse.Namespace) -> dict[str, Any]:
    command = args.sessions_command
    if command == "list":
        query = {name: value for name in ("identity", "target", "front")
                 if (value := getattr(args, name)) is not None}
        return api.call("GET", "/sessions/live" + (f"?{urlencode(query)}" if query else ""))
    if command == "end":
        body: dict[str, Any] = {"reason": args.reason, "lock_seconds": (
            0 if args.no_lock else END_LOCK_SECONDS if args.lock is None
            else parse_duration(args.lock, "--lock", _DURATIONS))}
        return api.call("POST", f"/sessions/live/{quote(args.id, safe='')}/end", body)
    if command == "lock":
        body = {"identity": args.identity, "reason": args.reason}
        if args.duration is not None:
            body["seconds"] = parse_duration(args.duration, "--for", _DURATIONS)
        return api.call("POST", "/sessions/locks", body)
    if command == "unlock":
        return api.call("POST", f"/sessions/locks/{quote(args.identity, safe='')}/unlock",
                        {"reason": args.reason} if args.reason else {})
    return api.call("GET", "/sessions/locks")


def _print(command: str, found: dict[str, Any]) -> None:
    if command == "list":
        for session in found["sessions"]:
            print(terminal(_line(session)))
        if not found["sessions"]:
            print("no live sessions match")
    elif command == "locks":
        for lock in found["locks"]:
            print(terminal(lock["message"]))
        if not found["locks"]:
            print("no identity is locked")
    else:
        print(terminal(found["effect"]))


def _line(session: dict[str, Any]) -> str:
    """One session: its id first, then what, whose, where, since when, how busy."""
    ending = (f"; ending ({session['end_by']}: {session['end_reason']})"
              if session.get("end_us") else "")
    return (f"{session['session_id']}  {session['front']}  {session['identity']}  "
            f"{session['target'] or '-'}  on {session['replica']}  "
            f"since {utc(session['started_us'])}  last {utc(session['active_us'])}  "
            f"{session['exchanges']} exchanges, {session['refusals']} refused, "
            f"{session['holds']} waiting{ending}")
