"""The opa backend against OPA's REST API, served by the stand-in (tests/standins/opa_standin.py).

No OPA binary can be installed here; the stand-in evaluates with the real OPA
engine and speaks OPA's wire format, so these tests exercise the backend's HTTP
client, its start-up checks and every way a decision can fail closed.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import config
from extproc.interpret import SqlHttp
from extproc.policy import Decision, PolicyEngine, PolicyError, PolicyLoadError, open_engine
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.opa import OpaEngine
from extproc.policy.reload import PolicyReloader
from extproc.policy.sources import read_modules
from tests.standins.opa_standin import OpaStandIn
from tests.support.gateway import POLICIES, GatewayFactory


def sql_post(text: str) -> dict[str, Any]:
    """A POST of SQL to a sql-http target, with input.sql as its interpreter reads it: the
    pack decides SQL on those statements, not on the body."""
    request = {"method": "POST", "path": "/sql", "query": {},
               "headers": {"content-type": "application/json"}, "body": {"sql": text}}
    return {
        "phase": "request", "identity": {"authenticated": False},
        "target": {"name": "t", "protocol": "sql-http", "environment": "dev", "labels": {}},
        "request": request, "response": None,
        "sql": SqlHttp(config.Sql()).request(request), "k8s": None, "llm": None,
        "approval": None,
    }


DROP = sql_post("DROP TABLE t")
SELECT = sql_post("SELECT 1")


@pytest.fixture
def opa() -> Iterator[OpaStandIn]:
    with OpaStandIn() as standin:
        yield standin


def settings(opa: OpaStandIn, policy_dir: Path = POLICIES, **policy: Any) -> config.Policy:
    """The opa backend's settings; a decision gets 5 s unless a test says otherwise (the
    default 0.5 s is for a real OPA beside the gateway, not a stand-in on a busy CI core)."""
    return config.parse({
        "policy": {"engine": "opa", "url": opa.url, "dir": str(policy_dir),
                   "timeout_seconds": 5, **policy},
        "targets": [{"name": "t", "match": {"route": "r"}}],
    }).policy


@contextlib.asynccontextmanager
async def engine_on(
    opa: OpaStandIn, policy_dir: Path = POLICIES, **policy: Any,
) -> AsyncIterator[PolicyEngine]:
    """The opa backend on the stand-in as tollgate opens it (health, upload), closed after."""
    engine = await open_engine(settings(opa, policy_dir, **policy), policy_dir)
    try:
        yield engine
    finally:
        await engine.close()


async def decide(engine: PolicyEngine, value: dict[str, Any]) -> Decision:
    return await engine.decide(json.dumps(value))


def write_policy(directory: Path, source: str, name: str = "policy.rego") -> Path:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(source)
    return directory


@pytest.mark.slow
async def test_uploads_the_policy_dir_and_decides_as_the_embedded_engine(
        opa: OpaStandIn) -> None:
    embedded = EmbeddedEngine(read_modules(POLICIES), "data.tollgate.decision")

    # Every policy file of the pack, its tests excepted, under tollgate/.
    pack = {f"tollgate/{p.name}" for p in POLICIES.glob("*.rego")
            if not p.name.endswith("_test.rego")}
    assert {"tollgate/tollgate.rego", "tollgate/sql.rego", "tollgate/identity.rego"} < pack

    async with engine_on(opa) as engine:
        assert set(opa.policies) == pack
        assert engine.revision == embedded.revision
        for value in (DROP, SELECT):
            assert await decide(engine, value) == embedded.decide_now(json.dumps(value))
        assert (await decide(engine, DROP)).rules == ("sql.destructive",)


@pytest.fixture
def allowing(tmp_path: Path) -> Path:
    """A pack of one decision: for the tests of the client, not of what OPA decides (the
    whole pack costs OPA seconds of CPU to take in; the first test here decides on it)."""
    return write_policy(tmp_path / "allowing", 'package tollgate\nimport rego.v1\n'
                        'decision := {"action": "allow", "reasons": [], "rules": []}\n')


async def test_one_connection_serves_every_decision(opa: OpaStandIn, allowing: Path) -> None:
    async with engine_on(opa, allowing) as engine:
        opa.clear_requests()
        for _ in range(5):
            await decide(engine, SELECT)
        ports = {r.client_port for r in opa.wait_for_requests(5)}
        assert len(ports) == 1, ports


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (lambda opa: opa.stop(), "unreachable"),
        (lambda opa: opa.fail(503, path_prefix="/v1/data"), "answered HTTP 503"),
        (lambda opa: opa.fail(500, path_prefix="/v1/data"), "answered HTTP 500"),
        (lambda opa: opa.delay(2.0, path_prefix="/v1/data"), "did not answer within 0.3s"),
        (lambda opa: opa.drop(path_prefix="/v1/data"), "unreachable"),
    ],
    ids=["down", "503", "500", "timeout", "connection-dropped"],
)
async def test_opa_failures_are_policy_errors(
    opa: OpaStandIn, fault: Callable[[OpaStandIn], None], reason: str, allowing: Path,
) -> None:
    async with engine_on(opa, allowing, timeout_seconds=0.3) as engine:
        fault(opa)
        with pytest.raises(PolicyError, match=reason):
            await decide(engine, SELECT)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('package tollgate\nimport rego.v1\ndecision := {"action": "allow"} if input.nothing\n',
         "undefined for this input"),
        ('package tollgate\nimport rego.v1\ndecision := {"action": "perhaps"}\n',
         "malformed decision"),
        ('package tollgate\nimport rego.v1\ndecision := {"action": "allow"} if 1 / 0\n',
         "answered HTTP 500"),
    ],
    ids=["undefined", "malformed", "evaluation-error"],
)
async def test_bad_results_are_policy_errors(
    opa: OpaStandIn, tmp_path: Path, source: str, reason: str
) -> None:
    async with engine_on(opa, write_policy(tmp_path / "p", source)) as engine:
        with pytest.raises(PolicyError, match=reason):
            await decide(engine, SELECT)


async def test_refuses_to_start_when_opa_is_down(opa: OpaStandIn) -> None:
    opa.stop()
    with pytest.raises(PolicyLoadError, match="is not healthy"):
        async with engine_on(opa):
            pass


async def test_refuses_to_start_when_opa_is_unhealthy(opa: OpaStandIn) -> None:
    opa.fail(500, path_prefix="/health")
    with pytest.raises(PolicyLoadError, match="is not healthy"):
        async with engine_on(opa):
            pass


async def test_refuses_to_start_without_the_querys_package(
        opa: OpaStandIn, tmp_path: Path) -> None:
    opa.put_policy("other", "package other\nimport rego.v1\nx := 1\n")
    with pytest.raises(
        PolicyLoadError, match=r"no policy in package data\.tollgate \(it has: data\.other\)"
    ):
        async with engine_on(opa, upload=False):
            pass


@pytest.mark.slow
async def test_without_upload_it_uses_what_opa_holds(tmp_path: Path) -> None:
    with OpaStandIn(POLICIES) as opa:
        before = dict(opa.policies)

        async with engine_on(opa, tmp_path / "not-read", upload=False) as engine:
            assert (await decide(engine, DROP)).rules == ("sql.destructive",)
            assert (await decide(engine, SELECT)).action == "allow"
            assert len(engine.revision) == 12
        assert opa.policies == before
        assert not [r for r in opa.requests if r.method == "PUT"]


async def test_a_policy_opa_refuses_is_named_with_file_and_line(
        opa: OpaStandIn, tmp_path: Path) -> None:
    broken = write_policy(tmp_path / "p", "package tollgate\n\ndecision := {\n")
    with pytest.raises(PolicyLoadError, match=r"refused policy tollgate/policy.rego: .*:\d+"):
        async with engine_on(opa, broken):
            pass


async def test_reload_keeps_the_old_version_in_opa_when_the_new_one_breaks(
    opa: OpaStandIn, tmp_path: Path
) -> None:
    directory = write_policy(tmp_path / "p", 'package tollgate\nimport rego.v1\n'
                             'decision := {"action": "deny", "rules": ["v1"]}\n')
    write_policy(directory, "package tollgate\nimport rego.v1\nhelper := 1\n", "a_helper.rego")

    async with engine_on(opa, directory) as engine:
        reloader = PolicyReloader(engine, directory, 0)
        first = dict(opa.policies)
        # A new helper file that uploads fine, then a broken decision file: both roll back.
        (directory / "a_helper.rego").write_text("package tollgate\nimport rego.v1\nhelper := 2\n")
        (directory / "policy.rego").write_text("package tollgate\ndecision := {\n")
        assert not await reloader.reload("test")
        assert opa.policies == first
        assert (await decide(engine, SELECT)).rules == ("v1",)
        # A good version goes in; a file removed from the directory leaves OPA too.
        (directory / "policy.rego").write_text(
            'package tollgate\nimport rego.v1\ndecision := {"action": "deny", "rules": ["v2"]}\n'
        )
        (directory / "a_helper.rego").unlink()
        assert await reloader.reload("test")
        assert set(opa.policies) == {"tollgate/policy.rego"}
        assert (await decide(engine, SELECT)).rules == ("v2",)


@pytest.mark.slow
def test_serve_refuses_to_start_when_opa_is_down(opa: OpaStandIn, tmp_path: Path) -> None:
    opa.stop()
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump({
        "policy": {"engine": "opa", "url": opa.url, "dir": str(POLICIES)},
        "targets": [{"name": "t", "match": {"route": "r"}}],
    }))
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"tollgate: OPA at {opa.url} is not healthy (GET /health)"


def test_gateway_with_opa_engine_end_to_end(opa: OpaStandIn, make_gateway: GatewayFactory) -> None:
    # The stand-in's HTTP is Python's: on a busy machine the default 0.5 s passed and the
    # first decision failed closed. Still below Envoy's 2 s message_timeout.
    gw = make_gateway(policy={"engine": "opa", "url": opa.url, "timeout_seconds": 1.5})
    assert gw.request("POST", "/sql", {"sql": "SELECT 1"}).status == 200
    denied = gw.request("POST", "/sql", {"sql": "DROP TABLE customers"})
    assert denied.status == 403 and denied.json()["rules"] == ["sql.destructive"]
    assert "opa engine" in gw.tollgate.tail()

    # OPA goes away: every request is refused, none reaches the upstream.
    before = len(gw.upstream.requests)
    opa.stop()
    refused = gw.request("POST", "/sql", {"sql": "SELECT 1"})
    assert refused.status == 403 and refused.json()["reasons"] == ["policy error"]
    assert len(gw.upstream.requests) == before
    span = gw.otlp.spans_of(refused.trace_id)[0]
    assert "unreachable" in span.attributes["tollgate.policy.error"]


async def test_a_smoke_input_waits_for_a_slow_opa_that_a_request_would_not(
        opa: OpaStandIn, allowing: Path) -> None:
    """A start's or reload's check is not a request: OPA answering in 1 s on a busy
    machine vets the revision, where a request's 0.3 s deadline refuses."""
    async with engine_on(opa, allowing, timeout_seconds=0.3) as engine:
        opa.delay(1.0, path_prefix="/v1/data")
        with pytest.raises(PolicyError, match=r"did not answer within 0\.3s"):
            await decide(engine, SELECT)
        assert isinstance(engine, OpaEngine)
        decision = await engine.vetting(json.dumps(SELECT))
        assert decision.action == "allow"
