"""`tollgate envoy-bootstrap`: the Envoy bootstrap a tollgate config needs, written for it.

Envoy's side of a config is named, not free: a listener per door (ingress, egress,
postgres, ssh), a cluster per tollgate listener with an endpoint per worker
(tollgate_extproc, tollgate_postgres, tollgate_ssh, tollgate_k8s), a route per target
named as its match.route says. This writes them from the config (envoy_bootstrap.for_config)
rather than leaving an operator to edit envoy/quickstart.yaml by hand; what the config
cannot say (an upstream's address, the identity provider) is a placeholder it names.

Exit status: 0 written; 2 the config, a flag or the output file is unusable (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extproc import config as config_module
from extproc import envoy_bootstrap
from extproc.cli.common import QUICKSTART_CONFIG


def port(text: str) -> int:
    """A TCP port on the command line: 1-65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port (1-65535), got {text!r}")
    return int(text)


def _upstream(text: str) -> tuple[str, str]:
    target, sep, url = text.partition("=")
    if not sep or not target or not url:
        raise argparse.ArgumentTypeError(f"expected TARGET=URL, got {text!r}")
    return target, url


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `envoy-bootstrap` under `tollgate`."""
    defaults = envoy_bootstrap.Listeners()
    parser = commands.add_parser(
        "envoy-bootstrap", help="write the Envoy bootstrap a tollgate config needs")
    parser.add_argument("--config", type=Path, default=QUICKSTART_CONFIG,
                        help="tollgate YAML config (default: the quickstart's)")
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help="where to write it (default: standard output)")
    parser.add_argument("--listen-address", default=defaults.address, metavar="ADDRESS",
                        help=f"Envoy's listeners' address (default {defaults.address}; "
                             "0.0.0.0 for every interface)")
    for flag, what, default in (
            ("--http-port", "HTTP listener (ingress)", str(defaults.http)),
            ("--egress-port", "egress proxy (egress)", str(defaults.egress)),
            ("--postgres-port", "PostgreSQL listener (postgres)", str(defaults.postgres)),
            ("--mysql-port", "MySQL listener (mysql)", str(defaults.mysql)),
            ("--ssh-port", "SSH listener (ssh)", "ssh.agent_port, else 2222"),
            ("--admin-port", "admin interface, on 127.0.0.1", str(defaults.admin))):
        parser.add_argument(flag, type=port, metavar="PORT",
                            help=f"Envoy's {what} (default {default})")
    parser.add_argument("--tollgate-host", metavar="HOST",
                        help="where Envoy reaches tollgate's listeners (default: each "
                             "listen address's host; 127.0.0.1 for 0.0.0.0 or ::)")
    parser.add_argument("--upstream", type=_upstream, action="append", default=[],
                        metavar="TARGET=URL",
                        help="a target's upstream, http(s)://HOST[:PORT], for its cluster "
                             "(repeatable; a target without one gets a placeholder)")


def main(args: argparse.Namespace) -> int:
    defaults = envoy_bootstrap.Listeners()
    listeners = envoy_bootstrap.Listeners(
        address=args.listen_address, http=args.http_port or defaults.http,
        admin=args.admin_port or defaults.admin, egress=args.egress_port or defaults.egress,
        postgres=args.postgres_port or defaults.postgres,
        mysql=args.mysql_port or defaults.mysql, ssh=args.ssh_port,
        tollgate_host=args.tollgate_host)
    try:
        config = config_module.load(args.config)
        written = envoy_bootstrap.for_config(config, listeners, dict(args.upstream))
        text = written.text(config.source)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text, encoding="utf-8")
    except (config_module.ConfigError, envoy_bootstrap.BootstrapError) as exc:
        print(f"tollgate envoy-bootstrap: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tollgate envoy-bootstrap: {args.out}: cannot write: {exc.strerror}",
              file=sys.stderr)
        return 2
    where = "standard output" if args.out is None else args.out
    print(f"tollgate envoy-bootstrap: wrote the bootstrap for {config.source} to {where}"
          + ("; to do before it serves (also in its leading comment):" if written.todo
             else ""), file=sys.stderr)
    for item in written.todo:
        print(f"  - {item}", file=sys.stderr)
    return 0
