"""`tollgate serve` with listen.workers: 2, as real processes on free ports (no Envoy: the
end-to-end behaviour through Envoy is tests/e2e/test_workers_e2e.py).

The supervisor refuses a config every worker would refuse in one line before starting
any; stops all when a worker cannot serve; forwards SIGHUP and SIGTERM; and its workers
end with it even when it is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import envoy_bootstrap
from extproc.quickstart import stack
from tests.support.gateway import POLICIES

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, port: int, **sections: Any) -> Path:
    data = {"listen": {"grpc": f"127.0.0.1:{port}", "workers": 2, "drain_seconds": 5},
            "policy": {"dir": str(POLICIES), "watch_seconds": 0},
            "targets": [{"name": "demo", "match": {"route": "demo"}}], **sections}
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[stack.Process, int]]:
    """A supervisor of two workers, both serving; stopped afterwards."""
    port = stack.free_ports(2)
    process = stack.start_tollgate(write_config(tmp_path, port), port, tmp_path, workers=2)
    try:
        yield process, port
    finally:
        process.stop()


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_what_every_worker_would_refuse_is_one_line_before_any_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path, stack.free_ports(2), targets=[{
        "name": "demo", "match": {"route": "demo"},
        "credential": {"type": "bearer", "from_env": "TOLLGATE_TEST_UNSET"}}])
    result = run_serve(config)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("tollgate: ") and "TOLLGATE_TEST_UNSET" in line
    assert "worker 0 started" not in result.stderr


def test_a_worker_that_cannot_serve_stops_them_all_with_status_2(tmp_path: Path) -> None:
    port = stack.free_ports(2)
    with socket.socket() as holder:  # worker 1's port
        holder.bind(("127.0.0.1", port + 1))
        holder.listen()
        result = run_serve(write_config(tmp_path, port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port + 1}" in result.stderr
    assert "worker 1 (pid" in result.stderr and "cannot serve this config" in result.stderr


def test_sighup_reloads_policies_in_every_worker(serving: tuple[stack.Process, int]) -> None:
    process, _ = serving
    process.signal(signal.SIGHUP)

    def both() -> bool:
        log = process.tail(200)
        return all(f"tollgate.policy[w{i}]: policies reloaded (SIGHUP)" in log for i in (0, 1))

    stack.wait_until(both, 20, "both workers reloading")


def test_sigterm_drains_every_worker_and_exits_0(serving: tuple[stack.Process, int]) -> None:
    process, port = serving
    assert process.stop(30) == 0
    log = process.tail(200)
    assert all(f"tollgate.server[w{i}]: stopped" in log for i in (0, 1))
    assert "2 workers drained" in log
    assert not any(stack.grpc_serving(p)() for p in (port, port + 1))


def test_workers_end_when_their_supervisor_is_killed(serving: tuple[stack.Process, int]) -> None:
    process, port = serving
    os.kill(process.pid, signal.SIGKILL)
    stack.wait_until(lambda: not any(stack.grpc_serving(p)() for p in (port, port + 1)), 20,
                     "both workers gone")
    stack.wait_until(lambda: all(f"tollgate.server[w{i}]: stopped" in process.tail(200)
                                 for i in (0, 1)), 20, "both workers draining")


def test_a_bootstrap_missing_a_worker_s_port_is_named_at_start(tmp_path: Path) -> None:
    port = stack.free_ports(2)
    bootstrap = envoy_bootstrap.write(envoy_bootstrap.with_ports(
        envoy_bootstrap.load(), envoy_bootstrap.Ports(ext_proc=port)), tmp_path / "envoy.yaml")
    config = write_config(tmp_path, port, identity={"envoy_bootstrap": str(bootstrap)})
    process = stack.start_tollgate(config, port, tmp_path, workers=2)
    try:
        assert f"no endpoint on port {port + 1} of tollgate's 2 worker(s)" in process.tail(200)
    finally:
        process.stop()
