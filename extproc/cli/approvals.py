"""`tollgate approvals`: list, show, approve and deny held requests from a shell.

It drives the admin API (the same one the page uses) with the approver's own token,
from `--token` or the TOLLGATE_TOKEN environment variable; the API's address is
`--url`, or the one a tollgate config gives (`approvals.public_url`, else
`listen.admin`; the quickstart's by default).

Exit status: 0 success; 1 the API refused (not an approver, your own request, already
decided, no such approval) or cannot be reached; 2 unusable input (no token, the
config, an argument), one line on stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote, urlencode

from extproc.cli.admin_client import AdminApi, Refused, add_flags, admin_url, failed, token_of
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.text import cut, print_table, utc

STATUSES = ("pending", "approved", "denied", "used", "expired", "abandoned", "decided",
            "all")
_SUMMARY_CHARS = 60


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `approvals list|show|approve|deny` under `tollgate`."""
    approvals = commands.add_parser(
        "approvals", help="list, show, approve and deny requests held for approval")
    actions = approvals.add_subparsers(dest="approvals_command", required=True,
                                       metavar="{list,show,approve,deny}")
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common)
    common.add_argument("--json", action="store_true", help="the API's JSON instead of text")

    listing = actions.add_parser("list", parents=[common],
                                 help="approvals you may decide, and your own requests")
    listing.add_argument("--status", default="pending", choices=STATUSES,
                         help="which (default: pending; decided: all but pending)")
    listing.add_argument("--requester", help="only those this subject asked for")
    listing.add_argument("--limit", default="100", metavar="N", help="at most N (default 100)")

    show = actions.add_parser("show", parents=[common],
                              help="one approval in full, with the link to its page")
    show.add_argument("id")

    approve = actions.add_parser("approve", parents=[common], help="let the request through")
    approve.add_argument("id")
    approve.add_argument("--reason", help="why (kept in the audit record)")
    approve.add_argument("--grant-minutes", type=int, metavar="N",
                         help="a window grant shorter than the policy's (1 to its minutes)")

    deny = actions.add_parser("deny", parents=[common], help="refuse the request")
    deny.add_argument("id")
    deny.add_argument("--reason", required=True, help="why (the requester is told)")


def main(args: argparse.Namespace) -> int:
    try:
        url = admin_url(args.url, args.config)
        api = AdminApi(url, token_of(args.token, url))
        command = args.approvals_command
        if command == "list":
            query = urlencode({"status": args.status, "limit": args.limit,
                               **({"requester": args.requester} if args.requester else {})})
            found = api.call("GET", f"/approvals?{query}")
            if args.json:
                _print_json(found)
            else:
                _print_list(found["approvals"])
        elif command == "show":
            found = api.call("GET", f"/approvals/{quote(args.id, safe='')}")
            if args.json:
                _print_json(found)
            else:
                _print_approval(found, api.url)
        else:
            body: dict[str, Any] = {"reason": args.reason} if args.reason else {}
            if getattr(args, "grant_minutes", None) is not None:
                body["grant_minutes"] = args.grant_minutes
            found = api.call("POST", f"/approvals/{quote(args.id, safe='')}/{command}", body)
            if args.json:
                _print_json(found)
            else:
                why = f": {found['reason']}" if found.get("reason") else ""
                by = found["decided_by"] or ", ".join(found.get("approved_by") or ())
                print(terminal(f"{found['id']} {found['status']} by {by}{why} "
                               f"(trace {found['trace_id']})"))
                if found.get("effect"):
                    print(terminal(found["effect"]))
    except (Unusable, Refused) as exc:
        return failed("tollgate approvals", exc)
    return 0


def _print_json(found: dict[str, Any]) -> None:
    print(json_text(json.dumps(found, indent=2, ensure_ascii=False)))


def _print_list(approvals: list[dict[str, Any]]) -> None:
    if not approvals:
        print("no approvals match")
        return
    table = [("ID", "STATUS", "REQUESTER", "TARGET", "WHAT", "APPROVERS", "GRANT",
              "CREATED (UTC)", "EXPIRES (UTC)")]
    for found in approvals:
        table.append((found["id"], found["status"], found["requester"], found["target"],
                      cut(" ".join(found["summary"].split()), _SUMMARY_CHARS),
                      ",".join(found["approvers"]), _grant(found),
                      _utc(found["created_us"]), _utc(found["expires_us"])))
    print_table(table)


def _print_approval(found: dict[str, Any], admin: str) -> None:
    """The approval, a field a line; `page` its view on the approvers' page (the API's
    link, else one on the admin API this command called)."""
    request = found["request"]
    page = found.get("page_url") or f"{admin}/approvals/ui#{found['id']}"
    lines = [
        ("approval", f"{found['id']}  {found['status']}"),
        ("requester", found["requester"]),
        ("target", found["target"]),
        ("request", f"{request['method']} {request['path']}"),
        ("what", found["summary"]),
        ("why held", "; ".join(found["reasons"]) or ", ".join(found["rules"]) or "-"),
        ("rules", ", ".join(found["rules"]) or "-"),
        ("approvers", ", ".join(found["approvers"]) + _quorum(found)),
        ("grants", _grant(found)),
        ("created", f"{_utc(found['created_us'])} UTC"),
        ("expires", _expiry(found)),
        ("decided", f"{found['decided_by']} at {_utc(found['decided_us'])} UTC"
                    + (f": {found['reason']}" if found["reason"] else "")
         if found["decided_by"] else "-"),
        ("waiting", _waiting(found)),
        ("trace", found.get("trace_url") or found["trace_id"]),
        ("record", found.get("record_url") or f"{admin}/recordings/ui#record="
                                              f"{found['trace_id']}"),
        ("page", page),
        ("api", found["approve_url"]),
    ]
    if request.get("body") is not None:
        lines.insert(4, ("body", json.dumps(request["body"], ensure_ascii=False)))
    for label, text in lines:
        print(f"{label:<10} {terminal(text)}")


def _waiting(found: dict[str, Any]) -> str:
    """How the held request waits, as the page says it (without the relative times)."""
    wait = found.get("wait") or {}
    answered = wait.get("answered")
    if answered:
        return (f"answered at {_utc(answered['at_us'])} UTC (the approval "
                f"{answered['approval_status']} then): {answered['said']}")
    if found["status"] != "pending":
        return "-"
    if wait.get("until_us"):
        return f"since {_utc(wait['since_us'])} UTC, at most until {_utc(wait['until_us'])} UTC"
    return f"since {_utc(found['created_us'])} UTC"


def _expiry(found: dict[str, Any]) -> str:
    """When it expires, while that can still come (as the page says it): a pending
    approval's expiry, an approved once grant's (usable until then), an expired one's."""
    at = f"{_utc(found['expires_us'])} UTC"
    if found["status"] == "approved" and found["grant_mode"] == "once":
        return f"{at} (usable until then)"
    return at if found["status"] in ("pending", "expired") else "-"


def _quorum(found: dict[str, Any]) -> str:
    """Where several approvers must approve: how many, and who has."""
    needed = found.get("approvals_needed", 1)
    if needed == 1:
        return ""
    approved = ", ".join(found.get("approved_by") or ()) or "nobody yet"
    return f" ({needed} must approve; approved by {approved})"


def _grant(found: dict[str, Any]) -> str:
    if found["grant_mode"] == "window":
        return f"window {found['grant_minutes']} min"
    return "once"


def _utc(us: int | None) -> str:
    return "-" if us is None else utc(us)
