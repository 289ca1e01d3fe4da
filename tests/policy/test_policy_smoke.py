"""A revision that compiles but fails at evaluation never serves: at reload the old one
keeps serving, the cause is logged (ERROR, with the input and the rule), the failure
counted and an alert of tollgate's own raised and recorded; at start tollgate refuses
it. Real parts: regorus (the embedded engine), the store, the alerts, a webhook."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from extproc import config
from extproc.exchange.alerts import OWN, Alerts
from extproc.policy import smoke
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.reload import RELOAD_FAILED, PolicyReloader, vetted_start
from extproc.policy.smoke import SmokeFailed, smoke_inputs
from extproc.policy.sources import read_modules
from extproc.recording import Evidence
from extproc.store.aio import AsyncStore
from tests.policy.test_policy_reload import DENY, INPUT, QUERY, policy_dir
from tests.support.fakes import MemoryRecorder
from tests.support.gateway import POLICIES
from tests.support.http_server import LocalServer
from tests.support.waiting import until

HEAD = "package tollgate\nimport rego.v1\n"
# Each class of revision that compiles and then refuses everything, and what its
# refusal's log line says of it.
BROKEN = {
    "conflicting complete rule": (
        HEAD + 'decision := {"action": "allow"}\n'
        'decision := {"action": "deny"} if input.phase == "request"\n',
        "in rule data.tollgate.decision: {file}:4:1: rule conflicts with rule at {file}:3:1"),
    "action permit": (
        HEAD + 'decision := {"action": "permit"}\n',
        "malformed decision: action must be one of allow, deny, hold, got 'permit'"),
    "undefined decision": (
        HEAD + 'decision := {"action": "allow"} if input.phase == "approval"\n',
        "the decision is undefined on every smoke input"),
    "to_number of a word": (
        HEAD + 'limit := to_number("ten")\n'
        'decision := {"action": "allow"} if limit > 1\n',
        "in rule data.tollgate.limit: {file}:3:21: could not parse string as number"),
    "division by zero": (
        HEAD + "zero := count(input.phase) - count(input.phase)\n"
        "share := 100 / zero\n"
        'decision := {"action": "allow", "reasons": [sprintf("%v", [share])]}\n',
        "in rule data.tollgate.share: {file}:4:14: divide by zero"),
}


def reload_failures() -> float:
    return REGISTRY.get_sample_value("tollgate_policy_reload_failures_total") or 0.0



@pytest.fixture
async def alerts(store: AsyncStore) -> AsyncIterator[tuple[Alerts, MemoryRecorder]]:
    recorder = MemoryRecorder()
    alerts = Alerts(config.Alerts(), None, store, recorder, None)
    yield alerts, recorder
    await alerts.close()


def recorded_alerts(recorder: MemoryRecorder) -> list[Evidence]:
    return [e for e in recorder.submitted if e.kind == "alert"]


@pytest.mark.parametrize("breakage", list(BROKEN))
async def test_a_revision_failing_at_evaluation_keeps_the_old_one_serving(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, breakage: str,
        alerts: tuple[Alerts, MemoryRecorder]) -> None:
    raiser, recorder = alerts
    directory = policy_dir(tmp_path, DENY)
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    before, failures = engine.revision, reload_failures()
    reloader = PolicyReloader(
        engine, directory, 0,
        failed=lambda message, cause: raiser.raise_own(RELOAD_FAILED, "critical", message,
                                                       key=cause))
    source, cause = BROKEN[breakage]
    (directory / "policy.rego").write_text(source)
    cause = cause.format(file=directory / "policy.rego")

    with caplog.at_level(logging.ERROR, "tollgate.policy"):
        assert not await reloader.reload("SIGHUP")

    assert engine.revision == before
    assert engine.decide_now(INPUT).rules == ("t.closed",)
    (logged,) = [r for r in caplog.records if r.name == "tollgate.policy"]
    assert logged.levelno == logging.ERROR
    assert f"still serving revision {before}" in logged.getMessage()
    assert cause in logged.getMessage()
    if breakage != "undefined decision":  # which input it failed on
        assert f"smoke input {smoke_inputs()[0][0]!r}" in logged.getMessage()
    assert reload_failures() == failures + 1
    (alert,) = await until(lambda: recorded_alerts(recorder))
    found = alert.meaning
    assert (found["rule"], found["severity"], found["identity"], found["target"]) == (
        RELOAD_FAILED, "critical", OWN, None)
    assert cause in found["message"] and alert.trace_id == found["trace_ids"][0]
    assert alert.outcome == {"tollgate.decision.action": "alert"}


async def test_a_revision_whose_rego_tests_fail_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = policy_dir(tmp_path, DENY)
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    before = engine.revision
    (directory / "policy.rego").write_text(HEAD + 'decision := {"action": "allow"}\n')
    (directory / "policy_test.rego").write_text(
        "package tollgate_test\nimport rego.v1\n"
        'test_everything_is_refused if data.tollgate.decision.action == "deny"\n')
    with caplog.at_level(logging.ERROR, "tollgate.policy"):
        assert not await PolicyReloader(engine, directory, 0).reload("files changed")
    assert engine.revision == before
    assert ("1 of its 1 Rego tests fail: data.tollgate_test.test_everything_is_refused "
            f"({directory / 'policy_test.rego'}:3) FAIL: undefined") in caplog.text


async def test_a_decision_undefined_on_some_inputs_only_serves(tmp_path: Path) -> None:
    """A pack that decides only some fronts refuses the others one by one (each a
    policy error at its exchange): not a broken revision."""
    directory = policy_dir(tmp_path, DENY)
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    (directory / "policy.rego").write_text(
        HEAD + 'decision := {"action": "allow"} if input.target.protocol == "ssh"\n')
    assert await PolicyReloader(engine, directory, 0).reload("SIGHUP")


@pytest.mark.parametrize("breakage", ["action permit", "to_number of a word"])
async def test_at_start_a_pack_failing_its_smoke_set_is_not_served(
        tmp_path: Path, breakage: str) -> None:
    directory = policy_dir(tmp_path, BROKEN[breakage][0])
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    with pytest.raises(SmokeFailed) as refused:
        await vetted_start(engine, directory)
    assert str(refused.value).startswith(
        f"the policies of {directory} (revision {engine.revision}) fail their smoke set, "
        "so tollgate does not serve them: smoke input ")
    assert BROKEN[breakage][1].format(file=directory / "policy.rego") in str(refused.value)


@pytest.mark.slow
async def test_the_default_pack_passes_its_smoke_set() -> None:
    engine = EmbeddedEngine(read_modules(POLICIES), QUERY)
    checked = await vetted_start(engine, POLICIES)
    assert checked.startswith("smoke set passed: ")
    assert f"{len(smoke_inputs())} representative inputs" in checked
    protocols = {value.split('"protocol":"', 1)[1].split('"', 1)[0]
                 for _, value in smoke_inputs()}
    assert protocols >= {"http", "sql-http", "llm", "mcp", "postgres", "mysql", "ssh", "k8s",
                         "egress"}


async def test_an_alert_of_tollgates_own_is_recorded_sent_and_deduplicated(
        store: AsyncStore) -> None:
    hook = LocalServer(lambda *_: (200, b"ok"), "/hooks/alerts")
    recorder = MemoryRecorder()
    raiser = Alerts(config.Alerts(), hook.url, store, recorder, None)
    try:
        await raiser.raise_own(RELOAD_FAILED, "critical", "revision b refused", key="b")
        await raiser.raise_own(RELOAD_FAILED, "critical", "revision b refused", key="b")
        await raiser.raise_own(RELOAD_FAILED, "critical", "revision c refused", key="c")
        await until(lambda: len(hook.received) == 2)
        first, second = sorted(recorded_alerts(recorder), key=lambda e: e.meaning["key"])
        assert [e.meaning["key"] for e in (first, second)] == ["b", "c"]
        assert first.trace_id != second.trace_id and first.identity is None
        assert b"tollgate alert [critical] tollgate.policy_reload_failed: revision b" \
            in b"".join(r.body for r in hook.received)
    finally:
        await raiser.close()
        hook.stop()


async def test_rego_tests_passed_once_are_remembered_by_the_files_bytes(
        tmp_path: Path) -> None:
    """An unchanged pack is not tested again at the next start (each worker, each
    restart); a byte changed, a test failing is seen again."""
    pack = tmp_path / "policies"
    pack.mkdir()
    (pack / "p.rego").write_text("package tollgate\nimport rego.v1\nx := 1\n")
    (pack / "p_test.rego").write_text("package tollgate\nimport rego.v1\n"
                                      "test_x if { x == 1 }\n")
    assert await smoke.tests_pass(pack) == 1
    assert any((Path(os.environ["TOLLGATE_CACHE"]) / "policy-tests").iterdir())
    assert await smoke.tests_pass(pack) == 1  # remembered
    (pack / "p.rego").write_text("package tollgate\nimport rego.v1\nx := 2\n")
    with pytest.raises(SmokeFailed, match="1 of its 1 Rego tests fail"):
        await smoke.tests_pass(pack)
