"""The exchange state machine, over a real gRPC stream with real ext_proc messages.

Each test plays Envoy's side of one stream: it sends the phases Envoy would
send, reads tollgate's answers, and checks that the stream ends exactly when no
further phase is needed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    HttpTrailers,
    ProcessingRequest,
    ProcessingResponse,
)
from google.protobuf.struct_pb2 import Struct

from extproc import config
from extproc.approvals import ApprovalStore
from extproc.approvals.hold import Holds
from extproc.approvals.model import Approval
from extproc.approvals.store import WITHDRAWN
from extproc.credentials import CredentialStore
from extproc.exchange.pipeline import Pipeline
from extproc.http.front import ExtProcServicer
from extproc.masking import Masker
from extproc.policy import PolicyEngine
from extproc.policy.embedded import EmbeddedEngine
from extproc.recording import Recorder, RecorderSettings
from extproc.recording import store as record_store
from extproc.recording.chain import Signer
from extproc.store import connect
from extproc.telemetry import Telemetry

ALLOW_UNLESS = """package tollgate
import rego.v1
default decision := {"action": "allow", "reasons": [], "rules": []}
decision := {"action": "deny", "reasons": ["dropped"], "rules": ["t.drop"]} if {
    contains(input.request.body.sql, "DROP")
}
decision := {"action": "deny", "reasons": ["bad response"], "rules": ["t.resp"]} if {
    input.phase == "response"
    input.response.status == 500
}
"""


# What Envoy's jwt_authn puts in its metadata for a verified token (payload_in_metadata).
CLAIMS = {"sub": "svc-autogen", "iss": "https://issuer.test", "aud": "tollgate",
          "groups": ["agents"], "email": "bot@example.com", "jti": "j-1", "exp": 2000000000}


def headers(
    pairs: dict[str, str], end_of_stream: bool, route: str = "demo",
    claims: dict[str, Any] | None = CLAIMS,
) -> ProcessingRequest:
    attrs = Struct()
    attrs.update({"xds.route_name": route, "xds.cluster_name": "demo_upstream",
                  "source.address": "10.0.0.7:51234"})
    message = ProcessingRequest(
        request_headers=HttpHeaders(
            headers=HeaderMap(
                headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
            ),
            end_of_stream=end_of_stream,
        ),
        attributes={"envoy.filters.http.ext_proc": attrs},
    )
    if claims is not None:
        jwt = message.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
        jwt.update({"jwt_payload": claims})
    return message


def get(
    path: str = "/x", route: str = "demo", claims: dict[str, Any] | None = CLAIMS, **extra: str
) -> ProcessingRequest:
    return headers(
        {":method": "GET", ":path": path, ":scheme": "http", **extra}, True, route, claims
    )


def post(path: str = "/sql") -> ProcessingRequest:
    return headers(
        {":method": "POST", ":path": path, "content-type": "application/json"}, False
    )


def body(data: dict[str, Any]) -> ProcessingRequest:
    return ProcessingRequest(
        request_body=HttpBody(body=json.dumps(data).encode(), end_of_stream=True)
    )


def response_headers(status: int, end_of_stream: bool) -> ProcessingRequest:
    return ProcessingRequest(
        response_headers=HttpHeaders(
            headers=HeaderMap(
                headers=[
                    HeaderValue(key=":status", raw_value=str(status).encode()),
                    HeaderValue(key="content-type", raw_value=b"application/json"),
                ]
            ),
            end_of_stream=end_of_stream,
        )
    )


def response_body(text: str) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=text.encode(), end_of_stream=True))


class Stream:
    """Envoy's end of one ext_proc stream."""

    def __init__(self, call: Any, stub: Any = None, approvals: Any = None) -> None:
        self._call, self._stub = call, stub
        self.approvals: ApprovalStore = approvals  # the servicer's, for playing approvers

    def another(self) -> Stream:
        """A second stream to the same servicer, as Envoy opens one per request."""
        return Stream(self._stub.Process(), self._stub, self.approvals)

    async def send(self, message: ProcessingRequest) -> ProcessingResponse:
        await self._call.write(message)
        reply = await self._call.read()
        assert reply is not grpc.aio.EOF, "tollgate closed the stream without answering"
        return reply

    async def tell(self, message: ProcessingRequest) -> None:
        """Send without waiting for an answer: in FULL_DUPLEX_STREAMED mode tollgate may
        hold its answer to the response headers until it has read the body."""
        await self._call.write(message)

    async def read(self) -> ProcessingResponse:
        reply = await asyncio.wait_for(self._call.read(), 5)
        assert reply is not grpc.aio.EOF, "tollgate closed the stream without answering"
        return reply

    async def ended(self) -> bool:
        """True when tollgate has closed the stream (with status OK)."""
        reply = await asyncio.wait_for(self._call.read(), 5)
        if reply is not grpc.aio.EOF:
            return False
        return await self._call.code() == grpc.StatusCode.OK


def run(
    scenario: Callable[[Stream], Awaitable[None]], policy: str = ALLOW_UNLESS,
    *, engine: PolicyEngine | None = None, identity: dict[str, Any] | None = None,
    recording: dict[str, Any] | None = None, **target: Any,
) -> list[dict[str, Any]]:
    """Play `scenario` against a servicer deciding with `engine` (default: `policy`,
    embedded), recording to a SQLite store of its own; return the records' contents, but
    the decision records a held request leaves as it begins to wait (pipeline.hold)."""
    # Headers-only unless a test asks for response phases: fewer messages to play.
    target["inspect"] = {"response": "none", **target.get("inspect", {})}
    cfg = config.parse({
        "targets": [{"name": "demo", "match": {"route": "demo"}, **target}],
        "identity": identity or {},
        "recording": recording or {},
    })
    decider = engine or EmbeddedEngine([("p.rego", policy)], "data.tollgate.decision")
    masker = Masker(b"k" * 32)

    async def main(recorder: Recorder, decider: PolicyEngine, url: str) -> None:
        holds = Holds(await ApprovalStore.open(url), None, masker, cfg.approvals,
                      "http://approvals.test", "servicer-test")
        servicer = ExtProcServicer(cfg, Pipeline(
            cfg, decider, Telemetry(cfg.telemetry), CredentialStore.from_config(cfg),
            masker, recorder, holds,
        ))
        server = grpc.aio.server()
        ext_proc_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = ext_proc_grpc.ExternalProcessorStub(channel)
                await scenario(Stream(stub.Process(), stub, holds.store))
        finally:
            await server.stop(None)
            await recorder.close()
            await holds.close()

    with tempfile.TemporaryDirectory(prefix="tollgate-servicer-") as tmp:
        url = f"sqlite:///{tmp}/records.db"
        settings = cfg.recording
        recorder = Recorder(url, RecorderSettings(
            settings.queue_size, settings.batch_size, settings.checkpoint_every,
            settings.checkpoint_seconds, writer_id="servicer-test",
        ), Signer.from_file(Path(tmp) / "audit.key", create=True), masker)
        recorder.start()
        asyncio.run(main(recorder, decider, url))
        # regorus's engine must be freed on the thread that made it: collect cycles here,
        # not when the recorder's thread happens to trigger a collection.
        del decider
        gc.collect()
        connection = connect(url)
        try:
            return [row.document() for row in record_store.chain_rows(connection)
                    if row.kind != "decision"]
        finally:
            connection.close()


def immediate_json(reply: ProcessingResponse) -> tuple[int, dict[str, Any]]:
    assert reply.WhichOneof("response") == "immediate_response"
    return reply.immediate_response.status.code, json.loads(reply.immediate_response.body)


@pytest.mark.slow
def test_headers_only_request_is_one_message_each_way_then_the_stream_ends() -> None:
    async def scenario(stream: Stream) -> None:
        reply = await stream.send(get())
        assert reply.WhichOneof("response") == "request_headers"
        assert not reply.HasField("mode_override")
        trace_id = reply.dynamic_metadata.fields["tollgate"].struct_value["trace_id"]
        assert len(trace_id) == 32
        assert await stream.ended()

    run(scenario)


def test_request_with_body_asks_for_it_then_decides_on_it() -> None:
    async def scenario(stream: Stream) -> None:
        first = await stream.send(post())
        assert first.WhichOneof("response") == "request_headers"
        assert first.mode_override.request_body_mode == ProcessingMode.BUFFERED
        assert first.mode_override.response_header_mode == ProcessingMode.DEFAULT
        status, answer = immediate_json(await stream.send(body({"sql": "DROP TABLE t"})))
        assert (status, answer["rules"]) == (403, ["t.drop"])
        assert answer["trace_id"] == first.dynamic_metadata.fields["tollgate"].struct_value[
            "trace_id"
        ]
        assert await stream.ended()

    run(scenario)


def test_allowed_body_continues_and_ends_the_stream() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.send(post())
        reply = await stream.send(body({"sql": "SELECT 1"}))
        assert reply.WhichOneof("response") == "request_body"
        assert await stream.ended()

    run(scenario)


def test_target_that_skips_bodies_decides_on_headers_alone() -> None:
    async def scenario(stream: Stream) -> None:
        reply = await stream.send(post())
        assert reply.WhichOneof("response") == "request_headers"
        # The bootstrap buffers bodies by default; this target turns that off.
        assert reply.mode_override.request_body_mode == ProcessingMode.NONE
        assert await stream.ended()

    run(scenario, inspect={"request_body": False})


def test_response_headers_phase_when_target_inspects_responses() -> None:
    async def scenario(stream: Stream) -> None:
        first = await stream.send(get())
        assert first.mode_override.response_header_mode == ProcessingMode.SEND
        assert first.mode_override.response_body_mode == ProcessingMode.NONE
        status, answer = immediate_json(await stream.send(response_headers(500, False)))
        assert (status, answer["rules"]) == (403, ["t.resp"])
        assert await stream.ended()

    run(scenario, inspect={"response": "headers"})


def test_response_body_phase_sees_the_body() -> None:
    policy = """package tollgate
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "deny", "reasons": ["secret"], "rules": ["t.secret"]} if {
    input.response.body.secret
}
"""

    async def scenario(stream: Stream) -> None:
        first = await stream.send(get())
        assert first.mode_override.response_body_mode == ProcessingMode.BUFFERED
        reply = await stream.send(response_headers(200, False))
        assert reply.WhichOneof("response") == "response_headers"
        status, _ = immediate_json(await stream.send(response_body('{"secret": "s3"}')))
        assert status == 403
        assert await stream.ended()

    run(scenario, policy, inspect={"response": "body"})


def test_response_without_body_is_decided_at_its_headers() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.send(get())
        reply = await stream.send(response_headers(204, True))
        assert reply.WhichOneof("response") == "response_headers"
        assert await stream.ended()

    run(scenario, inspect={"response": "body"})


def test_unknown_route_gets_404() -> None:
    async def scenario(stream: Stream) -> None:
        status, answer = immediate_json(await stream.send(get(route="elsewhere")))
        assert status == 404
        assert answer["error"] == "unknown_target"
        assert await stream.ended()

    run(scenario)


def test_target_matched_by_cluster_name() -> None:
    async def scenario(stream: Stream) -> None:
        reply = await stream.send(get(route="some-route"))
        assert reply.WhichOneof("response") == "request_headers"

    run(scenario, match={"cluster": "demo_upstream"})


def test_phase_out_of_order_fails_closed() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.send(post())
        status, answer = immediate_json(await stream.send(response_headers(200, True)))
        assert (status, answer["error"]) == (500, "internal_error")

    run(scenario)


@pytest.mark.parametrize(
    "policy_body",
    [
        'decision := {"action": "maybe"}',
        'decision := "allow"',
        'decision := {"action": "allow", "rules": "not-a-list"}',
        'decision := {"action": "deny", "status": 200}',
        'decision := {"action": "allow", "extra": 1}',
        'decision := {"action": "allow"} if input.nothing',
    ],
    ids=["bad-action", "not-object", "bad-rules", "bad-status", "unknown-key", "undefined"],
)
def test_policy_errors_fail_closed(policy_body: str) -> None:
    async def scenario(stream: Stream) -> None:
        status, answer = immediate_json(await stream.send(get()))
        assert (status, answer["reasons"]) == (403, ["policy error"])
        assert answer["rules"] == ["tollgate.policy_error"]

    run(scenario, f"package tollgate\nimport rego.v1\n{policy_body}\n")


def test_policy_error_on_fail_open_target_allows() -> None:
    async def scenario(stream: Stream) -> None:
        reply = await stream.send(get())
        assert reply.WhichOneof("response") == "request_headers"

    run(scenario, 'package tollgate\nimport rego.v1\ndecision := {"action": "maybe"}\n',
        fail_mode="open")


def test_deny_status_named_by_policy() -> None:
    async def scenario(stream: Stream) -> None:
        status, _ = immediate_json(await stream.send(get()))
        assert status == 429

    run(scenario, 'package tollgate\ndecision := {"action": "deny", "status": 429}\n')


HOLDING = """package tollgate
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "hold", "approvers": ["group:dba"], "hold_seconds": 1,
             "rules": ["t.hold"], "reasons": ["needs a dba"]} if input.request.method == "DELETE"
decision := {"action": "hold", "approvers": ["group:dba"], "hold_seconds": 1,
             "grant": "window", "grant_minutes": 5} if input.request.method == "PATCH"
"""


def delete(path: str = "/rows") -> ProcessingRequest:
    return headers({":method": "DELETE", ":path": path}, True)


async def asked(approvals: ApprovalStore) -> list[Approval]:
    """The pending approvals, once there is one: Envoy is told to wait before anything
    is asked."""
    while not (pending := await approvals.list("pending")):
        await asyncio.sleep(0.01)
    return pending


async def approve_when_asked(approvals: ApprovalStore, approve: bool = True,
                             by: str = "dana") -> None:
    """Play the approver: wait for the request to be pending, then decide it."""
    pending = await asked(approvals)
    await approvals.decide(pending[0].id, by, ["dba"], approve, "looked at it")


def test_a_hold_nobody_decides_in_time_is_refused_naming_its_approval() -> None:
    async def scenario(stream: Stream) -> None:
        waiting = await stream.send(delete())
        # First Envoy is told to wait longer than its message_timeout...
        assert waiting.WhichOneof("response") is None
        assert waiting.override_message_timeout.seconds == 6
        # ...then, the hold over, the refusal says which approval and where to decide it.
        status, answer = immediate_json(await stream.read())
        assert status == 403
        assert answer["error"] == "approval_required" and answer["status"] == "pending"
        assert answer["approve_url"] == f"http://approvals.test/approvals/{answer['approval_id']}"
        assert answer["rules"] == ["t.hold"] and answer["reasons"] == ["needs a dba"]
        assert await stream.ended()
        # Approvers are told the wait the policy chose (1 s), not the longest allowed.
        approval = await stream.approvals.get(answer["approval_id"])
        assert approval.hold_until_us == approval.created_us + 1_000_000

    (record,) = run(scenario, HOLDING)
    assert record["outcome"]["action"] == "hold"
    assert record["approval"]["status"] == "pending"
    assert record["approval"]["requested_by"] == "svc-autogen"


def test_a_hold_approved_in_time_continues_and_is_recorded_with_its_approver() -> None:
    async def scenario(stream: Stream) -> None:
        approver = asyncio.create_task(approve_when_asked(stream.approvals))
        assert (await stream.send(delete())).HasField("override_message_timeout")
        continued = await stream.read()
        assert continued.WhichOneof("response") == "request_headers"
        await approver
        assert await stream.ended()

    (record,) = run(scenario, HOLDING)
    assert record["outcome"]["action"] == "allow"
    assert (record["approval"]["status"], record["approval"]["decided_by"]) == ("used", "dana")
    assert record["approval"]["reason"] == "looked at it"


def test_a_hold_denied_in_time_is_refused_with_who_denied_it() -> None:
    async def scenario(stream: Stream) -> None:
        approver = asyncio.create_task(approve_when_asked(stream.approvals, approve=False))
        await stream.send(delete())
        status, answer = immediate_json(await stream.read())
        await approver
        assert (status, answer["error"], answer["status"]) == (403, "approval_denied",
                                                               "denied")
        assert answer["message"].endswith("was denied by dana: looked at it")

    (record,) = run(scenario, HOLDING)
    assert record["outcome"]["action"] == "deny"


def test_an_approval_lets_the_same_request_through_once_and_no_other() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.send(delete("/rows/1"))
        _, answer = immediate_json(await stream.read())  # timed out: pending
        await stream.approvals.decide(answer["approval_id"], "dana", ["dba"], True, None)
        again = stream.another()
        # The same request: Envoy is told to wait before a grant is looked for (the
        # store may be slow), then it passes at once.
        assert (await again.send(delete("/rows/1"))).HasField("override_message_timeout")
        assert (await again.read()).WhichOneof("response") == "request_headers"
        other = stream.another()
        assert (await other.send(delete("/rows/2"))).HasField("override_message_timeout")
        _, refused = immediate_json(await other.read())
        assert refused["approval_id"] != answer["approval_id"]
        third = stream.another()  # the grant was for once
        assert (await third.send(delete("/rows/1"))).HasField("override_message_timeout")
        _, asked_again = immediate_json(await third.read())
        assert asked_again["approval_id"] not in (answer["approval_id"],
                                                  refused["approval_id"])

    records = run(scenario, HOLDING)
    assert [r["approval"]["via"] for r in records if r["approval"]] == [
        "hold", "grant", "hold", "hold"]


def test_a_window_grant_lets_the_identitys_held_requests_through_until_it_ends() -> None:
    async def scenario(stream: Stream) -> None:
        approver = asyncio.create_task(approve_when_asked(stream.approvals))
        await stream.send(headers({":method": "PATCH", ":path": "/a"}, True))
        assert (await stream.read()).WhichOneof("response") == "request_headers"
        await approver
        for path in ("/b", "/c"):  # other requests, same identity and target: no wait
            other = stream.another()
            waiting = await other.send(headers({":method": "PATCH", ":path": path}, True))
            assert waiting.HasField("override_message_timeout")
            assert (await other.read()).WhichOneof("response") == "request_headers"

    run(scenario, HOLDING)


def test_two_retries_waiting_on_one_once_approval_let_one_request_through() -> None:
    async def scenario(stream: Stream) -> None:
        second = stream.another()
        assert (await stream.send(delete())).HasField("override_message_timeout")
        (pending,) = await asked(stream.approvals)
        assert (await second.send(delete())).HasField("override_message_timeout")
        # One approval for both: decided once both wait on it.
        while len(stream.approvals._events.get(pending.id, ())) < 2:
            await asyncio.sleep(0.01)
        assert [a.id for a in await stream.approvals.list("pending")] == [pending.id]
        await stream.approvals.decide(pending.id, "dana", ["dba"], True, None)
        answers = [await stream.read(), await second.read()]
        passed = [a for a in answers if a.WhichOneof("response") == "request_headers"]
        refused = [immediate_json(a) for a in answers
                   if a.WhichOneof("response") == "immediate_response"]
        assert len(passed) == 1 and len(refused) == 1
        status, answer = refused[0]
        assert (status, answer["error"], answer["status"]) == (403, "approval_required",
                                                               "used")
        assert "let another request like this one through" in answer["message"]

    records = run(scenario, HOLDING)
    assert sorted(r["outcome"]["action"] for r in records) == ["allow", "hold"]


def test_a_wait_whose_approval_another_process_withdrew_asks_anew() -> None:
    """An identical request waiting on the same approval in another worker left, and
    withdrew it there: this one, still waiting, asks anew for the rest of its wait, and
    passes once that approval is given."""
    policy = HOLDING.replace('"hold_seconds": 1,', '"hold_seconds": 20,', 1)

    async def scenario(stream: Stream) -> None:
        assert (await stream.send(delete())).HasField("override_message_timeout")
        (first,) = await asked(stream.approvals)
        # What the other worker's withdrawal writes; this waiter finds it at its next poll.
        await stream.approvals.store.execute(
            "UPDATE approvals SET status = 'abandoned', reason = ? WHERE id = ?",
            (WITHDRAWN, first.id))
        (fresh,) = await asyncio.wait_for(asked(stream.approvals), 10)
        assert fresh.id != first.id
        await stream.approvals.decide(fresh.id, "dana", ["dba"], True, None)
        assert (await stream.read()).WhichOneof("response") == "request_headers"

    (record,) = run(scenario, policy)
    assert (record["approval"]["status"], record["outcome"]["action"]) == ("used", "allow")


def test_a_hold_whose_mask_cannot_be_applied_is_refused_without_asking_anyone() -> None:
    policy = HOLDING.replace('"rules": ["t.hold"],',
                             '"rules": ["t.hold"], "mask": {"detectors": ["all"]},')
    assert policy != HOLDING

    async def scenario(stream: Stream) -> None:
        status, answer = immediate_json(await stream.send(delete()))
        assert status == 403
        assert answer["rules"] == ["t.hold", "tollgate.mask_unavailable"]
        assert await stream.approvals.list() == []

    (record,) = run(scenario, policy)  # the target reads no responses
    assert record["approval"] is None


def test_an_approvals_store_that_cannot_answer_refuses_the_hold_503() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.approvals._store.execute("ALTER TABLE approvals RENAME TO gone")
        assert (await stream.send(delete())).HasField("override_message_timeout")
        status, answer = immediate_json(await stream.read())
        assert (status, answer["error"]) == (503, "approvals_unavailable")
        assert "approvals store cannot answer" in answer["message"]

    run(scenario, HOLDING)


def test_masking_on_a_target_that_does_not_read_responses_refuses() -> None:
    async def scenario(stream: Stream) -> None:
        status, answer = immediate_json(await stream.send(get()))
        assert status == 403
        assert "tollgate.mask_unavailable" in answer["rules"]

    run(scenario, 'package tollgate\ndecision := {"action": "allow", "mask": {"fields": ["x"]}}\n')


def test_policy_input_shape_and_redacted_secrets() -> None:
    # The policy denies with the input as its reason, so the test can read what it saw.
    policy = """package tollgate
decision := {"action": "deny", "reasons": [json.marshal(input)]}
"""

    async def scenario(stream: Stream) -> None:
        _, answer = immediate_json(
            await stream.send(
                get("/items?id=1&id=2&q=", authorization="Bearer s3cret", cookie="sid=abc",
                    accept="application/json")
            )
        )
        seen = json.loads(answer["reasons"][0])
        assert seen["phase"] == "request"
        assert seen["target"] == {
            "name": "demo", "protocol": "http", "environment": "dev", "labels": {}
        }
        request = seen["request"]
        assert (request["method"], request["path"]) == ("GET", "/items")
        assert request["query"] == {"id": ["1", "2"], "q": [""]}
        assert request["headers"]["accept"] == "application/json"
        assert request["headers"]["authorization"].startswith("<redacted:")
        assert "s3cret" not in answer["reasons"][0] and "abc" not in answer["reasons"][0]
        assert not any(name.startswith(":") for name in request["headers"])
        assert seen["identity"] == {
            "authenticated": True, "sub": "svc-autogen", "iss": "https://issuer.test",
            "aud": ["tollgate"], "email": "bot@example.com", "groups": ["agents"], "jti": "j-1",
        }
        assert seen["sql"] is None and seen["approval"] is None

    run(scenario, policy)


def test_body_with_integers_beyond_64_bits_is_decided_on() -> None:
    policy = """package tollgate
import rego.v1
default decision := {"action": "deny", "reasons": ["not exact"]}
decision := {"action": "allow"} if input.request.body.id == 123456789012345678901234567890
"""

    async def scenario(stream: Stream) -> None:
        await stream.send(post())
        reply = await stream.send(body({"id": 123456789012345678901234567890}))
        assert reply.WhichOneof("response") == "request_body"

    run(scenario, policy)


def test_no_verified_token_is_refused_401_unless_the_target_is_anonymous() -> None:
    async def refused(stream: Stream) -> None:
        status, answer = immediate_json(await stream.send(get(claims=None)))
        assert (status, answer["error"]) == (401, "unauthenticated")

    run(refused)

    policy = """package tollgate
decision := {"action": "deny", "reasons": [json.marshal(input.identity)]}
"""

    async def anonymous(stream: Stream) -> None:
        _, answer = immediate_json(await stream.send(get(claims=None)))
        assert json.loads(answer["reasons"][0]) == {"authenticated": False}

    run(anonymous, policy, anonymous=True)


def test_groups_claim_name_is_configurable() -> None:
    policy = """package tollgate
decision := {"action": "deny", "reasons": input.identity.groups}
"""

    async def scenario(stream: Stream) -> None:
        claims = {**CLAIMS, "roles": ["dba", "oncall"], "groups": ["ignored"]}
        _, answer = immediate_json(await stream.send(get(claims=claims)))
        assert answer["reasons"] == ["dba", "oncall"]

    run(scenario, policy, identity={"groups_claim": "roles"})


# -- a streamed response that trailers end (FULL_DUPLEX_STREAMED: headers, body, trailers) --

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def sse_headers() -> ProcessingRequest:
    return ProcessingRequest(response_headers=HttpHeaders(headers=HeaderMap(headers=[
        HeaderValue(key=":status", raw_value=b"200"),
        HeaderValue(key="content-type", raw_value=b"text/event-stream"),
    ])))


def piece(data: bytes) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=False))


TRAILERS = ProcessingRequest(response_trailers=HttpTrailers())
MASK_ALL = 'package tollgate\ndecision := {"action": "allow", "mask": {"detectors": ["all"]}}\n'
EVENT = b'data: {"choices": [{"index": 0, "delta": {"content": "hello"}}]}\n\n'


async def chat_until_the_answer(stream: Stream) -> None:
    await stream.send(post("/v1/chat/completions"))
    await stream.send(body(CHAT))


def test_a_model_call_asks_for_its_answer_streamed_while_the_headers_wait() -> None:
    async def scenario(stream: Stream) -> None:
        first = await stream.send(post("/v1/chat/completions"))
        assert first.mode_override.response_body_mode == ProcessingMode.FULL_DUPLEX_STREAMED
        assert first.mode_override.response_trailer_mode == ProcessingMode.SEND

    run(scenario, protocol="llm", inspect={"response": "body"})


@pytest.mark.parametrize("content_type", [b"application/json", b"text/event-stream"])
def test_an_llm_answer_ended_by_trailers_keeps_headers_body_trailers_order(
    content_type: bytes,
) -> None:
    """Envoy sends trailers (when the upstream has them) as the end of the body, and
    expects the answers in the order headers, body, trailers."""
    answer = (json.dumps({"choices": [{"index": 0, "message": {"content": "hello"}}]}).encode()
              if content_type == b"application/json" else EVENT)

    async def scenario(stream: Stream) -> None:
        await chat_until_the_answer(stream)
        headers_message = sse_headers()
        headers_message.response_headers.headers.headers[1].raw_value = content_type
        await stream.tell(headers_message)
        await stream.tell(piece(answer))
        await stream.tell(TRAILERS)
        kinds = [(await stream.read()).WhichOneof("response")]
        while kinds[-1] != "response_trailers":
            kinds.append((await stream.read()).WhichOneof("response"))
        assert kinds[0] == "response_headers"
        assert set(kinds[1:-1]) == {"response_body"}
        assert await stream.ended()

    run(scenario, protocol="llm", inspect={"response": "body"})


def test_a_masked_event_stream_ended_by_trailers_answers_them_last() -> None:
    async def scenario(stream: Stream) -> None:
        await stream.send(get())
        first = await stream.send(sse_headers())
        assert first.mode_override.response_trailer_mode == ProcessingMode.SEND
        passed = await stream.send(piece(EVENT))
        # Released at once, its text held back for what may follow it in the next events.
        released = passed.response_body.response.body_mutation.streamed_response.body
        assert released.endswith(b"\n\n") and b"hello" not in released
        await stream.tell(TRAILERS)
        last = await stream.read()
        assert last.response_body.response.body_mutation.streamed_response.end_of_stream is False
        assert b'"hello"' in last.response_body.response.body_mutation.streamed_response.body
        assert (await stream.read()).WhichOneof("response") == "response_trailers"
        assert await stream.ended()

    run(scenario, MASK_ALL, inspect={"response": "body"})


# -- the audit record ------------------------------------------------------------------


def test_every_exchange_leaves_one_record_joined_by_its_trace_id() -> None:
    traces: list[str] = []

    async def scenario(stream: Stream) -> None:
        reply = await stream.send(get())
        traces.append(reply.dynamic_metadata.fields["tollgate"].struct_value["trace_id"])
        assert await stream.ended()

    (record,) = run(scenario)
    assert record["trace_id"] == traces[0]
    assert record["outcome"]["action"] == "allow" and record["target"]["name"] == "demo"
    assert [d["phase"] for d in record["decisions"]] == ["request"]


def test_an_exchange_that_cannot_be_recorded_is_refused_503() -> None:
    """With one place in the record's queue, taken by an exchange still open, the next
    exchange is refused before anything is decided or passed; the first one, once done,
    is recorded (the refused one cannot be: its refusal is logged)."""
    async def scenario(stream: Stream) -> None:
        await stream.send(post())  # open, waiting for its body: its place is taken
        status, answer = immediate_json(await stream.another().send(get()))
        assert (status, answer["error"]) == (503, "recording_unavailable")
        assert "queue is full (1 records waiting" in answer["message"]
        await stream.send(body({"sql": "SELECT 1"}))
        assert await stream.ended()

    (record,) = run(scenario, recording={"queue_size": 1})
    assert record["request"]["method"] == "POST" and record["outcome"]["action"] == "allow"
