"""`tollgate audit report` and `verify-report`: compliance evidence from the record.

`report` verifies the chain and gathers a period's figures from the store the config
names (extproc/reporting/), then writes them, in one run, as JSON signed with the audit
key, a page (html) and a PDF, each sealed with that key and carrying the signed JSON
(`--format json,html,pdf --out NAME` writes NAME.json, NAME.html, NAME.pdf);
`verify-report` checks any of those files with the key's public half, away from
tollgate.

Exit status: `report` 0 written, 1 written but the record is broken (the report says
where), 2 unusable input; `verify-report` 0 valid, 1 altered or not signed with this
key, 2 unusable input (no such file, not a signed report, a bad key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.cli import audit_looks as looks
from extproc.cli.common import add_key_flags, add_period, output, period
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal
from extproc.codecs.text import utc


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `report` and `verify-report` under `tollgate audit`."""
    report = actions.add_parser(
        "report", parents=[common],
        help="compliance evidence for a period, from the record: signed json, html, pdf")
    add_period(report, since="30d")
    report.add_argument("--format", required=True, metavar="FORMATS",
                        help="json, html or pdf, or several in one run: json,html,pdf")
    report.add_argument("--out", type=Path, metavar="FILE", help="where to write it "
                        "(default: standard output); with several formats, NAME: "
                        "NAME.json, NAME.html, NAME.pdf")
    add_key_flags(report, anchors=True)

    check = actions.add_parser(
        "verify-report", parents=[common],
        help="check a report's signature (json, html or pdf): nothing in it changed since "
             "it was written")
    check.add_argument("file", type=Path, metavar="FILE", help="the report: its JSON, "
                       "HTML or PDF")
    add_key_flags(check)


def report(args: argparse.Namespace, config: config_module.Config) -> int:
    # audit.py imports this module to register it: its helpers are imported when used.
    from extproc.recording.retention import rules_of
    from extproc.reporting import gather, signing
    from extproc.reporting.forms import written

    formats, outs = _formats(args.format, args.out)
    since_us, until_us = period(args, config)
    signer = access.signer(config)
    with looks.looking(config, args) as (connection, look):
        # Read once this look's own chain is registered (in the store and the logs).
        logs = access.anchor_logs(args, config)
        found = gather(connection, since_us, until_us, args.target, verifier=signer.public,
                       logs=logs, retention=rules_of(config))
        look.shown(count=found.data["records"]["total"])
    files = written(found, signer, formats)
    for format_, out_path in zip(formats, outs, strict=True):
        with output(out_path) as out:
            out.write(files[format_])
    if args.out is not None:
        print(terminal(f"wrote {', '.join(map(str, outs))}: "
                       f"{found.data['records']['total']} records started {utc(since_us)} "
                       f"to {utc(until_us)} UTC, report SHA-256 "
                       f"{signing.digest(found.data)}"
                       + ("" if found.intact else "; the record is BROKEN")))
    if not found.intact:
        print(f"tollgate: the record is BROKEN ({found.data['integrity']['problem_count']} "
              "problems); the report shows where", file=sys.stderr)
        return 1
    return 0


def verify_report(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.reporting.sealing import NotAReport, check, report_hash

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise Unusable(f"{args.file}: cannot read: {exc.strerror}") from None
    verifier, key_from = access.verifier(args, config)
    try:
        found = check(data, verifier)
    except NotAReport as exc:
        raise Unusable(f"{args.file}: {exc}") from None
    if found.problem is not None or found.document is None:
        print(terminal(f"NOT VALID: {args.file} ({found.format}): {found.problem}"))
        return 1
    report = found.document["report"]
    period = report.get("period") or {}
    print(terminal(
        f"valid: {args.file} ({found.format}) was signed {utc(found.signed_us)} UTC with "
        f"key {verifier.key_id} ({key_from}) and not altered since; report SHA-256 "
        f"{report_hash(found.document)}, on {report.get('store')}, "
        f"{utc(period.get('since_us', 0))} to {utc(period.get('until_us', 0))} UTC"))
    return 0


def _formats(asked: str, out: Path | None) -> tuple[list[str], list[Path | None]]:
    """The formats `--format` names, and where each is written: `--out` itself for one,
    NAME.json, NAME.html, NAME.pdf for several (a NAME given with one of those
    suffixes loses it)."""
    from extproc.reporting.forms import FORMATS

    formats = list(dict.fromkeys(part.strip() for part in asked.split(",")))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise Unusable(f"--format {asked}: expected one or more of {', '.join(FORMATS)}, "
                       "comma-separated")
    if len(formats) == 1:
        return formats, [out]
    if out is None:
        raise Unusable(f"--format {asked}: several formats need --out NAME (written as "
                       "NAME.json, NAME.html, NAME.pdf)")
    base = out.with_suffix("") if out.suffix[1:] in FORMATS else out
    return formats, [base.with_name(f"{base.name}.{name}") for name in formats]
