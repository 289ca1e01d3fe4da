"""The OPA stand-in speaks OPA's REST API wire format, and its faults work.

tests/standins/opa_standin.py replaces the OPA server binary (which cannot be installed here)
in tests of tollgate's `opa` backend; if it answered differently from OPA, those
tests would prove nothing. Each test states one thing OPA 1.x does on the wire.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests import policy_corpus
from tests.standins.opa_standin import OpaStandIn, PolicyRejected

# Each stand-in compiles the whole pack on the real OPA engine (~0.3 s of CPU).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DECISION = "/v1/data/tollgate/decision"


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    opa: OpaStandIn, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None, timeout: float = 5.0,
) -> Reply:
    """One request on a fresh connection; http.client follows no redirect."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        conn.close()


def decide(opa: OpaStandIn, input_value: Any, path: str = DECISION) -> Reply:
    return call(opa, "POST", path, {"input": input_value},
                {"content-type": "application/json"})


@pytest.fixture
def opa() -> Iterator[OpaStandIn]:
    with OpaStandIn(POLICIES) as standin:
        yield standin


# The pack decides SQL on the interpreter's reading, input.sql.
DROP = {"request": {"body": {"sql": "DROP TABLE t"}},
        "sql": {"statements": [{"kind": "drop", "tables": ["t"]}], "error": None}}
# The pack's files: what the stand-in loads at start (tests and JSON schemas left out).
PACK = sorted(p.name for p in POLICIES.glob("*.rego") if not p.name.endswith("_test.rego"))
DENY = {"action": "deny", "reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"]}
# The default pack's allow for an input without identity: everything masked.
ALLOW = {"action": "allow", "reasons": [], "rules": [], "mask": policy_corpus.MASK_ALL}


# -- health and the policy API -----------------------------------------------------------


def test_health_is_200_with_an_empty_object(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", "/health")
    assert (reply.status, reply.json()) == (200, {})
    assert reply.headers["content-type"] == "application/json"


def test_startup_directory_is_loaded_without_test_files(opa: OpaStandIn) -> None:
    assert list(opa.policies) == PACK


def test_list_policies_gives_id_raw_and_the_package_path(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", "/v1/policies")
    assert reply.status == 200
    entries = {e["id"]: e for e in reply.json()["result"]}
    assert sorted(entries) == PACK
    entry = entries["tollgate.rego"]
    assert entry["raw"] == (POLICIES / "tollgate.rego").read_text()
    assert entry["ast"]["package"]["path"] == [
        {"type": "var", "value": "data"}, {"type": "string", "value": "tollgate"},
    ]
    assert {r["head"]["name"] for r in entry["ast"]["rules"]} >= {"decision", "mask"}


def test_put_policy_then_get_it(opa: OpaStandIn) -> None:
    source = "package tg.extra\nimport rego.v1\nanswer := 42\n"
    reply = call(opa, "PUT", "/v1/policies/tollgate/extra.rego", source,
                 {"content-type": "text/plain"})
    assert (reply.status, reply.json()) == (200, {})
    got = call(opa, "GET", "/v1/policies/tollgate/extra.rego").json()["result"]
    assert (got["id"], got["raw"]) == ("tollgate/extra.rego", source)
    assert [p["value"] for p in got["ast"]["package"]["path"]] == ["data", "tg", "extra"]
    assert decide(opa, {}, "/v1/data/tg/extra/answer").json() == {"result": 42}


def test_put_the_same_source_again_is_200(opa: OpaStandIn) -> None:
    source = (POLICIES / "tollgate.rego").read_bytes()
    assert call(opa, "PUT", "/v1/policies/tollgate.rego", source).status == 200


def test_get_unknown_policy_is_404_resource_not_found(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", "/v1/policies/nope.rego")
    assert reply.status == 404
    assert reply.json() == {
        "code": "resource_not_found", "message": 'storage_not_found_error: policy id "nope.rego"',
    }


def test_parse_error_is_400_with_opa_errors_and_location(opa: OpaStandIn) -> None:
    reply = call(opa, "PUT", "/v1/policies/bad.rego", "package bad\n\nx := {\n")
    assert reply.status == 400
    body = reply.json()
    assert body["code"] == "invalid_parameter"
    assert body["message"] == "error(s) occurred while compiling module(s)"
    first = body["errors"][0]
    assert first["code"] == "rego_parse_error"
    assert first["message"].startswith("unexpected eof token")
    assert first["location"] == {"file": "bad.rego", "row": 4, "col": 6}
    assert first["details"] == {"line": "x := {", "idx": 5}


def test_v0_syntax_is_refused_with_the_message_clients_look_for(opa: OpaStandIn) -> None:
    """opa-python-client recognises v0 Rego by this message (rego_compat)."""
    reply = call(opa, "PUT", "/v1/policies/v0.rego", "package v0\nallow { true }\n")
    assert reply.status == 400
    (error,) = reply.json()["errors"]
    assert error["message"] == "`if` keyword is required before rule body"
    assert error["location"]["row"] == 2


def test_compile_error_is_400_and_the_old_policies_keep_answering(opa: OpaStandIn) -> None:
    reply = call(opa, "PUT", "/v1/policies/tollgate.rego",
                 "package tollgate\nimport rego.v1\ndecision := unknown_var\n")
    assert reply.status == 400
    (error,) = reply.json()["errors"]
    assert error["code"] == "rego_unsafe_var_error"
    assert error["location"]["file"] == "tollgate.rego"
    assert error["location"]["row"] == 3
    assert decide(opa, DROP).json() == {"result": DENY}
    assert opa.policies["tollgate.rego"] == (POLICIES / "tollgate.rego").read_text()


def test_empty_module_is_400_with_a_plain_message(opa: OpaStandIn) -> None:
    reply = call(opa, "PUT", "/v1/policies/empty.rego", "")
    assert reply.status == 400
    assert reply.json() == {
        "code": "invalid_parameter", "message": "empty.rego:0: rego_parse_error: empty module",
    }


def test_delete_policy_then_the_document_is_undefined(opa: OpaStandIn) -> None:
    reply = call(opa, "DELETE", "/v1/policies/tollgate.rego")
    assert (reply.status, reply.json()) == (200, {})
    assert sorted(opa.policies) == [name for name in PACK if name != "tollgate.rego"]
    assert decide(opa, DROP).json() == {}  # the decision rule lives in tollgate.rego
    assert call(opa, "DELETE", "/v1/policies/tollgate.rego").status == 404


def test_delete_that_breaks_another_module_is_400_invalid_operation(opa: OpaStandIn) -> None:
    opa.put_policy("lib.rego", "package lib\nimport rego.v1\ntwice(x) := 2 * x\n")
    opa.put_policy("use.rego", "package use\nimport rego.v1\nfour := data.lib.twice(2)\n")
    reply = call(opa, "DELETE", "/v1/policies/lib.rego")
    assert reply.status == 400
    assert reply.json()["code"] == "invalid_operation"
    assert "lib.rego" in opa.policies


def test_put_policy_without_http_raises_opas_answer(opa: OpaStandIn) -> None:
    with pytest.raises(PolicyRejected) as caught:
        opa.put_policy("bad.rego", "package bad\nx := y\n")
    assert caught.value.status == 400
    assert caught.value.body["errors"][0]["code"] == "rego_unsafe_var_error"


def test_load_policy_dir_uses_file_names_as_ids(tmp_path: Path) -> None:
    (tmp_path / "a.rego").write_text("package a\nimport rego.v1\nx := 1\n")
    (tmp_path / "a_test.rego").write_text("package a_test\nimport rego.v1\ntest_x if true\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "b.rego").write_text("package b\n")
    with OpaStandIn() as standin:
        assert standin.load_policy_dir(tmp_path) == ["a.rego"]
        assert list(standin.policies) == ["a.rego"]


# -- the data API ------------------------------------------------------------------------


def test_data_post_answers_the_result(opa: OpaStandIn) -> None:
    reply = decide(opa, DROP)
    assert (reply.status, reply.json()) == (200, {"result": DENY})


def test_undefined_document_is_200_without_a_result_key(opa: OpaStandIn) -> None:
    reply = decide(opa, {}, "/v1/data/tollgate/no_such_rule")
    assert (reply.status, reply.json()) == (200, {})


def test_missing_or_null_input_warns_as_opa_does(opa: OpaStandIn) -> None:
    warning = {"code": "api_usage_warning", "message": "'input' key missing from the request"}
    for body in (b"", b"{}", b'{"input": null}'):
        reply = call(opa, "POST", DECISION, body)
        assert reply.json() == {"result": ALLOW, "warning": warning}, body


def test_evaluation_error_is_500_internal_error(opa: OpaStandIn) -> None:
    opa.put_policy("c.rego", "package c\nimport rego.v1\nx := 1 if input.a\nx := 2 if input.b\n")
    reply = decide(opa, {"a": True, "b": True}, "/v1/data/c/x")
    assert reply.status == 500
    body = reply.json()
    assert (body["code"], body["message"]) == (
        "internal_error", "error(s) occurred while evaluating query",
    )
    assert body["errors"][0]["code"] == "eval_conflict_error"
    assert body["errors"][0]["location"]["file"] == "c.rego"


@pytest.mark.parametrize("body", [b"{bad", b"[1, 2]", b'{"input": NaN}', b'"text"'])
def test_malformed_request_json_is_400_invalid_parameter(opa: OpaStandIn, body: bytes) -> None:
    reply = call(opa, "POST", DECISION, body)
    assert reply.status == 400
    assert reply.json()["code"] == "invalid_parameter"
    assert reply.json()["message"].startswith("body contains malformed input document")


def test_gzip_and_chunked_bodies_are_read(opa: OpaStandIn) -> None:
    packed = gzip.compress(json.dumps({"input": DROP}).encode())
    reply = call(opa, "POST", DECISION, packed, {"content-encoding": "gzip"})
    assert reply.json() == {"result": DENY}
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=5)
    try:
        conn.request("POST", DECISION, body=iter([b'{"input": ', json.dumps(DROP).encode(), b"}"]),
                     encode_chunked=True)
        assert json.loads(conn.getresponse().read()) == {"result": DENY}
    finally:
        conn.close()


def test_get_data_takes_input_from_the_query_string(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", DECISION + "?input=" + quote(json.dumps(DROP)))
    assert reply.json() == {"result": DENY}


def test_path_segments_follow_opa(opa: OpaStandIn) -> None:
    """Digits index arrays, and a quote in a segment is an invalid path."""
    opa.put_policy("arr.rego", "package arr\nimport rego.v1\nxs := [\"a\", \"b\"]\n")
    assert decide(opa, {}, "/v1/data/arr/xs/1").json() == {"result": "b"}
    reply = decide(opa, {}, '/v1/data/arr/%22x')
    assert reply.status == 400
    assert reply.json()["message"].startswith("invalid path")


def test_answers_escape_html_characters_as_go_does(opa: OpaStandIn) -> None:
    opa.put_policy("h.rego", 'package h\nimport rego.v1\ns := "<a & b>"\n')
    reply = decide(opa, {}, "/v1/data/h/s")
    assert reply.body == b'{"result":"\\u003ca \\u0026 b\\u003e"}\n'


def test_lone_surrogates_in_input_become_replacement_characters(opa: OpaStandIn) -> None:
    """Go's JSON decoder turns an unpaired \\ud800 into U+FFFD rather than refusing it."""
    opa.put_policy("echo.rego", "package echo\nimport rego.v1\nv := input.s\n")
    reply = call(opa, "POST", "/v1/data/echo/v", b'{"input": {"s": "a\\ud800b"}}')
    assert reply.json() == {"result": "a\ufffdb"}


# -- routing as OPA 1.x --------------------------------------------------------------------


def test_trailing_slash_is_redirected_without_it(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", "/v1/policies/")
    assert reply.status == 301
    assert reply.headers["location"] == "/v1/policies"


def test_head_and_other_methods_are_405(opa: OpaStandIn) -> None:
    assert call(opa, "HEAD", "/health").status == 405
    reply = call(opa, "POST", "/v1/policies")
    assert (reply.status, reply.body) == (405, b"")
    assert call(opa, "PATCH", "/v1/policies/tollgate.rego").status == 405


def test_unknown_path_is_gos_plain_404(opa: OpaStandIn) -> None:
    reply = call(opa, "GET", "/v2/data")
    assert (reply.status, reply.body) == (404, b"404 page not found\n")


def test_endpoints_tollgate_does_not_use_say_so(opa: OpaStandIn) -> None:
    reply = call(opa, "POST", "/v1/query", {"query": "x = 1"})
    assert reply.status == 501
    assert "not implemented by the OPA stand-in" in reply.json()["message"]


# -- faults, stop and restart ------------------------------------------------------------


def test_fail_answers_the_status_for_the_next_n_requests(opa: OpaStandIn) -> None:
    opa.fail(503, times=2)
    assert [decide(opa, DROP).status for _ in range(3)] == [503, 503, 200]
    assert call(opa, "GET", "/health").status == 200


def test_fail_until_cleared_and_only_under_a_path(opa: OpaStandIn) -> None:
    opa.fail(500, path_prefix="/v1/data", body={"code": "internal_error", "message": "boom"})
    for _ in range(3):
        reply = decide(opa, DROP)
        assert (reply.status, reply.json()["message"]) == (500, "boom")
    assert call(opa, "GET", "/health").status == 200
    opa.clear_faults()
    assert decide(opa, DROP).status == 200


def test_delay_makes_a_client_time_out(opa: OpaStandIn) -> None:
    opa.delay(30, times=1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        decide_with_timeout(opa, 0.2)
    assert time.monotonic() - started < 5
    assert decide(opa, DROP).json() == {"result": DENY}  # only the first was held


def decide_with_timeout(opa: OpaStandIn, timeout: float) -> Reply:
    return call(opa, "POST", DECISION, {"input": DROP}, timeout=timeout)


def test_drop_closes_the_connection_without_an_answer(opa: OpaStandIn) -> None:
    opa.drop(times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        decide(opa, DROP)
    assert opa.wait_for_requests(1)[0].status is None
    assert decide(opa, DROP).status == 200


def test_stop_refuses_connections_and_start_serves_the_same_port(opa: OpaStandIn) -> None:
    port = opa.port
    opa.stop()
    with pytest.raises(ConnectionRefusedError):
        call(opa, "GET", "/health")
    opa.start()
    assert opa.port == port
    assert decide(opa, DROP).json() == {"result": DENY}


def test_stop_closes_kept_alive_connections(opa: OpaStandIn) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b"{}\n"
        opa.stop()
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.request("GET", "/health")  # the same connection, kept alive
            conn.getresponse()
    finally:
        conn.close()


def test_stop_releases_a_held_request(opa: OpaStandIn) -> None:
    opa.delay(60)
    sock = socket.create_connection(("127.0.0.1", opa.port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        opa.wait_for_received(1)  # it is being held now
        started = time.monotonic()
        opa.stop()
        assert sock.recv(1024) == b""  # closed, unanswered
        assert time.monotonic() - started < 5
    finally:
        sock.close()


def test_restart_forgets_api_policies_and_keeps_startup_ones(opa: OpaStandIn) -> None:
    opa.put_policy("extra.rego", "package extra\nimport rego.v1\nx := 1\n")
    opa.restart()
    assert list(opa.policies) == PACK
    assert decide(opa, DROP).json() == {"result": DENY}


def test_requests_are_recorded_in_order(opa: OpaStandIn) -> None:
    call(opa, "GET", "/health")
    decide(opa, DROP)
    recorded = opa.wait_for_requests(2)
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("GET", "/health", 200), ("POST", DECISION, 200),
    ]
    assert json.loads(recorded[1].body) == {"input": DROP}
    assert recorded[0].client_port != recorded[1].client_port  # call() opens a connection each


def test_client_port_shows_a_kept_alive_connection(opa: OpaStandIn) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/health")
            conn.getresponse().read()
    finally:
        conn.close()
    assert len({r.client_port for r in opa.wait_for_requests(3)}) == 1


# -- correctness under load and as a process -----------------------------------------------


def test_concurrent_decisions_see_one_version_or_the_other(opa: OpaStandIn) -> None:
    """Decisions racing policy updates get the old or the new answer, never an error."""
    allow_all = "package tollgate\nimport rego.v1\ndecision := {\"action\": \"allow\"}\n"
    deny_version = (POLICIES / "tollgate.rego").read_text()
    answers: list[str] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(25):
                reply = decide(opa, DROP)
                answers.append(json.dumps([reply.status, reply.json().get("result")]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for i in range(10):
        opa.put_policy("tollgate.rego", allow_all if i % 2 == 0 else deny_version)
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(answers) == 150
    assert set(answers) <= {json.dumps([200, DENY]), json.dumps([200, {"action": "allow"}])}


def over_http(corpus: list[policy_corpus.Case]) -> list[policy_corpus.Case]:
    """The cases that exercise the stand-in's HTTP layer: of each corpus file its first
    case and its largest under 64 KiB, every policy error, the megabyte body (its
    egress lists put in as a policy, where a case has its own: a stand-in each).
    tests/policy/test_opa_parity.py decides every case on OPA in process; over a socket
    the outcome can only differ by what the layer does with a request's size, shape or
    error, which these cover."""
    chosen: dict[str, policy_corpus.Case] = {}
    by_file: dict[str, list[policy_corpus.Case]] = {}
    # A case's size as written stands for its input's: the inputs of 800 cases are
    # not worth making at collection to choose 40.
    size = {case.name: len(json.dumps(case.spec)) for case in corpus}
    for case in corpus:
        if size[case.name] < 65536:
            by_file.setdefault(case.file, []).append(case)
        if case.expected_on("opa") == "policy_error" \
                or case.name == "one-megabyte-text-body-drop-at-end":
            chosen[case.name] = case
    for cases in by_file.values():
        for case in (cases[0], max(cases, key=lambda c: size[c.name])):
            chosen[case.name] = case
    return list(chosen.values())


@pytest.mark.parametrize("case", over_http(policy_corpus.load()), ids=lambda c: c.name)
def test_corpus_case_over_http_matches_what_opa_owes(
    case: policy_corpus.Case, shared_opa: OpaStandIn
) -> None:
    """The stand-in's HTTP layer changes nothing: OPA's corpus outcome, over a socket."""
    body = b'{"input":' + case.input_json.encode() + b"}"
    if not case.tables:
        reply = call(shared_opa, "POST", DECISION, body)
    else:  # the pack with the case's tables, put in as a user would
        with OpaStandIn(POLICIES) as opa:
            files = [(file, "") for file, _ in policy_corpus.TABLES.values()]
            for name, source in policy_corpus.with_tables(files, case.tables):
                if source:
                    opa.put_policy(name, source)
            reply = call(opa, "POST", DECISION, body)
    owed = case.expected_on("opa")
    if owed == "policy_error":
        assert reply.status == 500
    else:
        assert reply.status == 200
        assert reply.json()["result"] == owed


@pytest.fixture(scope="module")
def shared_opa() -> Iterator[OpaStandIn]:
    with OpaStandIn(POLICIES) as standin:
        yield standin


def test_runs_as_a_process_for_benchmarks() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.opa_standin", "--port", str(port),
         "--policies", str(POLICIES)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        line = first_line(process, deadline=time.monotonic() + 20)  # printed once it listens
        assert line.startswith(f"opa stand-in serving http://127.0.0.1:{port}"), line
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", DECISION, body=json.dumps({"input": DROP}))
        assert json.loads(conn.getresponse().read()) == {"result": DENY}
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def first_line(process: subprocess.Popen[bytes], deadline: float) -> str:
    """The process's first line of output, or what it printed by the deadline."""
    assert process.stdout is not None
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in received and time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                received += chunk
    return received.decode(errors="replace").split("\n")[0]
