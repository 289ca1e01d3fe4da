"""`tollgate up`, the README's first command: what it says when a quickstart port is taken,
the signing key it moves, and the development OpenID provider moved with --base-port. The
whole tour, from a fresh checkout with every port moved, is tests/quickstart/test_tour.py."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extproc import config as config_module
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import dev_oidc, layout, stack
from tests.support.folders import passable_folder
from tests.support.quickstart import started_up

# `tollgate up` run as a process.
pytestmark = pytest.mark.e2e

PORTS = envoy_bootstrap.Ports()


def test_up_names_the_port_that_is_taken() -> None:
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", PORTS.upstream))
            holder.listen()
        except OSError:
            pass  # something else holds it already: `up` must name it all the same
        result = subprocess.run(
            [sys.executable, "-m", "extproc", "up"], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"port {PORTS.upstream} (the demo upstream)" in result.stderr
    assert "already in use" in result.stderr


def test_up_moves_a_key_kept_beside_the_store_to_its_own_place(tmp_path: Path) -> None:
    """An earlier quickstart kept its signing key beside the store; `tollgate up` moves it
    (once, never over a key already there) so the checkpoints it signed still verify."""
    from extproc.quickstart.up import move_legacy_key

    key = tmp_path / "config" / "audit-signing.key"
    cfg = config_module.parse({
        "targets": [{"name": "demo", "match": {"route": "demo"}}],
        "recording": {"signing_key_file": str(key)},
    }, source=tmp_path / "tollgate.yaml")
    legacy = tmp_path / "store" / "audit-signing.key"
    assert move_legacy_key(cfg, legacy) is None  # nothing to move
    legacy.parent.mkdir()
    legacy.write_bytes(b"the old key")
    assert move_legacy_key(cfg, legacy) == key
    assert key.read_bytes() == b"the old key" and not legacy.exists()
    legacy.write_bytes(b"another")
    assert move_legacy_key(cfg, legacy) is None  # a key is there: left alone
    assert key.read_bytes() == b"the old key" and legacy.exists()


def test_up_serves_what_the_config_asks_of_envoy_s_token_checks(tmp_path: Path) -> None:
    """A quickstart config given OAuth discovery and a target that exchanges the agent's
    token: the bootstrap `tollgate up` writes serves both (left out, both would be
    configured and silently not served)."""
    for folder in ("plain", "asked"):
        (tmp_path / folder).mkdir()
    raw = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    plain = layout.plan(config_module.parse(raw, source=QUICKSTART_CONFIG))
    assert "oauth-protected-resource" not in plain.write(tmp_path / "plain")[1].read_text()
    raw.setdefault("identity", {})["oauth_resource"] = {
        "gateway_url": "https://gw.example.com",
        "authorization_servers": ["https://login.example.com"]}
    (tools,) = [t for t in raw["targets"] if t["name"] == "tools"]
    tools["credential"] = {"type": "token_exchange", "from_env": "TG_SECRET",
                           "token_url": "https://login.example.com/token",
                           "client_id": "tollgate", "resource": "https://tools.example.com"}
    asked = layout.plan(config_module.parse(raw, source=QUICKSTART_CONFIG))
    bootstrap = yaml.safe_load(asked.write(tmp_path / "asked")[1].read_text())
    paths = {r["match"].get("path") for manager in envoy_bootstrap.connection_managers(bootstrap)
             for host in manager["route_config"]["virtual_hosts"] for r in host["routes"]}
    assert "/.well-known/oauth-protected-resource/mcp" in paths
    providers = [p for authn in envoy_bootstrap.http_filters(bootstrap,
                                                            envoy_bootstrap.JWT_AUTHN_TYPE)
                 for p in authn["typed_config"]["providers"].values()]
    assert providers and all(p["forward"] for p in providers)


def test_up_with_a_base_port_moves_the_development_provider_too(tmp_path: Path) -> None:
    """`tollgate up --base-port N` serves the provider at N+12, and the admin pages send
    whoever signs in there: no port of the stack stays where it was."""
    if dev_oidc.missing() is not None:
        pytest.fail(f"the development provider cannot run here: {dev_oidc.missing()}")
    span = layout.plan(config_module.load(QUICKSTART_CONFIG)).span
    base = stack.free_ports(span)
    with passable_folder("tollgate-up-") as temporary:
        env = {**os.environ, "HOME": str(tmp_path), "TMPDIR": str(temporary)}
        command = [sys.executable, "-m", "extproc", "up", "--base-port", str(base)]
        with started_up(command, None, env, 300) as up:
            assert dev_oidc.discovery_served(base + 12)()
            admin = http.client.HTTPConnection("127.0.0.1", base + 5, timeout=10)
            admin.request("GET", "/auth/login")
            answer = admin.getresponse()
            assert answer.status in (302, 303), answer.status
            assert (answer.getheader("location") or "").startswith(
                f"http://127.0.0.1:{base + 12}/"), answer.getheader("location")
            assert up.stop() == 0
