"""What a record keeps of an exchange: everything that could carry personal data or a
secret is masked, whatever the policy let through; long bodies are cut with the hash of
the whole; the outcome says how the exchange ended."""

from __future__ import annotations

import hashlib
import json

from extproc.recording.chain import canonical
from extproc.recording.record import BodyCapture, Decided, content_of
from tests.recording.conftest import MASKER, evidence

CARD, SSN, EMAIL = "4111 1111 1111 1111", "123-45-6789", "ann.lee@example.com"
PASSWORD = "hunter2-canary"


def test_no_secret_or_personal_value_reaches_the_record() -> None:
    """Canaries in every place a record keeps: bodies, query, headers, the interpreter's
    reading and the policy's reasons; none is in the record's text."""
    found = evidence(1, body=json.dumps({"card": CARD, "password": PASSWORD}).encode(),
                     response_body=json.dumps({"email": EMAIL, "ssn": SSN}).encode())
    assert found.request is not None
    found.request["query"] = {"email": [EMAIL]}
    found.request["headers"] = {"x-customer": SSN}
    found.meaning_key = "sql"
    found.meaning = {"statements": [{"text": f"SELECT * FROM t WHERE ssn = '{SSN}'"}]}
    found.decisions[0].meaning = found.meaning  # what the request decision saw
    found.decisions[0].reasons = (f"unparseable SQL: at or near \"{CARD}\"",)
    text = canonical(content_of(found, MASKER))
    for canary in (CARD, "4111111111111111", PASSWORD, SSN, EMAIL):
        assert canary not in text, canary
    content = json.loads(text)
    assert content["request"]["body"]["value"]["card"] != CARD
    assert content["meaning"]["sql"]["statements"][0]["text"].startswith("SELECT * FROM t")


def test_a_json_body_is_kept_as_a_value_and_text_as_text() -> None:
    found = evidence(2, body=b'{"sql": "select 1"}', response_body=b"plain answer")
    found.response_type = "text/plain"
    content = content_of(found, MASKER)
    assert content["request"]["body"] == {
        "media_type": "application/json", "size": 19, "truncated": False,
        "encoding": "json", "value": {"sql": "select 1"}}
    assert content["response"]["body"]["value"] == "plain answer"
    assert content["response"]["body_read"] is True


def test_a_long_body_is_cut_with_the_size_and_hash_of_the_whole() -> None:
    whole = b'{"rows": "' + b"x" * 200 + b'"}'
    found = evidence(3)
    found.response = {"status": 200, "headers": {}}
    found.response_type = "application/json"
    capture = BodyCapture(64)
    for i in range(0, len(whole), 50):  # as it streams
        capture.add(whole[i:i + 50])
    found.response_body = capture
    body = content_of(found, MASKER)["response"]["body"]
    assert body["truncated"] is True
    assert body["size"] == len(whole)
    assert body["sha256"] == hashlib.sha256(whole).hexdigest()
    assert body["encoding"] == "text" and body["value"] == whole[:64].decode()


def test_binary_bodies_are_kept_by_size_and_hash_only() -> None:
    found = evidence(4, body=b"\xff\xfe\x00binary")
    assert content_of(found, MASKER)["request"]["body"] == {
        "media_type": "application/json", "size": 9, "truncated": False,
        "sha256": hashlib.sha256(b"\xff\xfe\x00binary").hexdigest(), "encoding": "binary"}


def test_the_session_is_the_agents_header_or_else_the_trace() -> None:
    """Alone, as the exchange says; the writer groups the trace's by token (sessions.py)."""
    header = content_of(evidence(5, session="run-42"), MASKER)
    assert (header["session_id"], header["session_rule"]) == ("run-42", "header")
    trace = content_of(evidence(6), MASKER)
    assert (trace["session_id"], trace["session_rule"]) == (f"{6:032x}", "trace")


def test_the_outcome_says_how_the_exchange_ended() -> None:
    allowed = content_of(evidence(7), MASKER)["outcome"]
    assert (allowed["action"], allowed["status"], allowed["refusal"]) == ("allow", 200, None)
    denied = evidence(8, action="deny", rules=("sql.destructive",))
    assert content_of(denied, MASKER)["outcome"]["action"] == "deny"
    refused = evidence(9)
    refused.decisions.clear()
    refused.outcome = {"http.response.status_code": 400, "tollgate.refusal": "malformed_json"}
    outcome = content_of(refused, MASKER)["outcome"]
    assert (outcome["action"], outcome["status"], outcome["refusal"]) == (
        "deny", 400, "malformed_json")
    gone = evidence(10)
    gone.decisions.clear()
    gone.outcome = {"tollgate.outcome": "stream_ended"}
    assert content_of(gone, MASKER)["outcome"]["action"] == "none"


def test_a_response_decision_that_denies_settles_the_outcome() -> None:
    found = evidence(11)
    found.decisions.append(Decided("response", "deny", ("bad",), ("r",), 403, "rev", 5))
    content = content_of(found, MASKER)
    assert [d["phase"] for d in content["decisions"]] == ["request", "response"]
    assert content["outcome"]["action"] == "deny"


def test_the_last_reading_is_the_records_and_an_earlier_decision_keeps_its_own() -> None:
    """An LLM's answer decision sees the model's tool calls; the request decision did not.
    The record's `meaning` is the answer's (what an investigation asks about)."""
    found = evidence(12)
    found.meaning_key = "llm"
    asked = {"model": "m", "tool_calls": []}
    answered = found.meaning = {"model": "m", "tool_calls": [{"name": "run_shell"}]}
    found.decisions[0].meaning = asked
    found.decisions.append(Decided("response", "deny", (), (), 403, "rev", 5, meaning=answered))
    content = content_of(found, MASKER)
    assert content["meaning"] == {"llm": answered}
    assert content["decisions"][0]["meaning"] == {"llm": asked}
    assert "meaning" not in content["decisions"][1]


def chat_event(delta: dict[str, object]) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode()


def test_a_refused_answer_is_kept_beside_the_refusal_the_client_got() -> None:
    """A model's stream refused before any of it reached the client: `upstream_body` is
    every event received, masked across events (the SSN arrives cut over three); `body`
    is tollgate's refusal."""
    pieces = ['{"command": "rm -rf / # ssn 123', "-45-", '6789"}']
    stream = chat_event({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "run_shell", "arguments": ""}}]})
    for piece in pieces:
        stream += chat_event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    stream += b"data: [DONE]\n\n"
    refusal = json.dumps({"error": {"message": "tollgate refused: rm -rf /"}}).encode()
    found = evidence(13)
    found.response_type = "text/event-stream"
    found.upstream_body = BodyCapture.of(stream, 64 * 1024)
    found.response_body = BodyCapture.of(refusal, 64 * 1024)
    found.delivered_type = "application/json"
    found.response_read = True
    response = content_of(found, MASKER)["response"]
    assert response["body"]["media_type"] == "application/json"
    assert response["body"]["value"] == json.loads(refusal)
    upstream = response["upstream_body"]
    assert (upstream["media_type"], upstream["size"]) == ("text/event-stream", len(stream))
    calls = [call for line in upstream["value"].splitlines() if line.startswith("data: {")
             for call in json.loads(line[6:])["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "run_shell"
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert arguments.startswith('{"command": "rm -rf / # ssn ')
    assert SSN not in arguments and SSN not in upstream["value"]


def test_an_answer_the_client_got_has_no_upstream_body() -> None:
    response = content_of(evidence(14, response_body=b'{"rows": []}'), MASKER)["response"]
    assert response["upstream_body"] is None
    assert response["body"]["value"] == {"rows": []}
