"""`tollgate db grants TARGET`: the SQL that sets a database target up for least privilege.

The target's `roles` become roles on the server, each granted to the gateway's own
account (its `user`), which keeps no privilege of its own; `--read` and `--write` give
each role its tables. What PostgreSQL gives every role by default and an agent needs
none of (creating objects, temporary tables, the planner's statistics views, advisory
locks) is taken back from PUBLIC. The role the pack gives the dba group (roles.rego's
`database_roles`; `--dump` names others) gets what a dump needs (grants.py). The SQL goes
to stdout, for an administrator to read and run (`| psql -d DATABASE`, `| mariadb`);
nothing is run here.

Exit status: 0 the SQL printed; 2 unusable input (the config, no such database target,
a target without roles, a role it does not list), one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extproc import config as config_module
from extproc import grants
from extproc.cli.common import QUICKSTART_CONFIG
from extproc.policy import PolicyLoadError
from extproc.policy.rego_tests import interpreter
from extproc.policy.sources import read_modules

# The pack's rule naming each group's role per target (policies/roles.rego), and the
# group that dumps.
_DATABASE_ROLES = "data.tollgate.database_roles"
_DUMPING_GROUP = "dba"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `db grants` under `tollgate`."""
    db = commands.add_parser("db", help="set up a database target's server")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="{grants}")
    grants_parser = actions.add_parser(
        "grants", help="print the SQL that creates the target's roles (least privilege)")
    grants_parser.add_argument("target", help="a postgres or mysql target's name")
    grants_parser.add_argument("--config", type=Path, default=QUICKSTART_CONFIG,
                               help="tollgate YAML config")
    for flag, what in (("--read", "SELECT"), ("--write", "INSERT, UPDATE and DELETE")):
        grants_parser.add_argument(
            flag, action="append", default=[], metavar="ROLE=TABLE[,TABLE]",
            help=f"{what} on these tables for the role (schema.table or table); repeat "
                 "for each role")
    grants_parser.add_argument(
        "--dump", action="append", default=[], metavar="ROLE",
        help="give the role what a dump of the database needs (every table read; mysql: "
             "LOCK TABLES, SHOW VIEW, TRIGGER, EVENT; postgres: the sequences read); "
             "default: the role the policy pack gives the dba group")
    grants_parser.add_argument(
        "--host", default="%", help="mysql targets: the host part of the gateway's account "
                                    "(default %%, any)")


def main(args: argparse.Namespace) -> int:
    try:
        comments, statements = _statements(args)
    except (config_module.ConfigError, ValueError) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    print("\n".join(f"-- {line}" for line in comments))
    print("".join(f"{statement};\n" for statement in statements), end="")
    return 0


def _statements(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The comments heading the SQL, and its statements."""
    config = config_module.load(args.config)
    target = next((t for t in config.targets if t.name == args.target), None)
    database = None if target is None else target.postgres or target.mysql
    if target is None or database is None:
        names = [t.name for t in config.targets if t.postgres or t.mysql]
        raise ValueError(f"no postgres or mysql target {args.target!r} in {args.config} "
                         f"(its database targets: {', '.join(names) or 'none'})")
    if not database.roles:
        raise ValueError(f"target {target.name!r} lists no roles: add `roles: [ROLE, ...]` "
                         f"to its {target.protocol} section first")
    read, write = _tables(args.read, "--read"), _tables(args.write, "--write")
    unknown = sorted((read.keys() | write.keys() | set(args.dump)) - set(database.roles))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a role target {target.name!r} lists "
                         f"({', '.join(database.roles)})")
    header = [f"{target.name}: the gateway's account {database.user} holds no privilege of "
              f"its own; its sessions run as {', '.join(database.roles)}"]
    dump, said = (args.dump, "--dump") if args.dump else _dba_role(
        config, target.name, database.roles)
    header.append(f"{', '.join(dump)} may dump the database ({said}): it reads every table"
                  if dump else f"no role dumps the database ({said})")
    roles = [grants.RoleGrants(role, tuple(read.get(role, ())), tuple(write.get(role, ())),
                               role in dump)
             for role in database.roles]
    name = database.database or target.match.database or ""
    if target.postgres is not None:
        return ([*header, f"run in database {name} as a superuser (psql -d {name} -f FILE)"],
                grants.postgres(database.user, name, roles))
    catalog = target.mysql.catalog_role if target.mysql is not None else None
    if catalog is not None:
        header.append(f"the measurement reads the catalog as {catalog}, on a connection "
                      "of the gateway's own")
    return ([*header, "run as an administrator of the server (mariadb < FILE)"],
            grants.mysql(database.user, args.host, name, roles, catalog_role=catalog))


def _dba_role(config: config_module.Config, target: str, roles: tuple[str, ...]
              ) -> tuple[list[str], str]:
    """The role the config's policy pack gives the dba group on `target` (its first
    entry for the group whose role the target lists, as a login takes it), and where
    that was read; none where the pack names none or cannot be read."""
    where = f"the pack's {_DATABASE_ROLES} for group {_DUMPING_GROUP}"
    try:
        engine = interpreter(read_modules(config.policy_dir))
        named = engine.eval_rule(_DATABASE_ROLES)
    except (PolicyLoadError, RuntimeError) as exc:
        return [], f"{where} could not be read: {exc}; --dump ROLE names one"
    entries = named.get(target, named.get("*")) if isinstance(named, dict) else None
    found = [str(e["role"]) for e in entries or () if isinstance(e, dict)
             and e.get("group") == _DUMPING_GROUP and e.get("role") in roles]
    return found[:1], where


def _tables(values: list[str], flag: str) -> dict[str, list[str]]:
    """ROLE=TABLE[,TABLE] options, by role."""
    out: dict[str, list[str]] = {}
    for value in values:
        role, _, tables = value.partition("=")
        names = [t.strip() for t in tables.split(",") if t.strip()]
        if not role or not names:
            raise ValueError(f"{flag} {value!r}: write ROLE=TABLE[,TABLE]")
        out.setdefault(role, []).extend(names)
    return out
