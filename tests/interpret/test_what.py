"""One line per exchange saying what it does (extproc/interpret/what.py), read from each
protocol's own reading: what an approver, a triager or an auditor is shown instead of
the request line that only names the door (`EXEC /acc-host`, `GET /demo.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from extproc.codecs.message import decode_request_body, request_view
from extproc.config import Match, Sql, SshTarget, Target
from extproc.interpret import SqlHttp, WireSql
from extproc.interpret.k8s import k8s_request
from extproc.interpret.llm import chat_request
from extproc.interpret.mcp import read_request
from extproc.interpret.ssh import Ssh
from extproc.interpret.what import WHAT_CHARS, what_of

ACC_HOST = Target(name="acc-host", match=Match(login="acc-host"), protocol="ssh",
                  ssh=SshTarget(upstream="10.0.0.5:22", user="ops", key_file=Path("k"),
                                host_key="ssh-ed25519 A"))


def line(method: str, target: str) -> dict[str, Any]:
    url = urlsplit(target)
    return {"method": method, "path": url.path, "query": parse_qs(url.query)}


def ssh(kind: str, **body: Any) -> str:
    request = {"method": kind.upper(), "path": "/acc-host", "query": {}, "headers": {},
               "body": {"request": kind, **body}}
    return what_of(request, "ssh", Ssh(ACC_HOST).request(request))  # type: ignore[arg-type]


def test_a_statement_sent_in_a_query_parameter_is_the_statement() -> None:
    headers = {":method": "GET", ":path": "/demo.json?sql=DROP+TABLE+customers"}
    request = request_view(headers, ())
    meaning = SqlHttp(Sql(query_param="sql", json_field=None)).request(request)
    assert what_of(request, "sql", meaning) == "DROP TABLE customers"


def test_a_statement_in_a_json_body_is_the_statement_every_one_once() -> None:
    headers = {":method": "POST", ":path": "/sql", "content-type": "application/json"}
    request = request_view(headers, ())
    request["body"] = decode_request_body(
        headers, b'{"sql": "SELECT 1;\\n  DELETE   FROM t;SELECT 1"}')
    meaning = SqlHttp(Sql()).request(request)
    assert what_of(request, "sql", meaning) == "SELECT 1; DELETE FROM t"


def test_sql_the_reader_cannot_read_says_so() -> None:
    meaning = WireSql(Sql()).request(
        {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
         "body": "SELEC * FRM t"})
    assert what_of({"method": "QUERY", "path": "/shop"}, "sql", meaning).startswith(
        "SQL the gateway cannot read (")


def test_ssh_says_the_command_and_where_not_exec_and_a_path() -> None:
    assert ssh("exec", command="sudo systemctl restart nginx") == (
        "run on ops@acc-host: sudo systemctl restart nginx")
    assert ssh("line", command="rm -rf /var/log/app") == (
        "typed on ops@acc-host: rm -rf /var/log/app")
    assert ssh("shell", pty=True) == "interactive shell on ops@acc-host"
    assert ssh("sftp", sftp={"operation": "rename", "path": "/etc/a", "target_path": "/tmp/b"}) \
        == "SFTP rename /etc/a to /tmp/b on ops@acc-host"


@pytest.mark.parametrize(("method", "target", "headers", "expected"), [
    ("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web", {},
     "delete deployments/web in prod"),
    ("DELETE", "/apis/apps/v1/namespaces/prod/deployments", {},
     "deletecollection deployments in prod"),
    ("POST", "/api/v1/namespaces/prod/pods/web-0/exec?command=cat&command=%2Fetc%2Fapp%2Fsecret.env"
     "&stdout=true", {}, "exec pods/web-0 in prod: cat /etc/app/secret.env"),
])
def test_kubernetes_says_the_verb_the_object_and_what_an_exec_runs(
        method: str, target: str, headers: dict[str, str], expected: str) -> None:
    url = urlsplit(target)
    meaning = k8s_request(method, url.path, parse_qs(url.query), headers)
    assert what_of(line(method, target), "k8s", meaning) == expected


def test_a_line_typed_in_a_pod_and_a_file_copied_are_said() -> None:
    url = "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&stdin=true&tty=true"
    meaning = k8s_request("POST", urlsplit(url).path, parse_qs(urlsplit(url).query), {})
    assert meaning["exec"] is not None
    typed = {**meaning, "exec": {**meaning["exec"], "line": "cat /etc/shadow"}}
    assert what_of(line("LINE", url), "k8s", typed).endswith(": typed cat /etc/shadow")
    copied = {**meaning, "exec": {**meaning["exec"], "file": {
        "path": "/data/x.csv", "direction": "download", "type": "file", "size": 3,
        "link": None, "target": None}}}
    assert what_of(line("FILE", url), "k8s", copied).endswith(
        ": kubectl cp download of /data/x.csv")


def test_mcp_says_the_tool_and_its_arguments_and_plumbing_by_its_method() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "delete_customer", "arguments": {"id": 7}}}
    assert what_of(line("POST", "/mcp"), "mcp", read_request("POST", {}, {}, call)) == (
        'MCP tool call delete_customer({"id":7})')
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read",
            "params": {"uri": "file:///notes.txt"}}
    assert what_of(line("POST", "/mcp"), "mcp", read_request("POST", {}, {}, read)) == (
        "MCP resources/read file:///notes.txt")
    hello = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}
    assert what_of(line("POST", "/mcp"), "mcp", read_request("POST", {}, {}, hello)) == (
        "MCP initialize")


def test_a_model_call_says_the_model_and_the_tool_calls_it_asks_for() -> None:
    meaning = chat_request({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert what_of(line("POST", "/v1/chat/completions"), "llm", meaning) == (
        "chat.completions call to gpt-4o")
    answered = {**meaning, "tool_calls": [{"name": "query_db"}, {"name": "send_mail"}]}
    assert what_of(line("POST", "/v1/chat/completions"), "llm", answered) == (
        "chat.completions call to gpt-4o: asks for tool calls query_db, send_mail")


def test_egress_says_where_and_a_plain_request_its_line() -> None:
    assert what_of(line("CONNECT", ""), "egress", None, "pypi.org:443") == "CONNECT pypi.org:443"
    assert what_of(line("GET", "/simple/"), "egress", None, "pypi.org:80") == (
        "GET pypi.org:80/simple/")
    assert what_of(line("GET", "/api/customers?limit=5"), None, None) == (
        "GET /api/customers?limit=5")


def test_a_reading_of_another_shape_falls_back_to_the_request_line() -> None:
    for key in ("sql", "k8s", "llm", "mcp", "ssh"):
        assert what_of(line("POST", "/x"), key, {"unexpected": True}) in (
            "POST /x", "model call to a model")  # an llm reading has no required field
        assert what_of(line("POST", "/x"), key, None) == "POST /x"


def test_one_line_at_most_what_chars() -> None:
    long = "SELECT " + ", ".join(f"c{i}" for i in range(200)) + "\nFROM t"
    meaning = {"statements": [{"text": long, "nested": False}]}
    said = what_of(line("POST", "/sql"), "sql", meaning)
    assert "\n" not in said and len(said) == WHAT_CHARS and said.endswith("…")
