"""The `tollgate` command.

Exit status: 0 on success, 1 when a running service fails (for `policy`: a
Rego test fails, or the policy cannot give a valid decision; for `audit verify`:
the record is broken), 2 when the command line, the configuration, the policies,
the store or an input file are unusable (one line on stderr says which file and key).

Layer: entry points (pyproject.toml's import contract): imports its own package and the
layers below it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from extproc import config as config_module
from extproc import envoy_bootstrap, masking
from extproc.cli import approvals, audit, bootstrap, db, egress, login, policy, sessions, ssh
from extproc.cli.common import QUICKSTART_CONFIG, reader_may_leave
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.inert import LogFormatter
from extproc.masking import ner
from extproc.masking.log_lines import LogMasking
from extproc.quickstart import layout

# Development tokens are for trying things: a week at most.
_TOKEN_TTL_MOST = 7 * 86400


class _Version(argparse.Action):
    """`--version`: tollgate's, which form of the masking modules runs (compiled or plain),
    and whether the optional masking model is installed (read only when asked: looking
    for the model's package costs a file-system walk)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"tollgate {importlib.metadata.version('tollgate')}\nmasking: {masking.FORM}\n"
              f"{ner.describe()}")
        parser.exit()


@reader_may_leave  # `tollgate ... | head` ends quietly (common.py)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print tollgate's version and its masking model's, and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the ext_proc service Envoy calls")
    serve.add_argument("--config", required=True, type=Path, help="tollgate YAML config")
    # Set by the supervisor of listen.workers > 1 on each worker it starts.
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)

    up = commands.add_parser(
        "up", help="run Envoy, tollgate and a demo upstream on 127.0.0.1 (the quickstart)"
    )
    up.add_argument("--config", type=Path, default=QUICKSTART_CONFIG, help="tollgate YAML config")
    # extproc/quickstart/layout.py: where each port goes.
    up.add_argument(layout.BASE_FLAG, type=bootstrap.port, metavar="N",
                    help="move every port of the stack to N and the ports after it")
    for flag, listener, default in (
            ("--http-port", "HTTP listener", envoy_bootstrap.Ports().listener),
            ("--postgres-port", "PostgreSQL listener", layout.POSTGRES_PORT),
            ("--mysql-port", "MySQL listener", layout.MYSQL_PORT),
            ("--ssh-port", "SSH listener", layout.SSH_PORT),
            ("--egress-port", "egress proxy", layout.EGRESS_PORT)):
        up.add_argument(flag, type=bootstrap.port, metavar="PORT",
                        help=f"Envoy's {listener} (default {default}, or --base-port's)")

    token = commands.add_parser(
        "token", help="print a token signed with the quickstart's development key"
    )
    token.add_argument("--sub", required=True, help="the subject: who the token speaks for")
    token.add_argument("--groups", default="", help="comma-separated groups, e.g. agents,dba")
    token.add_argument("--ttl", default="1h", help="how long it is valid: 30m, 1h, 2d (<= 7d)")
    token.add_argument(
        "--config", type=Path, default=QUICKSTART_CONFIG,
        help="a tollgate config naming identity.development_key (the quickstart's does)",
    )

    policy.add_parser(commands)
    audit.add_parser(commands)
    approvals.add_parser(commands)
    sessions.add_parser(commands)
    ssh.add_parser(commands)
    login.add_parser(commands)
    bootstrap.add_parser(commands)
    db.add_parser(commands)
    egress.add_parser(commands)

    args = parser.parse_args(argv)
    # As typed: what a look at the record recorded ran (extproc/cli/audit_looks.py).
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # The commands that load no config of their own here, each its module's main.
    own = {"policy": policy.main, "audit": audit.main, "approvals": approvals.main,
           "sessions": sessions.main, "ssh": ssh.main, "login": login.main,
           "logout": login.main, "envoy-bootstrap": bootstrap.main, "db": db.main,
           "egress": egress.main}
    if args.command in own:
        return own[args.command](args)
    # Log messages carry paths, SQL and errors agents caused: none may forge a log line,
    # or carry a secret out (masked, every process's: workers run this too).
    logged = logging.StreamHandler()
    logged.addFilter(LogMasking())
    # A worker of several (listen.workers) says which: they share the supervisor's output.
    worker = "" if getattr(args, "worker", None) is None else f"[w{args.worker}]"
    logged.setFormatter(LogFormatter(
        f"%(asctime)s %(levelname)s %(name)s{worker}: %(message)s"))
    # Forced: a worker forked from its supervisor has the supervisor's handler (and says
    # which worker it is in its own).
    logging.basicConfig(level=args.log_level, handlers=[logged], force=True)
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config, args)
    if args.command == "token":
        return _token(config, args)
    from extproc.quickstart.up import run_quickstart

    return run_quickstart(config, layout.Moves(args.base_port, args.http_port,
                                               args.postgres_port, args.ssh_port,
                                               args.egress_port, args.mysql_port))


def _token(config: config_module.Config, args: argparse.Namespace) -> int:
    from extproc.quickstart.dev_tokens import TokenError, mint

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    try:
        ttl = parse_duration(args.ttl, "--ttl", "30m, 1h or 1h30m")
        if ttl > _TOKEN_TTL_MOST:
            raise Unusable("--ttl: must be more than 0 and at most 7d")
        print(mint(config, args.sub, groups, ttl))
    except (TokenError, Unusable) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    return 0


# prometheus-client's variable: the folder where each process of a multi-process server
# keeps its counts for a scrape to add up (extproc/metrics.py).
_METRICS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"


def _serve(config: config_module.Config, args: argparse.Namespace) -> int:
    """One process, the supervisor of several (listen.workers), or one worker of them.

    A supervisor names its workers' metrics folder first: prometheus-client reads the
    variable as it is imported, and the workers it forks count as it chose then."""
    if args.worker is None and config.listen.worker_count > 1 \
            and _METRICS_FOLDER not in os.environ:
        folder = os.environ[_METRICS_FOLDER] = tempfile.mkdtemp(prefix="tollgate-metrics-")
        try:
            return _serve_imported(config, args)
        finally:
            del os.environ[_METRICS_FOLDER]
            shutil.rmtree(folder, ignore_errors=True)
    return _serve_imported(config, args)


def _serve_imported(config: config_module.Config, args: argparse.Namespace) -> int:
    import uvloop

    from extproc import hangups, workers
    from extproc.policy import PolicyLoadError
    from extproc.preflight import PreflightError, preflight
    from extproc.server import ServeError, serve

    worker: int | None = args.worker
    hangups.defer()  # a reload asked while starting is kept, not fatal
    if worker is None:  # one process, or the supervisor: before any worker starts
        try:
            preflight(config)
        except PreflightError as exc:
            for line in exc.lines:
                print(f"tollgate: {line}", file=sys.stderr)
            return 2
        workers.warn_unlisted_ports(config)
        if config.listen.worker_count > 1:
            return workers.supervise(config, args.config, args.log_level, main)
    else:
        workers.end_with_supervisor()
        config = workers.worker_config(config, worker)
    try:
        uvloop.run(serve(config, admin_api=worker in (None, 0), worker=worker or 0))
    except (PolicyLoadError, ServeError) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    return 0
