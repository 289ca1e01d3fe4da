"""The agent examples (examples/autogen/) run as a user runs them, against the quickstart.

The quickstart as `tollgate up` runs it (its tollgate config, its Envoy bootstrap, the
demo upstream and its scripted model, the demo MCP server) on free ports. Each example
runs in its own environment, .venv-autogen (`make test` creates it), with the real
AutoGen AgentChat and AG2 packages: the model's calls (streamed by AgentChat, whole by
AG2) and the tools' requests (HTTP, or MCP through AutoGen's McpWorkbench) all go
through Envoy and tollgate. What the agent printed is what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import yaml

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import dev_tokens, stack
from extproc.quickstart.demo_mcp import SETTINGS
from extproc.quickstart.demo_upstream import CUSTOMERS
from extproc.recording.store import Row, chain_rows
from extproc.store import connect

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "autogen"
AGENTS_PYTHON = REPO / ".venv-autogen" / "bin" / "python"
# What no agent may see: the customers' personal data (the demo upstream's, and the demo
# MCP server's database and customers.csv: the same people), and the demo MCP server's
# settings.conf keys and database password.
_SETTINGS = dict(line.split("=", 1) for line in SETTINGS.splitlines())
SECRETS = [c[field] for c in CUSTOMERS for field in ("email", "ssn", "card_number", "phone",
                                                       "password")] + [
    _SETTINGS["AWS_ACCESS_KEY_ID"], _SETTINGS["AWS_SECRET_ACCESS_KEY"],
    str(urllib.parse.urlsplit(_SETTINGS["DATABASE_URL"]).password)]


@dataclass(frozen=True)
class Quickstart:
    listener: int
    config: config.Config  # the original, whose development key signs agents' tokens
    store_url: str

    def token(self, sub: str) -> str:
        """An agent's token, as `make autogen` mints it."""
        return dev_tokens.mint(self.config, sub, ["agents"], 3600)

    def sql(self, query: str) -> dict:
        """A query through the gateway, as the agent's run_sql tool sends it."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.listener}/sql", data=json.dumps({"sql": query}).encode(),
            headers={"authorization": f"Bearer {self.token('test')}",
                     "content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def records(self, sub: str, count: int) -> list[Row]:
        """The agent's records, once there are `count` (written off the request path)."""
        found: list[Row] = []

        def written() -> bool:
            connection = connect(self.store_url)
            try:
                found[:] = [r for r in chain_rows(connection) if r.identity == sub]
            finally:
                connection.close()
            return len(found) >= count

        stack.wait_until(written, 10, f"{count} records of {sub}")
        return found


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    """extproc/quickstart/quickstart.yaml and envoy/quickstart.yaml, moved to free ports (a
    free run of them for its workers, one per core, each an endpoint of Envoy's, as
    `tollgate up` runs them, and one each for the demo upstream and MCP server); the
    record under a home of its own (the config keeps it in ~/.tollgate)."""
    work = tmp_path_factory.mktemp("quickstart")
    original = config.load(QUICKSTART_CONFIG)
    workers = original.listen.worker_count
    ports = envoy_bootstrap.Ports(stack.free_port(), stack.free_port(),
                                  stack.free_ports(workers), stack.free_port(),
                                  mcp=stack.free_port())
    data = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    data["listen"].update(grpc=f"127.0.0.1:{ports.ext_proc}",
                          admin=f"127.0.0.1:{stack.free_port()}")
    # The copy lives elsewhere: its paths, relative to the original's folder, made whole.
    data["policy"]["dir"] = str(original.policy_dir)
    for key in ("development_key", "envoy_bootstrap"):
        data["identity"][key] = str(original.resolve(Path(data["identity"][key])))
    # The agents reach HTTP targets only: no PostgreSQL, MySQL or SSH front on the
    # quickstart's ports (nor the SSH keys `tollgate up` makes).
    del data["postgres"], data["mysql"], data["ssh"]
    data["targets"] = [t for t in data["targets"]
                       if t.get("protocol") not in ("postgres", "mysql", "ssh")]
    config_path = work / "tollgate.yaml"
    config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    bootstrap = envoy_bootstrap.write(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports, workers), work / "envoy.yaml")
    processes: list[stack.Process] = []
    try:
        processes.append(stack.start_upstream(ports.upstream, work))
        processes.append(stack.start_demo_mcp(ports.mcp, work / "mcp-files", work))
        processes.append(stack.start_tollgate(config_path, ports.ext_proc, work,
                                              env={"HOME": str(work)}, workers=workers))
        processes.append(stack.start_envoy(bootstrap, ports.admin, work))
        yield Quickstart(ports.listener, original, f"sqlite:///{work}/.tollgate/quickstart.db")
    finally:
        for process in reversed(processes):
            process.stop()


def run_example(quickstart: Quickstart, script: str, token: str) -> dict[str, list[str]]:
    """Run an example as its README says; what it printed, by kind of line (`task`,
    `model calls`, `tool returns`, `model answers`, `gateway refuses`; mcp_agent.py's
    `tools listed` and `tool error` too)."""
    if not AGENTS_PYTHON.exists():
        pytest.fail(f"no {AGENTS_PYTHON}: `make test` creates it from "
                    "examples/autogen/requirements.txt")
    result = subprocess.run(
        [str(AGENTS_PYTHON), str(EXAMPLES / script)], capture_output=True, text=True,
        timeout=180, env={**os.environ, "TOKEN": token,
                          "TOLLGATE_URL": f"http://127.0.0.1:{quickstart.listener}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        kind, _, text = line.strip().partition(": ")
        lines.setdefault(kind, []).append(text)
    assert not any(secret in result.stdout for secret in SECRETS), result.stdout
    return lines


@pytest.mark.parametrize(("script", "streams"), [("agent.py", True), ("ag2_agent.py", False)])
def test_the_agent_sees_masked_data_and_the_reason_of_a_refusal(
    quickstart: Quickstart, script: str, streams: bool
) -> None:
    sub = script.removesuffix(".py")
    token = quickstart.token(sub)
    seen = run_example(quickstart, script, token)
    assert seen["task"] == [
        "Use list_customers to show me our customers.",
        "Use run_sql to run `SELECT name, email FROM customers`.",
        "Use run_sql to run `DROP TABLE customers`.",
    ]
    # Allowed: both tools ran, through the gateway, and their answers came back masked
    # (no customer's name, e-mail, SSN, card, phone or password above; their ids are there).
    assert seen["model calls"] == [
        "list_customers({})", 'run_sql({"query": "SELECT name, email FROM customers"})']
    customers, rows = (json.loads(text) for text in seen["tool returns"])
    assert [c["id"] for c in customers["customers"]] == [c["id"] for c in CUSTOMERS]
    assert {c["name"] for c in customers["customers"]} == {"[REDACTED:PERSON]"}
    assert {c["ssn"] for c in customers["customers"]} == {"[REDACTED:US_SSN]"}
    assert rows["rows"] == [["[REDACTED:PERSON]", "[REDACTED:EMAIL_ADDRESS]"]] * len(CUSTOMERS)
    first, second = seen["model answers"]
    assert first.startswith("list_customers returned: ") and CUSTOMERS[1]["id"] in first
    assert not [c["name"] for c in CUSTOMERS for said in seen.values() for text in said
                if c["name"] in text]
    assert second.startswith("run_sql returned: ")
    # Refused: the model's DROP never reached the agent, which was told why.
    (refusal,) = seen["gateway refuses"]
    assert refusal.startswith("tollgate refused: tool call run_sql: destructive SQL: DROP (trace ")
    assert quickstart.sql("SELECT count(*) FROM customers")["rows"] == [[len(CUSTOMERS)]]
    # In the record: two model calls per allowed task and the refused one, the two tool
    # requests; every model call streamed or not as the framework asked. The model's DROP
    # for an agent is an administrative action: an alert on the refused call's trace.
    records = quickstart.records(sub, 8)
    assert sorted((r.target, r.action, r.status) for r in records) == [
        ("demo", "allow", 200)] * 2 + [("llm", "alert", None)] + [("llm", "allow", 200)] * 4 \
        + [("llm", "deny", 403)]
    (denied,) = [r for r in records if r.action == "deny"]
    assert refusal.endswith(f"(trace {denied.trace_id})")
    (alert,) = [r.document() for r in records if r.action == "alert"]
    assert alert["trace_id"] == denied.trace_id
    assert alert["meaning"]["alert"]["rule"] == "activity.admin_action"
    assert {r.document()["decisions"][0]["meaning"]["llm"]["stream"]
            for r in records if r.target == "llm" and r.kind == "exchange"} == {streams}
    # The example sends the run's trace with every call, and no session: the run's
    # exchanges are one trace, the one it printed, and one session, its token's (the
    # alert is in its exchange's trace).
    assert_one_run([r for r in records if r.kind == "exchange"], token, seen)
    assert (alert["session_id"], alert["session_rule"]) == (alert["trace_id"], "trace")


def assert_one_run(records: list[Row], token: str, seen: dict[str, list[str]]) -> None:
    """The records are the run's: one trace, the one the example printed, and one
    session, grouped by the token's id (its jti)."""
    (printed,) = seen["trace"]
    trace_id = printed.split()[0]
    assert printed == f"{trace_id} (its record: tollgate audit replay {trace_id})"
    assert {r.trace_id for r in records} == {trace_id}
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    sessions = {(r.session_id, r.document()["session_rule"]) for r in records}
    assert len(sessions) == 1, sessions
    ((session, rule),) = sessions
    assert rule == "token" and session.startswith(f"token:{jti}@"), session


def test_the_mcp_agent_sees_masked_tools_and_the_refusals_of_either_side(
    quickstart: Quickstart,
) -> None:
    sub = "mcp-agent"
    token = quickstart.token(sub)
    seen = run_example(quickstart, "mcp_agent.py", token)
    # What McpWorkbench listed through the gateway: rotate_keys is for admins, hidden.
    assert seen["tools listed"] == ["read_file, run_shell, query, delete_customer"]
    assert seen["task"] == [
        "Use read_file to read `customers.csv`.",
        "Use read_file to read `settings.conf`.",
        "Use query to run `SELECT name, email FROM customers`.",
        "Use run_shell to run `rm -rf /`.",
        "Use query to find `the customers named Ada`.",
    ]
    assert seen["model calls"] == [
        'read_file({"path": "customers.csv"})', 'read_file({"path": "settings.conf"})',
        'query({"sql": "SELECT name, email FROM customers"})',
        'query({"sql": "the customers named Ada"})']
    # Allowed: the three calls ran on the MCP server, their results masked on the way back
    # (no secret above, nor a name in the file; ids, columns and the rest are there).
    csv_file, env_file, rows = seen["tool returns"]
    header, ada, *others = csv_file.split("\\n")
    assert header == "id,name,email,phone,card_number,ssn" and len(others) == len(CUSTOMERS) - 1
    assert ada == ("1001,[REDACTED:PERSON],[REDACTED:EMAIL_ADDRESS],[REDACTED:PHONE_NUMBER],"
                   "[REDACTED:CREDIT_CARD],[REDACTED:US_SSN]")
    assert {row.split(",")[1] for row in others} == {"[REDACTED:PERSON]"}
    assert env_file.split("\\n") == [
        "AWS_ACCESS_KEY_ID=[REDACTED:AWS_ACCESS_KEY_ID]",
        "AWS_SECRET_ACCESS_KEY=[REDACTED:AWS_SECRET_KEY]",
        "DATABASE_URL=postgresql://billing:[REDACTED:PASSWORD]@db.internal:5432/billing"]
    # The query tool answers its table as text (a JSON document in the result's text): read
    # as that document, by column, as a database front reads rows.
    assert json.loads(rows)["rows"] == [["[REDACTED:PERSON]", "[REDACTED:EMAIL_ADDRESS]"]
                                        for _ in CUSTOMERS]
    # Refused on the model's side: the model's rm -rf / never reached the agent.
    (refusal,) = seen["gateway refuses"]
    assert refusal.startswith(
        "tollgate refused: tool call run_shell: destructive command: rm -rf / (trace ")
    # Refused on the MCP side: the call passed the model's check (no SQL to the llm
    # target's eye) and the gateway answered the tools/call with a JSON-RPC error, which
    # McpWorkbench gave the agent as a tool result marked as an error; the model read it.
    (error,) = seen["tool error"]
    assert error.startswith("tollgate refused: tool call query: SQL that does not parse (trace ")
    assert seen["model answers"][:3] == [f"read_file returned: {csv_file}",
                                         f"read_file returned: {env_file}",
                                         f"query returned: {rows}"]
    assert seen["model answers"][3:] == [f"query returned: {error}"]
    # In the record, under the agent's subject: the model's calls (two per task whose tool
    # ran, the refused one), and on the MCP target the session's every exchange: its
    # start, the server's event stream (GET), a tools/list before each model call and each
    # tool call (AgentChat asks the workbench each time), the four tools/calls, its end.
    records = quickstart.records(sub, 27)
    llm = [r for r in records if r.target == "llm"]
    assert sorted((r.action, r.status) for r in llm) == [("allow", 200)] * 8 + [("deny", 403)]
    (denied,) = [r for r in llm if r.action == "deny"]
    assert refusal.endswith(f"(trace {denied.trace_id})")
    assert_one_run(llm, token, seen)
    tools = [r for r in records if r.target == "tools"]
    assert len(tools) == len(records) - len(llm) == 18
    documents = [r.document() for r in tools]
    assert {d["target"]["protocol"] for d in documents} == {"mcp"}
    # What the MCP interpreter read (nothing of a GET or DELETE, which carry no message).
    meanings = [(d.get("meaning") or {}).get("mcp") or {} for d in documents]
    methods = [(d["request"]["method"], m.get("method")) for d, m in zip(documents, meanings,
                                                                        strict=True)]
    assert sorted(methods, key=str) == sorted(
        [("POST", "initialize"), ("POST", "notifications/initialized"), ("GET", None),
         *[("POST", "tools/list")] * 10, *[("POST", "tools/call")] * 4, ("DELETE", None)],
        key=str)
    calls = sorted((m["tool"]["name"], r.action, r.status, r.trace_id)
                   for r, m in zip(tools, meanings, strict=True) if m.get("method") == "tools/call")
    assert [call[:3] for call in calls] == [
        ("query", "allow", 200), ("query", "deny", 200),  # a JSON-RPC error, over HTTP 200
        ("read_file", "allow", 200), ("read_file", "allow", 200)]
    assert error.endswith(f"(trace {calls[1][3]})")
    # One MCP session, initialize included (its answer named the session), in the run's
    # one trace with the model's calls.
    assert len({r.session_id for r in tools}) == 1
    assert {r.trace_id for r in tools} == {r.trace_id for r in llm}
    assert {r.document()["session_rule"] for r in tools} == {"mcp"}
