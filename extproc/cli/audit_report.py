"""`tollgate audit report` and `verify-report`: compliance evidence from the record.

`report` verifies the chain and gathers a period's figures from the store the config
names (extproc/reporting/), then writes them as a page (html), a PDF, or JSON signed
with the audit key; `verify-report` checks such a JSON report with the key's public
half, away from tollgate.

Exit status: `report` 0 written, 1 written but the record is broken (the report says
where), 2 unusable input; `verify-report` 0 valid, 1 altered or not signed with this
key, 2 unusable input (no such file, not a signed report, a bad key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.cli import audit_looks as looks
from extproc.cli.common import add_key_flags, add_period, output, period
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal
from extproc.codecs.text import utc

if TYPE_CHECKING:
    from extproc.recording.chain import Signer
    from extproc.reporting import Report

FORMATS = ("html", "pdf", "json")


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `report` and `verify-report` under `tollgate audit`."""
    report = actions.add_parser(
        "report", parents=[common],
        help="compliance evidence for a period, from the record: html, pdf or signed json")
    add_period(report, since="30d")
    report.add_argument("--format", required=True, choices=FORMATS)
    report.add_argument("--out", type=Path, metavar="FILE", help="where to write it "
                        "(default: standard output)")
    add_key_flags(report, anchors=True)

    check = actions.add_parser(
        "verify-report", parents=[common],
        help="check a JSON report's signature: nothing in it changed since it was written")
    check.add_argument("file", type=Path, metavar="FILE", help="the report (--format json)")
    add_key_flags(check)


def report(args: argparse.Namespace, config: config_module.Config) -> int:
    # audit.py imports this module to register it: its helpers are imported when used.
    from extproc.recording.retention import rules_of
    from extproc.reporting import gather

    since_us, until_us = period(args, config)
    signer = access.signer(config)
    with looks.looking(config, args) as (connection, look):
        # Read once this look's own chain is registered (in the store and the logs).
        logs = access.anchor_logs(args, config)
        found = gather(connection, since_us, until_us, args.target, verifier=signer.public,
                       logs=logs, retention=rules_of(config))
        look.shown(count=found.data["records"]["total"])
    with output(args.out) as out:
        out.write(_rendered(found, args.format, signer))
    if args.out is not None:
        print(terminal(f"wrote {args.out}: {found.data['records']['total']} records "
                       f"started {utc(since_us)} to {utc(until_us)} UTC"
                       + ("" if found.intact else "; the record is BROKEN")))
    if not found.intact:
        print(f"tollgate: the record is BROKEN ({found.data['integrity']['problem_count']} "
              "problems); the report shows where", file=sys.stderr)
        return 1
    return 0


def verify_report(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.reporting.signing import problem

    try:
        document = json.loads(args.file.read_bytes())
    except OSError as exc:
        raise Unusable(f"{args.file}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise Unusable(f"{args.file}: not JSON (not a --format json report)") from None
    verifier, key_from = access.verifier(args, config)
    try:
        found = problem(document, verifier)
    except ValueError as exc:
        raise Unusable(f"{args.file}: {exc}") from None
    if found is not None:
        print(terminal(f"NOT VALID: {args.file}: {found}"))
        return 1
    data, signed_us = document["report"], document["signature"]["signed_us"]
    period = data.get("period") or {}
    print(terminal(
        f"valid: {args.file} was signed {utc(signed_us)} UTC with key {verifier.key_id} "
        f"({key_from}) and not altered since; it reports on {data.get('store')}, "
        f"{utc(period.get('since_us', 0))} to {utc(period.get('until_us', 0))} UTC"))
    return 0


def _rendered(found: Report, format_: str, signer: Signer) -> bytes:
    from extproc.reporting import html, signing

    if format_ == "json":
        return json.dumps(signing.signed(found.data, signer), ensure_ascii=False,
                          indent=1).encode() + b"\n"
    return html.render(found).encode() if format_ == "html" else html.pdf(found)

