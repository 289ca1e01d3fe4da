"""Where `tollgate up` puts every port of its stack: the quickstart's own, or moved.

`--base-port N` moves them all, in this order (W: listen.workers, one per core by default):

    N      Envoy's HTTP listener             N+5    tollgate's admin API (approvals)
    N+1    Envoy's admin interface           N+6    the demo upstream
    N+2    Envoy's egress proxy              N+7    the demo MCP server
    N+3    Envoy's PostgreSQL listener       N+8    the demo PostgreSQL database
    N+4    Envoy's SSH listener              N+9    the demo SSH host
    N+10   Envoy's MySQL listener            N+11   the demo MariaDB
    N+12   the development OpenID provider (admin.oidc's issuer; unmoved, a free port)
    N+13 + i          tollgate's ext_proc worker i (listen.grpc)
    N+13 + W + i      tollgate's PostgreSQL front, worker i (postgres.listen)
    N+13 + 2W + i     tollgate's SSH front, worker i (ssh.listen)
    N+13 + 3W + i     tollgate's Kubernetes stream front, worker i (kube.listen)
    N+13 + 4W + i     tollgate's MySQL front, worker i (mysql.listen)

and `--http-port`, `--postgres-port`, `--mysql-port`, `--ssh-port`, `--egress-port` move
the listeners agents use, alone or after `--base-port`. tollgate's own ports are in its config, so a
moved stack runs a copy of the config with those moved (and every path in it absolute,
as the copy lives elsewhere); Envoy runs envoy/quickstart.yaml moved (`with_ports`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extproc import envoy_bootstrap
from extproc.config import Config, SshTarget, Target

# Envoy's listeners agents use (envoy/quickstart.yaml): PostgreSQL, MySQL, SSH, the
# egress proxy.
POSTGRES_PORT = 15432
MYSQL_PORT = envoy_bootstrap.Listeners.mysql
SSH_PORT = 2222
EGRESS_PORT = 3128
# The demo databases' ports, behind the gateway (quickstart.yaml's demo-db and
# demo-mysql targets).
DEMO_POSTGRES_PORT = 10432
DEMO_MYSQL_PORT = 10306
# The targets of the demo databases and the demo SSH host `tollgate up` starts.
DEMO_DB_TARGET = "demo-db"
DEMO_MYSQL_TARGET = "demo-mysql"
DEMO_HOST_TARGET = "demo-host"
# The ports at fixed places from --base-port's N (the module's docstring), then one run of
# listen.workers ports for each of tollgate's listeners.
_FIXED = ("http", "admin", "egress", "postgres", "ssh", "approvals", "upstream", "mcp",
          "demo_postgres", "demo_ssh", "mysql", "demo_mysql", "oidc")
_RUNS = 5
BASE_FLAG = "--base-port"


class LayoutError(ValueError):
    """The ports asked for cannot all be had (the message names the flags)."""


@dataclass(frozen=True)
class Moves:
    """The ports `tollgate up`'s command line moves; None: where they are."""

    base: int | None = None
    http: int | None = None
    postgres: int | None = None
    ssh: int | None = None
    egress: int | None = None
    mysql: int | None = None


@dataclass(frozen=True)
class Port:
    """A port of the stack, what listens on it, and the flag that moves it."""

    number: int
    role: str
    flag: str = BASE_FLAG


@dataclass(frozen=True)
class Layout:
    """Every port `tollgate up` uses for a config, once moved."""

    given: Config  # the config as read
    config: Config  # as tollgate serves it: its listen addresses (and demo targets') moved
    envoy: envoy_bootstrap.Ports  # Envoy's (postgres, mysql, ssh, egress: None where unserved)
    # Envoy's PostgreSQL, MySQL and SSH listeners and egress proxy, served or not.
    postgres: int
    mysql: int
    ssh: int
    egress: int
    demo_postgres: int
    demo_mysql: int
    # The development OpenID provider's (dev_oidc.py), where --base-port moved the stack;
    # None: a port the kernel finds free when it starts.
    oidc: int | None
    ports: tuple[Port, ...]
    span: int  # how many ports from --base-port's N the layout takes

    def taken(self, in_use: Callable[[int], bool]) -> list[Port]:
        """The ports something holds already (`in_use`: stack.port_in_use)."""
        return [port for port in self.ports if in_use(port.number)]

    def in_use_message(self, taken: list[Port]) -> str:
        """What `tollgate up` says when ports are taken: which, and the flags that move them."""
        own = [f"{port.flag} PORT for {port.number}" for port in taken if port.flag != BASE_FLAG]
        every = f"{BASE_FLAG} N for every port (N to N+{self.span - 1})"
        return (f"port {', '.join(f'{p.number} ({p.role})' for p in taken)} already in use "
                "on 127.0.0.1; stop what holds it (`ss -ltnp` shows the process) and try "
                f"again, or move it: {'; '.join([*own, every])}")

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Envoy's bootstrap and, when moved, tollgate's config, written into `folder`:
        the config to serve and the bootstrap."""
        workers = self.config.listen.worker_count
        bootstrap = envoy_bootstrap.write(envoy_bootstrap.with_settings_of(
            envoy_bootstrap.with_ports(envoy_bootstrap.load(), self.envoy, workers),
            self.config), folder / "envoy.yaml")
        if self.config == self.given:
            return self.given.source, bootstrap
        path = folder / "tollgate.yaml"
        path.write_text(f"# {self.given.source}, its ports moved by `tollgate up` "
                        "(extproc/quickstart/layout.py) and every path made absolute.\n"
                        + yaml.safe_dump(portable(self.config), sort_keys=False),
                        encoding="utf-8")
        return path, bootstrap


def plan(config: Config, moves: Moves = Moves()) -> Layout:
    """The ports of `config`'s stack, moved as `moves` asks (none: the quickstart's own)."""
    workers = config.listen.worker_count
    span = len(_FIXED) + _RUNS * workers
    base = moves.base
    if base is not None and not 0 < base <= 65536 - span:
        raise LayoutError(f"{BASE_FLAG} {base}: the stack takes {span} ports from it "
                          f"({workers} workers): at most {65536 - span}")
    at = ({name: base + i for i, name in enumerate(_FIXED)} if base is not None else {})
    run = [base + len(_FIXED) + n * workers for n in range(_RUNS)] if base is not None else []
    defaults = envoy_bootstrap.Ports()
    http = moves.http or at.get("http", defaults.listener)
    postgres = moves.postgres or at.get("postgres", POSTGRES_PORT)
    mysql = moves.mysql or at.get("mysql", MYSQL_PORT)
    ssh = moves.ssh or at.get("ssh", SSH_PORT)
    egress = moves.egress or at.get("egress", EGRESS_PORT)
    served = _moved_config(config, run, at, ssh if moves.ssh or base is not None else None)
    front, mysql_front, ssh_front = served.postgres, served.mysql, served.ssh
    envoy = envoy_bootstrap.Ports(
        listener=http, admin=at.get("admin", defaults.admin),
        ext_proc=served.listen.grpc_port, upstream=at.get("upstream", defaults.upstream),
        mcp=at.get("mcp", defaults.mcp),
        postgres=postgres if front is not None else None,
        postgres_front=front.address_of(0)[1] if front is not None else 0,
        mysql=mysql if mysql_front is not None else None,
        mysql_front=mysql_front.address_of(0)[1] if mysql_front is not None else 0,
        egress=egress if any(t.protocol == "egress" for t in config.targets) else None,
        ssh=ssh if ssh_front is not None else None,
        ssh_front=ssh_front.address_of(0)[1] if ssh_front is not None else 0)
    demo_postgres = at.get("demo_postgres", DEMO_POSTGRES_PORT)
    demo_mysql = at.get("demo_mysql", DEMO_MYSQL_PORT)
    oidc = at.get("oidc")
    ports = _ports(served, envoy, demo_postgres, demo_mysql, oidc)
    return Layout(config, served, envoy, postgres, mysql, ssh, egress, demo_postgres,
                  demo_mysql, oidc, ports, span)


def _moved_config(config: Config, run: list[int], at: dict[str, int],
                  agent_port: int | None) -> Config:
    """`config` with tollgate's listeners at the runs of ports from --base-port (none: as
    they are), the demo targets' upstreams at theirs, and ssh.agent_port at Envoy's SSH
    listener when it moved."""
    if not run and agent_port is None:
        return config
    listen, postgres, ssh, kube = config.listen, config.postgres, config.ssh, config.kube
    mysql = config.mysql
    if run:
        listen = dataclasses.replace(
            listen, grpc=_at(listen.grpc, run[0]),
            admin=_at(listen.admin, at["approvals"]) if listen.admin else None)
        postgres = postgres and dataclasses.replace(postgres, listen=_at(postgres.listen, run[1]))
        ssh = ssh and dataclasses.replace(ssh, listen=_at(ssh.listen, run[2]))
        kube = kube and dataclasses.replace(kube, listen=_at(kube.listen, run[3]))
        mysql = mysql and dataclasses.replace(mysql, listen=_at(mysql.listen, run[4]))
    if ssh is not None and agent_port is not None:
        ssh = dataclasses.replace(ssh, agent_port=agent_port)
    targets = tuple(_demo_moved(t, at) for t in config.targets) if run else config.targets
    return dataclasses.replace(config, listen=listen, postgres=postgres, ssh=ssh, kube=kube,
                               mysql=mysql, targets=targets)


def _at(address: str, port: int) -> str:
    return f"{address.rpartition(':')[0]}:{port}"


def _demo_moved(target: Target, at: dict[str, int]) -> Target:
    """The demo databases' and SSH host's targets, reaching them where they moved."""
    if target.name == DEMO_DB_TARGET and target.postgres is not None:
        upstream = _at(target.postgres.upstream, at["demo_postgres"])
        return dataclasses.replace(
            target, postgres=dataclasses.replace(target.postgres, upstream=upstream))
    if target.name == DEMO_MYSQL_TARGET and target.mysql is not None:
        upstream = _at(target.mysql.upstream, at["demo_mysql"])
        return dataclasses.replace(
            target, mysql=dataclasses.replace(target.mysql, upstream=upstream))
    if target.name == DEMO_HOST_TARGET and target.ssh is not None:
        upstream = _at(target.ssh.upstream, at["demo_ssh"])
        return dataclasses.replace(target, ssh=dataclasses.replace(target.ssh, upstream=upstream))
    return target


def demo_host_target(config: Config) -> SshTarget | None:
    """The ssh settings of the config's demo-host target (none without one)."""
    target = next((t for t in config.targets if t.name == DEMO_HOST_TARGET), None)
    return target.ssh if target is not None else None


def _ports(config: Config, envoy: envoy_bootstrap.Ports, demo_postgres: int,
           demo_mysql: int, oidc: int | None) -> tuple[Port, ...]:
    """Every port the stack listens on, what for and the flag that moves it; two roles on
    one port are an error naming both."""
    workers = range(config.listen.worker_count)
    ports = [Port(envoy.listener, "the Envoy listener", "--http-port"),
             Port(envoy.admin, "the Envoy admin interface"),
             *(Port(port, f"tollgate's ext_proc service (worker {i})")
               for i, port in enumerate(config.listen.worker_ports)),
             Port(envoy.upstream, "the demo upstream"), Port(envoy.mcp, "the demo MCP server")]
    if config.postgres is not None and envoy.postgres is not None:
        front = config.postgres
        ports += [Port(envoy.postgres, "Envoy's PostgreSQL listener", "--postgres-port"),
                  *(Port(front.address_of(i)[1], f"tollgate's PostgreSQL front (worker {i})")
                    for i in workers),
                  Port(demo_postgres, "the demo PostgreSQL database")]
    if config.mysql is not None and envoy.mysql is not None:
        mysql = config.mysql
        ports += [Port(envoy.mysql, "Envoy's MySQL listener", "--mysql-port"),
                  *(Port(mysql.address_of(i)[1], f"tollgate's MySQL front (worker {i})")
                    for i in workers)]
        if any(t.name == DEMO_MYSQL_TARGET for t in config.targets):
            ports.append(Port(demo_mysql, "the demo MariaDB"))
    if config.ssh is not None and envoy.ssh is not None:
        ssh = config.ssh
        ports += [Port(envoy.ssh, "Envoy's SSH listener", "--ssh-port"),
                  *(Port(ssh.address_of(i)[1], f"tollgate's SSH front (worker {i})")
                    for i in workers)]
        demo_host = demo_host_target(config)
        if demo_host is not None:
            ports.append(Port(demo_host.address[1], "the demo SSH host"))
    if config.kube is not None:
        ports += [Port(config.kube.address_of(i)[1],
                       f"tollgate's Kubernetes stream front (worker {i})") for i in workers]
    if envoy.egress is not None:
        ports.append(Port(envoy.egress, "Envoy's egress proxy", "--egress-port"))
    if config.listen.admin_port is not None:
        ports.append(Port(config.listen.admin_port, "tollgate's admin API (approvals)"))
    if oidc is not None:
        ports.append(Port(oidc, "the development OpenID provider"))
    seen: dict[int, Port] = {}
    for port in ports:
        other = seen.setdefault(port.number, port)
        if other is not port:
            raise LayoutError(f"port {port.number} is both {other.role} ({other.flag}) and "
                              f"{port.role} ({port.flag}): move one")
    return tuple(ports)


def portable(config: Config) -> dict[str, Any]:
    """`config` as a YAML mapping that reads the same from any folder: every path in it
    (the defaults' too) absolute, a SQLite store's included."""
    plain = _plain(config, config)
    plain.pop("source")
    plain["store"]["url"] = config.store_url
    return plain


def _plain(config: Config, value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(config, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(config.resolve(value))
    if isinstance(value, (tuple, list)):
        return [_plain(config, v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(config, v) for k, v in value.items()}
    return value
