"""Policies reload on SIGHUP and on file change; a broken version never replaces a working one."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import pytest

from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.reload import PolicyReloader
from extproc.policy.sources import read_modules
from extproc.quickstart import stack
from tests.support.gateway import GatewayFactory
from tests.support.waiting import until

QUERY = "data.tollgate.decision"
ALLOW = 'package tollgate\nimport rego.v1\ndecision := {"action": "allow"}\n'
DENY = (
    'package tollgate\nimport rego.v1\n'
    'decision := {"action": "deny", "reasons": ["closed"], "rules": ["t.closed"]}\n'
)
BROKEN = 'package tollgate\nimport rego.v1\ndecision := {"action": \n'
INPUT = json.dumps({"phase": "request", "request": {"method": "GET", "path": "/"}})


def policy_dir(tmp_path: Path, source: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "policy.rego").write_text(source)
    return directory


async def test_reload_swaps_in_a_new_version(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, ALLOW)
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    before = engine.revision
    (directory / "policy.rego").write_text(DENY)
    assert await PolicyReloader(engine, directory, 0).reload("test")
    assert engine.revision != before
    assert engine.decide_now(INPUT).rules == ("t.closed",)


@pytest.mark.parametrize(
    "breakage", ["syntax error", "file removed", "directory removed"],
)
async def test_broken_version_keeps_the_old_one_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, breakage: str
) -> None:
    directory = policy_dir(tmp_path, DENY)
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    before = engine.revision
    if breakage == "syntax error":
        (directory / "policy.rego").write_text(BROKEN)
    elif breakage == "file removed":
        (directory / "policy.rego").unlink()
    else:
        (directory / "policy.rego").unlink()
        directory.rmdir()
    with caplog.at_level(logging.ERROR, "tollgate.policy"):
        assert not await PolicyReloader(engine, directory, 0).reload("test")
    assert engine.revision == before
    assert engine.decide_now(INPUT).rules == ("t.closed",)
    assert f"still serving revision {before}" in caplog.text


async def test_watcher_reloads_when_files_change_and_on_request(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, ALLOW)
    engine = EmbeddedEngine(read_modules(directory), QUERY)

    reloader = PolicyReloader(engine, directory, watch_seconds=0.05)
    task = asyncio.create_task(reloader.run())
    try:
        first = engine.revision
        (directory / "policy.rego").write_text(DENY)
        await until(lambda: engine.revision != first)
        assert engine.decide_now(INPUT).action == "deny"
        # Asked for (SIGHUP) with nothing changed: it loads again, harmlessly.
        reloader.requested.set()
        await until(lambda: not reloader.requested.is_set())
        assert engine.decide_now(INPUT).action == "deny"
    finally:
        task.cancel()


def test_sighup_reloads_a_running_gateway_and_survives_a_broken_version(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    directory = policy_dir(tmp_path, ALLOW)
    gw = make_gateway(policy_dir=directory, policy={"watch_seconds": 0})
    assert gw.request("GET", "/echo").status == 200

    (directory / "policy.rego").write_text(DENY)
    gw.tollgate.signal(signal.SIGHUP)
    stack.wait_until(lambda: "policies reloaded (SIGHUP)" in gw.tollgate.tail(), 10, "reload")
    denied = gw.request("GET", "/echo")
    assert denied.status == 403 and denied.json()["rules"] == ["t.closed"]

    (directory / "policy.rego").write_text(BROKEN)
    gw.tollgate.signal(signal.SIGHUP)
    stack.wait_until(lambda: "policies not reloaded" in gw.tollgate.tail(), 10, "refusal")
    assert "policy.rego" in gw.tollgate.tail()  # the log says where it broke
    assert gw.tollgate.alive()
    still = gw.request("GET", "/echo")
    assert still.status == 403 and still.json()["rules"] == ["t.closed"]
