"""Strict configuration: every mistake is one line naming the file and the key, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extproc import config
from extproc.cli import QUICKSTART_CONFIG

MINIMAL = {"targets": [{"name": "demo", "match": {"route": "demo"}}]}


PG = {"name": "db", "protocol": "postgres", "match": {"database": "shop"},
      "postgres": {"upstream": "127.0.0.1:5432", "user": "gateway"}}
PG_FRONT = {"postgres": {"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}}
POSTGRES_MISTAKES = [
    ({"targets": [PG]}, "postgres: needed by the postgres targets"),
    ({**PG_FRONT, "targets": [{**PG, "postgres": None}]},
     "targets[0].postgres: required for protocol 'postgres'"),
    ({**PG_FRONT, "targets": [{**PG, "match": {"route": "db"}}]},
     "targets[0].match: a postgres target is matched by 'database'"),
    ({**PG_FRONT, "targets": [{**PG, "match": {"database": "x", "route": "db"}}]},
     "targets[0].match.database: a database is matched alone"),
    ({**PG_FRONT, "targets": [{"name": "a", "match": {"database": "x"}}]},
     "targets[0].match.database: only used with protocol 'postgres'"),
    ({**PG_FRONT, "targets": [PG, {**PG, "name": "db2"}]},
     "targets: two postgres targets match the same database"),
    ({**PG_FRONT, "targets": [{**PG, "credential": {"type": "bearer", "from_env": "X"}}]},
     "targets[0].credential.type: a postgres target's credential is a password"),
    ({**PG_FRONT, "targets": [{"name": "a", "match": {"route": "a"},
                               "credential": {"type": "password", "from_env": "X"}}]},
     "targets[0].credential.type: password is for postgres and mysql targets"),
    ({**PG_FRONT, "targets": [{**PG, "postgres": {"upstream": "db", "user": "g"}}]},
     "targets[0].postgres.upstream: expected HOST:PORT"),
    ({**PG_FRONT, "targets": [{**PG, "postgres": {"upstream": "db:5432", "user": "g",
                                                  "sslmode": "verify-full"}}]},
     "targets[0].postgres.ca_file: needed for sslmode verify-full"),
    ({**PG_FRONT, "targets": [{**PG, "postgres": {"upstream": "db:5432", "user": "g",
                                                  "sslmode": "disable",
                                                  "channel_binding": "require"}}]},
     "targets[0].postgres.channel_binding: require needs TLS"),
    ({"postgres": {"tls_cert_file": "c.pem"}, "targets": [PG]},
     "postgres.tls_key_file: give both tls_cert_file and tls_key_file"),
    ({"postgres": {"max_message_bytes": 10}, "targets": [PG]},
     "postgres.max_message_bytes: must be >= 1024"),
]


def test_a_postgres_target_takes_its_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {**PG_FRONT, "targets": [PG]}))
    settings = loaded.targets[0].postgres
    assert settings is not None
    assert (settings.sslmode, settings.channel_binding, settings.plaintext_token) == (
        "prefer", "prefer", False)
    assert settings.address == ("127.0.0.1", 5432)
    assert loaded.postgres is not None
    assert loaded.postgres.address_of(2) == ("127.0.0.1", 10202)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_minimal_config_takes_documented_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.listen.grpc == "127.0.0.1:50051"
    assert cfg.listen.grpc_port == 50051
    assert cfg.policy.engine == "embedded"
    assert cfg.policy.query == "data.tollgate.decision"
    assert cfg.telemetry.otlp_endpoint is None
    (target,) = cfg.targets
    assert (target.protocol, target.fail_mode, target.environment) == ("http", "closed", "dev")
    assert target.inspect.request_body is True and target.inspect.response == "body"
    assert cfg.policy_dir == (tmp_path / "policies").resolve()
    assert cfg.recording.identity_bytes_per_hour == 1 << 30  # 1 GiB an hour


def test_workers_default_to_one_per_core_this_process_may_use(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.listen.workers == "auto"
    assert cfg.listen.worker_count == len(os.sched_getaffinity(0))
    explicit = config.load(write(tmp_path, {**MINIMAL, "listen": {
        "grpc": "0.0.0.0:7000", "workers": 3}}))
    assert explicit.listen.worker_count == 3
    assert explicit.listen.worker_ports == [7000, 7001, 7002]


def test_a_worker_s_config_has_its_port_and_its_chain(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, {**MINIMAL, "listen": {
        "grpc": "0.0.0.0:7000", "workers": 3, "admin": "127.0.0.1:8081"},
        "recording": {"writer_id": "edge"}}))
    worker = cfg.of_worker(2)
    assert (worker.listen.grpc, worker.listen.workers) == ("0.0.0.0:7002", 1)
    assert worker.recording.writer_id == "edge-w2"
    # Approvers are sent to the admin API wherever the request was held (worker 0's).
    assert worker.approvals_url == cfg.approvals_url == "http://127.0.0.1:8081"
    assert config.load(write(tmp_path, MINIMAL)).of_worker(1).recording.writer_id is None


def test_the_record_byte_budget_can_be_turned_off(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, {**MINIMAL,
                                       "recording": {"identity_bytes_per_hour": None}}))
    assert cfg.recording.identity_bytes_per_hour is None


def test_the_oauth_resource_s_gateway_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {**MINIMAL, "identity": {"oauth_resource": {
        "gateway_url": "http://127.0.0.1:10000/",
        "authorization_servers": ["https://login.example.com/realms/agents"]}}}))
    assert loaded.identity.oauth_resource == config.OAuthResource(
        "http://127.0.0.1:10000", ("https://login.example.com/realms/agents",))


def test_quickstart_config_loads_and_points_at_the_policy_pack() -> None:
    cfg = config.load(QUICKSTART_CONFIG)
    assert cfg.policy_dir == (Path(__file__).parent.parent / "policies").resolve()
    assert [(t.name, t.protocol) for t in cfg.targets] == [
        ("llm", "llm"), ("demo", "sql-http"), ("tools", "mcp"), ("demo-db", "postgres"),
        ("demo-mysql", "mysql"), ("demo-host", "ssh"), ("egress", "egress")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({**MINIMAL, "polcy": {}}, "polcy: unknown key"),
        ({**MINIMAL, "sessions": {"moderators": []}},
         "sessions.moderators: name at least one group:NAME or user:SUB"),
        ({**MINIMAL, "sessions": {"viewers": ["security"]}},
         "sessions.viewers: expected group:NAME or user:SUB, got 'security'"),
        ({**MINIMAL, "policy": {"engin": "embedded"}}, "policy.engin: unknown key"),
        ({**MINIMAL, "policy": {"engine": "regopy"}}, "policy.engine: expected one of 'embedded'"),
        ({**MINIMAL, "listen": {"grpc": "50051"}}, "listen.grpc: expected HOST:PORT"),
        ({**MINIMAL, "listen": {"admin": "8081"}}, "listen.admin: expected HOST:PORT"),
        ({**MINIMAL, "postgres": {"listen": "10200"}}, "postgres.listen: expected HOST:PORT"),
        ({**MINIMAL, "ssh": {"listen": "10300"}}, "ssh.listen: expected HOST:PORT"),
        ({**MINIMAL, "listen": {"drain_seconds": "ten"}},
         "listen.drain_seconds: expected a number"),
        ({**MINIMAL, "listen": {"workers": 0}}, "listen.workers: must be >= 1, or auto"),
        ({**MINIMAL, "listen": {"workers": "all"}},
         "listen.workers: expected an integer or one of 'auto', got 'all'"),
        ({**MINIMAL, "listen": {"workers": True}}, "listen.workers: expected an integer or"),
        ({**MINIMAL, "listen": {"grpc": "127.0.0.1:65535", "workers": 2}},
         "listen.workers: 2 workers from port 65535 run past port 65535"),
        ({**MINIMAL, "listen": {"workers": 10}, "recording": {"writer_id": "w" * 62}},
         "recording.writer_id: with 10 workers (listen.workers), each writes as "
         f"{'w' * 62}-w<worker>: at most 64 characters"),
        ({"targets": [{"name": "a"}]}, "targets[0].match: required key is missing"),
        ({"targets": [{"name": "a", "match": {}}]}, "targets[0].match: needs 'route' or 'cluster'"),
        *POSTGRES_MISTAKES,
        ({"targets": [{"name": "a", "match": {"route": "a"}, "fail_mode": "opn"}]},
         "targets[0].fail_mode: expected one of 'closed', 'open', got 'opn'"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "inspect": {"response": "all"}}]},
         "targets[0].inspect.response: expected one of"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "labels": {"x": 1}}]},
         "targets[0].labels.x: expected a string"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "inspect": {"request_body": "yes"}}]},
         "targets[0].inspect.request_body: expected true or false"),
        ({"targets": [{"name": "a", "match": {"route": "a"}},
                      {"name": "a", "match": {"route": "b"}}]},
         "targets: target name 'a' is used twice"),
        ({"targets": []}, "targets: at least one target"),
        ({}, "targets: required key is missing"),
        ({**MINIMAL, "policy": {"query": "tollgate.decision"}},
         "policy.query: must be a rule path like data.pkg.rule"),
        ({**MINIMAL, "policy": {"query": "data.tollgate[0]"}}, "policy.query: must be a rule path"),
        ({**MINIMAL, "policy": {"engine": "opa"}}, "policy.url: required when engine is 'opa'"),
        ({**MINIMAL, "policy": {"engine": "opa", "url": "127.0.0.1:8181"}},
         "policy.url: expected http(s)://HOST[:PORT]"),
        ({**MINIMAL, "policy": {"engine": "opa", "url": "http://opa:8181/v1/data"}},
         "policy.url: expected http(s)://HOST[:PORT]"),
        ({**MINIMAL, "policy": {"url": "http://opa:8181"}},
         "policy.url: only used with engine 'opa'"),
        ({**MINIMAL, "policy": {"engine": "opa", "url": "http://opa", "timeout_seconds": 0}},
         "policy.timeout_seconds: must be > 0"),
        ({**MINIMAL, "policy": {"watch_seconds": -1}}, "policy.watch_seconds: must be >= 0"),
        ({**MINIMAL, "recording": {"session_idle_minutes": 0}},
         "recording.session_idle_minutes: must be > 0"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql"}]},
         "targets[0].protocol: expected one of 'http', 'sql-http', 'k8s', 'llm', 'mcp', "
         "'postgres', 'mysql', 'egress', 'ssh', got 'sql'"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "sql": {"dialect": "sqlite"}}]},
         "targets[0].sql: only used with protocol 'sql-http'"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "mcp": {}}]},
         "targets[0].mcp: only used with protocol 'mcp'"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "mcp",
                       "mcp": {"shell_tools": ["run"], "sql_tools": ["run"]}}]},
         "targets[0].mcp.sql_tools: run also in shell_tools"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "mcp",
                       "mcp": {"pin_approvers": []}}]},
         "targets[0].mcp.pin_approvers: is empty"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "mcp",
                       "inspect": {"response": "headers"}}]},
         "targets[0].inspect.response: an mcp target's answers are read"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "llm",
                       "k8s": {"namespace_labels": {}}}]},
         "targets[0].k8s: only used with protocol 'k8s'"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"dialect": "postgresql"}}]},
         "targets[0].sql.dialect: unknown SQL dialect 'postgresql' (known: postgres, "),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"json_field": None, "query_param": None}}]},
         "targets[0].sql: names nowhere to find SQL"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"max_bytes": 0}}]},
         "targets[0].sql.max_bytes: must be > 0"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"max_statements": 0}}]},
         "targets[0].sql.max_statements: must be > 0"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"paths": "/sql"}}]},
         "targets[0].sql.paths: expected a list, got str"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"paths": []}}]},
         "targets[0].sql.paths: is empty: list the paths where the upstream runs SQL"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"paths": ["/db/-/query", "db/-/execute-write"]}}]},
         "targets[0].sql.paths: 'db/-/execute-write' is not a path: it must start with /"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "sql-http",
                       "sql": {"paths": ["/db/../-/query"]}}]},
         "targets[0].sql.paths: '/db/../-/query' holds a % escape, a backslash or an empty"),
        ({"targets": [{"name": "a", "match": {"route": "a"}, "protocol": "k8s",
                       "k8s": {"namespace_labels": {"prod": {"env": 1}}}}]},
         "targets[0].k8s.namespace_labels.prod.env: expected a string"),
        ({"targets": [{"name": "a", "match": {"database": "a"}, "protocol": "postgres",
                       "postgres": {"upstream": "127.0.0.1:5432", "user": "gateway",
                                    "lock_idle_seconds": -1}}]},
         "targets[0].postgres.lock_idle_seconds: must be >= 0 (0: no shorter bound)"),
        ({"targets": [{"name": "a", "match": {"database": "a"}, "protocol": "mysql",
                       "mysql": {"upstream": "127.0.0.1:3306", "user": "gateway",
                                 "roles": ["agent"], "catalog_role": "agent"}}]},
         "targets[0].mysql.catalog_role: 'agent' is a role sessions run as: the catalog's "
         "may write triggers, and must be the gateway's alone"),
        ({**MINIMAL, "recording": {"identity_bytes_per_hour": 0}},
         "recording.identity_bytes_per_hour: must be > 0, or null for no budget"),
        ({**MINIMAL, "recording": {"identity_bytes_per_hour": "1GiB"}},
         "recording.identity_bytes_per_hour: expected an integer"),
        ({**MINIMAL, "identity": {"oauth_resource": {"gateway_url": "https://gw.example"}}},
         "identity.oauth_resource.authorization_servers: required key is missing"),
        ({**MINIMAL, "identity": {"oauth_resource": {
            "gateway_url": "https://gw.example", "authorization_servers": []}}},
         "identity.oauth_resource.authorization_servers: name at least one"),
        ({**MINIMAL, "identity": {"oauth_resource": {
            "gateway_url": "http://gw.example", "authorization_servers": ["https://a"]}}},
         "identity.oauth_resource.gateway_url: expected the gateway's URL as MCP clients "
         "use it as https://HOST[:PORT] (http only on localhost"),
        ({**MINIMAL, "identity": {"oauth_resource": {
            "gateway_url": "https://gw.example/mcp", "authorization_servers": ["https://a"]}}},
         "identity.oauth_resource.gateway_url: expected the gateway's URL"),
        ({**MINIMAL, "identity": {"oauth_resource": {
            "gateway_url": "https://gw.example", "authorization_servers": ["login.example"]}}},
         "identity.oauth_resource.authorization_servers[0]: expected an issuer as "
         "https://HOST[:PORT][/PATH]"),
        ({**MINIMAL, "identity": {"oauth_resource": {
            "gateway_url": "https://gw.example", "authorization_servers": ["https://a"],
            "scopes": ["mcp tools"]}}},
         "identity.oauth_resource.scopes[0]: expected an OAuth scope"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, data: dict, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("targets: [\n  - {name: a", "line 2"), ("- a\n- b\n", "top level must be a mapping")],
)
def test_unreadable_yaml_is_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(config.ConfigError, match=expected):
        config.load(write(tmp_path, text))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"tollgate: {tmp_path / 'nope.yaml'}: no such file"


@pytest.mark.slow
def test_cli_bad_key_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "telemetry": {"otlp": "x"}})
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"{path}: telemetry.otlp: unknown key" in result.stderr


@pytest.mark.slow
def test_cli_policy_syntax_error_refuses_to_start_naming_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bad.rego").write_text("package tollgate\n\ndecision := {\n")
    result = run_cli("serve", "--config", str(write(tmp_path, MINIMAL)))
    assert result.returncode == 2
    assert "bad.rego:4" in result.stderr or "bad.rego:3" in result.stderr
    assert "Stack backtrace" not in result.stderr


@pytest.mark.slow
def test_cli_missing_policy_dir_refuses_to_start(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(write(tmp_path, MINIMAL)))
    assert result.returncode == 2
    assert "policy directory" in result.stderr and "does not exist" in result.stderr


def test_protocol_settings_take_their_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, {"targets": [
        {"name": "db", "match": {"route": "db"}, "protocol": "sql-http"},
        {"name": "k8s", "match": {"route": "k8s"}, "protocol": "k8s"},
        {"name": "web", "match": {"route": "web"}},
    ]}))
    db, k8s, web = cfg.targets
    assert db.sql == config.Sql(dialect="postgres", json_field="sql", query_param="sql",
                                raw_body=False, max_bytes=128 * 1024, max_statements=200)
    assert k8s.k8s == config.K8s(namespace_labels={})
    assert (web.sql, web.k8s, db.k8s) == (None, None, None)


def test_sql_paths_are_a_tuple_of_patterns(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, {"targets": [
        {"name": "db", "match": {"route": "db"}, "protocol": "sql-http",
         "sql": {"paths": ["/db/*/-/query*", "/db/*/-/execute-write"]}},
    ]}))
    assert cfg.targets[0].sql.paths == ("/db/*/-/query*", "/db/*/-/execute-write")
    assert config.load(QUICKSTART_CONFIG).targets[1].sql.paths == ("/sql",)
