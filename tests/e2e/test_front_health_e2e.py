"""Envoy takes a dead endpoint of tollgate's out of the balancing, and back once it
serves again: the protocol fronts' clusters as envoy/quickstart.yaml writes them (TCP
health checks, outlier detection), with the real Envoy. Two upper-case echo servers
stand in for two replicas' PostgreSQL fronts (Envoy's tcp_proxy reads none of what
passes); one is killed, and every new connection through Envoy must still be answered.
Then a real gateway's fronts are health-checked, and neither log nor record it."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from extproc import envoy_bootstrap
from extproc.quickstart import stack
from tests.support.echo import UpperEcho
from tests.support.gateway import Gateway, GatewayFactory

CONNECTIONS = 20


@dataclasses.dataclass
class Fronted:
    """Envoy's PostgreSQL listener in front of two stand-in replicas."""

    envoy: stack.Process
    admin: int
    listener: int
    replicas: list[UpperEcho]


@pytest.fixture
def fronted(tmp_path: Path) -> Iterator[Fronted]:
    replicas = [UpperEcho().start(), UpperEcho().start()]
    ports = envoy_bootstrap.Ports(listener=stack.free_port(), admin=stack.free_port(),
                                  ext_proc=stack.free_port(), postgres=stack.free_port())
    bootstrap = envoy_bootstrap.with_cluster_ports(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports),
        envoy_bootstrap.POSTGRES_CLUSTER, [r.port for r in replicas])
    path = envoy_bootstrap.write(bootstrap, tmp_path / "envoy.yaml")
    envoy = stack.start_envoy(path, ports.admin, tmp_path)
    assert ports.postgres is not None
    try:
        yield Fronted(envoy, ports.admin, ports.postgres, replicas)
    finally:
        envoy.stop()
        for replica in replicas:
            replica.stop()


def health_flags(admin: int, cluster: str, port: int) -> str:
    """What Envoy's admin says of the endpoint on `port` ("healthy", "/failed_active_hc",
    "/failed_outlier_check"...)."""
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    try:
        conn.request("GET", "/clusters")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    key = f"{cluster}::127.0.0.1:{port}::health_flags::"
    return next((line[len(key):] for line in text.splitlines() if line.startswith(key)), "")


def answered(port: int) -> bool:
    """A connection through Envoy that gets its bytes back upper-cased."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"select 1")
        return conn.recv(64) == b"SELECT 1"


def test_a_killed_replica_is_taken_out_then_back_and_no_connection_fails(
        fronted: Fronted) -> None:
    cluster = envoy_bootstrap.POSTGRES_CLUSTER
    alive, killed = fronted.replicas
    stack.wait_until(lambda: all(health_flags(fronted.admin, cluster, r.port) == "healthy"
                                 for r in fronted.replicas), 10, "both replicas healthy")
    killed.stop()
    began = time.monotonic()
    stack.wait_until(lambda: "failed_active_hc" in health_flags(
        fronted.admin, cluster, killed.port), 10, "Envoy's health check to take it out")
    taken_out = time.monotonic() - began
    # Two failed checks a second apart (unhealthy_threshold 2, interval 1 s).
    assert taken_out < 5, f"the killed replica was taken out after {taken_out:.1f} s"
    served = alive.answered
    assert all(answered(fronted.listener) for _ in range(CONNECTIONS))
    assert alive.answered - served == CONNECTIONS

    # Started again on its port, it is taken back at its first good check and served.
    killed.start()
    stack.wait_until(lambda: health_flags(fronted.admin, cluster, killed.port) == "healthy",
                     10, "the restarted replica taken back")
    stack.wait_until(lambda: answered(fronted.listener) and killed.answered > 0, 10,
                     "the restarted replica to get connections again")


def test_a_replica_killed_between_checks_costs_no_connection(fronted: Fronted) -> None:
    """Before any check saw it gone, a connection Envoy sends to the dead replica is
    tried on the other (tcp_proxy's max_connect_attempts), and two refusals eject it."""
    cluster = envoy_bootstrap.POSTGRES_CLUSTER
    alive, killed = fronted.replicas
    stack.wait_until(lambda: all(health_flags(fronted.admin, cluster, r.port) == "healthy"
                                 for r in fronted.replicas), 10, "both replicas healthy")
    killed.stop()
    assert all(answered(fronted.listener) for _ in range(CONNECTIONS))
    assert alive.answered == CONNECTIONS


def test_the_fronts_health_checks_leave_nothing_in_the_log_or_the_record(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    # A database and a host no client logs in to: the fronts serve only with targets.
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(tmp_path / "gateway-key")
    nowhere = "127.0.0.1:9"
    shop = {"name": "shop", "protocol": "postgres", "match": {"database": "shop"},
            "postgres": {"upstream": nowhere, "user": "postgres", "sslmode": "disable"}}
    web = {"name": "web", "protocol": "ssh", "match": {"login": "web"},
           "ssh": {"upstream": nowhere, "user": "agent", "key_file": str(tmp_path / "gateway-key"),
                   "host_key": key.export_public_key().decode().strip()}}
    gw: Gateway = make_gateway(targets=[shop, web], postgres={}, ssh={})
    clusters = (envoy_bootstrap.POSTGRES_CLUSTER, envoy_bootstrap.SSH_CLUSTER)

    def checked(times: int) -> bool:
        return all(gw.envoy_stat(f"cluster.{c}.health_check.success") >= times
                   for c in clusters)

    stack.wait_until(lambda: checked(2), 15, "two good health checks of each front")
    records, log = len(gw.records()), gw.tollgate.tail(10_000)
    stack.wait_until(lambda: checked(5), 15, "three more")
    assert len(gw.records()) == records
    assert gw.tollgate.tail(10_000) == log
    for cluster in clusters:
        assert gw.envoy_stat(f"cluster.{cluster}.health_check.failure") == 0
