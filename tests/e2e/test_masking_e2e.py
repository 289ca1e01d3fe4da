"""Masking end to end, through a real Envoy, with the default policy pack deciding.

The demo upstream answers with synthetic personal data (names, e-mails, SSNs, cards)
plainly, compressed, or as a server-sent event stream; what reaches the client is
checked for every one of those values. A model (the OpenAI-compatible stand-in,
tests/standins/openai_standin.py: no hosted model is reachable here) answers the real `openai`
client with tool calls, whose arguments are actions: the addresses an agent acts on
reach it, a card does not. The record shows each masked value as the client got it.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from extproc.quickstart.demo_upstream import CUSTOMERS
from tests.e2e.test_recording_e2e import record_of
from tests.standins.openai_standin import OpenAIStandIn, Reply, ToolCall
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway

SECRETS = [c[k] for c in CUSTOMERS for k in ("ssn", "card_number", "email", "password")]
PRIVILEGED = ["agents", "privileged"]


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, model: OpenAIStandIn  # type: ignore[no-untyped-def]
       ) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "masking", targets=[
        {"name": "demo", "match": {"route": "demo"}},
        {"name": "opaque", "match": {"route": "opaque"}},
        {"name": "passes", "match": {"route": "passes"},
         "inspect": {"unreadable_encoding": "pass"}},
        {"name": "llm", "match": {"route": "llm"}, "protocol": "llm"},
        {"name": "model", "match": {"route": "model"}, "protocol": "llm"},
    ], clusters={"model": model.port}, routes=[
        {"name": "model", "match": {"prefix": "/model/v1/"},
         "route": {"cluster": "model", "prefix_rewrite": "/v1/"}},
        {"name": "opaque", "match": {"prefix": "/opaque/"},
         "route": {"cluster": "demo_upstream", "prefix_rewrite": "/api/"}},
        {"name": "passes", "match": {"prefix": "/passes/"},
         "route": {"cluster": "demo_upstream", "prefix_rewrite": "/api/"}},
        {"name": "llm", "match": {"prefix": "/v1/chat/"},
         "route": {"cluster": "demo_upstream", "prefix_rewrite": "/echo?"}},
    ]) as running:
        yield running


def assert_masked(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} passed unmasked"


def test_an_agent_gets_every_personal_value_masked_and_valid_json(gw: Gateway) -> None:
    reply = gw.request("GET", "/api/customers")
    assert reply.status == 200
    assert int(reply.headers["content-length"]) == len(reply.body)
    customers = reply.json()["customers"]
    assert_masked(reply.body.decode())
    assert customers[0]["id"] == CUSTOMERS[0]["id"]  # what no rule names passes
    assert {c["name"] for c in customers} == {"[REDACTED:PERSON]"}  # a person's name
    assert customers[0]["ssn"] == "[REDACTED:US_SSN]"
    assert customers[0]["email"] == "[REDACTED:EMAIL_ADDRESS]"
    span = gw.otlp.spans_of(reply.trace_id)[0]
    assert span.attributes["tollgate.masked_values"] >= len(SECRETS)
    assert span.attributes["tollgate.masked.email"] == len(CUSTOMERS)
    assert span.attributes["tollgate.masked.person_name"] == len(CUSTOMERS)


def test_a_privileged_caller_sees_personal_data_but_never_credentials(gw: Gateway) -> None:
    token = tokens.token("alice", PRIVILEGED)
    customers = gw.request("GET", "/api/customers", token=token).json()["customers"]
    assert customers[0]["ssn"] == CUSTOMERS[0]["ssn"]
    assert customers[0]["email"] == CUSTOMERS[0]["email"]
    assert customers[0]["name"] == CUSTOMERS[0]["name"]
    assert customers[0]["password"] == "[REDACTED:FIELD]"
    echoed = gw.request("POST", "/echo", {"note": "key AKIAIOSFODNN7EXAMPLE"}, token=token)
    assert "AKIAIOSFODNN7EXAMPLE" not in echoed.body.decode()


def test_a_sql_results_cells_are_masked_by_their_column_names(gw: Gateway) -> None:
    """`SELECT *` answers {"columns": [...], "rows": [[...]]}: no cell has a key, so
    key-name rules (password) follow the column names."""
    reply = gw.request("POST", "/sql", {"sql": "SELECT * FROM customers"})
    assert reply.status == 200
    assert_masked(reply.body.decode())
    result = reply.json()
    password, name, ident = (result["columns"].index(c) for c in ("password", "name", "id"))
    # Every cell masked whole; one that a detector recognises whole (a random-looking
    # password: a generic secret) is labelled by it, as field values are (masker._mask_field).
    assert {row[password] for row in result["rows"]} == {"[REDACTED:FIELD]", "[REDACTED:SECRET]"}
    # A column that names a person masks a person's name; one that names nothing passes.
    assert {row[name] for row in result["rows"]} == {"[REDACTED:PERSON]"}
    assert [row[ident] for row in result["rows"]] == [c["id"] for c in CUSTOMERS]
    token = tokens.token("alice", PRIVILEGED)
    rows = gw.request("POST", "/sql", {"sql": "SELECT ssn, password FROM customers"},
                      token=token).json()["rows"]
    assert rows[0] == [CUSTOMERS[0]["ssn"], "[REDACTED:FIELD]"]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_accept_encoding_is_narrowed_so_the_upstream_answers_plainly(
    gw: Gateway, encoding: str
) -> None:
    reply = gw.request("GET", "/api/customers", headers={"accept-encoding": encoding})
    assert reply.status == 200
    assert "content-encoding" not in reply.headers
    assert_masked(reply.body.decode())
    assert gw.upstream.requests[-1].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_a_body_compressed_anyway_is_decoded_then_masked(gw: Gateway, encoding: str) -> None:
    reply = gw.request("GET", f"/api/customers?encoding={encoding}")
    assert reply.status == 200
    assert "content-encoding" not in reply.headers
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert len(reply.json()["customers"]) == len(CUSTOMERS)
    assert_masked(reply.body.decode())


def test_an_encoding_tollgate_cannot_read_is_refused(gw: Gateway, tmp_path: Path) -> None:
    reply = gw.request("GET", "/api/customers?encoding=zstd")
    assert reply.status == 502
    assert reply.json()["error"] == "unreadable_encoding"
    assert_masked(reply.body.decode())


def test_a_target_may_opt_out_and_let_an_unreadable_encoding_pass(gw: Gateway) -> None:
    reply = gw.request("GET", "/passes/customers?encoding=zstd")
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "zstd"


def test_a_response_over_the_buffer_limit_is_never_passed(gw: Gateway) -> None:
    reply = gw.request("GET", "/api/customers?repeat=4000")  # ~2.6 MB
    assert reply.status >= 500
    assert_masked(reply.body.decode(errors="replace"))


def read_stream(gw: Gateway, path: str) -> tuple[bytes, int]:
    """The raw response to a GET, and how many events had come with its first body bytes."""
    with socket.create_connection(("127.0.0.1", gw.ports.listener), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
                     f"{tokens.token()}\r\n\r\n".encode())
        received, first_events = b"", 0
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-stream"
            received += chunk
            if not first_events:
                first_events = received.count(b"data:")
        return received, first_events


def dechunk(raw: bytes) -> str:
    _, _, body = raw.partition(b"\r\n\r\n")
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            break
        out, body = out + rest[:length], rest[length + 2:]
    return out.decode()


def test_an_event_stream_is_masked_as_it_flows(gw: Gateway) -> None:
    raw, first_events = read_stream(gw, "/api/events?delay_ms=300")
    text = dechunk(raw)
    assert text.count("data: ") == len(CUSTOMERS)
    assert_masked(text)
    assert "[REDACTED:US_SSN]" in text
    # Not buffered whole: the first events arrive alone, while the upstream still sleeps
    # between the others (counted, not timed: a slow machine only delays them all).
    assert 0 < first_events < len(CUSTOMERS), first_events


@pytest.mark.parametrize("split", [1, 3, 7, 64])
def test_a_secret_cut_between_stream_chunks_is_still_caught(gw: Gateway, split: int) -> None:
    raw, _ = read_stream(gw, f"/api/events?split={split}")
    text = dechunk(raw)
    assert text.count("data: ") == len(CUSTOMERS)
    assert_masked(text)


def test_an_llm_prompt_is_masked_before_it_reaches_the_model(gw: Gateway) -> None:
    prompt = {"model": "gpt-test", "messages": [
        {"role": "user", "content": f"my card is {CUSTOMERS[1]['card_number']}, help"},
    ]}
    reply = gw.request("POST", "/v1/chat/completions", prompt)
    # The echo upstream answers no completion: an agent gets no answer tollgate cannot read.
    assert (reply.status, reply.json()["error"]["rules"]) == (403, ["llm.unreadable"])
    received = gw.upstream.requests[-1]
    assert CUSTOMERS[1]["card_number"] not in received.body.decode()
    sent = json.loads(received.body)
    assert sent["messages"][0]["content"] == "my card is [REDACTED:CREDIT_CARD], help"
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert int(headers["content-length"]) == len(received.body)


def test_a_binary_body_that_must_be_masked_is_refused(gw: Gateway) -> None:
    reply = gw.request(
        "POST", "/v1/chat/completions", base64.b64decode("iVBORw0KGgo="),
        headers={"content-type": "image/png"},
    )
    assert reply.status == 502
    # An LLM target refuses in OpenAI's error shape, which its clients raise with the message.
    error = reply.json()["error"]
    assert error["code"] == "unmaskable_body"
    assert error["message"].startswith("tollgate refused: the policy asks to mask this body")


# -- actions: a model's tool calls reach the agent with the addresses they act on --------

CARD = CUSTOMERS[0]["card_number"]
ACTION = {"url": "http://10.1.2.3:8080/x", "to": "ops@example.com", "card": CARD}
ACTED = {**ACTION, "card": "[REDACTED:CREDIT_CARD]"}
SAID = "Mailing ops@example.com the report."


@pytest.fixture
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}/model/v1",
                         api_key=tokens.token(), max_retries=0, timeout=10)


def ask(client: openai.OpenAI, **extra):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Send the report"}], **extra)


def test_a_tool_calls_addresses_reach_the_agent_its_card_does_not(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(text=SAID, tool_calls=(ToolCall("send", ACTION),)))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Send the report"}])
    message = raw.parse().choices[0].message
    (call,) = message.tool_calls
    assert json.loads(call.function.arguments) == ACTED
    assert message.content == "Mailing [REDACTED:EMAIL_ADDRESS] the report."
    # The record shows the tokens the agent got; the e-mail the agent got in clear, the
    # record's safety net masks (it masks every detector, whatever the policy left).
    record = record_of(gw, raw.headers["x-tollgate-trace-id"])
    (recorded,) = record["response"]["body"]["value"]["choices"][0]["message"]["tool_calls"]
    assert json.loads(recorded["function"]["arguments"]) == {
        **ACTED, "to": "[REDACTED:EMAIL_ADDRESS]"}


def test_a_streamed_tool_calls_addresses_reach_the_agent_its_card_does_not(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(text=SAID, tool_calls=(ToolCall("send", ACTION),)))
    text, arguments = [], []
    for chunk in ask(client, stream=True):
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            arguments += [c.function.arguments or "" for c in choice.delta.tool_calls or ()]
    assert json.loads("".join(arguments)) == ACTED
    assert "".join(text) == "Mailing [REDACTED:EMAIL_ADDRESS] the report."


def test_a_prompts_earlier_tool_calls_reach_the_model_as_actions(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(text="done"))
    client.chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "Send the report to ann@example.com"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "send", "arguments": json.dumps(ACTION)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"sent, card {CARD}"},
    ])
    sent = model.requests[-1].body["messages"]
    assert sent[0]["content"] == "Send the report to [REDACTED:EMAIL_ADDRESS]"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == ACTED
    assert sent[2]["content"] == "sent, card [REDACTED:CREDIT_CARD]"


def test_the_record_shows_the_tokens_the_client_got(gw: Gateway) -> None:
    """The record's safety net masks again, leaving what was masked as it was: the SSN
    under the `ssn` key stays `[REDACTED:US_SSN]`, not re-masked as a FIELD."""
    reply = gw.request("GET", "/api/customers")
    got = reply.json()["customers"]
    assert (got[0]["ssn"], got[0]["password"]) == ("[REDACTED:US_SSN]", "[REDACTED:FIELD]")
    recorded = record_of(gw, reply.trace_id)["response"]["body"]["value"]["customers"]
    assert recorded == got


def test_the_record_of_a_stream_shows_the_tokens_the_client_got(gw: Gateway) -> None:
    raw, _ = read_stream(gw, "/api/events?split=3")
    text = dechunk(raw)
    assert "[REDACTED:US_SSN]" in text
    trace = raw.partition(b"x-tollgate-trace-id: ")[2].partition(b"\r\n")[0].decode()
    recorded = record_of(gw, trace)["response"]["body"]["value"]
    assert recorded == text
