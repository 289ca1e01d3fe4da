"""`tollgate audit prune` and `hold`: how long the record keeps what.

`prune` deletes what is past retention (store.retention_days, or a target's own
retention_days) and not held, as the writer does every hour; the chains stay verifiable
(extproc/recording/retention.py). `hold` keeps a session's records, for an
investigation or litigation, until the hold is released; who held it is the OS user.

Exit status: 0 done; 2 unusable input (the config, the store, the key, an argument, a
session with no record, a hold that is not there), one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import TYPE_CHECKING

from extproc import config as config_module
from extproc.cli import audit_access as access
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.inert import terminal
from extproc.codecs.text import print_table, utc

if TYPE_CHECKING:
    from extproc.recording.retention import Pruned


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `prune` and `hold` under `tollgate audit`."""
    prune = actions.add_parser(
        "prune", parents=[common],
        help="delete records past retention and not held; the chains stay verifiable")
    prune.add_argument(
        "--older-than", metavar="DURATION",
        help="e.g. 30d: in place of store.retention_days (targets that set their own "
             "retention_days keep theirs); default: the config's")

    hold = actions.add_parser(
        "hold", parents=[common],
        help="keep a session's records from pruning (legal hold); release one; list them")
    hold.add_argument("--session", metavar="ID", help="the session (as replay --session)")
    hold.add_argument("--reason", metavar="TEXT", help="why it is held (required to hold)")
    hold.add_argument("--release", action="store_true", help="end the session's hold")
    hold.add_argument("--list", action="store_true", help="every hold")


def prune(args: argparse.Namespace, config: config_module.Config) -> int:
    # audit.py imports this module to register it: its helpers are imported when used.
    from extproc.recording.retention import prune, rules_of
    from extproc.store import StoreError

    days = None if args.older_than is None else parse_duration(
        args.older_than, "--older-than", "30m, 1h, 7d or 1d12h") / 86400
    rules = rules_of(config, days)
    if not rules.prunes:
        raise Unusable(f"no retention in {config.source} (store.retention_days is 0 and no "
                       "target sets retention_days): give --older-than")
    signer = access.signer(config)
    with access.store(config) as connection:
        try:
            pruned = prune(connection, signer, rules)
        except StoreError as exc:
            raise Unusable(str(exc)) from None
    _show(pruned, f"{args.older_than} (--older-than)" if days is not None
          else f"{rules.store_days:g} days (store.retention_days)" if rules.store_days
          else "for ever (store.retention_days 0)", rules.target_days)
    return 0


def _show(pruned: Pruned, store_kept: str, targets: dict[str, float]) -> None:
    print(terminal(f"retention: {store_kept}" + "".join(
        f"; target {name}: " + (f"{days:g} days" if days else "for ever")
        for name, days in sorted(targets.items()))))
    if not pruned.deleted:
        print("no records past retention to prune")
    else:
        print(f"pruned {sum(pruned.deleted.values())} records; each chain keeps signed "
              "prune and cut statements:")
        for writer, count in sorted(pruned.deleted.items()):
            print(terminal(f"  {writer}: {count}"))
    if pruned.recordings:
        print(f"pruned {pruned.recordings} terminal recordings")
    for why in pruned.kept():
        print(terminal(f"kept, though past retention: {why}"))


def hold(args: argparse.Namespace, config: config_module.Config) -> int:
    from extproc.recording import retention
    from extproc.store import StoreError

    _check_hold_arguments(args)
    with access.store(config) as connection:
        try:
            if args.list:
                found = retention.holds(connection)
                if not found:
                    print("no session is held")
                else:
                    print_table([("SESSION", "HELD (UTC)", "BY", "REASON"), *(
                        (h.session_id, utc(h.held_us), h.held_by, h.reason) for h in found)])
            elif args.release:
                released = retention.release(connection, args.session)
                print(terminal(f"released session {released.session_id} (held since "
                               f"{utc(released.held_us)} UTC by {released.held_by}): its "
                               "records are pruned as retention says from now on"))
            else:
                count = retention.hold(connection, args.session, args.reason, _who())
                print(terminal(f"held session {args.session}: its {count} records, and "
                               "those of their traces, are kept until released"))
        except (StoreError, retention.HoldError) as exc:
            raise Unusable(str(exc)) from None
    return 0


def _check_hold_arguments(args: argparse.Namespace) -> None:
    if args.list:
        if args.session or args.reason or args.release:
            raise Unusable("hold --list takes no --session, --reason or --release")
    elif not args.session:
        raise Unusable("hold: give --session ID (with --reason TEXT, or --release), "
                       "or --list")
    elif args.release and args.reason:
        raise Unusable("hold --release takes no --reason")
    elif not args.release and not (args.reason or "").strip():
        raise Unusable("hold: give --reason TEXT (why the session is held)")


def _who() -> str:
    """The OS user placing a hold (a container without a passwd entry: its uid)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
