"""`tollgate egress ca`: the certificates clients would trust for destinations tollgate
reads inside HTTPS (extproc/egress/ca.py). Not built yet: HTTPS through the egress proxy
stays a tunnel tollgate does not read, and no leaf is shown to anyone.

It prints the bundle (PEM): the signing CA, and after `--rotate` the one before it until
its overlap ends, made on first use in the egress target's `egress.ca.dir` (the
quickstart's: ~/.tollgate/egress), and written there as ca-bundle.pem. `--install-hint`
prints how curl, Python, Node, git and pip are told to trust that file.

Exit status: 0 success; 2 unusable config or CA files (one line on stderr says which).
"""

from __future__ import annotations

import argparse
import shlex
import ssl
import sys
from pathlib import Path

from extproc import config as config_module
from extproc.cli.common import QUICKSTART_CONFIG
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal
from extproc.config import Config, EgressCa
from extproc.egress.ca import CAError, EgressCA

_COMMAND = "tollgate egress ca"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `egress ca` under `tollgate`."""
    egress = commands.add_parser("egress", help="the egress proxy's CA")
    actions = egress.add_subparsers(dest="egress_command", required=True, metavar="{ca}")
    ca = actions.add_parser(
        "ca", help="print the egress CA's certificates (PEM), made on first use")
    ca.add_argument("--config", type=Path, default=QUICKSTART_CONFIG,
                    help="tollgate YAML config (default: the quickstart's)")
    ca.add_argument("--target", metavar="NAME",
                    help="the egress target whose CA (needed when several set egress.ca)")
    ca.add_argument("--install-hint", action="store_true",
                    help="print how to make curl, Python, Node, git and pip trust it")
    ca.add_argument("--rotate", action="store_true",
                    help="make a new CA; the current one stays trusted for the overlap")


def main(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args.config)
        settings = _settings(config, args.target)
        ca = EgressCA.open(config.resolve(settings.dir), settings)
        if args.rotate:
            ca = ca.rotate()
        if args.rotate and ca.previous is not None:
            print(f"{_COMMAND}: a new CA signs from now; the previous one is trusted until "
                  f"{ca.previous.trusted_until:%Y-%m-%d %H:%M:%S} UTC: give clients "
                  f"{ca.bundle_file} again", file=sys.stderr)
    except (config_module.ConfigError, CAError, Unusable) as exc:
        print(f"{_COMMAND}: {terminal(str(exc))}", file=sys.stderr)
        return 2
    print(install_hint(ca.bundle_file) if args.install_hint else ca.bundle_pem().decode(),
          end="")
    return 0


def _settings(config: Config, name: str | None) -> EgressCa:
    """The CA settings of the egress target `name`, or of the config's only one."""
    found = {t.name: t.egress.ca for t in config.targets
             if t.egress is not None and t.egress.ca is not None
             and (name is None or t.name == name)}
    if name is not None and not found:
        raise Unusable(f"--target {name}: no egress target of that name sets egress.ca "
                       f"in {config.source}")
    if not found:
        raise Unusable(f"no egress target sets egress.ca (the CA's folder) in "
                       f"{config.source}")
    if len(found) > 1:
        raise Unusable(f"several egress targets set egress.ca ({', '.join(found)}): "
                       "name one with --target")
    return next(iter(found.values()))


def install_hint(bundle: Path) -> str:
    """How each client is told to trust `bundle`, as lines to paste. Most of these settings
    replace a client's own roots rather than add to them, so they are pointed at a file
    of the system's roots and the bundle together (tunnelled destinations still show
    their own certificates)."""
    paths = ssl.get_default_verify_paths()
    roots = paths.cafile or paths.openssl_cafile
    both = bundle.with_name("system-and-egress-ca.pem")
    b, t = shlex.quote(str(bundle)), shlex.quote(str(both))
    return f"""\
# The egress CA's certificates (PEM) are in {bundle}
# (the signing CA, and after a rotation the previous one until its overlap ends).
# Most settings below replace a client's own roots: give them the system's and the
# egress CA's together, remade after each rotation:
cat {shlex.quote(roots)} {b} > {t}

# curl
curl --cacert {t} https://example.com/
export CURL_CA_BUNDLE={t}
# Python: requests, and httpx and the ssl module (OpenSSL's variable)
export REQUESTS_CA_BUNDLE={t}
export SSL_CERT_FILE={t}
# Node: added to its own roots, so the bundle alone
export NODE_EXTRA_CA_CERTS={b}
# git
git config --global http.sslCAInfo {t}
export GIT_SSL_CAINFO={t}
# pip: its own requests prefers REQUESTS_CA_BUNDLE (then CURL_CA_BUNDLE) to --cert and
# PIP_CERT, so where the machine exports another bundle, that one wins: name this one
export PIP_CERT={t}
REQUESTS_CA_BUNDLE={t} pip install --cert {t} requests
"""
