"""Signing keys rotated while the gateway runs: a real Envoy, tollgate and the machine's
PostgreSQL; the provider's keys in a JWKS file. A key removed from the file is refused
by tollgate's own doors (the admin API, the PostgreSQL front) within
identity.keys_watch_seconds, and its successor accepted, with no restart; SIGHUP does
the same for every worker when the watch is off. And tollgate's doors refuse the bad
claims Envoy's jwt_authn refuses, with a 401, where they used to crash."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc import envoy_bootstrap
from extproc.quickstart import stack
from tests.approvals.test_key_rotation import key_set
from tests.e2e.test_postgres_e2e import customers_database, shop
from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, module_gateway

WATCH_SECONDS = 0.5
NEW = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed(key: Any, kid: str, **claims: Any) -> str:
    """An agent's token (as tests/support/tokens.py makes them), signed by `key`."""
    payload = jwt.decode(tokens.token("svc-pg-agent", ["agents"]),
                         options={"verify_signature": False})
    return jwt.encode({**payload, **claims}, key, algorithm="RS256", headers={"kid": kid})


OLD_TOKEN = tokens.token("svc-pg-agent", ["agents"])
NEW_TOKEN = signed(NEW, "rotated")


def keys_from(path: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Envoy's provider reading its keys from `path` rather than inline."""
    def change(bootstrap: dict[str, Any]) -> dict[str, Any]:
        for authn in envoy_bootstrap.http_filters(bootstrap, envoy_bootstrap.JWT_AUTHN_TYPE):
            for provider in authn["typed_config"]["providers"].values():
                provider["local_jwks"] = {"filename": str(path)}
        return bootstrap
    return change


def admin_status(gw: Gateway, token: str) -> int:
    request = urllib.request.Request(f"{gw.admin_url}/approvals",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code


def postgres_refusal(port: int, token: str) -> str | None:
    """Why the PostgreSQL front on `port` refuses `token` (None: a session ran)."""
    try:
        with psycopg.connect(f"postgresql://svc-pg-agent:{token}@127.0.0.1:{port}/shop"
                             "?sslmode=require&connect_timeout=10") as conn:
            conn.execute("SELECT count(*) FROM customers").fetchone()
    except psycopg.OperationalError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database("tollgate_keys") as db:
        yield db


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "jwks.json"
    path.write_text(tokens.jwks(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, upstream_db: str,
       keys_file: Path) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "keys", targets=[shop(upstream_db)],
                        postgres={}, envoy=keys_from(keys_file), settings={
                            "identity": {"keys_watch_seconds": WATCH_SECONDS}}) as running:
        yield running


def test_bad_time_claims_are_refused_by_envoy_and_tollgate_alike(gw: Gateway) -> None:
    """Envoy's jwt_authn answers 401; tollgate's doors answered 500 or dropped the
    connection (a TypeError) on "exp": "1999999999", and refused an iat an hour ahead."""
    now = int(time.time())
    ec = tokens.keys()["test-ec"]
    for claims in ({"exp": str(now + 300)}, {"nbf": str(now)}, {"iat": "now"}):
        bad = jwt.encode({**jwt.decode(OLD_TOKEN, options={"verify_signature": False}),
                          **claims}, ec, algorithm="ES256", headers={"kid": "test-ec"})
        assert gw.request("GET", "/", token=bad).status == 401
        assert admin_status(gw, bad) == 401
        refusal = postgres_refusal(gw.ports.postgres, bad)
        assert refusal is not None and "not a time" in refusal, refusal
    ahead = tokens.token("svc-pg-agent", ["agents"], kid="test-ec", iat=now + 3600)
    assert gw.request("GET", "/", token=ahead).status != 401
    assert admin_status(gw, ahead) != 401
    assert postgres_refusal(gw.ports.postgres, ahead) is None


def test_a_key_removed_from_the_file_is_refused_and_its_successor_accepted(
        gw: Gateway, keys_file: Path) -> None:
    assert admin_status(gw, OLD_TOKEN) != 401
    assert postgres_refusal(gw.ports.postgres, OLD_TOKEN) is None
    assert admin_status(gw, NEW_TOKEN) == 401

    keys_file.write_text(key_set(rotated=NEW), encoding="utf-8")
    rotated = time.monotonic()
    stack.wait_until(lambda: admin_status(gw, OLD_TOKEN) == 401, 10, "the old key refused")
    took = time.monotonic() - rotated
    # Within the watch interval, and the time one check takes on a busy machine.
    assert took < WATCH_SECONDS + 2, took
    refusal = postgres_refusal(gw.ports.postgres, OLD_TOKEN)
    assert refusal is not None and "not in the issuer's key set" in refusal, refusal
    assert admin_status(gw, NEW_TOKEN) != 401
    assert postgres_refusal(gw.ports.postgres, NEW_TOKEN) is None
    assert gw.tollgate.alive()


def test_a_broken_key_file_keeps_the_keys_and_says_why(gw: Gateway,
                                                       keys_file: Path) -> None:
    good = keys_file.read_text(encoding="utf-8")
    token = signed(NEW, "rotated") if "rotated" in good else OLD_TOKEN
    keys_file.write_text('{"keys": [', encoding="utf-8")
    try:
        stack.wait_until(lambda: "signing keys not reloaded" in gw.tollgate.tail(200), 10,
                         "the failed reload logged")
        assert str(keys_file) in gw.tollgate.tail(200)
        assert admin_status(gw, token) != 401
        with urllib.request.urlopen(f"{gw.admin_url}/metrics", timeout=10) as reply:
            assert "tollgate_key_reload_failures_total 1.0" in reply.read().decode()
    finally:
        keys_file.write_text(good, encoding="utf-8")


def test_sighup_reloads_the_keys_of_every_worker(make_gateway: GatewayFactory,
                                                 upstream_db: str, tmp_path: Path) -> None:
    """keys_watch_seconds 0: the supervisor forwards SIGHUP, and each worker's PostgreSQL
    front (each with its own verifier, no admin API but worker 0's) reads the file."""
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(tokens.jwks(), encoding="utf-8")
    gw = make_gateway(targets=[shop(upstream_db)], postgres={}, workers=2,
                      envoy=keys_from(keys_file),
                      settings={"identity": {"keys_watch_seconds": 0}})
    first = int(yaml.safe_load(gw.config_path.read_text())["postgres"]["listen"]
                .rsplit(":", 1)[1])
    fronts = [first, first + 1]
    assert all(postgres_refusal(port, OLD_TOKEN) is None for port in fronts)
    keys_file.write_text(key_set(rotated=NEW), encoding="utf-8")
    assert postgres_refusal(fronts[1], OLD_TOKEN) is None  # nobody looked
    os.kill(gw.tollgate.pid, signal.SIGHUP)
    stack.wait_until(lambda: all(postgres_refusal(port, OLD_TOKEN) is not None
                                 for port in fronts), 20, "every worker refusing the old key")
    assert all(postgres_refusal(port, NEW_TOKEN) is None for port in fronts)
