"""Running gateways for end-to-end tests: a real Envoy, tollgate process, upstream and OTLP
receiver (tests/conftest.py makes them fixtures).

Everything listens on free ports of 127.0.0.1. The upstream runs in the test
process so tests can assert what it did (and did not) receive.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import http.client
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from extproc import config, envoy_bootstrap
from extproc.quickstart import stack
from extproc.quickstart.demo_upstream import DemoUpstream
from extproc.recording.store import chain_rows
from extproc.store import connect
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.tls import write_tls_files
from tests.support.zygote import Zygote

# The batch span processor exports every 5 s by default; tests wait on spans.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def trace_id(self) -> str | None:
        return self.headers.get("x-tollgate-trace-id")


@dataclass
class Gateway:
    """One running stack: client → Envoy → (tollgate) → upstream."""

    ports: envoy_bootstrap.Ports
    upstream: DemoUpstream
    otlp: OtlpReceiver
    tollgate: stack.Process
    envoy: stack.Process
    config_path: Path
    processes: list[stack.Process] = field(default_factory=list)
    # tollgate's admin ports (the approvals API): each replica's, in order.
    replica_admin_ports: list[int] = field(default_factory=list)
    # The HTTPS listener beside the plain one (`tls=` given), on the same routes.
    tls_port: int | None = None

    @property
    def admin_port(self) -> int:
        return self.replica_admin_ports[0]

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def store_url(self) -> str:
        """Where this gateway's tollgate records (its config's store, resolved)."""
        return config.load(self.config_path).store_url

    def session_records(self, last: str) -> list[dict[str, Any]]:
        """The records of the database session whose statement `last` (its request's
        body) is recorded, once it is: what a statement-log differential compares."""
        mine: list[dict[str, Any]] = []

        def recorded() -> bool:
            records = self.records()
            ended = [r for r in records if request_text(r) == last]
            mine[:] = [r for r in records
                       if ended and r["session_id"] == ended[0]["session_id"]]
            return bool(ended)

        stack.wait_until(recorded, 10, "the session's record")
        return mine

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every record written so far, in each chain's order, as its content (plus id);
        the policy loads each tollgate records as it starts (kind `policy`) only when
        asked for by `kind`, which keeps to records of that kind."""
        connection = connect(self.store_url)
        try:
            return [{**row.document(), "id": row.id} for row in chain_rows(connection)
                    if row.kind == kind or (kind is None and row.kind != "policy")]
        finally:
            connection.close()

    def record_of(self, text: str, timeout: float = 10.0, *,
                  method: str | None = None) -> dict[str, Any]:
        """The latest record whose request carries `text` (sent by `method`, if named),
        once it is written: records are written apart from the answers, so a test that
        names the method waits for that one rather than taking an earlier one."""
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [r for r in self.records() if request_text(r) == text
                        and method in (None, r["request"]["method"])]
            return bool(found)

        stack.wait_until(written, timeout, f"the record of {text!r}")
        return found[-1]

    def the_record(self, matches: Callable[[dict[str, Any]], bool], what: str,
                   kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The one record (of `kind`, if named) that `matches`, once it is written:
        records are written apart from the answers, in no order a test can count on, so
        one awaited by its own description never reads another written first, or ahead of
        it (a hold's `decision` record and its exchange's, say)."""
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [r for r in self.records(kind) if matches(r)]
            return bool(found)

        stack.wait_until(written, timeout, what)
        assert len(found) == 1, f"{len(found)} records are {what}: {found}"
        return found[0]

    def terminal_lines(self, first: Callable[[dict[str, Any]], bool], lines: int,
                       opened_by: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The LINE records, oldest first, of the terminal session of the latest line
        `first` picks, once it holds `lines` of them and the record of what opened it
        (`opened_by`: SHELL for an SSH shell, GET for a Kubernetes exec): a session's
        records are written as its lines are decided and as it ends (a held line's
        decision record, written as it began to wait, is not one of them)."""
        found: list[dict[str, Any]] = []

        def recorded() -> bool:
            nonlocal found
            records = self.records("exchange")
            picked = [r for r in records if r["request"]["method"] == "LINE" and first(r)]
            if not picked:
                return False
            mine = [r for r in records if r["session_id"] == picked[-1]["session_id"]]
            found = [r for r in mine if r["request"]["method"] == "LINE"]
            return len(found) == lines and any(
                r["request"]["method"] == opened_by for r in mine)

        stack.wait_until(recorded, timeout, f"a terminal session's {lines} lines")
        return found

    def wait_for_records(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The records once there are at least `count` (they are written in batches, off
        the request path)."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            nonlocal found
            found = self.records()
            return len(found) >= count

        stack.wait_until(enough, timeout, f"{count} records in {self.store_url}")
        return found

    def request(
        self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None, token: str | None = "", timeout: float = 10,
    ) -> Reply:
        """One request; it carries a valid agent token unless `token` is None (or given)."""
        headers = dict(headers or {})
        if token is not None and "authorization" not in {h.lower() for h in headers}:
            headers["authorization"] = f"Bearer {token or tokens.token()}"
        if isinstance(body, dict):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.ports.listener, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            return Reply(
                reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
            )
        finally:
            conn.close()

    def send_raw(self, data: bytes) -> bytes:
        """Write raw bytes to the listener, then read until Envoy closes the connection.

        For what http.client cannot send: headers without their body, a chunked
        body cut short. When Envoy refuses a body it has not read to the end, it
        closes with data unread and the kernel ends the connection with a reset
        after the reply: a reset once a reply has arrived counts as the close.
        """
        received = b""
        with socket.create_connection(("127.0.0.1", self.ports.listener), timeout=10) as sock:
            sock.sendall(data)
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except ConnectionResetError:
                if not received:
                    raise
        return received

    def envoy_stat(self, name: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports.admin, timeout=5)
        try:
            conn.request("GET", f"/stats?filter=^{name}$")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def proxy_url(self, token: str | None = None) -> str:
        """The egress proxy as HTTP(S)_PROXY names it: the token as the password."""
        assert self.ports.egress is not None, "a gateway started with egress=..."
        return f"http://agent:{token or tokens.token()}@127.0.0.1:{self.ports.egress}"

    def upstream_paths(self) -> list[str]:
        return [r.path for r in self.upstream.requests]


_zygote: Zygote | None = None


def start_tollgate(config_path: Path, grpc_port: int, work: Path, env: dict[str, str],
                   name: str, workers: int) -> stack.Process:
    """`tollgate serve --config CONFIG_PATH`, once its gRPC health says SERVING: forked
    from the zygote, or, with several `workers`, run as stack.start_tollgate runs it (a
    supervisor names its workers' metrics folder before prometheus-client is imported,
    which the zygote has done: extproc/cli)."""
    if workers > 1:
        return stack.start_tollgate(config_path, grpc_port, work, env=env, name=name,
                                    workers=workers)
    global _zygote
    if _zygote is None:
        _zygote = Zygote()
        atexit.register(_zygote.close)
    log = work / f"{name}.log"
    popen = _zygote.fork(["serve", "--config", str(config_path)], {**os.environ, **env},
                         log, Path.cwd())
    process = stack.Process(name, popen, log)  # type: ignore[arg-type]  # a Popen's likeness
    process.ready_or_fail(stack.grpc_serving(grpc_port), 60.0,
                          f"gRPC health SERVING on {grpc_port}")
    return process


def tollgate_config(
    policy_dir: Path, otlp_endpoint: str, grpc_port: int, targets: list[dict[str, Any]] | None,
    policy: dict[str, Any] | None = None, workers: int = 1,
) -> dict[str, Any]:
    return {
        "listen": {"grpc": f"127.0.0.1:{grpc_port}", "drain_seconds": 10, "workers": workers},
        "policy": {"engine": "embedded", "dir": str(policy_dir), **(policy or {})},
        "telemetry": {"service_name": "tollgate-test", "otlp_endpoint": otlp_endpoint},
        "targets": targets
        or [
            {
                "name": "demo",
                "match": {"route": "demo"},
                "protocol": "sql-http",
                "sql": {"dialect": "sqlite"},
                "environment": "test",
                "labels": {"suite": "e2e"},
            }
        ],
    }


def with_egress(targets: list[dict[str, Any]] | None, egress: dict[str, Any] | None
                ) -> list[dict[str, Any]] | None:
    """The targets (None: the default ones) and, with `egress` settings, the egress
    proxy's target as the quickstart configures it."""
    if egress is None:
        return targets
    return [*(targets or tollgate_config(POLICIES, "", 0, None)["targets"]),
            {"name": "egress", "protocol": "egress", "match": {"route": "egress"},
             "inspect": {"response": "none"}, "egress": egress}]


def with_egress_trust(bootstrap: dict[str, Any], egress: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """Inspected destinations verified against the egress target's roots, as `tollgate
    envoy-bootstrap` writes them (the system's where the settings name none)."""
    if egress is None or "trusted_ca" not in egress:
        return bootstrap
    return envoy_bootstrap.with_egress_trust(bootstrap, Path(egress["trusted_ca"]))


JWT_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
UNMAPPED_ROUTE = {"name": "unmapped", "match": {"prefix": "/unmapped"},
                  "route": {"cluster": "demo_upstream"}}


def route(name: str, prefix: str, **jwt_per_route: Any) -> dict[str, Any]:
    """A route to the demo upstream; `jwt_per_route` is its jwt_authn PerRouteConfig."""
    extra = {"typed_per_filter_config": {envoy_bootstrap.JWT_AUTHN_FILTER: {
        "@type": JWT_PER_ROUTE, **jwt_per_route}}} if jwt_per_route else {}
    return {"name": name, "match": {"prefix": prefix}, "route": {"cluster": "demo_upstream"},
            **extra}


def with_ssh(ports: envoy_bootstrap.Ports, ssh: dict[str, Any] | None, front: int,
             work: Path) -> tuple[envoy_bootstrap.Ports, dict[str, Any] | None]:
    """Envoy's SSH listener and the front's first port, and the front's settings with a
    host key made for it (nothing without `ssh`)."""
    if ssh is None:
        return ports, None
    host_key = work / "ssh-host-key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(host_key)
    return (dataclasses.replace(ports, ssh=stack.free_port(), ssh_front=front),
            {"host_key_file": str(host_key), **ssh})


def with_database_front(ports: envoy_bootstrap.Ports, name: str,
                        front: dict[str, Any] | None, first: int, work: Path
                        ) -> tuple[envoy_bootstrap.Ports, dict[str, Any] | None]:
    """The PostgreSQL or MySQL front (`name`) in the gateway, when it has one: Envoy's
    listener on a free port, the front's first port, and TLS with tests/support/tls.py's
    certificate."""
    if front is None:
        return ports, None
    ports = dataclasses.replace(ports, **{name: stack.free_port(), f"{name}_front": first})
    tls_files = write_tls_files(work / f"{name}-tls")
    return ports, {"tls_cert_file": str(tls_files.cert), "tls_key_file": str(tls_files.key),
                   **front}


def with_front_clusters(bootstrap: dict[str, Any], workers: int,
                        fronts: dict[str, list[int] | None]) -> dict[str, Any]:
    """Each protocol front's cluster with every replica's workers (None: no such front)."""
    for cluster, ports_of in fronts.items():
        if ports_of is not None:
            bootstrap = envoy_bootstrap.with_cluster_ports(
                bootstrap, cluster, [port + i for port in ports_of for i in range(workers)])
    return bootstrap


def with_kube(bootstrap: dict[str, Any], kube: dict[str, Any] | None,
              fronts: list[list[int]], workers: int) -> dict[str, Any]:
    """The Kubernetes stream front's cluster (every replica's workers) and stream routes,
    when the gateway has the front (`kube` not None)."""
    if kube is None:
        return bootstrap
    return envoy_bootstrap.with_stream_front(
        bootstrap, [port + i for port in fronts for i in range(workers)])


class GatewayFactory:
    def __init__(self, tmp: Path, otlp: OtlpReceiver) -> None:
        self._tmp, self._otlp = tmp, otlp
        self._running: list[Gateway] = []

    def __call__(
        self, policy_dir: Path = POLICIES, targets: list[dict[str, Any]] | None = None,
        policy: dict[str, Any] | None = None, routes: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None, clusters: dict[str, int] | None = None,
        tls: tuple[Path, Path] | None = None, settings: dict[str, Any] | None = None,
        replicas: int = 1, workers: int = 1, postgres: dict[str, Any] | None = None,
        mysql: dict[str, Any] | None = None,
        egress: dict[str, Any] | None = None, ssh: dict[str, Any] | None = None,
        kube: dict[str, Any] | None = None,
        envoy: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        listener: int | None = None,
    ) -> Gateway:
        """A running gateway; `policy` overrides keys of the config's policy section,
        `routes` are Envoy routes added ahead of the demo route, `env` is tollgate's,
        `clusters` more upstreams (name -> port on 127.0.0.1), `tls` a certificate and key
        for a second listener, serving HTTPS (on `tls_port`), `settings` more top-level
        config sections (`store`, `recording`). `replicas` tollgate processes share the
        config but their ports (writers `replica-0`, `replica-1`, ...), and Envoy balances
        exchanges between them; each runs `workers` (listen.workers: one by default, so
        the suite does not start a process per core for every gateway). `postgres`: the
        PostgreSQL front's settings (its listen address, TLS with tests/support/tls.py's
        certificate, each replica's listen address and `ports.postgres` for Envoy's
        listener are filled in); `mysql`: the MySQL front's, likewise. `egress`: the
        egress target's settings (nameservers ...):
        Envoy's egress listener on `ports.egress`, and a target `egress` of its route.
        `ssh`: the SSH front's settings, as `postgres` (a host key is made for it).
        `kube`: the Kubernetes stream front's settings (its listen addresses are filled
        in; Envoy gets its cluster and a stream route ahead of each k8s route).
        `envoy`: a last change to Envoy's bootstrap (shorter timeouts, say). `listener`:
        the port of Envoy's HTTP listener, for a config that names the gateway's URL (a
        free one by default). Each tollgate is forked from the test process's zygote
        (tests/support/zygote.py: `tollgate serve` without its ~2 s of imports), but with
        several `workers`: then it is `python -m extproc serve`, which forks them."""
        ports = envoy_bootstrap.Ports(
            listener=listener or stack.free_port(), admin=stack.free_port(),
            ext_proc=stack.free_ports(workers), upstream=0,
            egress=stack.free_port() if egress is not None else None,
        )
        targets = with_egress(targets, egress)
        work = self._tmp / f"gw{len(self._running)}"
        work.mkdir()
        upstream = DemoUpstream(port=0).start()
        ports = dataclasses.replace(ports, upstream=upstream.port)
        # Each replica's PostgreSQL front (a port per worker), all in Envoy's cluster.
        fronts = [stack.free_ports(workers) for _ in range(replicas)]
        mysql_fronts = [stack.free_ports(workers) for _ in range(replicas)]
        ssh_fronts = [stack.free_ports(workers) for _ in range(replicas)]
        kube_fronts = [stack.free_ports(workers) for _ in range(replicas)]
        ports, ssh = with_ssh(ports, ssh, ssh_fronts[0], work)
        ports, postgres = with_database_front(ports, "postgres", postgres, fronts[0], work)
        ports, mysql = with_database_front(ports, "mysql", mysql, mysql_fronts[0], work)
        bootstrap = envoy_bootstrap.with_routes(envoy_bootstrap.with_jwt_issuer(
            envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports),
            tokens.ISSUER, [tokens.AUDIENCE], tokens.jwks(),
        ), [UNMAPPED_ROUTE, *(routes or [])])
        bootstrap = envoy_bootstrap.with_clusters(bootstrap, clusters or {})
        bootstrap = with_kube(bootstrap, kube, kube_fronts, workers)
        grpc_ports = [ports.ext_proc, *(stack.free_ports(workers) for _ in range(replicas - 1))]
        bootstrap = envoy_bootstrap.with_ext_proc_ports(
            bootstrap, [port + i for port in grpc_ports for i in range(workers)])
        bootstrap = with_front_clusters(bootstrap, workers, {
            envoy_bootstrap.POSTGRES_CLUSTER: fronts if postgres is not None else None,
            envoy_bootstrap.MYSQL_CLUSTER: mysql_fronts if mysql is not None else None,
            envoy_bootstrap.SSH_CLUSTER: ssh_fronts if ssh is not None else None})
        tls_port = None
        if tls is not None:
            tls_port = stack.free_port()
            bootstrap = envoy_bootstrap.with_tls(bootstrap, *tls, tls_port)
        envoy_path = work / "envoy.yaml"
        admin_ports = [stack.free_port() for _ in grpc_ports]
        base = tollgate_config(policy_dir, self._otlp.endpoint, ports.ext_proc, targets, policy,
                               workers)
        # Approvers' tokens are verified with the same issuer as agents' (this bootstrap's).
        base["identity"] = {"envoy_bootstrap": str(envoy_path)}
        # A live activity reading gets 5 s, not the default 0.25 s: on a busy machine the
        # store's answer can take longer, and the pack then holds masked reads (status
        # "unknown"), which only the tests that set their own timeout are about.
        base["activity"] = {"live_timeout_seconds": 5.0}
        settings = dict(settings or {})
        for key in ("listen", "identity", "activity"):
            base[key].update(settings.pop(key, {}))
        # Envoy serves the MCP routes' OAuth discovery as the config asks (as `tollgate
        # envoy-bootstrap` writes it).
        if "oauth_resource" in base["identity"]:
            oauth = config.parse({**base, **settings}).identity.oauth_resource
            assert oauth is not None
            bootstrap = envoy_bootstrap.with_oauth_resource(bootstrap, oauth)
        bootstrap = with_egress_trust(bootstrap, egress)
        if envoy is not None:
            bootstrap = envoy(bootstrap)
        envoy_bootstrap.write(bootstrap, envoy_path)
        config_paths = []
        for n, (grpc_port, admin_port) in enumerate(zip(grpc_ports, admin_ports, strict=True)):
            replica = {**base, **settings, "listen": {
                **base["listen"], "grpc": f"127.0.0.1:{grpc_port}",
                "admin": f"127.0.0.1:{admin_port}"}}
            if replicas > 1:
                replica["recording"] = {**replica.get("recording", {}),
                                        "writer_id": f"replica-{n}"}
                # Each replica keeps its own disk's acts (as on hosts of their own).
                replica["sessions"] = {"kept_dir": f"tollgate-kept-{n}",
                                       **replica.get("sessions", {})}
            # Each replica's protocol fronts listen on ports of their own.
            for name, front, ports_of in (("postgres", postgres, fronts),
                                          ("mysql", mysql, mysql_fronts),
                                          ("ssh", ssh, ssh_fronts),
                                          ("kube", kube, kube_fronts)):
                if front is not None:
                    replica[name] = {**front, "listen": f"127.0.0.1:{ports_of[n]}"}
            config_paths.append(work / ("tollgate.yaml" if n == 0 else f"tollgate-{n}.yaml"))
            config_paths[-1].write_text(yaml.safe_dump(replica))
        processes: list[stack.Process] = []
        try:
            for n, (path, grpc_port) in enumerate(zip(config_paths, grpc_ports, strict=True)):
                processes.append(start_tollgate(
                    path, grpc_port, work, env={**FAST_EXPORT, **(env or {})},
                    name="tollgate" if n == 0 else f"tollgate-{n}", workers=workers))
            processes.append(stack.start_envoy(envoy_path, ports.admin, work))
        except BaseException:
            for process in processes:
                process.stop()
            upstream.stop()
            raise
        gateway = Gateway(ports, upstream, self._otlp, processes[0], processes[-1],
                          config_paths[0], processes, admin_ports, tls_port)
        self._running.append(gateway)
        return gateway

    def stop_all(self) -> None:
        stack.stop_together([process for gateway in self._running
                             for process in reversed(gateway.processes)])
        for gateway in self._running:
            gateway.upstream.stop()


@contextlib.contextmanager
def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, name: str, **options: Any
) -> Iterator[Gateway]:
    """One gateway for a module's tests (`options` as GatewayFactory takes them)."""
    factory = GatewayFactory(tmp_path_factory.mktemp(name), otlp)
    try:
        yield factory(**options)
    finally:
        factory.stop_all()


@contextlib.contextmanager
def egress_gateway(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, name: str,
                   lists: dict[str, Any], **options: Any) -> Iterator[Gateway]:
    """A module's gateway whose pack's egress lists are `lists` (egress_lists.rego's
    object), `options` as GatewayFactory takes them."""
    from tests.support.packs import pack_with_egress

    pack = pack_with_egress(tmp_path_factory.mktemp("pack") / "policies", lists)
    with module_gateway(tmp_path_factory, otlp, name, policy_dir=pack, **options) as running:
        yield running


def request_text(record: dict[str, Any]) -> str | None:
    """The statement a database front's record carries (its request's body); None for
    none, and for one the record keeps by size and hash alone (bytes that are no UTF-8)."""
    body = record["request"]["body"]
    return None if body is None or "value" not in body else str(body["value"])
