"""`tollgate audit export` and `verify-export`: a period of the record for a SIEM.

`export` streams the records of a period (of one target) as JSON lines, plain (jsonl)
or as OCSF API Activity events (ocsf), followed by the signed statements of their
chains (extproc/recording/export.py); `verify-export` checks such a file with the
audit key's public half, away from tollgate (no config needed with --public-key).

Exit status: `export` 0 written; `verify-export` 0 intact, 1 altered (it says where);
both 2 unusable input (no such file, not an export, a bad key or argument).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.cli import audit_looks as looks
from extproc.cli.common import add_key_flags, add_period, output, period
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal

FORMATS = ("jsonl", "ocsf")  # extproc/recording/export.py writes them


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `export` and `verify-export` under `tollgate audit`."""
    export = actions.add_parser(
        "export", parents=[common],
        help="a period's records and their chains' signed statements, as JSON lines for a "
             "SIEM (jsonl or ocsf); verifiable with verify-export")
    add_period(export)
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", type=Path, metavar="FILE",
                        help="where to write it (default: standard output)")

    check = actions.add_parser(
        "verify-export", parents=[common],
        help="check an export: hashes, links, signatures, and what checkpoints vouch for")
    check.add_argument("file", type=Path, metavar="FILE", help="the export")
    add_key_flags(check)


def export(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording.export import export

    since_us, until_us = period(args, config)
    with looks.looking(config, args) as (connection, look):
        # Recorded before it is written: what it holds is the period's records (of the
        # target), as the store then held them; how many, the look does not know yet.
        look.shown()
        with output(args.out) as out:
            done = export(connection, out, args.format, since_us, until_us, args.target)
    if args.out is None:
        return 0
    print(terminal(f"exported {done.records} records of {len(done.writers)} chains and "
                   f"{done.statements} signed statements to {args.out} ({args.format})"))
    return 0


def verify_export(args: argparse.Namespace, config: config_module.Config | None) -> int:
    from extproc.recording.chain import SigningKeyError, Verifier
    from extproc.recording.export import ExportError, verify

    if config is None:
        try:
            verifier = Verifier.from_public_file(args.public_key)
        except SigningKeyError as exc:
            raise Unusable(f"--public-key {exc}") from None
        key_from = str(args.public_key)
    else:
        verifier, key_from = access.verifier(args, config)
    if not args.file.is_file():
        raise Unusable(f"{args.file}: no such file")
    try:
        report = verify(args.file, verifier)
    except ExportError as exc:
        raise Unusable(str(exc)) from None
    print(terminal(f"export: {args.file} ({', '.join(sorted(report.formats)) or 'no records'}"
                   f", {report.records} records, {report.statements} signed statements)"))
    print(terminal(f"key: {verifier.key_id} ({key_from})"))
    for writer, runs in sorted(report.runs.items()):
        print(terminal(f"chain {writer}: {sum(r.last - r.first + 1 for r in runs)} records "
                       f"in {len(runs)} linked run{'s' * (len(runs) != 1)}"))
        for run in runs:
            vouched = (f"{run.first}..{run.vouched_to} vouched for by a signed checkpoint"
                       if run.vouched_to else "no signed checkpoint names a record of it")
            rest = (f"; {run.vouched_to + 1}..{run.last} after the last checkpoint"
                    if run.vouched_to and run.vouched_to < run.last else "")
            print(f"  {run.first}..{run.last}: {vouched}{rest}")
    if report.intact:
        print("intact: every hash, link and signature in the file checks")
        return 0
    print(f"ALTERED: {len(report.problems)} problems")
    for problem in report.problems:
        print(terminal(f"  {problem}"))
    return 1
