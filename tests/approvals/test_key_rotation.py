"""Signing keys rotated and revoked while tollgate serves: key files and the bootstrap
watched, SIGHUP, remote key sets served by a real HTTP server; a reload that fails keeps
the keys that verified before. Real keys, real signatures."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import REGISTRY

from extproc import envoy_bootstrap
from extproc.approvals.auth import Verifier
from extproc.approvals.key_reload import KeyReloader
from extproc.config import Identity
from tests.approvals.test_auth import bootstrap, remote
from tests.support import tokens
from tests.support.http_server import LocalServer
from tests.support.waiting import until

FAILURES = "tollgate_key_reload_failures_total"


def failures() -> float:
    return REGISTRY.get_sample_value(FAILURES) or 0.0


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_set(**keys: Any) -> str:
    """A JWKS of the public halves of `keys` (kid -> private RSA key)."""
    algorithm = jwt.algorithms.get_default_algorithms()["RS256"]
    return json.dumps({"keys": [
        {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": "RS256"}
        for kid, key in keys.items()]})


OLD = tokens.keys()["test-rsa"]


def token(kid: str = "test-rsa", key: Any = OLD) -> str:
    """A token valid for five minutes, signed by `key` under `kid`."""
    return jwt.encode({"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "alice",
                       "exp": int(time.time()) + 300}, key, algorithm="RS256",
                      headers={"kid": kid})


async def verifies(found: Verifier, presented: str) -> bool:
    claims, _ = await found.verdict(presented)
    return claims is not None


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write(tmp_path / "jwks.json", key_set(**{"test-rsa": OLD}))


def from_file(tmp_path: Path, keys_file: Path, settings: Identity | None = None) -> Verifier:
    path = envoy_bootstrap.write(bootstrap(local_jwks={"filename": str(keys_file)}),
                                 tmp_path / "envoy.yaml")
    return Verifier.from_bootstrap(path, settings or Identity())


@pytest.fixture
async def watched(tmp_path: Path, keys_file: Path) -> AsyncIterator[tuple[Verifier, KeyReloader]]:
    found = from_file(tmp_path, keys_file)
    reloader = KeyReloader(found, 0.05)
    running = asyncio.create_task(reloader.run())
    yield found, reloader
    running.cancel()


# -- local key sets ------------------------------------------------------------------------


async def test_a_key_removed_from_its_file_stops_verifying_and_its_successor_verifies(
        watched: tuple[Verifier, KeyReloader], keys_file: Path) -> None:
    found, _ = watched
    successor = new_key()
    assert await verifies(found, token())
    assert not await verifies(found, token("rotated", successor))
    write(keys_file, key_set(rotated=successor))
    await until(lambda: verifies(found, token("rotated", successor)), "the new key", 5)
    assert not await verifies(found, token())


async def test_a_key_changed_inline_in_the_bootstrap_is_read_again(tmp_path: Path) -> None:
    path = envoy_bootstrap.write(bootstrap(), tmp_path / "envoy.yaml")
    found = Verifier.from_bootstrap(path, Identity())
    running = asyncio.create_task(KeyReloader(found, 0.05).run())
    try:
        successor = new_key()
        assert await verifies(found, token())
        config = envoy_bootstrap.with_jwt_issuer(envoy_bootstrap.load(), tokens.ISSUER,
                                                 [tokens.AUDIENCE], key_set(rotated=successor))
        envoy_bootstrap.write(config, path)
        await until(lambda: verifies(found, token("rotated", successor)), "the new key", 5)
        assert not await verifies(found, token())
    finally:
        running.cancel()


async def test_a_bootstrap_naming_another_key_file_has_that_file_watched(
        tmp_path: Path, keys_file: Path) -> None:
    found = from_file(tmp_path, keys_file)
    running = asyncio.create_task(KeyReloader(found, 0.05).run())
    try:
        other = write(tmp_path / "other.json", key_set(**{"test-rsa": OLD}))
        envoy_bootstrap.write(bootstrap(local_jwks={"filename": str(other)}),
                              tmp_path / "envoy.yaml")
        await until(lambda: other in found.files(), "the new key file watched", 5)
        successor = new_key()
        write(other, key_set(rotated=successor))
        await until(lambda: verifies(found, token("rotated", successor)), "the new key", 5)
    finally:
        running.cancel()


async def test_sighup_reloads_keys_the_watch_does_not_look_at(tmp_path: Path,
                                                              keys_file: Path) -> None:
    """keys_watch_seconds 0: files are read again only when asked (SIGHUP sets
    `requested`: extproc/server.py)."""
    found = from_file(tmp_path, keys_file)
    reloader = KeyReloader(found, 0)
    running = asyncio.create_task(reloader.run())
    try:
        successor = new_key()
        write(keys_file, key_set(rotated=successor))
        assert await verifies(found, token())  # not looked at
        reloader.requested.set()
        await until(lambda: verifies(found, token("rotated", successor)), "the new key", 5)
        assert not await verifies(found, token())
    finally:
        running.cancel()


def broken(path: Path, breakage: str) -> None:
    if breakage == "missing":
        path.unlink()
    else:
        write(path, {"not-json": '{"keys": [', "no-key-set": "[]",
                     "no-usable-key": '{"keys": [{"kty": "RSA", "kid": "broken"}]}'}[breakage])


@pytest.mark.parametrize("breakage", ["missing", "not-json", "no-usable-key", "no-key-set"])
async def test_a_reload_that_fails_keeps_the_old_keys_says_why_and_is_counted(
        tmp_path: Path, keys_file: Path, caplog: pytest.LogCaptureFixture,
        breakage: str) -> None:
    found = from_file(tmp_path, keys_file)
    broken(keys_file, breakage)
    before = failures()
    with caplog.at_level(logging.ERROR, "tollgate.keys"):
        assert not found.reload("files changed")
    assert failures() == before + 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(keys_file) in record.getMessage()
    assert "still verifying with tollgate-dev: keys 'test-rsa'" in record.getMessage()
    assert await verifies(found, token())


async def test_the_watch_survives_a_broken_file_and_reads_the_mended_one(
        watched: tuple[Verifier, KeyReloader], keys_file: Path) -> None:
    found, _ = watched
    before = failures()
    write(keys_file, "{")
    await until(lambda: failures() > before, "the failed reload", 5)
    assert await verifies(found, token())
    successor = new_key()
    write(keys_file, key_set(rotated=successor))
    await until(lambda: verifies(found, token("rotated", successor)), "the mended file", 5)


# -- remote key sets -----------------------------------------------------------------------


class KeyServer:
    """A real HTTP server serving `body` at /jwks (changed by the test), counting fetches."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.server = LocalServer(lambda _m, _p, _b: (200, self.body.encode()), "/jwks")

    @property
    def fetches(self) -> int:
        return len(self.server.received)


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    served = KeyServer(key_set(**{"test-rsa": OLD}))
    yield served
    served.server.stop()


def fetching(tmp_path: Path, served: KeyServer, cache_duration: str,
             refetch: float) -> Verifier:
    config = remote(served.server.url)
    envoy_bootstrap.jwt_provider(config)["remote_jwks"]["cache_duration"] = cache_duration
    path = envoy_bootstrap.write(config, tmp_path / "envoy.yaml")
    return Verifier.from_bootstrap(path, Identity(remote_keys_refetch_seconds=refetch))


async def test_a_remote_key_set_is_fetched_again_after_its_cache_duration(
        tmp_path: Path, key_server: KeyServer) -> None:
    found = fetching(tmp_path, key_server, "0.2s", 3600)
    assert await verifies(found, token())
    successor = new_key()
    key_server.body = key_set(rotated=successor)
    await until(lambda: verifies(found, token("rotated", successor)), "the new key", 5)
    assert not await verifies(found, token())


async def test_a_token_naming_an_unknown_key_fetches_at_most_once_per_refetch_interval(
        tmp_path: Path, key_server: KeyServer) -> None:
    successor = new_key()
    limited = fetching(tmp_path, key_server, "3600s", 3600)
    eager = fetching(tmp_path, key_server, "3600s", 0)
    assert await verifies(limited, token()) and await verifies(eager, token())
    assert key_server.fetches == 2
    key_server.body = key_set(**{"test-rsa": OLD}, rotated=successor)
    for n in range(20):  # made-up kids cost the identity provider nothing more
        assert not await verifies(limited, token(f"made-up-{n}", successor))
    assert not await verifies(limited, token("rotated", successor))
    assert key_server.fetches == 2
    assert await verifies(eager, token("rotated", successor))  # the miss fetched it
    assert key_server.fetches == 3


async def test_a_failed_remote_fetch_keeps_the_keys_fetched_and_is_retried_sparingly(
        tmp_path: Path, key_server: KeyServer, caplog: pytest.LogCaptureFixture) -> None:
    found = fetching(tmp_path, key_server, "0.1s", 3600)
    assert await verifies(found, token())
    key_server.body = "<html>an error page</html>"
    before = failures()

    async def refreshed() -> bool:
        assert await verifies(found, token())  # the old keys verify throughout
        return key_server.fetches > 1

    with caplog.at_level(logging.ERROR, "tollgate.keys"):
        await until(refreshed, "a refresh", 5)
    assert failures() == before + 1
    assert "still verifying with keys 'test-rsa'" in caplog.text
    assert key_server.server.url in caplog.text and "not JSON" in caplog.text
    for _ in range(10):
        assert await verifies(found, token())
    assert key_server.fetches == 2  # not again before remote_keys_refetch_seconds


async def test_sighup_fetches_a_remote_key_set_again_at_once(
        tmp_path: Path, key_server: KeyServer) -> None:
    found = fetching(tmp_path, key_server, "3600s", 3600)
    assert await verifies(found, token())
    key_server.body = key_set(rotated=new_key())
    assert await verifies(found, token())  # cached for an hour
    assert found.reload("SIGHUP", refetch=True)
    assert not await verifies(found, token())
    assert key_server.fetches == 2
