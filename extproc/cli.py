"""The `tollgate` command.

Exit status: 0 on success, 1 when a running service fails, 2 when the command
line, the configuration or the policies are unusable (one line on stderr says
which file and key).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from extproc import config as config_module

QUICKSTART_CONFIG = Path(__file__).with_name("quickstart.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the ext_proc service Envoy calls")
    serve.add_argument("--config", required=True, type=Path, help="tollgate YAML config")

    up = commands.add_parser(
        "up", help="run Envoy, tollgate and a demo upstream on 127.0.0.1 (the quickstart)"
    )
    up.add_argument("--config", type=Path, default=QUICKSTART_CONFIG, help="tollgate YAML config")

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config)
    from extproc.up import run_quickstart

    return run_quickstart(config)


def _serve(config: config_module.Config) -> int:
    import uvloop

    from extproc.policy import PolicyLoadError
    from extproc.server import ServeError, serve

    try:
        uvloop.run(serve(config))
    except (PolicyLoadError, ServeError) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
